"""Process inputs, parsed and validated once, shared by every Sentinelle process.

pygeoapi 0.21 does not validate execute requests against the process description, so
:func:`validate_inputs` checks each input against its declared JSON Schema (``jsonschema``),
then the ``parse_*`` functions do the semantic checks and turn the values into the catalog's
types (an :class:`~sentinelle.catalog.area.Area`, an
:class:`~sentinelle.catalog.dates.Interval`, a pyproj CRS).  Every error is an
:class:`~sentinelle.errors.InvalidInput` (or a subclass) whose message starts with the input's
name, so that users know what to change.

Reusable schemas (``AREA_SCHEMA``, ``DATETIME_SCHEMA``…) are data: later processes (zonal
statistics, change detection) put them in their own ``PROCESS_METADATA``.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from pathlib import Path
from typing import Any, Iterator, Mapping

import jsonschema
from pyproj import CRS

from sentinelle.catalog.area import Area, Grid, parse_crs
from sentinelle.catalog.dates import Interval, parse_interval
from sentinelle.errors import InvalidInput, NoData, NotFound, SentinelleError, TooLarge
from sentinelle.settings import Limits

# --- schemas (JSON Schema 2020-12 subsets, as OGC API Processes descriptions carry them) ------

_BBOX = {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 6}

AREA_SCHEMA: dict = {
    "oneOf": [
        {"title": "bbox [minx, miny, maxx, maxy] in CRS84", **_BBOX},
        {"title": "{\"bbox\": [...], \"crs\": \"EPSG:2154\"}", "type": "object",
         "required": ["bbox"], "additionalProperties": False,
         "properties": {"bbox": _BBOX, "crs": {"type": ["string", "integer"]}}},
        {"title": "GeoJSON Polygon or MultiPolygon (CRS84)", "type": "object",
         "required": ["type", "coordinates"],
         "properties": {"type": {"enum": ["Polygon", "MultiPolygon"]},
                        "coordinates": {"type": "array"}}},
        {"title": "GeoJSON Feature with a Polygon or MultiPolygon", "type": "object",
         "required": ["type", "geometry"],
         "properties": {"type": {"const": "Feature"}, "geometry": {"type": "object"}}},
        {"title": "a feature of a served collection {\"collection\": ..., \"id\": ...}",
         "type": "object", "required": ["collection", "id"], "additionalProperties": False,
         "properties": {"collection": {"type": "string", "minLength": 1},
                        "id": {"type": ["string", "integer"]}}},
    ]
}
DATETIME_SCHEMA: dict = {"type": "string", "minLength": 1}
CRS_SCHEMA: dict = {"type": ["string", "integer"]}
RESOLUTION_SCHEMA: dict = {"type": "number", "exclusiveMinimum": 0, "maximum": 100_000}
MAX_CLOUD_SCHEMA: dict = {"type": "number", "minimum": 0, "maximum": 100}

GRID_SCHEMA: dict = {"type": "string", "enum": ["default", "native"], "default": "default"}
SOURCE_SCHEMA: dict = {"type": "string", "minLength": 1, "maxLength": 100}

#: the ``source`` input every imagery process takes (metadata as data)
SOURCE_INPUT: dict = {
    "title": {"fr": "Source d'images", "en": "Imagery source"},
    "description": {
        "fr": "Une collection d'images servie (p. ex. bretagne-s2, ou un produit publié). Par "
              "défaut, la source Sentinel-2 du territoire où se trouve la zone (le plus "
              "grand recouvrement).",
        "en": "A served imagery collection (e.g. bretagne-s2, or a published product). "
              "Default: the Sentinel-2 source of the territory the area lies in (the largest "
              "overlap).",
    },
    "schema": SOURCE_SCHEMA,
    "minOccurs": 0, "maxOccurs": 1,
}
#: the ``grid`` input: the default grid or the data's own
GRID_INPUT: dict = {
    "title": {"fr": "Grille de sortie", "en": "Output grid"},
    "description": {
        "fr": "default : crs et resolution demandés, bords sur la grille Sentinel-2 ; native : "
              "la projection, la taille et les bords des pixels des données, sans "
              "rééchantillonnage (crs et resolution ignorés).",
        "en": "default: the requested crs and resolution, edges on the Sentinel-2 grid; "
              "native: the data's own projection, pixel size and pixel edges, no resampling "
              "(crs and resolution ignored).",
    },
    "schema": GRID_SCHEMA,
    "minOccurs": 0, "maxOccurs": 1,
}

#: output CRSs a process accepts besides the UTM zones (326xx, 327xx)
OUTPUT_CRS = (2154, 2972, 3857, 4326)
#: metres per degree of latitude, to turn a resolution in metres into degrees for EPSG:4326
METRES_PER_DEGREE = 111_320.0


@contextlib.contextmanager
def about(name: str) -> Iterator[None]:
    """Re-raise ``ValueError``\\ s as :class:`InvalidInput` naming the input ``name``.

    Domain errors keep their class (so a :class:`TooLarge` stays a 413) but get the prefix.
    """
    try:
        yield
    except SentinelleError as err:
        if str(err).startswith(f"{name}:"):
            raise
        raise type(err)(_capped(f"{name}: {err}")) from err
    except ValueError as err:
        raise InvalidInput(_capped(f"{name}: {err}")) from err


def _capped(message: str, limit: int = 1000) -> str:
    """Messages quote the values they refuse: a 100 kB value must not come back whole."""
    return message if len(message) <= limit else message[:limit - 1] + "…"


# --- schema validation -----------------------------------------------------------------------

def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _message(name: str, error: jsonschema.ValidationError, schema: Mapping) -> str:
    if error.validator in ("oneOf", "anyOf"):
        choices = [s.get("title", "") for s in error.validator_value if s.get("title")]
        return (f"{name}: {_short(error.instance)} is not an accepted form; "
                f"use {' or '.join(choices)}")
    where = "".join(f"[{p!r}]" for p in error.absolute_path)
    # jsonschema quotes the whole value: a 100,000-character string would come back whole
    message = error.message.replace(repr(error.instance), _short(error.instance))
    return f"{name}{where}: {message}"


def validate_inputs(data: Any, inputs: Mapping[str, Mapping]) -> dict:
    """Check ``data`` against the ``inputs`` of a process description.

    Unknown inputs, missing required ones (``minOccurs`` ≥ 1) and values that do not match an
    input's ``schema`` raise :class:`InvalidInput` naming the input.  Returns ``data`` with
    declared defaults filled in.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise InvalidInput("inputs must be a JSON object mapping input names to values")
    unknown = sorted(set(data) - set(inputs))
    if unknown:
        raise InvalidInput(f"unknown input(s) {', '.join(map(repr, unknown))}; "
                           f"this process takes {', '.join(inputs)}")
    out = {}
    for name, description in inputs.items():
        schema = description.get("schema", {})
        value = data.get(name)
        if value is None:
            if description.get("minOccurs", 1) >= 1:
                raise InvalidInput(f"{name}: this input is required")
            out[name] = schema.get("default")
            continue
        validator = jsonschema.Draft202012Validator(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is not None:
            raise InvalidInput(_message(name, error, schema))
        out[name] = value
    return out


# --- semantic parsing ------------------------------------------------------------------------

def parse_datetime(value: str | None, name: str = "datetime") -> Interval | None:
    """An instant or interval (RFC 3339, ``..`` for open ends); ``None`` for all dates."""
    if value is None:
        return None
    with about(name):
        return parse_interval(value)


def parse_output_crs(value: Any, name: str = "crs",
                     accepted: tuple[int, ...] = OUTPUT_CRS) -> CRS | None:
    """An output CRS: one of ``accepted`` or a WGS 84 UTM zone; ``None`` for the default."""
    if value is None or value == "":
        return None
    with about(name):
        crs = parse_crs(value)
        epsg = crs.to_epsg()
        utm = epsg is not None and (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760)
        if epsg not in accepted and not utm:
            raise InvalidInput(
                f"{value!r} is not offered; use one of "
                f"{', '.join(f'EPSG:{c}' for c in accepted)} or a WGS 84 UTM zone (EPSG:326xx)"
            )
        return crs


def parse_resolution(value: Any, crs: CRS | None, name: str = "resolution") -> float:
    """The pixel size in the output CRS's units from a resolution in metres.

    For a geographic output CRS (EPSG:4326) the metres become degrees of latitude
    (``resolution / 111 320``); pixels stay square in degrees.
    """
    with about(name):
        metres = float(value)
        if not math.isfinite(metres) or metres <= 0:
            raise InvalidInput(f"must be a positive number of metres, got {value!r}")
        if crs is not None and crs.is_geographic:
            return metres / METRES_PER_DEGREE
        return metres


def utm_crs(area: Area) -> CRS:
    """The WGS 84 UTM zone of the area's centre (the default output CRS's best guess)."""
    minx, miny, maxx, maxy = area.lonlat_bounds
    lon, lat = (minx + maxx) / 2, (miny + maxy) / 2
    zone = min(60, max(1, int(math.floor((lon + 180) / 6)) + 1))
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def check_size(area: Area, crs: CRS | None, resolution: float, n_bands: int,
               limits: Limits) -> Grid:
    """Raise :class:`TooLarge` before any search when one date of the output grid alone
    exceeds the pixel budget (the catalog checks dates × bands × pixels again later)."""
    grid_crs = crs if crs is not None else utm_crs(area)
    grid = Grid.from_area(area, grid_crs, resolution)
    pixels = grid.npixels * n_bands
    if pixels > limits.max_pixels:
        height, width = grid.shape
        raise TooLarge(
            f"area: the output grid is {width} × {height} px, {pixels:,} px with its "
            f"{n_bands} bands, but one request may read at most {limits.max_pixels:,} px; "
            "use a smaller area or a coarser resolution"
        )
    return grid


# --- imagery sources ---------------------------------------------------------------------------

def resolve_source(value: str | None, area: Area, *, fallback: Any = None,
                   kind: str | None = "optical", name: str = "source"):
    """The imagery source to read: the collection ``value`` names (an imagery collection id:
    ``bretagne-s2``, ``bretagne-ndvi``, a product's), else the source of ``kind`` of the
    territory ``area`` lies in (largest overlap), else ``fallback`` (a catalog configured on
    the process).  Returns ``(catalog, ImagerySource | None)``."""
    from sentinelle.territories import registry

    found = registry()
    if value:
        match = found.collection(str(value))
        if match is None:
            known = ", ".join(s.collection_id for s in found.sources) or "none"
            raise InvalidInput(f"{name}: no imagery collection {str(value)[:100]!r}; served: "
                               f"{known}")
        spec = match[0]
        if kind is not None and spec.kind != kind:
            raise InvalidInput(f"{name}: {value!r} is a {spec.kind} source; this needs an "
                               f"{kind} (Sentinel-2) one")
        return spec.open(), spec
    candidates = found.sources_for(area, kind=kind or "optical")
    if candidates:
        return candidates[0].open(), candidates[0]
    if fallback is not None:
        return fallback(), None
    extents = "; ".join(
        f"{t.id}: {', '.join(f'{v:.3f}' for v in found.area(t).bounds)}"
        for t in found.territories) or "none configured"
    raise NoData(f"the area lies outside every territory this service serves ({extents}); "
                 "choose an area inside one, or name a source")


# --- areas -------------------------------------------------------------------------------------

_CONFIG_CACHE: dict[str, tuple[float, dict]] = {}
_CONFIG_LOCK = threading.Lock()


def served_config() -> dict:
    """The pygeoapi configuration the server loaded (``PYGEOAPI_CONFIG``), cached by mtime."""
    from pygeoapi.config import get_config

    path = os.environ.get("PYGEOAPI_CONFIG")
    if not path:
        raise SentinelleError("PYGEOAPI_CONFIG is not set: cannot look up served collections")
    mtime = Path(path).stat().st_mtime
    with _CONFIG_LOCK:
        cached = _CONFIG_CACHE.get(path)
        if cached is None or cached[0] != mtime:
            _CONFIG_CACHE[path] = (mtime, get_config())
        return _CONFIG_CACHE[path][1]


def feature_area(collection: str, identifier: Any, config: Mapping | None = None,
                 name: str = "area") -> Area:
    """The geometry of feature ``identifier`` of a served collection, read through the
    collection's own provider (as ``/items/{id}`` would), in its ``storage_crs``."""
    import shapely.geometry
    from pygeoapi.provider.base import ProviderItemNotFoundError

    config = served_config() if config is None else config
    provider, definition = _feature_provider(collection, config, name)
    try:
        feature = provider.get(str(identifier))
    except ProviderItemNotFoundError:
        raise NotFound(f"{name}: collection {collection!r} has no feature with id "
                       f"{str(identifier)!r}") from None
    except Exception as err:
        raise SentinelleError(f"{name}: collection {collection!r} cannot be read: "
                              f"{getattr(err, 'user_msg', None) or err}") from err
    crs = definition.get("storage_crs") or "OGC:CRS84"
    with about(name):
        geometry = shapely.geometry.shape(feature["geometry"]) if feature.get("geometry") \
            else None
        if geometry is None or geometry.is_empty:
            raise InvalidInput(f"feature {identifier!r} of {collection!r} has no geometry")
        if geometry.geom_type not in {"Polygon", "MultiPolygon"}:
            raise InvalidInput(f"feature {identifier!r} of {collection!r} is a "
                               f"{geometry.geom_type}, not a polygon")
        return Area(geometry, parse_crs(crs))


def check_lonlat(bounds: tuple[float, float, float, float], what: str) -> None:
    """Longitudes within ±180 and latitudes within ±90 (GeoJSON order: longitude first)."""
    minx, miny, maxx, maxy = bounds
    if not all(math.isfinite(v) for v in bounds):
        raise InvalidInput(f"coordinates of {what} are not all finite numbers")
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise InvalidInput(
            f"coordinates of {what} are out of range (longitudes {minx:g} … {maxx:g}, latitudes "
            f"{miny:g} … {maxy:g}): in CRS84 longitude comes first and lies within [-180, 180], "
            "latitude within [-90, 90]; give \"crs\" if the coordinates are projected")


def check_polygon(geometry: Any, *, geographic: bool = True) -> None:
    """A polygon sent as an area must be valid and have an area.

    An invalid polygon (a self-intersecting "bow tie", a ring that folds back) is refused
    rather than repaired: ``make_valid`` keeps *a* valid shape, not necessarily the area the
    user meant, and a whole analysis would silently run on it.  (Zones, by contrast, are
    repaired one by one with a warning in the result, see ``sentinelle.analysis.zones``.)
    """
    import shapely

    if geographic:
        check_lonlat(tuple(geometry.bounds), "the polygon")
    if not geometry.is_valid:
        raise InvalidInput(
            f"the polygon is not valid ({shapely.is_valid_reason(geometry)}); it is not "
            "repaired automatically because the repaired shape may not be the area you meant: "
            "fix it (QGIS \"Fix geometries\", PostGIS ST_MakeValid) and send it again")
    if geometry.area <= 0:
        raise InvalidInput("the polygon has zero area; send a polygon that encloses the area")


def parse_area(value: Any, *, config: Mapping | None = None, name: str = "area") -> Area:
    """An :class:`Area` from any accepted form (see ``AREA_SCHEMA``); validated values only."""
    import shapely.geometry

    with about(name):
        if isinstance(value, (list, tuple)):
            return Area.from_bbox(value)
        if not isinstance(value, Mapping):
            raise InvalidInput(f"unsupported value {_short(value)}")
        if "collection" in value:
            return feature_area(str(value["collection"]), value["id"], config, name)
        if "bbox" in value:
            return Area.from_bbox(value["bbox"], value.get("crs") or "OGC:CRS84")
        geojson = value.get("geometry") if value.get("type") == "Feature" else value
        try:
            geometry = shapely.geometry.shape(geojson)
        except Exception:  # Area.from_geojson words the error
            geometry = None
        if geometry is not None and not geometry.is_empty \
                and geometry.geom_type in ("Polygon", "MultiPolygon"):
            check_polygon(geometry)
        return Area.from_geojson(value)


def check_outputs(outputs: Any, offered: Mapping[str, Any], name: str = "outputs") -> None:
    """Requested outputs must be ones the process offers (never free names)."""
    if not outputs:
        return
    if not isinstance(outputs, Mapping):
        raise InvalidInput(f"{name}: must be an object mapping output names to options")
    unknown = [key for key in outputs if key not in offered]
    if unknown:
        raise InvalidInput(f"{name}: unknown output(s) {', '.join(_short(k) for k in unknown)}; "
                           f"this process offers {', '.join(offered)}")


# --- zones -------------------------------------------------------------------------------------

ZONES_SCHEMA: dict = {
    "oneOf": [
        {"title": "an inline GeoJSON FeatureCollection (CRS84 unless \"crs\" says otherwise)",
         "type": "object", "required": ["type", "features"],
         "properties": {"type": {"const": "FeatureCollection"},
                        "features": {"type": "array"},
                        "crs": {"type": ["string", "integer", "object"]}}},
        {"title": "a served collection {\"collection\": ..., \"filter\": \"<CQL2 text>\", "
                  "\"bbox\": [...]}",
         "type": "object", "required": ["collection"], "additionalProperties": False,
         "properties": {"collection": {"type": "string", "minLength": 1},
                        "filter": {"type": "string"}, "bbox": _BBOX}},
    ]
}


def _geojson_crs(value: Any) -> Any:
    """The CRS of an inline FeatureCollection: ``"EPSG:2154"`` or the GeoJSON 2008 form
    ``{"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::2154"}}``."""
    if value is None:
        return "OGC:CRS84"
    if isinstance(value, Mapping):
        value = (value.get("properties") or {}).get("name")
        if not value:
            raise InvalidInput("crs: use \"EPSG:2154\" or {\"type\": \"name\", "
                               "\"properties\": {\"name\": \"EPSG:2154\"}}")
    text = str(value)
    if text.startswith("urn:ogc:def:crs:"):
        parts = text.split(":")
        text = "OGC:CRS84" if parts[-1] == "CRS84" else f"{parts[4]}:{parts[-1]}"
    return text


def _feature_provider(collection: str, config: Mapping, name: str) -> tuple[Any, dict]:
    """The pygeoapi feature provider of a served collection (the one the Features API uses)."""
    from pygeoapi.plugin import load_plugin

    resources = config.get("resources", {})
    features = {key: res for key, res in resources.items()
                if res.get("type") == "collection"
                and any(p.get("type") == "feature" for p in res.get("providers", []))}
    if collection not in features:
        raise InvalidInput(f"{name}: no feature collection {collection!r} is served; "
                           f"use one of {', '.join(sorted(features))}")
    definition = next(p for p in features[collection]["providers"]
                      if p.get("type") == "feature")
    try:
        return load_plugin("provider", definition), definition
    except Exception as err:
        raise SentinelleError(f"{name}: collection {collection!r} cannot be read: "
                              f"{getattr(err, 'user_msg', None) or err}") from err


def _check_zone_coordinates(zones) -> None:
    """Longitude/latitude zones within range (else they silently match no scene)."""
    import numpy as np
    import shapely

    geometries = np.asarray(zones.geometries, dtype=object)
    present = geometries[~shapely.is_missing(geometries) & ~shapely.is_empty(geometries)]
    if len(present):
        bounds = shapely.bounds(present)
        check_lonlat((float(bounds[:, 0].min()), float(bounds[:, 1].min()),
                      float(bounds[:, 2].max()), float(bounds[:, 3].max())), "the zones")


def parse_zones(value: Any, *, max_zones: int, config: Mapping | None = None,
                name: str = "zones"):
    """:class:`~sentinelle.analysis.zones.Zones` from an inline FeatureCollection or a served
    collection with an optional CQL2 ``filter`` and CRS84 ``bbox``.

    Served zones are read through the collection's own pygeoapi provider (the same query the
    Features API runs, so a filter selects the same features), in its ``storage_crs``.  More
    than ``max_zones`` zones is :class:`TooLarge`, before any pixel is read.
    """
    from sentinelle.analysis.zones import Zones

    if not isinstance(value, Mapping):
        raise InvalidInput(f"{name}: expected a GeoJSON FeatureCollection or "
                           "{\"collection\": ...}")
    if "collection" not in value:
        features = value.get("features") or []
        if len(features) > max_zones:
            raise TooLarge(f"{name}: {len(features):,} zones but at most {max_zones:,} are "
                           "accepted in one request; split them into several requests")
        if not features:
            raise InvalidInput(f"{name}: the FeatureCollection has no feature")
        with about(name):
            zones = Zones.from_features(value, crs=parse_crs(_geojson_crs(value.get("crs"))))
            if zones.crs.is_geographic:
                _check_zone_coordinates(zones)
            return zones

    from pygeoapi.util import modify_pygeofilter

    from sentinelle.providers.cql import parse_text

    config = served_config() if config is None else config
    collection = str(value["collection"])
    provider, definition = _feature_provider(collection, config, name)
    storage_crs = definition.get("storage_crs") or "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    filterq = None
    if value.get("filter"):
        try:
            filterq = modify_pygeofilter(
                parse_text(value["filter"]),
                filter_crs_uri="http://www.opengis.net/def/crs/OGC/1.3/CRS84",
                storage_crs_uri=definition.get("storage_crs"),
                geometry_column_name=definition.get("geom_field"))
        except Exception as err:
            raise InvalidInput(f"{name}: the filter is not valid CQL2 text ({err})") from err
    bbox = []
    if value.get("bbox"):
        with about(name):
            bbox = list(Area.from_bbox(value["bbox"]).bounds_in(parse_crs(storage_crs)))
    try:
        result = provider.query(offset=0, limit=max_zones + 1, resulttype="results", bbox=bbox,
                                datetime_=None, properties=[], sortby=[],
                                select_properties=[], skip_geometry=False, q=None,
                                filterq=filterq)
    except Exception as err:  # pygeoapi provider errors carry the user message
        message = getattr(err, "user_msg", None) or str(err)
        raise InvalidInput(f"{name}: {message}") from err
    features = result.get("features", [])
    matched = result.get("numberMatched", len(features))
    if matched > max_zones or len(features) > max_zones:
        raise TooLarge(f"{name}: {matched:,} features of {collection!r} match but at most "
                       f"{max_zones:,} zones are accepted in one request; narrow the filter "
                       "or the bbox")
    if not features:
        raise InvalidInput(f"{name}: no feature of {collection!r} matches the filter/bbox")
    with about(name):
        return Zones.from_features(features, crs=parse_crs(storage_crs))
