"""Process ``zonal-statistics``: an index or a band summarised per zone (NDVI per parcel,
statistics per commune), as one composite value per zone or a time series per zone.

The work is :func:`zonal_statistics`: the catalog's shared path
(:func:`~sentinelle.catalog.imagery.read_imagery` for a composite,
:func:`~sentinelle.catalog.imagery.read_cube` for a series — search, cube, SCL mask), the
index registry, then the exact-coverage engine :func:`~sentinelle.analysis.zonal.zonal_stats`,
which reads the raster once, block by block, for all zones.  :func:`encode` writes GeoJSON
(the zones with their statistics, CRS84) or CSV.  :class:`ZonalStatisticsProcessor` only
parses inputs and maps errors.

``max_cloud`` drops whole dates whose share of the zones' extent under cloud exceeds it
(default: keep every date — the SCL mask already removes cloudy pixels one by one); in series
mode a date appears for a zone when at least ``min_valid_fraction`` of the zone has data.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Callable, Mapping

import shapely
import xarray as xr

from sentinelle.analysis.classify import BANDS as TREE_BANDS
from sentinelle.analysis.classify import tree_cover
from sentinelle.analysis.indices import INDICES, compute_index
from sentinelle.analysis.zonal import (
    DEFAULT_STATISTICS,
    MIN_VALID_FRACTION,
    STATISTICS,
    Zones,
    zonal_stats,
)
from sentinelle.catalog.area import CRS84, Area
from sentinelle.catalog.composite import METHODS
from sentinelle.catalog.dates import Interval
from sentinelle.catalog.imagery import read_cube, read_imagery
from sentinelle.catalog.presets import BANDS, CLASS_BANDS, VALUE
from sentinelle.catalog.source import Catalog
from sentinelle.errors import InvalidInput
from sentinelle.processes import inputs as inp
from sentinelle.processes import progress as job_progress
from sentinelle.processes.base import CatalogProcessor
from sentinelle.settings import Limits

GEOJSON = "application/geo+json"
CSV = "text/csv; charset=utf-8"
FORMATS = {"geojson": GEOJSON, "csv": CSV}
#: reflectance bands a user may summarise directly
REFLECTANCE_BANDS = tuple(b for b in BANDS if b not in CLASS_BANDS)
#: derived variables: the tree mask of the rules classification (its zonal mean = tree cover)
TREE_COVER = "tree-cover"
VARIABLES = (*INDICES, *REFLECTANCE_BANDS, TREE_COVER)

PROCESS_METADATA: dict = {
    "version": "0.1.0",
    "id": "zonal-statistics",
    "title": {"fr": "Statistiques zonales Sentinel-2", "en": "Sentinel-2 zonal statistics"},
    "description": {
        "fr": "Statistiques d'un indice spectral (NDVI…) ou d'une bande par zone — parcelles, "
              "communes, zonages — pour une date, un composite de période, ou en série "
              "temporelle (une ligne par zone et par date claire sur la zone). Les pixels "
              "sont pondérés par la part exacte de leur surface dans la zone (exactextract) ; "
              "nuages, ombres, cirrus et neige sont masqués d'après la bande SCL. Les zones "
              "sans donnée restent dans le résultat avec count 0. Sortie GeoJSON ou CSV.",
        "en": "Statistics of a spectral index (NDVI…) or a band per zone — parcels, "
              "municipalities, planning zones — for a date, a period composite, or as a time "
              "series (one row per zone and per date clear over the zone). Pixels are weighted "
              "by the exact share of their area inside the zone (exactextract); clouds, "
              "shadows, cirrus and snow are masked from the SCL band. Zones without data stay "
              "in the result with count 0. GeoJSON or CSV output.",
    },
    "jobControlOptions": ["sync-execute", "async-execute"],
    "outputTransmission": ["value"],
    "keywords": {"fr": ["statistiques zonales", "NDVI", "parcelles", "communes",
                        "série temporelle", "Sentinel-2"],
                 "en": ["zonal statistics", "NDVI", "parcels", "municipalities",
                        "time series", "Sentinel-2"]},
    "links": [{"type": "text/html", "rel": "about", "title": "exactextract",
               "href": "https://isciences.github.io/exactextract/", "hreflang": "en"}],
    "inputs": {
        "zones": {
            "title": {"fr": "Zones", "en": "Zones"},
            "description": {
                "fr": "Une FeatureCollection GeoJSON (CRS84 par défaut ; membre \"crs\" "
                      "accepté, p. ex. \"EPSG:2154\"), ou une collection servie : "
                      "{\"collection\": \"bretagne-parcels\", \"filter\": \"commune = "
                      "'35051'\", \"bbox\": [...]} (filtre CQL2 texte, bbox en CRS84).",
                "en": "A GeoJSON FeatureCollection (CRS84 by default; a \"crs\" member such "
                      "as \"EPSG:2154\" is accepted), or a served collection: {\"collection\": "
                      "\"bretagne-parcels\", \"filter\": \"commune = '35051'\", \"bbox\": "
                      "[...]} (CQL2 text filter, bbox in CRS84).",
            },
            "schema": inp.ZONES_SCHEMA,
            "minOccurs": 1, "maxOccurs": 1,
        },
        "datetime": {
            "title": {"fr": "Date ou période", "en": "Date or period"},
            "description": {
                "fr": "Instant ou intervalle RFC 3339 (2024-05-17, 2024-06-01/2024-08-31).",
                "en": "RFC 3339 instant or interval (2024-05-17, 2024-06-01/2024-08-31).",
            },
            "schema": inp.DATETIME_SCHEMA,
            "minOccurs": 1, "maxOccurs": 1,
        },
        "variable": {
            "title": {"fr": "Variable", "en": "Variable"},
            "description": {
                "fr": "Un indice spectral (" + ", ".join(INDICES) + "), une bande ("
                      + ", ".join(REFLECTANCE_BANDS) + ", réflectance) ou tree-cover : "
                      "1 pour les pixels classés arbres par les règles de classification, 0 "
                      "sinon — sa moyenne est la part de la zone couverte d'arbres (date ou "
                      "composite d'été conseillé) ; ou l'identifiant d'une collection de "
                      "produit servie (série raster à une bande : série de NDVI, produit d'un "
                      "partenaire), résumée telle que publiée.",
                "en": "A spectral index (" + ", ".join(INDICES) + "), a band ("
                      + ", ".join(REFLECTANCE_BANDS) + ", reflectance) or tree-cover: 1 for "
                      "pixels the rules classification calls trees, 0 otherwise — its mean is "
                      "the share of the zone covered by trees (use a leaf-on date or "
                      "composite); or the id of a served product collection (a single-band "
                      "raster series, e.g. an NDVI series or a partner's product), summarised "
                      "as published.",
            },
            "schema": {"type": "string", "minLength": 1, "maxLength": 100, "default": "NDVI",
                       "examples": [*VARIABLES, "<territory>-<product source>"]},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "composite": {
            "title": {"fr": "Composite temporel", "en": "Temporal composite"},
            "description": {
                "fr": "En mode composite, combinaison des dates valides bande par bande : "
                      "median, max ou latest.",
                "en": "In composite mode, how valid dates are combined band by band: "
                      "median, max or latest.",
            },
            "schema": {"type": "string", "enum": list(METHODS), "default": "median"},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "temporal": {
            "title": {"fr": "Mode temporel", "en": "Temporal mode"},
            "description": {
                "fr": "composite : une valeur par zone ; series : une ligne par zone et par "
                      "date claire sur la zone.",
                "en": "composite: one value per zone; series: one row per zone and per date "
                      "that is clear over the zone.",
            },
            "schema": {"type": "string", "enum": ["composite", "series"],
                       "default": "composite"},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "statistics": {
            "title": {"fr": "Statistiques", "en": "Statistics"},
            "description": {
                "fr": "Parmi " + ", ".join(STATISTICS) + ". count est en pixels pondérés, "
                      "valid_fraction la part de la zone avec des données.",
                "en": "Among " + ", ".join(STATISTICS) + ". count is in weighted pixels, "
                      "valid_fraction the share of the zone with data.",
            },
            "schema": {"type": "array", "minItems": 1, "uniqueItems": True,
                       "items": {"type": "string", "enum": list(STATISTICS)},
                       "default": list(DEFAULT_STATISTICS)},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "max_cloud": {
            "title": {"fr": "Nébulosité maximale (%)", "en": "Maximum cloud cover (%)"},
            "description": {
                "fr": "Écarte les dates dont plus de ce pourcentage de l'emprise des zones est "
                      "nuageux (masque de nuages de la source). Par défaut toutes les dates : le "
                      "masque retire déjà "
                      "les pixels nuageux.",
                "en": "Drops dates with more than this share of the zones' extent under cloud "
                      "(the source's cloud mask). Default: every date, the mask already removes "
                      "cloudy pixels.",
            },
            "schema": inp.MAX_CLOUD_SCHEMA,
            "minOccurs": 0, "maxOccurs": 1,
        },
        "min_valid_fraction": {
            "title": {"fr": "Part valide minimale", "en": "Minimum valid fraction"},
            "description": {
                "fr": "En série, une date figure pour une zone si au moins cette part de la "
                      "zone a des données (0–1, 0.8 par défaut).",
                "en": "In series mode, a date is listed for a zone when at least this share "
                      "of the zone has data (0–1, default 0.8).",
            },
            "schema": {"type": "number", "minimum": 0, "maximum": 1,
                       "default": MIN_VALID_FRACTION},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "resolution": {
            "title": {"fr": "Résolution (m)", "en": "Resolution (m)"},
            "description": {"fr": "Taille des pixels en mètres (10 par défaut).",
                            "en": "Pixel size in metres (default 10)."},
            "schema": dict(inp.RESOLUTION_SCHEMA, default=10),
            "minOccurs": 0, "maxOccurs": 1,
        },
        "source": inp.SOURCE_INPUT,
        "grid": inp.GRID_INPUT,
        "format": {
            "title": {"fr": "Format", "en": "Format"},
            "description": {
                "fr": "geojson : les zones avec leurs propriétés et les statistiques (en "
                      "série, une propriété series) ; csv : une ligne par zone (ou par zone "
                      "et date).",
                "en": "geojson: the zones with their properties and the statistics (in "
                      "series mode, a series property); csv: one row per zone (or per zone "
                      "and date).",
            },
            "schema": {"type": "string", "enum": list(FORMATS), "default": "geojson"},
            "minOccurs": 0, "maxOccurs": 1,
        },
    },
    "outputs": {
        "result": {
            "title": {"fr": "Statistiques par zone", "en": "Statistics per zone"},
            "description": {"fr": "application/geo+json ou text/csv selon format.",
                            "en": "application/geo+json or text/csv depending on format."},
            "schema": {"type": "object", "contentMediaType": GEOJSON},
        }
    },
    "example": {
        "inputs": {
            "zones": {"collection": "bretagne-parcels", "filter": "commune = '35051'"},
            "datetime": "2024-05-17",
            "variable": "NDVI",
            "statistics": ["mean", "std", "count", "valid_fraction"],
            "format": "geojson",
        }
    },
}


# --- the work --------------------------------------------------------------------------------

def zones_area(zones: Zones) -> Area:
    """The bounding box of every non-empty zone, in the zones' CRS (what the raster covers)."""
    geometries = [g for g in zones.geometries if g is not None and not g.is_empty]
    if not geometries:
        raise InvalidInput("zones: no zone has a usable polygon geometry")
    return Area(shapely.box(*shapely.total_bounds(geometries)), zones.crs)


