"""Scenes: STAC items read once and normalised to our band vocabulary.

Parsing metadata is kept apart from reading pixels: a :class:`Scene` holds everything the
loader needs (absolute hrefs, scale and offset resolved, nodata, native grid) and nothing about
how the provider spelled it.  Provider quirks are handled here, once:

* relative hrefs are made absolute against the item's own location;
* ``s3://`` hrefs are swapped for the preset's ``alternate`` (https) when there is one;
* scale/offset come from ``raster:bands`` (STAC 1.0) or ``raster:scale``/``raster:offset``
  (STAC 1.1), else from the preset's processing-baseline rule;
* an offset already applied by the provider (Earth Search's ``earthsearch:boa_offset_applied``)
  is set to 0;
* ``proj:code`` (projection v2) and ``proj:epsg`` (v1) both give the EPSG code.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Mapping

import shapely.geometry

from sentinelle.catalog.presets import CLASS_BANDS, Preset


@dataclass(frozen=True)
class Asset:
    """One band of one scene, ready to read."""

    band: str
    href: str
    scale: float
    offset: float
    nodata: float | None
    epsg: int | None
    transform: tuple[float, ...] | None
    shape: tuple[int, int] | None
    source_key: str  # the provider's asset key

    @property
    def is_remote(self) -> bool:
        return urllib.parse.urlparse(self.href).scheme not in ("", "file")

    @property
    def resolution(self) -> float | None:
        return abs(self.transform[0]) if self.transform else None


@dataclass(frozen=True)
class Scene:
    """A Sentinel-2 L2A acquisition as Sentinelle sees it."""

    id: str
    collection: str | None
    datetime: dt.datetime
    footprint: shapely.Geometry  # lon/lat
    bbox: tuple[float, float, float, float]  # lon/lat
    epsg: int | None
    cloud_cover: float | None  # the provider's scene-wide percentage
    properties: Mapping[str, Any]
    assets: Mapping[str, Asset]
    links: tuple[Mapping[str, Any], ...] = field(default=())
    self_href: str | None = None

    @property
    def date(self) -> dt.date:
        return self.datetime.date()

    @property
    def mgrs_tile(self) -> str | None:
        props = self.properties
        if "s2:mgrs_tile" in props:
            return props["s2:mgrs_tile"]
        if "mgrs:utm_zone" in props:
            return f"{props['mgrs:utm_zone']}{props.get('mgrs:latitude_band', '')}" \
                   f"{props.get('mgrs:grid_square', '')}"
        code = props.get("grid:code", "")
        return code.split("-", 1)[1] if code.startswith("MGRS-") else None

    def stac_item(self, bands: list[str]) -> dict:
        """A minimal STAC item dict with our band names as asset keys, for stackstac."""
        assets = {}
        for band in bands:
            asset = self.assets[band]
            entry: dict[str, Any] = {"href": asset.href, "type": "image/tiff"}
            if asset.epsg is not None:
                entry["proj:epsg"] = asset.epsg
            if asset.transform is not None and asset.shape is not None:
                entry["proj:transform"] = list(asset.transform)
                entry["proj:shape"] = list(asset.shape)
            assets[band] = entry
        return {
            "type": "Feature",
            "stac_version": "1.0.0",
            "stac_extensions": [],
            "id": self.id,
            "geometry": shapely.geometry.mapping(self.footprint),
            "bbox": list(self.bbox),
            "properties": {"datetime": self.datetime.isoformat().replace("+00:00", "Z"),
                           **({"proj:epsg": self.epsg} if self.epsg else {})},
            "links": [],
            "assets": assets,
        }


def parse_datetime(value: str) -> dt.datetime:
    """An aware UTC datetime from an RFC 3339 string (``Z`` or offset)."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc)


def _epsg(props: Mapping[str, Any]) -> int | None:
    if props.get("proj:epsg") is not None:
        return int(props["proj:epsg"])
    code = props.get("proj:code")
    if isinstance(code, str) and code.upper().startswith("EPSG:"):
        return int(code.split(":", 1)[1])
    return None


