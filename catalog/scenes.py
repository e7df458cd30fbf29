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
* ``proj:code`` (projection v2) and ``proj:epsg`` (v1) both give the EPSG code;
* the data type comes from ``raster:bands``/``data_type``, the source's configuration or the
  preset (None: the file's header decides, see :func:`sentinelle.catalog.gdal.asset_header`);
* a source's ``assets:`` configuration overrides the key, scale, offset, nodata and data type
  of any band (:func:`sentinelle.catalog.presets.with_assets`).
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
    dtype: str | None = None  # GDAL data type (lower case); None: as the file says

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
        """The MGRS tile (``30UXU``) from whichever properties the provider uses: ``s2:`` (v1,
        Planetary Computer), ``mgrs:`` (STAC MGRS extension), ``sentinel:`` (Earth Search v0,
        whose UTM zone may only be in ``proj:epsg``), ``grid:code`` (CDSE), ``tile`` (Theia)."""
        props = self.properties
        if props.get("s2:mgrs_tile"):
            return props["s2:mgrs_tile"]
        for prefix in ("mgrs", "sentinel"):
            band, square = props.get(f"{prefix}:latitude_band"), props.get(f"{prefix}:grid_square")
            if band and square:
                zone = props.get(f"{prefix}:utm_zone") or _utm_zone(self.epsg)
                if zone:
                    return f"{int(zone):02d}{band}{square}"
        code = props.get("grid:code", "")
        if code.startswith("MGRS-"):
            return code.split("-", 1)[1]
        return props.get("theia:tile")

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


def _utm_zone(epsg: int | None) -> int | None:
    if epsg is not None and (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
        return epsg % 100
    return None


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


def _declared(asset: Mapping[str, Any]) -> tuple[Any, Any, Any, Any]:
    """(scale, offset, nodata, data type) as declared by the asset, ``None`` where not
    declared (``raster:bands`` in STAC 1.0, ``bands`` + ``raster:*`` in STAC 1.1)."""
    bands = asset.get("raster:bands") or asset.get("bands") or [{}]
    first = bands[0] if isinstance(bands, list) and bands else {}
    scale = first.get("scale", first.get("raster:scale", asset.get("raster:scale")))
    offset = first.get("offset", first.get("raster:offset", asset.get("raster:offset")))
    nodata = first.get("nodata", asset.get("nodata"))
    dtype = first.get("data_type", asset.get("data_type"))
    return scale, offset, nodata, dtype


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
    for band, key in preset.band_keys.items():
        raw = raw_assets.get(key)
        if raw is None:
            continue
        override = preset.overrides.get(band)
        href = raw["href"]
        if preset.alternate and href.startswith("s3://"):
            href = raw.get("alternate", {}).get(preset.alternate, {}).get("href", href)
        scale, offset, nodata, dtype = _declared(raw)
        if override is not None:  # the source's configuration wins over the metadata
            scale = override.scale if override.scale is not None else scale
            offset = override.offset if override.offset is not None else offset
            nodata = override.nodata if override.nodata is not None else nodata
            dtype = override.dtype or dtype
        if band in CLASS_BANDS:
            scale, offset = 1.0, 0.0
        else:
            scale = preset.default_scale if scale is None else float(scale)
            offset = _baseline_offset(props, preset) if offset is None else float(offset)
            if offset_applied and not (override and override.offset is not None):
                offset = 0.0
        if nodata is None:  # SCL 0 is "no data"; a bit field's 0 is "clear"
            nodata = 0 if band == "scl" else None if band in CLASS_BANDS else preset.nodata
        transform = raw.get("proj:transform", props.get("proj:transform"))
        shape = raw.get("proj:shape", props.get("proj:shape"))
        assets[band] = Asset(
            band=band,
            href=_absolute(href, self_href),
            scale=scale,
            offset=offset,
            nodata=None if nodata is None else float(nodata),
            dtype=str(dtype).lower() if dtype else preset.dtype,
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
