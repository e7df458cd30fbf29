"""The hub's configuration: one YAML file, read into a frozen :class:`HubConfig` (data only).

Example (paths are relative to the YAML file)::

    upstream:
      url: https://earth-search.aws.element84.com/v1   # a STAC API
      preset: earth-search                             # band names and scale/offset rules
    collections: [sentinel-2-l2a]
    areas:                                             # areas of interest, one per entry
      - vectors/guyane-communes.gpkg                   # GeoJSON / GPKG: union of its features
      - {path: aoi/saint-laurent.geojson, name: saint-laurent}
      - {path: communes.gpkg, split: code}          # one area per commune (named by code)
      - {bbox: [-52.49, 4.81, -52.46, 4.83], name: montsinery}          # lon/lat
    days: 90                   # rolling window ending today (or datetime: 2024-01-01/2024-12-31)
    max_cloud: 30              # percent of the area under cloud, measured from SCL
    assets: [blue, green, red, nir, swir16, scl]       # our band names
    target: /srv/hub/guyane    # the static STAC catalog and its COGs
    whole: false               # true: download whole files instead of the areas' windows
    max_bytes_per_second: 20000000                     # bandwidth cap (null: none)
    retries: 4                 # attempts per asset after the first one
    backoff: 2.0               # seconds before the first retry, doubled each time
    timeout: 60                # seconds per HTTP request
    public_url: https://hub.example.org/guyane          # optional: where target is served
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from sentinelle.catalog.dates import Interval, parse_interval
from sentinelle.catalog.presets import BANDS, get_preset
from sentinelle.errors import InvalidInput

KEYS = {"upstream", "collections", "areas", "datetime", "days", "max_cloud", "assets", "target",
        "whole", "max_bytes_per_second", "retries", "backoff", "timeout", "verify", "name",
        "public_url"}


@dataclass(frozen=True)
class AreaSpec:
    """Where one area of interest comes from: a vector file or a lon/lat bbox."""

    name: str
    path: Path | None = None
    bbox: tuple[float, float, float, float] | None = None
    layer: str | None = None
    split: str | None = None  # one area per value of this property (e.g. a commune code)


@dataclass(frozen=True)
class HubConfig:
    url: str
    preset: str
    areas: tuple[AreaSpec, ...]
    assets: tuple[str, ...]
    target: Path
    collections: tuple[str, ...] | None = None
    datetime: str | None = None  # an interval ``start/end``; exclusive with ``days``
    days: int | None = None  # rolling window ending now
    max_cloud: float | None = None  # percent
    whole: bool = False
    max_bytes_per_second: float | None = None
    retries: int = 3
    backoff: float = 1.0  # seconds
    timeout: float = 60.0  # seconds
    verify: bool = True  # re-hash local files of complete assets before skipping them
    name: str = "hub"
    public_url: str | None = None  # where ``target`` is served over HTTP (for the API files)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def interval(self, now: dt.datetime | None = None) -> Interval | None:
        """The time interval to mirror (``days`` counts back from ``now``)."""
        if self.days is not None:
            now = now or dt.datetime.now(dt.timezone.utc)
            return Interval(now - dt.timedelta(days=self.days), now)
        return parse_interval(self.datetime) if self.datetime else None


def _area_spec(entry: Any, base: Path, index: int) -> AreaSpec:
    if isinstance(entry, str):
        entry = {"path": entry}
    if not isinstance(entry, Mapping):
        raise InvalidInput(f"areas[{index}] must be a file path or a mapping with path or bbox")
    unknown = set(entry) - {"path", "bbox", "name", "layer", "split"}
    if unknown:
        raise InvalidInput(f"areas[{index}]: unknown keys {sorted(unknown)} "
                           "(use path, layer, split, bbox, name)")
    if ("path" in entry) == ("bbox" in entry):
        raise InvalidInput(f"areas[{index}] needs exactly one of path or bbox")
    if "path" in entry:
        path = Path(entry["path"])
        path = path if path.is_absolute() else (base / path).resolve()
        name = str(entry.get("name") or path.stem)
        return AreaSpec(name=name, path=path, layer=entry.get("layer"),
                        split=entry.get("split"))
    bbox = entry["bbox"]
    if not isinstance(bbox, Sequence) or len(bbox) != 4:
        raise InvalidInput(f"areas[{index}].bbox must be [minlon, minlat, maxlon, maxlat]")
    return AreaSpec(name=str(entry.get("name") or f"area-{index + 1}"),
                    bbox=tuple(float(v) for v in bbox))


def parse_config(data: Mapping[str, Any], base: Path | str = ".") -> HubConfig:
    """A :class:`HubConfig` from a mapping (the parsed YAML); ``InvalidInput`` says what's wrong."""
    base = Path(base)
    if not isinstance(data, Mapping):
        raise InvalidInput("the hub configuration must be a YAML mapping")
    unknown = set(data) - KEYS
    if unknown:
        raise InvalidInput(f"unknown configuration keys {sorted(unknown)}; known: {sorted(KEYS)}")
    upstream = data.get("upstream")
    if isinstance(upstream, str):
        upstream = {"url": upstream}
    if not isinstance(upstream, Mapping) or not upstream.get("url"):
        raise InvalidInput("upstream.url (the STAC API root) is required")
    preset = str(upstream.get("preset", "earth-search"))
    get_preset(preset)  # ValueError listing the known presets
    areas = data.get("areas") or []
    if not areas:
        raise InvalidInput("areas: at least one area of interest (a GeoJSON/GPKG path or bbox)")
    specs = tuple(_area_spec(entry, base, i) for i, entry in enumerate(areas))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise InvalidInput(f"area names must be unique, got {names}; set name: on each entry")
    assets = tuple(data.get("assets") or ())
    if not assets:
        raise InvalidInput(f"assets: the bands to keep, among {', '.join(BANDS)}")
    bad = [a for a in assets if a not in BANDS]
    if bad:
        raise InvalidInput(f"unknown bands {bad}; use our names: {', '.join(BANDS)}")
    if data.get("datetime") and data.get("days") is not None:
        raise InvalidInput("give either datetime (an interval) or days (a rolling window)")
    if data.get("datetime"):
        parse_interval(str(data["datetime"]))
    days = data.get("days")
    if days is not None and (not isinstance(days, int) or days <= 0):
        raise InvalidInput(f"days must be a positive integer, got {days!r}")
    max_cloud = data.get("max_cloud")
    if max_cloud is not None and not 0 <= float(max_cloud) <= 100:
        raise InvalidInput(f"max_cloud is a percentage between 0 and 100, got {max_cloud}")
    if not data.get("target"):
        raise InvalidInput("target: the folder of the local catalog is required")
    target = Path(data["target"])
    target = target if target.is_absolute() else (base / target).resolve()
    rate = data.get("max_bytes_per_second")
    if rate is not None and float(rate) <= 0:
        raise InvalidInput("max_bytes_per_second must be positive (or null for no cap)")
    collections = data.get("collections")
    return HubConfig(
        url=str(upstream["url"]).rstrip("/"),
        preset=preset,
        areas=specs,
        assets=assets,
        target=target,
        collections=tuple(collections) if collections else None,
        datetime=str(data["datetime"]) if data.get("datetime") else None,
        days=days,
        max_cloud=None if max_cloud is None else float(max_cloud),
        whole=bool(data.get("whole", False)),
        max_bytes_per_second=None if rate is None else float(rate),
        retries=int(data.get("retries", 3)),
        backoff=float(data.get("backoff", 1.0)),
        timeout=float(data.get("timeout", 60.0)),
        verify=bool(data.get("verify", True)),
        name=str(data.get("name", "hub")),
        public_url=str(data["public_url"]) if data.get("public_url") else None,
    )


def load_config(path: str | Path) -> HubConfig:
    """Read a hub YAML file; relative paths in it are relative to the file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as err:
        raise InvalidInput(f"cannot read the hub configuration {path}: {err}") from err
    except yaml.YAMLError as err:
        raise InvalidInput(f"{path} is not valid YAML: {err}") from err
    return parse_config(data, path.resolve().parent)