def is_product(variable: str) -> bool:
    """Whether ``variable`` names a served product collection rather than an index, a band
    or tree cover."""
    return variable not in VARIABLES and variable.upper() not in INDICES


def check_variable(variable: str) -> str:
    """``variable`` normalised (``ndvi`` is ``NDVI``), or :class:`InvalidInput` listing what
    is accepted."""
    if variable.upper() in INDICES:
        return variable.upper()
    if variable in VARIABLES:
        return variable
    from sentinelle.territories import registry

    match = registry().collection(variable)
    if match is None or match[0].kind != "product" or match[1] is not None:
        products = [s.collection_id for s in registry().sources if s.kind == "product"]
        raise InvalidInput(f"variable: {variable[:100]!r} is not accepted; use one of "
                           f"{', '.join([*VARIABLES, *products])}")
    return variable


def variable_array(catalog: Catalog, zones: Zones, datetime_: Interval | None, *,
                   variable: str = "NDVI", composite: str = "median",
                   temporal: str = "composite", max_cloud: float | None = None,
                   resolution: float = 10.0, grid: str = "default",
                   limits: Limits | None = None) -> xr.DataArray:
    """The lazy raster to summarise: ``(y, x)`` composite or ``(time, y, x)`` series, with the
    read's attributes (dates, ``cloud_masked``, ``warnings``)."""
    index = INDICES.get(variable.upper())
    trees = variable == TREE_COVER
    product = is_product(variable)
    bands = list(index.bands) if index else list(TREE_BANDS) if trees else \
        [VALUE] if product else [variable]
    area = zones_area(zones)
    if temporal == "series":
        data = read_cube(catalog, area, datetime_, bands, resolution=resolution,
                         max_cloud=max_cloud, limits=limits, grid=grid)
    else:
        data = read_imagery(catalog, area, datetime_, bands, resolution=resolution,
                            method=composite, max_cloud=max_cloud, clip=False, limits=limits,
                            grid=grid)
    if trees:
        values = tree_cover(data)
    else:
        values = compute_index(data, index.name) if index else data[bands[0]]
    values.attrs.update({k: data.attrs[k] for k in ("dates", "cloud_masked", "warnings")
                         if k in data.attrs})
    return values.rio.write_crs(data.rio.crs).rio.write_transform(data.rio.transform())


