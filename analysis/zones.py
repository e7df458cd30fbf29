"""Zones for zonal statistics: ids, polygons and their CRS, checked once.

A :class:`Zones` is what every way of naming zones (GeoJSON features posted to a process,
features of a served collection, a GeoPackage read with pyogrio) is turned into at the entry
point.  Geometry problems are *per zone* and never fatal: an invalid polygon is repaired with
``shapely.make_valid`` (its polygonal part is kept) and a warning says so; an empty, null or
area-less geometry (point, line, zero-area polygon) stays in the list as an empty polygon
with a warning, so that it gets a row of nulls instead of disappearing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import shapely
import shapely.geometry
from pyproj import CRS, Transformer

from sentinelle.catalog.area import CRS84, parse_crs
from sentinelle.errors import InvalidInput

_POLYGONAL = {"Polygon", "MultiPolygon"}
_EMPTY = shapely.Polygon()


def _polygonal_part(geometry: shapely.Geometry) -> shapely.Geometry:
    """The polygons of a geometry (collections from ``make_valid`` hold lines and points too)."""
    if geometry.geom_type in _POLYGONAL:
        return geometry
    parts = [p for p in shapely.get_parts(geometry) if p.geom_type in _POLYGONAL]
    if not parts:
        return _EMPTY
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)


def clean_geometries(geometries: Sequence[Any]) -> tuple[np.ndarray, list[str | None]]:
    """Polygonal, valid geometries and one warning (or ``None``) per input geometry.

    Vectorised for the common case (valid polygons); only odd geometries are looked at one by
    one.  Never raises for a bad geometry: it becomes an empty polygon with a warning.
    """
    geoms = np.empty(len(geometries), dtype=object)
    geoms[:] = list(geometries)
    warnings: list[str | None] = [None] * len(geoms)
    missing = np.array([g is None for g in geoms], dtype=bool)
    geoms[missing] = _EMPTY
    types = shapely.get_type_id(geoms)
    polygonal = (types == 3) | (types == 6)  # Polygon, MultiPolygon
    suspect = ~polygonal | missing | shapely.is_empty(geoms) | ~shapely.is_valid(geoms)
    for i in np.flatnonzero(suspect):
        geom = geoms[i]
        if missing[i] or geom.is_empty:
            warnings[i] = "empty geometry: no statistics"
            geoms[i] = _EMPTY
            continue
        if not geom.is_valid:
            reason = shapely.is_valid_reason(geom)
            geom = _polygonal_part(shapely.make_valid(geom))
            warnings[i] = f"invalid geometry repaired ({reason})"
        else:
            geom = _polygonal_part(geom)
        if geom.is_empty or geom.area == 0:
            kind = geoms[i].geom_type
            warnings[i] = (f"a {kind} has no area: no statistics" if kind not in _POLYGONAL
                           else "degenerate polygon (zero area): no statistics")
            geom = _EMPTY
        geoms[i] = geom
    return geoms, warnings


@dataclass(frozen=True, eq=False)  # arrays inside: compare by identity
class Zones:
    """Zones for zonal statistics: one id, polygon and properties dict per zone, one CRS.

    Build with :meth:`from_features` (GeoJSON-like) or :meth:`from_arrays`; both repair and
    report geometry problems in :attr:`warnings` (``None`` for a clean zone).  Geometries are
    always ``Polygon``/``MultiPolygon`` (possibly empty); axis order is x/easting, y/northing.
    """

    ids: tuple[Any, ...]
    geometries: np.ndarray  # object array of shapely polygons
    crs: CRS = CRS84
    properties: tuple[Mapping[str, Any], ...] = ()
    warnings: tuple[str | None, ...] = field(default=())

    def __post_init__(self):
        n = len(self.ids)
        if len(self.geometries) != n:
            raise InvalidInput(f"{n} zone ids but {len(self.geometries)} geometries")
        if not self.properties:
            object.__setattr__(self, "properties", tuple({} for _ in range(n)))
        if not self.warnings:
            object.__setattr__(self, "warnings", (None,) * n)
        if len(self.properties) != n or len(self.warnings) != n:
            raise InvalidInput("zones need one properties dict and one warning slot per id")

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_arrays(cls, ids: Iterable[Any] | None, geometries: Iterable[Any], crs: Any = CRS84,
                    properties: Iterable[Mapping[str, Any]] | None = None) -> Zones:
        """From parallel sequences: ids (``None`` → 0, 1, 2…), shapely geometries (``None``
        allowed, reported as empty), CRS, optional properties dicts."""
        geoms, warnings = clean_geometries(list(geometries))
        ids = tuple(range(len(geoms))) if ids is None else tuple(ids)
        props = tuple(properties) if properties is not None else ()
        return cls(ids, geoms, parse_crs(crs), props, tuple(warnings))

    @classmethod
    def from_features(cls, features: Mapping[str, Any] | Iterable[Any], crs: Any = CRS84, *,
                      id_field: str | None = None) -> Zones:
        """From a GeoJSON ``FeatureCollection``, a list of Features or of geometries.

        The id is ``properties[id_field]`` when ``id_field`` is given, else the feature's
        ``id``, else its position.  A geometry that is not GeoJSON at all is bad input
        (:class:`InvalidInput` naming the feature); a null, empty or invalid one is not (see
        the module docstring).
        """
        if isinstance(features, Mapping):
            if features.get("type") == "FeatureCollection":
                features = features.get("features") or []
            else:
                features = [features]
        ids, geoms, props = [], [], []
        for index, item in enumerate(features):
            if hasattr(item, "__geo_interface__") and not isinstance(item, Mapping):
                item = item.__geo_interface__
            if not isinstance(item, Mapping):
                raise InvalidInput(f"zone {index}: expected a GeoJSON Feature or geometry")
            if item.get("type") == "Feature":
                geometry, properties = item.get("geometry"), dict(item.get("properties") or {})
                if id_field is not None:
                    if id_field not in properties:
                        raise InvalidInput(
                            f"zone {index} has no property {id_field!r} to use as its id; "
                            f"its properties are: {', '.join(properties) or 'none'}")
                    zone_id = properties[id_field]
                else:
                    zone_id = item.get("id", index)
            else:
                geometry, properties, zone_id = item, {}, index
            try:
                geom = shapely.geometry.shape(geometry) if geometry else None
            except Exception as err:
                raise InvalidInput(f"zone {zone_id!r}: not a GeoJSON geometry ({err})") from err
            ids.append(zone_id)
            geoms.append(geom)
            props.append(properties)
        return cls.from_arrays(ids, geoms, crs, props)

    def to_crs(self, crs: Any) -> Zones:
        """The zones in another CRS (unchanged object when the CRS is the same).

        Edges longer than 1 km (0.01° for geographic CRSs) are split first so that they stay
        faithful after a non-linear projection; parcels are not densified.
        """
        crs = parse_crs(crs)
        if crs == self.crs:
            return self
        step = 0.01 if self.crs.is_geographic else 1000.0
        dense = shapely.segmentize(self.geometries, step)
        transformer = Transformer.from_crs(self.crs, crs, always_xy=True)
        projected = shapely.transform(dense, transformer.transform, interleaved=False)
        warnings = list(self.warnings)
        broken = np.flatnonzero(~shapely.is_valid(projected))
        if len(broken):
            fixed, notes = clean_geometries(projected[broken])
            projected[broken] = fixed
            for i, note in zip(broken, notes):
                warnings[i] = warnings[i] or (note and f"after reprojection: {note}")
        return replace(self, geometries=projected, crs=crs, warnings=tuple(warnings))
