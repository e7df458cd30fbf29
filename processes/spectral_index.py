"""Process ``spectral-index``: a spectral index (NDVI…) over an area and a date or a period.

The work is :func:`spectral_index` (lazy: the catalog's shared path
:func:`~sentinelle.catalog.imagery.read_imagery` — search with cloud over the area from SCL,
cube, SCL mask, composite — then :func:`~sentinelle.analysis.indices.compute_index`) and
:func:`encode` (GeoTIFF, PNG or statistics).  :class:`SpectralIndexProcessor` only parses the
inputs and maps errors.

Notes on the choices:

* composites are made on reflectances, band by band, then the index is computed from the
  composite (``max`` is therefore the per-band maximum, not the "greenest date");
* ``resolution`` is in metres; for EPSG:4326 it becomes degrees of latitude
  (``resolution / 111 320``, square pixels in degrees);
* pixels are resampled with nearest neighbour (SCL classes and values stay exact);
* ``json`` statistics are reductions computed block by block (Dask), so they stream over
  areas whose index would not fit in memory.
"""

from __future__ import annotations

from typing import Any, Mapping

import dask
import dask.array
import numpy as np
import shapely
import xarray as xr
from affine import Affine

from sentinelle.analysis.indices import INDICES, compute_index, get_index
from sentinelle.analysis.render import colorize
from sentinelle.catalog.area import Area, Grid
from sentinelle.catalog.composite import METHODS
from sentinelle.catalog.dates import Interval
from sentinelle.catalog.imagery import read_imagery
from sentinelle.catalog.search import area_mask
from sentinelle.catalog.source import Catalog
from sentinelle.encode import to_cog, to_png
from sentinelle.errors import InvalidInput, NoData
from sentinelle.processes import inputs as inp
from sentinelle.processes.base import CatalogProcessor
from sentinelle.settings import Limits

GEOTIFF = "image/tiff; application=geotiff; profile=cloud-optimized"
PNG = "image/png"
JSON = "application/json"
FORMATS = {"geotiff": GEOTIFF, "png": PNG, "json": JSON}