def zonal_statistics(catalog: Catalog, zones: Zones, datetime_: Interval | None, *,
                     variable: str = "NDVI", composite: str = "median",
                     temporal: str = "composite", statistics=DEFAULT_STATISTICS,
                     max_cloud: float | None = None, resolution: float = 10.0,
                     grid: str = "default",
                     min_valid_fraction: float = MIN_VALID_FRACTION,
                     limits: Limits | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     info: dict | None = None) -> list[dict[str, Any]]:
    """Rows of statistics, one per zone (composite) or per zone and clear date (series);
    ``progress(done, total)`` is called as the engine reads blocks (see ``zonal_stats``);
    ``info``, when given, receives what the rows came from (``dates``, ``cloud_masked``,
    ``warnings``)."""
    limits = limits or Limits()
    values = variable_array(catalog, zones, datetime_, variable=variable, composite=composite,
                            temporal=temporal, max_cloud=max_cloud, resolution=resolution,
                            grid=grid, limits=limits)
    if info is not None:
        info.update(dates=list(values.attrs.get("dates", [])),
                    cloud_masked=bool(values.attrs.get("cloud_masked")),
                    warnings=list(values.attrs.get("warnings", [])))
    return zonal_stats(values, zones, statistics, max_zones=limits.max_zones,
                       min_valid_fraction=min_valid_fraction, progress=progress)


