"""Where scenes come from: a static STAC catalog on disk (pystac) or a STAC API (pystac-client).

Both sources answer the same two questions — which scenes meet an area and a time interval, and
which scene has this id — and hand back normalised :class:`~sentinelle.catalog.scenes.Scene`s.
A static catalog is read once and kept in a module-level cache (pygeoapi rebuilds providers on
every request, so the cost must not be paid per request); it is re-read when its root file
changes.
"""

from __future__ import annotations

import json
import threading
import urllib.parse
from abc import ABC, abstractmethod
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import pystac
import shapely

from sentinelle.catalog.area import Area
from sentinelle.catalog.dates import Interval
from sentinelle.catalog.gdal import http_timeout
from sentinelle.catalog.presets import Preset, get_preset, guess_preset
from sentinelle.catalog.scenes import Scene, scene_from_item
from sentinelle.errors import NotFound, SourceUnavailable, UpstreamTimeout, UpstreamUnavailable


class Catalog(ABC):
    """A source of Sentinel-2 L2A scenes."""

    preset: Preset

    @abstractmethod
    def find(self, area: Area | None = None, interval: Interval | None = None, *,
             limit: int | None = None) -> list[Scene]:
        """Scenes whose footprint meets ``area`` and whose date is in ``interval``, by date."""

    @abstractmethod
    def get(self, scene_id: str) -> Scene:
        """The scene with this id (:class:`NotFound` otherwise)."""


class StaticCatalog(Catalog):
    """A static STAC catalog (``catalog.json`` with children and items) on the local disk.

    ``allow_remote=False`` (the default) drops assets whose href is a URL: a catalog of local
    files must never fetch from the internet behind the user's back (the Earth Search extracts
    keep https thumbnails and s3 JPEG 2000 copies next to the local bands).
    """

    def __init__(self, path: str | Path, preset: str = "auto", *, allow_remote: bool = False):
        self.path = Path(path).resolve()
        if self.path.is_dir():
            self.path = self.path / "catalog.json"
        if not self.path.exists():
            raise SourceUnavailable(f"no STAC catalog at {self.path}")
        self._preset_name = preset
        self.allow_remote = allow_remote
        self._scenes: list[Scene] = []
        self._by_id: dict[str, Scene] = {}
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
        if self._preset_name != "auto":
            self.preset = get_preset(self._preset_name)
        else:
            self.preset = guess_preset(raws[0][0]) if raws else get_preset("earth-search")
        scenes = []
        for raw, href in raws:
            scene = scene_from_item(raw, self.preset, self_href=href)
            if not self.allow_remote:
                scene = replace(scene, assets={b: a for b, a in scene.assets.items()
                                               if not a.is_remote})
            scenes.append(scene)
        self._scenes = sorted(scenes, key=lambda s: (s.datetime, s.id))
        self._by_id = {s.id: s for s in self._scenes}

    @property
    def scenes(self) -> Sequence[Scene]:
        return self._scenes

    def find(self, area=None, interval=None, *, limit=None):
        out = []
        lonlat = area.to_crs("OGC:CRS84").geometry if area is not None else None
        for scene in self._scenes:
            if interval is not None and not interval.contains(scene.datetime):
                continue
            if lonlat is not None and not lonlat.intersects(scene.footprint):
                continue
            out.append(scene)
            if limit is not None and len(out) >= limit:
                break
        return out

    def get(self, scene_id):
        try:
            return self._by_id[scene_id]
        except KeyError:
            raise NotFound(f"no scene {scene_id!r} in the catalog") from None


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
                 collections: Sequence[str] | None = None, timeout: float | None = None):
        self.url = url
        # seconds per HTTP request: a slow upstream must not hang us
        self.timeout = http_timeout() if timeout is None else float(timeout)
        self.preset = get_preset(preset)
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


def open_catalog(source: str | Path, preset: str = "auto", **options) -> Catalog:
    """The catalog at ``source``: a URL opens a STAC API, a path a static catalog (cached)."""
    text = str(source)
    if urllib.parse.urlparse(text).scheme in ("http", "https"):
        key = ("api", text, preset, tuple(sorted(options.items())))
        with _CACHE_LOCK:
            if key not in _CACHE:
                api_preset = "earth-search" if preset == "auto" else preset
                _CACHE[key] = (0.0, StacApiCatalog(text, api_preset, **options))
            return _CACHE[key][1]
    path = Path(text).resolve()
    root = path / "catalog.json" if path.is_dir() else path
    try:
        mtime = root.stat().st_mtime
    except OSError:
        raise SourceUnavailable(
            f"no STAC catalog at {root}; generate the sample data with "
            "`sentinelle sample-data DIR` or set SENTINELLE_DATA"
        ) from None
    key = ("static", str(root), preset, tuple(sorted(options.items())))
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is None or cached[0] != mtime:
            _CACHE[key] = (mtime, StaticCatalog(root, preset, **options))
        return _CACHE[key][1]

