"""Where scenes come from: a static STAC catalog on disk (pystac), a STAC API (pystac-client)
or a folder of Theia/MAJA products (:mod:`~sentinelle.catalog.theia`).

Every source answers the same two questions — which scenes meet an area and a time interval,
and which scene has this id — and hands back normalised
:class:`~sentinelle.catalog.scenes.Scene`s.  It also carries what reading its scenes needs:
its :class:`~sentinelle.catalog.presets.Preset` (band names, with the configuration's
``assets:`` overrides) and its cloud :class:`~sentinelle.catalog.masks.Mask`.  A catalog on
disk is read once and kept in a module-level cache (pygeoapi rebuilds providers on every
request, so the cost must not be paid per request); it is re-read when its root changes.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import pystac
import shapely

from sentinelle.catalog.base import Catalog, ScenesCatalog, resolve_preset
from sentinelle.catalog.gdal import http_timeout
from sentinelle.catalog.masks import parse_mask
from sentinelle.catalog.presets import get_preset, with_assets
from sentinelle.catalog.scenes import scene_from_item
from sentinelle.errors import NotFound, SourceUnavailable, UpstreamTimeout, UpstreamUnavailable


class StaticCatalog(ScenesCatalog):
    """A static STAC catalog (``catalog.json`` with children and items) on the local disk.

    ``allow_remote=False`` (the default) drops assets whose href is a URL: a catalog of local
    files must never fetch from the internet behind the user's back (the Earth Search extracts
    keep https thumbnails and s3 JPEG 2000 copies next to the local bands).
    """

    def __init__(self, path: str | Path, preset: str = "auto", *, allow_remote: bool = False,
                 assets=None, mask=None, collections: Sequence[str] | None = None):
        self.path = Path(path).resolve()
        if self.path.is_dir():
            self.path = self.path / "catalog.json"
        if not self.path.exists():
            raise SourceUnavailable(f"no STAC catalog at {self.path}")
        self._preset_name = preset
        self._assets = assets
        self._mask = mask
        self.collections = list(collections or [])
        self.allow_remote = allow_remote
        self._load()

    def _load(self) -> None:
        try:
            root = pystac.read_file(str(self.path))
            items = list(root.get_items(recursive=True)) if isinstance(root, pystac.Catalog) \
                else []
        except (OSError, json.JSONDecodeError, pystac.STACError) as err:
            raise SourceUnavailable(f"cannot read the STAC catalog {self.path}: {err}") from err
        raws = [(item.to_dict(include_self_link=False, transform_hrefs=False),
                 item.get_self_href()) for item in items]
        if self.collections:
            raws = [(raw, href) for raw, href in raws
                    if raw.get("collection") in self.collections]
        self.preset, self.preset_reason = resolve_preset(
            self._preset_name, raws[0][0] if raws else None, self._assets)
        self.mask = parse_mask(self._mask, self.preset.mask)
        scenes = []
        for raw, href in raws:
            scene = scene_from_item(raw, self.preset, self_href=href)
            if not self.allow_remote:
                scene = replace(scene, assets={b: a for b, a in scene.assets.items()
                                               if not a.is_remote})
            scenes.append(scene)
        self._index(scenes)


def api_error(err: BaseException, url: str, doing: str, timeout: float) -> SourceUnavailable:
    """A failed request to a STAC API as the error the client should see: 503 when the API
    cannot be reached, 504 when it did not answer within ``timeout`` seconds, 502 when it
    answered with an error or something that is not STAC."""
    import requests

    chain, current = [], err
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    status = getattr(err, "status_code", None)
    if any(isinstance(e, requests.Timeout) for e in chain):
        return UpstreamTimeout(f"the STAC API {url} did not answer within {timeout:g} s "
                               f"({doing}); try again later")
    if any(isinstance(e, requests.ConnectionError) for e in chain):
        return UpstreamUnavailable(f"the STAC API {url} is unavailable: it cannot be reached "
                                   f"({doing}); try again later")
    if status is not None:
        return SourceUnavailable(f"the STAC API {url} answered HTTP {status} ({doing}); "
                                 "try again later")
    return SourceUnavailable(f"the STAC API {url} gave an unusable answer ({doing}): {err}")


class StacApiCatalog(Catalog):
    """A STAC API searched with pystac-client (Earth Search, CDSE, Planetary Computer, a hub).

    Every HTTP request gives up after ``timeout`` seconds (``SENTINELLE_HTTP_TIMEOUT``, 30;
    connecting: at most 10) and is not retried after a timeout, so a slow API costs a request
    one timeout, not pystac-client's default six.
    """

    def __init__(self, url: str, preset: str = "earth-search", *,
                 collections: Sequence[str] | None = None, timeout: float | None = None,
                 assets=None, mask=None):
        self.url = url
        # seconds per HTTP request: a slow upstream must not hang us
        self.timeout = http_timeout() if timeout is None else float(timeout)
        if preset == "auto":  # a STAC API is asked for one collection: its preset is named
            preset = "earth-search"
            self.preset_reason = "a STAC API without a preset: Earth Search v1 assumed"
        self.preset = with_assets(get_preset(preset), assets)
        self.mask = parse_mask(mask, self.preset.mask)
        self.collections = list(collections or [self.preset.collection])
        self._client = None
        self._lock = threading.Lock()

    def _open(self):
        import pystac_client
        from pystac_client.stac_api_io import StacApiIO
        from urllib3 import Retry

        with self._lock:
            if self._client is None:
                # one quick retry of a refused connection, none after a timeout or an answer
                # (read=False: a read timeout is raised as itself, not as a ConnectionError)
                retry = Retry(total=1, connect=1, read=False, status=0, other=0,
                              backoff_factor=0.2, raise_on_status=False)
                timeout = (min(self.timeout, 10.0), self.timeout)  # (connect, read)
                try:
                    # the timeout goes to open() too: it resets the StacApiIO's to its own
                    self._client = pystac_client.Client.open(
                        self.url, stac_io=StacApiIO(max_retries=retry), timeout=timeout)
                except Exception as err:
                    raise api_error(err, self.url, "opening its landing page",
                                    self.timeout) from err
        return self._client

    def find(self, area=None, interval=None, *, limit=None):
        client = self._open()
        kwargs = {"collections": self.collections, "max_items": limit}
        if area is not None:
            kwargs["intersects"] = shapely.geometry.mapping(area.to_crs("OGC:CRS84").geometry)
        if interval is not None and (interval.start or interval.end):
            start = interval.start.isoformat() if interval.start else ".."
            end = interval.end.isoformat() if interval.end else ".."
            kwargs["datetime"] = f"{start}/{end}"
        try:
            items = list(client.search(**kwargs).items_as_dicts())
        except Exception as err:
            raise api_error(err, self.url, "searching scenes", self.timeout) from err
        scenes = [scene_from_item(item, self.preset) for item in items]
        return sorted(scenes, key=lambda s: (s.datetime, s.id))

    def get(self, scene_id):
        client = self._open()
        try:
            items = list(client.search(collections=self.collections, ids=[scene_id],
                                       max_items=1).items_as_dicts())
        except Exception as err:
            raise api_error(err, self.url, f"looking up scene {scene_id}", self.timeout) \
                from err
        if not items:
            raise NotFound(f"no scene {scene_id!r} in {self.url}")
        return scene_from_item(items[0], self.preset)


_CACHE: dict[tuple, tuple[float, Catalog]] = {}
_CACHE_LOCK = threading.Lock()


def _key(value) -> str:
    """Options as a hashable cache key (assets and masks are mappings)."""
    return json.dumps(value, sort_keys=True, default=str)


def _theia_root(path: Path) -> bool:
    from sentinelle.catalog.theia import product_folders

    return path.is_dir() and not (path / "catalog.json").exists() \
        and bool(product_folders(path))


def _static_version(root: Path) -> float:
    """Changes when the catalog or one of its collections changes (a new item is linked from
    its collection, not from the root)."""
    stamps = [root.stat().st_mtime]
    for child in ("*/collection.json", "*/catalog.json"):
        stamps += [p.stat().st_mtime for p in root.parent.glob(child)]
    return max(stamps)


def open_catalog(source: str | Path, preset: str = "auto", **options) -> Catalog:
    """The catalog at ``source``: a URL opens a STAC API, a path a static STAC catalog or a
    folder of Theia products (cached, re-read when it changes).  ``options``: ``assets``
    (band overrides), ``mask`` (a :func:`~sentinelle.catalog.masks.parse_mask` spec),
    ``collections`` (STAC collection ids), ``allow_remote``, ``timeout``."""
    text = str(source)
    key_options = tuple(sorted((k, _key(v)) for k, v in options.items()))
    if urllib.parse.urlparse(text).scheme in ("http", "https"):
        key = ("api", text, preset, key_options)
        with _CACHE_LOCK:
            if key not in _CACHE:
                _CACHE[key] = (0.0, StacApiCatalog(text, preset, **options))
            return _CACHE[key][1]
    path = Path(text).resolve()
    if preset == "theia" or (preset == "auto" and _theia_root(path)):
        from sentinelle.catalog.theia import TheiaCatalog, folder_version

        version = folder_version(path)
        key = ("theia", str(path), preset, key_options)
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
            if cached is None or cached[0] != version:
                _CACHE[key] = (version, TheiaCatalog(path, preset, **options))
            return _CACHE[key][1]
    root = path / "catalog.json" if path.is_dir() else path
    try:
        mtime = _static_version(root)
    except OSError:
        raise SourceUnavailable(
            f"no STAC catalog at {root}; generate the sample data with "
            "`sentinelle sample-data DIR` or set SENTINELLE_DATA"
        ) from None
    key = ("static", str(root), preset, key_options)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is None or cached[0] != mtime:
            _CACHE[key] = (mtime, StaticCatalog(root, preset, **options))
        return _CACHE[key][1]