def _group(rows: list[dict], zones: Zones) -> list[list[dict]]:
    """Rows per zone, in zone order (the engine emits them grouped, zone by zone)."""
    groups: list[list[dict]] = [[] for _ in zones.ids]
    position = {zone_id: n for n, zone_id in enumerate(zones.ids)}
    for row in rows:
        groups[position[row["id"]]].append(row)
    return groups


def _scalar(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def encode(rows: list[dict], zones: Zones, *, temporal: str = "composite",
           format_: str = "geojson", info: dict | None = None) -> tuple[str, Any]:
    """(media type, UTF-8 bytes): a GeoJSON FeatureCollection (CRS84; with ``info``, the
    members ``cloud_masked`` and ``warnings``) or CSV."""
    stat_names = [k for k in rows[0] if k not in ("id", "datetime", "item", "warning")] \
        if rows else list(DEFAULT_STATISTICS)
    if format_ == "csv":
        buffer = io.StringIO()
        keys = sorted({k for p in zones.properties for k, v in p.items()
                       if _scalar(v) is v and k != "id"})
        header = ["id", *keys, *(["datetime", "item"] if temporal == "series" else []),
                  *stat_names, "warning"]
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(header)
        properties = dict(zip(zones.ids, zones.properties))
        for row in rows:
            props = properties[row["id"]]
            writer.writerow([row["id"], *(props.get(k) for k in keys),
                             *([row.get("datetime"), row.get("item")]
                               if temporal == "series" else []),
                             *(row.get(s) for s in stat_names), row.get("warning") or ""])
        return CSV, buffer.getvalue().encode("utf-8")  # pygeoapi stores bytes, not str
    lonlat = zones.to_crs(CRS84)
    features = []
    for n, group in enumerate(_group(rows, zones)):
        properties = {k: _scalar(v) for k, v in zones.properties[n].items()}
        warnings = {row.get("warning") for row in group if row.get("warning")}
        if temporal == "series":
            properties["series"] = [
                {k: row.get(k) for k in ("datetime", "item", *stat_names)}
                for row in group if row.get("datetime") is not None]
        else:
            properties.update({s: group[0].get(s) for s in stat_names})
        if warnings:
            properties["warning"] = "; ".join(sorted(warnings))
        geometry = lonlat.geometries[n]
        features.append({
            "type": "Feature", "id": zones.ids[n],
            "geometry": None if geometry is None or geometry.is_empty
            else json.loads(shapely.to_geojson(geometry)),
            "properties": properties,
        })
    collection = {"type": "FeatureCollection", "features": features,
                  "numberMatched": len(features), "numberReturned": len(features)}
    if info:
        collection.update(cloud_masked=info.get("cloud_masked"),
                          warnings=info.get("warnings", []))
    # bytes: pygeoapi 0.21 serialises dicts only for application/json, not geo+json
    return GEOJSON, json.dumps(collection, ensure_ascii=False).encode("utf-8")


# --- the pygeoapi adapter --------------------------------------------------------------------

def parse_inputs(data: Any, *, limits: Limits, config: Mapping | None = None) -> dict:
    """Validated keyword arguments for :func:`zonal_statistics` plus ``zones`` and ``format_``."""
    if isinstance(data, Mapping) and isinstance(data.get("variable"), str) \
            and data["variable"].upper() in INDICES:
        data = dict(data, variable=data["variable"].upper())  # ndvi is NDVI
    given = inp.validate_inputs(data, PROCESS_METADATA["inputs"])
    variable = check_variable(given["variable"])
    if is_product(variable) and given["source"]:
        raise InvalidInput("source: a product variable is its own source; leave source out")
    resolution = inp.parse_resolution(given["resolution"], None)
    zones = inp.parse_zones(given["zones"], max_zones=limits.max_zones, config=config)
    duplicates = len(zones.ids) - len(set(zones.ids))
    if duplicates:
        raise InvalidInput(f"zones: ids must be unique ({duplicates} repeated); give each "
                           "feature its own id or none (their positions are used)")
    return {"zones": zones, "datetime_": inp.parse_datetime(given["datetime"]),
            "variable": variable, "composite": given["composite"],
            "temporal": given["temporal"], "statistics": tuple(given["statistics"]),
            "max_cloud": given["max_cloud"], "resolution": resolution,
            "grid": given["grid"], "source": variable if is_product(variable)
            else given["source"],
            "min_valid_fraction": float(given["min_valid_fraction"]),
            "format_": given["format"]}


class ZonalStatisticsProcessor(CatalogProcessor):
    """pygeoapi processor for ``zonal-statistics`` (config keys: see ``CatalogProcessor``)."""

    def __init__(self, processor_def: dict):
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, data, outputs, *, limits):
        inp.check_outputs(outputs, PROCESS_METADATA["outputs"])
        kwargs = parse_inputs(data, limits=limits)
        format_, zones, source = kwargs.pop("format_"), kwargs.pop("zones"), kwargs.pop("source")
        catalog = self.catalog(zones_area(zones), source,
                               kind="product" if is_product(kwargs["variable"]) else "optical")
        info: dict = {}
        rows = zonal_statistics(catalog, zones, limits=limits,
                                progress=job_progress.current(), info=info, **kwargs)
        return encode(rows, zones, temporal=kwargs["temporal"], format_=format_, info=info)


__all__ = ["PROCESS_METADATA", "ZonalStatisticsProcessor", "encode", "zonal_statistics"]