def _absolute(href: str, base: str | None) -> str:
    if base is None or urllib.parse.urlparse(href).scheme or href.startswith("/"):
        return href
    if urllib.parse.urlparse(base).scheme in ("http", "https"):
        return urllib.parse.urljoin(base, href)
    return posixpath.normpath(posixpath.join(posixpath.dirname(base), href))


def _scale_offset(asset: Mapping[str, Any]) -> tuple[float | None, float | None, float | None]:
    """(scale, offset, nodata) as declared by the asset, ``None`` where not declared."""
    bands = asset.get("raster:bands") or asset.get("bands") or [{}]
    first = bands[0] if isinstance(bands, list) and bands else {}
    scale = first.get("scale", first.get("raster:scale", asset.get("raster:scale")))
    offset = first.get("offset", first.get("raster:offset", asset.get("raster:offset")))
    nodata = first.get("nodata", asset.get("nodata"))
    return scale, offset, nodata


def _baseline_offset(props: Mapping[str, Any], preset: Preset) -> float:
    baseline = props.get("s2:processing_baseline") or props.get("processing:version")
    if preset.offset_from_baseline is None or baseline is None:
        return 0.0
    try:
        newer = float(str(baseline)) >= float(preset.offset_from_baseline)
    except ValueError:
        return 0.0
    return -0.1 if newer else 0.0


def scene_from_item(item: Mapping[str, Any], preset: Preset, *,
                    self_href: str | None = None) -> Scene:
    """Normalise one STAC item dict (any provider) into a :class:`Scene`."""
    props = item.get("properties", {})
    if self_href is None:
        self_href = next((lk["href"] for lk in item.get("links", []) if lk.get("rel") == "self"),
                         None)
    item_epsg = _epsg(props)
    offset_applied = bool(preset.offset_applied_property
                          and props.get(preset.offset_applied_property))
    assets: dict[str, Asset] = {}
    raw_assets = item.get("assets", {})
    for band, key in preset.assets.items():
        raw = raw_assets.get(key)
        if raw is None:
            continue
        href = raw["href"]
        if preset.alternate and href.startswith("s3://"):
            href = raw.get("alternate", {}).get(preset.alternate, {}).get("href", href)
        scale, offset, nodata = _scale_offset(raw)
        if band in CLASS_BANDS:
            scale, offset = 1.0, 0.0
        else:
            scale = preset.default_scale if scale is None else float(scale)
            offset = _baseline_offset(props, preset) if offset is None else float(offset)
            if offset_applied:
                offset = 0.0
        transform = raw.get("proj:transform", props.get("proj:transform"))
        shape = raw.get("proj:shape", props.get("proj:shape"))
        assets[band] = Asset(
            band=band,
            href=_absolute(href, self_href),
            scale=scale,
            offset=offset,
            nodata=0 if nodata is None else nodata,
            epsg=_epsg(raw) or item_epsg,
            transform=tuple(transform[:6]) if transform else None,
            shape=tuple(shape) if shape else None,
            source_key=key,
        )
    geometry = item.get("geometry")
    footprint = shapely.geometry.shape(geometry) if geometry else shapely.box(*item["bbox"])
    stamp = props.get("datetime") or props.get("start_datetime")
    if stamp is None:
        raise ValueError(f"item {item.get('id')!r} has no datetime")
    cloud = props.get("eo:cloud_cover")
    return Scene(
        id=item["id"],
        collection=item.get("collection"),
        datetime=parse_datetime(stamp),
        footprint=footprint,
        bbox=tuple(item.get("bbox") or footprint.bounds),
        epsg=item_epsg or next((a.epsg for a in assets.values() if a.epsg), None),
        cloud_cover=None if cloud is None else float(cloud),
        properties=dict(props),
        assets=assets,
        links=tuple(item.get("links", [])),
        self_href=self_href,
    )