PROCESS_METADATA: dict = {
    "version": "0.1.0",
    "id": "spectral-index",
    "title": {"fr": "Indice spectral Sentinel-2", "en": "Sentinel-2 spectral index"},
    "description": {
        "fr": "Calcule un indice spectral (NDVI, NDWI, NDMI, NBR, EVI, SAVI) sur une zone — "
              "emprise, géométrie GeoJSON ou entité d'une collection servie (commune, "
              "parcelle) — pour une date ou une période (composite médiane, maximum ou "
              "dernière valeur valide), après masquage des nuages, ombres, cirrus et neige "
              "d'après la classification SCL. Résultat : GeoTIFF optimisé pour le cloud "
              "(float32, NaN hors zone et sous les nuages), aperçu PNG ou statistiques JSON. "
              "Exécution synchrone pour des zones de taille raisonnable.",
        "en": "Computes a spectral index (NDVI, NDWI, NDMI, NBR, EVI, SAVI) over an area — a "
              "bounding box, a GeoJSON geometry or a feature of a served collection "
              "(municipality, parcel) — for a date or a period (median, maximum or latest "
              "valid composite), after masking clouds, shadows, cirrus and snow from the SCL "
              "classification. Output: a Cloud Optimized GeoTIFF (float32, NaN outside the "
              "area and under clouds), a PNG quick-look or JSON statistics. Synchronous for "
              "reasonably small areas.",
    },
    "jobControlOptions": ["sync-execute", "async-execute"],
    "outputTransmission": ["value"],
    "keywords": {"fr": ["Sentinel-2", "Copernicus", "indice spectral", "NDVI", "végétation",
                        "composite"],
                 "en": ["Sentinel-2", "Copernicus", "spectral index", "NDVI", "vegetation",
                        "composite"]},
    "links": [{
        "type": "text/html", "rel": "about", "title": "Sentinel-2 spectral indices",
        "href": "https://custom-scripts.sentinel-hub.com/custom-scripts/sentinel-2/indexdb/",
        "hreflang": "en",
    }],
    "inputs": {
        "area": {
            "title": {"fr": "Zone", "en": "Area"},
            "description": {
                "fr": "Emprise [minx, miny, maxx, maxy] en CRS84, ou {\"bbox\": [...], "
                      "\"crs\": \"EPSG:2154\"}, ou géométrie GeoJSON (Polygon, MultiPolygon) "
                      "en CRS84, ou entité d'une collection servie : {\"collection\": "
                      "\"bretagne-communes\", \"id\": \"35051\"}.",
                "en": "A bbox [minx, miny, maxx, maxy] in CRS84, or {\"bbox\": [...], "
                      "\"crs\": \"EPSG:2154\"}, or a GeoJSON Polygon/MultiPolygon in CRS84, "
                      "or a feature of a served collection: {\"collection\": "
                      "\"bretagne-communes\", \"id\": \"35051\"}.",
            },
            "schema": inp.AREA_SCHEMA,
            "minOccurs": 1, "maxOccurs": 1,
            "keywords": ["bbox", "geometry", "feature"],
        },
        "datetime": {
            "title": {"fr": "Date ou période", "en": "Date or period"},
            "description": {
                "fr": "Instant ou intervalle RFC 3339 (2024-05-17, "
                      "2024-05-01/2024-08-31, ../2024-08-31). Une date seule désigne la "
                      "journée (UTC). Absent : toutes les dates du catalogue.",
                "en": "RFC 3339 instant or interval (2024-05-17, 2024-05-01/2024-08-31, "
                      "../2024-08-31). A date alone means that whole day (UTC). Absent: "
                      "every date of the catalog.",
            },
            "schema": inp.DATETIME_SCHEMA,
            "minOccurs": 0, "maxOccurs": 1,
        },
        "index": {
            "title": {"fr": "Indice", "en": "Index"},
            "description": {
                "fr": "Indice spectral : " + "; ".join(
                    f"{i.name} = {i.formula}" for i in INDICES.values())
                + ". NBR demande la bande swir22.",
                "en": "Spectral index: " + "; ".join(
                    f"{i.name} = {i.formula}" for i in INDICES.values())
                + ". NBR needs the swir22 band.",
            },
            "schema": {"type": "string", "enum": list(INDICES), "default": "NDVI"},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "composite": {
            "title": {"fr": "Composite temporel", "en": "Temporal composite"},
            "description": {
                "fr": "Combinaison des dates valides, bande par bande, avant le calcul de "
                      "l'indice : median (médiane), max (maximum par bande) ou latest "
                      "(dernière observation valide). Sans effet pour une seule date.",
                "en": "How valid dates are combined, band by band, before the index is "
                      "computed: median, max (per-band maximum) or latest (last valid "
                      "observation). No effect for a single date.",
            },
            "schema": {"type": "string", "enum": list(METHODS), "default": "median"},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "max_cloud": {
            "title": {"fr": "Nébulosité maximale (%)", "en": "Maximum cloud cover (%)"},
            "description": {
                "fr": "Part maximale de la zone sous les nuages, ombres ou cirrus (mesurée "
                      "sur la zone, pas sur la tuile, avec le masque de nuages de la source : "
                      "SCL, CLM Theia… ; sans masque elle est inconnue et ne filtre pas), en "
                      "pourcentage.",
                "en": "Largest share of the area under clouds, shadows or cirrus (measured "
                      "over the area, not the tile, with the source's cloud mask: SCL, Theia "
                      "CLM…; without one it is unknown and does not filter), in percent.",
            },
            "schema": dict(inp.MAX_CLOUD_SCHEMA, default=30),
            "minOccurs": 0, "maxOccurs": 1,
        },
        "crs": {
            "title": {"fr": "SCR de sortie", "en": "Output CRS"},
            "description": {
                "fr": "EPSG:2154, EPSG:2972, EPSG:3857, EPSG:4326 ou une zone UTM WGS 84 "
                      "(code, EPSG:xxxx ou URI OGC). Par défaut : la zone UTM des scènes.",
                "en": "EPSG:2154, EPSG:2972, EPSG:3857, EPSG:4326 or a WGS 84 UTM zone (code, "
                      "EPSG:xxxx or OGC URI). Default: the scenes' UTM zone.",
            },
            "schema": inp.CRS_SCHEMA,
            "minOccurs": 0, "maxOccurs": 1,
        },
        "resolution": {
            "title": {"fr": "Résolution (m)", "en": "Resolution (m)"},
            "description": {
                "fr": "Taille des pixels en mètres (10 par défaut). En EPSG:4326, convertie "
                      "en degrés de latitude (résolution / 111 320).",
                "en": "Pixel size in metres (default 10). For EPSG:4326 it is converted to "
                      "degrees of latitude (resolution / 111,320).",
            },
            "schema": dict(inp.RESOLUTION_SCHEMA, default=10),
            "minOccurs": 0, "maxOccurs": 1,
        },
        "source": inp.SOURCE_INPUT,
        "grid": inp.GRID_INPUT,
        "format": {
            "title": {"fr": "Format", "en": "Format"},
            "description": {
                "fr": "geotiff (COG float32, NaN = pas de donnée), png (aperçu en couleurs, "
                      "transparent hors données) ou json (statistiques : min, moyenne, max, "
                      "part valide, dates et scènes utilisées, nébulosité par scène).",
                "en": "geotiff (float32 COG, NaN = no data), png (colour quick-look, "
                      "transparent where no data) or json (statistics: min, mean, max, valid "
                      "fraction, dates and scenes used, cloud fraction per scene).",
            },
            "schema": {"type": "string", "enum": list(FORMATS), "default": "geotiff"},
            "minOccurs": 0, "maxOccurs": 1,
        },
    },
    "outputs": {
        "result": {
            "title": {"fr": "Résultat", "en": "Result"},
            "description": {
                "fr": "Selon l'entrée format : image/tiff; application=geotiff; "
                      "profile=cloud-optimized, image/png ou application/json.",
                "en": "Depending on the format input: image/tiff; application=geotiff; "
                      "profile=cloud-optimized, image/png or application/json.",
            },
            "schema": {"type": "string", "format": "binary", "contentMediaType": GEOTIFF},
        }
    },
    "example": {
        "inputs": {
            "area": {"collection": "bretagne-communes", "id": "35051"},
            "datetime": "2024-05-17",
            "index": "NDVI",
            "format": "json",
        }
    },
}

#: colour ramp per index for PNG quick-looks (water/moisture indices use the water ramp)
RAMPS = {"NDWI": "water", "NDMI": "water"}


# --- the work --------------------------------------------------------------------------------

def spectral_index(catalog: Catalog, area: Area, datetime_: Interval | None = None, *,
                   index: str = "NDVI", composite: str = "median", max_cloud: float = 30,
                   crs=None, resolution: float = 10.0, grid: str = "default",
                   limits: Limits | None = None) -> xr.DataArray:
    """The index over ``area`` (lazy float32, NaN outside the area, under what the source's
    cloud mask hides and where the index is undefined), with the read's attributes (dates,
    scenes, cloud fractions, ``cloud_masked``, ``warnings``) and ``.rio`` CRS/transform.
    ``resolution`` is in the output CRS's units; ``grid="native"`` reads on the data's own
    grid."""
    spec = get_index(index)
    try:
        imagery = read_imagery(catalog, area, datetime_, spec.bands, crs=crs,
                               resolution=resolution, method=composite, max_cloud=max_cloud,
                               clip=False, limits=limits, grid=grid)
    except InvalidInput as err:
        if "asset" in str(err) and any(band in str(err) for band in spec.bands):
            raise InvalidInput(f"index: {spec.name} needs the band(s) "
                               f"{', '.join(spec.bands)}, which these scenes lack ({err}); "
                               "choose another index") from err
        raise
    values = compute_index(imagery, spec.name)
    pixels = Grid(imagery.rio.crs, imagery.rio.transform(), values.shape)
    keep = np.isfinite(values)
    inside = _inside(area, pixels)
    if inside is not None:
        keep = keep & xr.DataArray(inside, dims=("y", "x"))
    values = values.where(keep)
    area_pixels = pixels.npixels if inside is None else int(inside.sum())
    values.attrs = dict(imagery.attrs, index=spec.name, area_pixels=area_pixels)
    return values.rio.write_crs(pixels.crs).rio.write_transform(pixels.transform)


def _inside(area: Area, grid: Grid) -> np.ndarray | None:
    """Pixels whose centre lies in the area, or ``None`` when all do (a bbox on the grid:
    no need to rasterise a mask as large as the output)."""
    minx, miny, maxx, maxy = grid.bounds
    half = grid.resolution / 2
    centres = shapely.box(minx + half, miny + half, maxx - half, maxy - half)
    if area.to_crs(grid.crs).geometry.covers(centres):
        return None
    return area_mask(area, grid)


def _block_stats(block: np.ndarray) -> np.ndarray:
    """[count, sum, sum of squares, min, max] of a block's finite values."""
    finite = block[np.isfinite(block)].astype("float64")
    if not finite.size:
        return np.array([0, 0, 0, np.inf, -np.inf])
    return np.array([finite.size, finite.sum(), np.square(finite).sum(), finite.min(),
                     finite.max()])


def statistics(values: xr.DataArray) -> dict[str, Any]:
    """Statistics of the index, computed block by block (nothing holds the whole array)."""
    data = values.data
    if isinstance(data, dask.array.Array):
        parts = dask.compute(*[dask.delayed(_block_stats)(b)
                               for b in data.to_delayed().ravel()])
    else:
        parts = [_block_stats(np.asarray(data))]
    count, total, squares = (sum(p[i] for p in parts) for i in range(3))
    low, high = min(p[3] for p in parts), max(p[4] for p in parts)
    count = int(count)
    area_pixels = values.attrs.get("area_pixels") or values.size
    mean = float(total / count) if count else None
    std = float(np.sqrt(max(squares / count - mean * mean, 0.0))) if count else None
    return {"min": float(low) if count else None, "mean": mean,
            "max": float(high) if count else None, "std": std,
            "valid_pixels": count, "area_pixels": int(area_pixels),
            "valid_fraction": count / area_pixels if area_pixels else 0.0}


def _describe(values: xr.DataArray) -> dict[str, Any]:
    attrs = values.attrs
    height, width = values.shape
    crs = values.rio.crs
    epsg = crs.to_epsg() if crs is not None else None
    transform: Affine = values.rio.transform()
    return {
        "index": attrs.get("index"), "composite": attrs.get("composite"),
        "crs": f"EPSG:{epsg}" if epsg else None,
        "resolution": abs(transform.a), "width": width, "height": height,
        "bbox": [transform.c, transform.f + transform.e * height,
                 transform.c + transform.a * width, transform.f],
        "dates": list(attrs.get("dates", [])), "scenes": list(attrs.get("scenes", [])),
        "cloud_fraction": dict(attrs.get("cloud_fractions", {})),
        "cloud_masked": bool(attrs.get("cloud_masked")),
        "warnings": list(attrs.get("warnings", [])),
    }


def _no_valid_pixel(values: xr.DataArray) -> NoData:
    return NoData(f"no valid {values.attrs.get('index')} pixel over the area on "
                  f"{', '.join(values.attrs.get('dates', []))} (all masked as cloud or outside "
                  "the data); widen the datetime interval or change the area")


def encode(values: xr.DataArray, format_: str = "geotiff") -> tuple[str, Any]:
    """(media type, payload) for ``geotiff`` (bytes), ``png`` (bytes) or ``json`` (dict)."""
    if format_ == "json":
        stats = statistics(values)
        if not stats["valid_pixels"]:
            raise _no_valid_pixel(values)
        return JSON, {**_describe(values), "statistics": stats}
    if format_ not in FORMATS:
        raise InvalidInput(f"format: must be one of {', '.join(FORMATS)}, got {format_!r}")
    array = np.asarray(values.values, dtype="float32")
    if not np.isfinite(array).any():
        raise _no_valid_pixel(values)
    if format_ == "png":
        return PNG, to_png(colorize(array, RAMPS.get(values.attrs.get("index"), "ndvi")))
    described = _describe(values)
    tags = {"index": described["index"], "composite": described["composite"],
            "dates": ",".join(described["dates"]), "scenes": ",".join(described["scenes"]),
            "CLOUD_MASKED": "yes" if described["cloud_masked"] else "no"}
    return GEOTIFF, to_cog(array, transform=values.rio.transform(), crs=values.rio.crs,
                           nodata=np.nan, descriptions=[described["index"]], tags=tags)


# --- the pygeoapi adapter --------------------------------------------------------------------

_MEDIA_FORMATS = {"image/tiff": "geotiff", "image/png": "png", "application/json": "json"}


def _format_from_outputs(outputs: Any) -> str | None:
    """The format asked through ``outputs: {result: {format: {mediaType: ...}}}``, if any."""
    if not isinstance(outputs, Mapping):
        return None
    wanted = outputs.get("result")
    media = (wanted or {}).get("format", {}).get("mediaType") if isinstance(wanted, Mapping) \
        else None
    if not media:
        return None
    base = str(media).split(";")[0].strip().lower()
    if base not in _MEDIA_FORMATS:
        raise InvalidInput(f"outputs: media type {media!r} is not offered; use "
                           f"{', '.join(FORMATS.values())}")
    return _MEDIA_FORMATS[base]


def parse_inputs(data: Any, outputs: Any = None, *, limits: Limits,
                 config: Mapping | None = None) -> dict[str, Any]:
    """Validated keyword arguments for :func:`spectral_index` plus ``format_``."""
    if isinstance(data, Mapping) and isinstance(data.get("index"), str):
        data = dict(data, index=data["index"].upper())  # ndvi is NDVI
    given = validate_inputs_or_raise(data)
    inp.check_outputs(outputs, PROCESS_METADATA["outputs"])
    crs = inp.parse_output_crs(given["crs"])
    resolution = inp.parse_resolution(given["resolution"], crs)
    spec = get_index(given["index"])
    area = inp.parse_area(given["area"], config=config)
    if given["grid"] != "native":
        inp.check_size(area, crs, resolution, len(spec.bands) + 1, limits)
    format_ = given["format"] if (data or {}).get("format") is not None else \
        (_format_from_outputs(outputs) or given["format"])
    return {"area": area, "datetime_": inp.parse_datetime(given["datetime"]),
            "index": spec.name, "composite": given["composite"],
            "max_cloud": float(given["max_cloud"]), "crs": crs, "resolution": resolution,
            "grid": given["grid"], "source": given["source"], "format_": format_}


def validate_inputs_or_raise(data: Any) -> dict[str, Any]:
    return inp.validate_inputs(data, PROCESS_METADATA["inputs"])


class SpectralIndexProcessor(CatalogProcessor):
    """pygeoapi processor for ``spectral-index`` (config keys: see ``CatalogProcessor``)."""

    def __init__(self, processor_def: dict):
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, data, outputs, *, limits):
        kwargs = parse_inputs(data, outputs, limits=limits)
        format_, source = kwargs.pop("format_"), kwargs.pop("source")
        catalog = self.catalog(kwargs["area"], source)
        return encode(spectral_index(catalog, limits=limits, **kwargs), format_)


__all__ = ["PROCESS_METADATA", "SpectralIndexProcessor", "encode", "spectral_index",
           "statistics"]
