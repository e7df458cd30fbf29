"""A territory's area as one :class:`~sentinelle.catalog.area.Area` (CRS84), from its spec.

* ``file`` (+ ``layer``, ``filter``): a GeoJSON or GeoPackage read with pyogrio, the features
  matching the CQL2 ``filter`` (evaluated by :mod:`sentinelle.providers.cql`, the filter the
  Features API runs) dissolved into one outline;
* ``collection`` (+ ``filter``): a feature collection of the configuration (a territory's own
  layer, e.g. its communes, or any ``resources`` entry), queried through its own pygeoapi
  provider — so "the communes of the Côtes-d'Armor" is ``{collection: bretagne-communes,
  filter: "code LIKE '22%'"}``;
* ``bbox`` (+ ``crs``).

Areas are cached by spec and by the modification time of the file they come from.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import shapely

from sentinelle.catalog.area import CRS84, Area, parse_crs
from sentinelle.errors import InvalidInput, SourceUnavailable
from sentinelle.territories.model import AreaSpec

#: features dissolved into one area at most (a région's communes are ~1,300; France's 35,000)
MAX_FEATURES = 50_000

_CACHE: dict[tuple, tuple[Any, Area]] = {}
_LOCK = threading.Lock()


def _filtered(records: list[tuple[shapely.Geometry, dict]], text: str | None,
              fields: list[str], where: str) -> list[shapely.Geometry]:
    if not text:
        return [g for g, _ in records]
    from sentinelle.providers.cql import compile_filter, parse_text

    try:
        matches = compile_filter(parse_text(text), fields)
        return [g for g, props in records if matches({**props, "geometry": g})]
    except Exception as err:  # noqa: BLE001 - pygeofilter's parse errors vary
        raise InvalidInput(f"{where}: the filter {text!r} is not usable: {err}") from err


def _from_file(spec: AreaSpec, where: str) -> Area:
    import pyogrio

    path = Path(str(spec.file))
    try:
        meta, _fids, wkb, columns = pyogrio.raw.read(path, layer=spec.layer)
    except Exception as err:  # noqa: BLE001 - pyogrio/GDAL errors
        raise SourceUnavailable(f"{where}: cannot read {path}: {err}") from err
    names = list(meta["fields"])
    rows = [dict(zip(names, (v.item() if isinstance(v, np.generic) else v for v in row)))
            for row in zip(*columns)] if names else [{} for _ in wkb]
    geometries = shapely.from_wkb(wkb)
    kept = _filtered(list(zip(geometries, rows)), spec.filter, names, where)
    crs = parse_crs(meta.get("crs") or "OGC:CRS84")
    return _dissolve(kept, crs, where, f"{path.name}" + (f" ({spec.filter})" if spec.filter
                                                         else ""))


def _from_collection(spec: AreaSpec, provider_def: Mapping[str, Any], storage_crs: str,
                     where: str) -> Area:
    from pygeoapi.plugin import load_plugin

    from sentinelle.providers.cql import parse_text

    try:
        provider = load_plugin("provider", dict(provider_def))
        filterq = parse_text(spec.filter) if spec.filter else None
        result = provider.query(offset=0, limit=MAX_FEATURES + 1, resulttype="results",
                                bbox=[], datetime_=None, properties=[], sortby=[],
                                select_properties=[], skip_geometry=False, q=None,
                                filterq=filterq)
    except Exception as err:  # noqa: BLE001 - provider errors carry user_msg
        message = getattr(err, "user_msg", None) or str(err)
        raise InvalidInput(f"{where}: collection {spec.collection!r} cannot give the area: "
                           f"{message}") from err
    features = result.get("features", [])
    if len(features) > MAX_FEATURES:
        raise InvalidInput(f"{where}: more than {MAX_FEATURES:,} features of "
                           f"{spec.collection!r} match; narrow the filter")
    geometries = [shapely.geometry.shape(f["geometry"]) for f in features
                  if f.get("geometry")]
    return _dissolve(geometries, parse_crs(storage_crs), where,
                     f"{spec.collection}" + (f" ({spec.filter})" if spec.filter else ""))


def _dissolve(geometries: list, crs, where: str, what: str) -> Area:
    polygons = [g for g in geometries if g is not None and not g.is_empty
                and g.geom_type in ("Polygon", "MultiPolygon")]
    if not polygons:
        raise InvalidInput(f"{where}: no polygon in {what}; check the file and the filter")
    merged = shapely.union_all(shapely.make_valid(np.asarray(polygons, dtype=object)))
    merged = shapely.make_valid(merged)
    if merged.geom_type == "GeometryCollection":
        merged = shapely.union_all([g for g in merged.geoms
                                    if g.geom_type in ("Polygon", "MultiPolygon")])
    return Area(merged, crs).to_crs(CRS84)


def resolve_area(spec: AreaSpec, *, where: str,
                 provider_for: Callable[[str], tuple[Mapping, str] | None] | None = None
                 ) -> Area:
    """The area of ``spec`` in CRS84.  ``provider_for(collection id)`` gives the provider
    definition and storage CRS of a configured feature collection (for ``collection``)."""
    if spec.bbox is not None:
        return Area.from_bbox(spec.bbox, spec.crs).to_crs(CRS84)
    if spec.file:
        try:
            version: Any = Path(spec.file).stat().st_mtime_ns
        except OSError:
            raise SourceUnavailable(f"{where}: no file at {spec.file}; generate the sample "
                                    "data (`sentinelle sample-data`) or fix the path") from None
        key = (spec, version)
        with _LOCK:
            cached = _CACHE.get(key)
        if cached is None:
            area = _from_file(spec, where)
            with _LOCK:
                _CACHE[key] = (version, area)
            return area
        return cached[1]
    found = provider_for(spec.collection) if provider_for else None
    if found is None:
        raise InvalidInput(f"{where}: no feature collection {spec.collection!r} is configured "
                           "(a territory layer's id is <territory>-<layer>)")
    provider_def, storage_crs = found
    data = Path(str(provider_def.get("data", "")))
    try:
        version = data.stat().st_mtime_ns
    except OSError:
        version = None  # a database or a remote service: cached for the process's life
    key = (spec, str(provider_def.get("data")), version)
    with _LOCK:
        cached = _CACHE.get(key)
    if cached is None:
        area = _from_collection(spec, provider_def, storage_crs, where)
        with _LOCK:
            _CACHE[key] = (version, area)
        return area
    return cached[1]
