"""One object for "where": every way of naming an area becomes an :class:`Area` at the entry
point, and every pixel grid a :class:`Grid`.

An area is a shapely geometry with its CRS.  Bounding boxes in any CRS, GeoJSON geometries and
features of served collections all turn into one, so search, loading and masking take a single
type.  A grid (CRS + affine transform + shape) is what a cube is loaded on; it is derived from
an area, an output CRS and a resolution, snapped to multiples of the resolution so that 10, 20
and 60 m Sentinel-2 pixels nest exactly.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import shapely
import shapely.geometry
from affine import Affine
from pyproj import CRS, Transformer

CRS84 = CRS.from_string("OGC:CRS84")
_OGC_URI = "http://www.opengis.net/def/crs/"


def parse_crs(value: Any) -> CRS:
    """A pyproj CRS from ``EPSG:2154``, ``2154``, an OGC URI or ``CRS84`` (ValueError if not)."""
    if isinstance(value, CRS):
        return value
    # an int too goes through the checked parse below: CRS.from_epsg(-537) raises CRSError
    text = f"EPSG:{value}" if isinstance(value, int) else str(value).strip()
    if text.startswith(_OGC_URI):
        tail = text[len(_OGC_URI):].split("/")
        # …/EPSG/0/2154 or …/OGC/1.3/CRS84
        text = f"{tail[0]}:{tail[-1]}" if len(tail) >= 3 else text
    if text.upper() in {"CRS84", "OGC:CRS84", "CRS:84"}:
        return CRS84
    if text.isdigit():
        text = f"EPSG:{text}"
    try:
        return CRS.from_user_input(text)
    except Exception as err:  # pyproj raises CRSError, a ValueError subclass in newer versions
        raise ValueError(f"unknown CRS {value!r}; use e.g. 'EPSG:2154' or an OGC CRS URI") from err


def crs_uri(crs: CRS) -> str:
    """The OGC URI of a CRS (``http://www.opengis.net/def/crs/EPSG/0/2154``)."""
    if crs == CRS84:
        return "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    epsg = crs.to_epsg()
    if epsg is None:
        raise ValueError(f"CRS {crs.name!r} has no EPSG code")
    return f"http://www.opengis.net/def/crs/EPSG/0/{epsg}"


@functools.lru_cache(maxsize=64)
def _transformer(src: CRS, dst: CRS) -> Transformer:
    """Cached: building a transformer costs milliseconds, per geometry that adds up."""
    return Transformer.from_crs(src, dst, always_xy=True)


def validate_bbox(bbox: Sequence[float], crs: CRS = CRS84) -> tuple[float, float, float, float]:
    """Four finite numbers with min < max, inside lon/lat range for geographic CRSs."""
    if isinstance(bbox, str):
        bbox = bbox.split(",")
    if len(bbox) == 6:  # 3D bbox: drop the heights
        bbox = [bbox[0], bbox[1], bbox[3], bbox[4]]
    if len(bbox) != 4:
        raise ValueError(f"a bbox has 4 numbers (minx, miny, maxx, maxy), got {len(bbox)}")
    try:
        minx, miny, maxx, maxy = (float(v) for v in bbox)
    except (TypeError, ValueError) as err:
        raise ValueError(f"bbox values must be numbers, got {list(bbox)!r}") from err
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise ValueError("bbox values must be finite numbers")
    if minx >= maxx or miny >= maxy:
        raise ValueError(
            f"bbox must be (minx, miny, maxx, maxy) with min < max, got {[minx, miny, maxx, maxy]}"
        )
    if crs.is_geographic and (min(minx, maxx) < -180 or max(minx, maxx) > 180
                              or min(miny, maxy) < -90 or max(miny, maxy) > 90):
        raise ValueError(
            "bbox in longitude/latitude must lie within [-180, -90, 180, 90] "
            "(order: min longitude, min latitude, max longitude, max latitude)"
        )
    return minx, miny, maxx, maxy


@dataclass(frozen=True)
class Area:
    """A polygonal area of interest and its CRS (axis order always x/easting, y/northing)."""

    geometry: shapely.Geometry
    crs: CRS = CRS84

    @classmethod
    def from_bbox(cls, bbox: Sequence[float], crs: Any = CRS84) -> Area:
        crs = parse_crs(crs)
        return cls(shapely.box(*validate_bbox(bbox, crs)), crs)

    @classmethod
    def from_geojson(cls, geometry: Mapping[str, Any], crs: Any = CRS84) -> Area:
        """From a GeoJSON geometry (or Feature); invalid polygons are repaired."""
        if geometry.get("type") == "Feature":
            geometry = geometry.get("geometry") or {}
        try:
            geom = shapely.geometry.shape(geometry)
        except Exception as err:
            raise ValueError(f"not a valid GeoJSON geometry: {err}") from err
        if geom.is_empty:
            raise ValueError("the geometry is empty")
        if geom.geom_type not in {"Polygon", "MultiPolygon"}:
            raise ValueError(f"an area must be a Polygon or MultiPolygon, got {geom.geom_type}")
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        return cls(geom, parse_crs(crs))

    def to_crs(self, crs: Any) -> Area:
        crs = parse_crs(crs)
        if crs == self.crs:
            return self
        # densify so that straight edges stay faithful after a non-linear projection
        length = max(self.geometry.length, 1e-9)
        dense = shapely.segmentize(self.geometry, length / 400)
        projected = shapely.transform(dense, _transformer(self.crs, crs).transform,
                                      interleaved=False)
        return Area(projected, crs)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return tuple(self.geometry.bounds)  # type: ignore[return-value]

    def bounds_in(self, crs: Any) -> tuple[float, float, float, float]:
        return self.to_crs(crs).bounds

    @property
    def lonlat_bounds(self) -> tuple[float, float, float, float]:
        return self.bounds_in(CRS84)

    def intersects_lonlat(self, geometry: shapely.Geometry) -> bool:
        """Whether a lon/lat geometry (e.g. a STAC footprint) meets this area."""
        return self.to_crs(CRS84).geometry.intersects(geometry)


@dataclass(frozen=True)
class Grid:
    """A pixel grid: CRS, north-up affine transform and (height, width)."""

    crs: CRS
    transform: Affine
    shape: tuple[int, int]

    @classmethod
    def from_area(cls, area: Area, crs: Any, resolution: float, *,
                  anchor: tuple[float, float] = (0.0, 0.0)) -> Grid:
        """The grid covering ``area`` in ``crs``, its edges on ``anchor + k × resolution``.

        The default anchor suits Sentinel-2 tiles, whose origins are multiples of 60 m; pass a
        raster's origin to land exactly on its pixels at other resolutions.
        """
        if not resolution or resolution <= 0 or not math.isfinite(resolution):
            raise ValueError(f"resolution must be a positive number, got {resolution!r}")
        crs = parse_crs(crs)
        minx, miny, maxx, maxy = area.bounds_in(crs)
        ax, ay = anchor
        x0 = ax + math.floor((minx - ax) / resolution + 1e-9) * resolution
        y1 = ay + math.ceil((maxy - ay) / resolution - 1e-9) * resolution
        width = max(1, math.ceil((maxx - x0) / resolution - 1e-9))
        height = max(1, math.ceil((y1 - miny) / resolution - 1e-9))
        return cls(crs, Affine(resolution, 0, x0, 0, -resolution, y1), (height, width))

    @property
    def resolution(self) -> float:
        return self.transform.a

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        height, width = self.shape
        x0, y1 = self.transform.c, self.transform.f
        return x0, y1 + self.transform.e * height, x0 + self.transform.a * width, y1

    @property
    def epsg(self) -> int:
        code = self.crs.to_epsg()
        if code is None:
            raise ValueError(f"grid CRS {self.crs.name!r} has no EPSG code")
        return code

    @property
    def npixels(self) -> int:
        return self.shape[0] * self.shape[1]
