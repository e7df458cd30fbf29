"""Process ``change-detection``: where did a spectral index (NDVI…) drop or rise between two
periods?

The work is :func:`change_detection` (lazy: each period through the catalog's one path
:func:`~sentinelle.catalog.imagery.read_imagery` — search with cloud over the area from SCL,
cube, SCL mask, composite, clip — then the index and
:func:`~sentinelle.analysis.change.detect_change`), :func:`run` (computes, removes components
smaller than ``min_area_ha``, polygons, areas, per-zone summary with the zonal engine) and
:func:`encode` (each output).  :class:`ChangeDetectionProcessor` only parses inputs and maps
errors.

Choices:

* both periods are read on the same grid (the ``after`` period reuses the CRS chosen for
  ``before``: the scenes' UTM zone unless ``crs`` is given);
* thresholds: 0.2 index units for ``difference``, 0.3 (30 %) for ``relative`` (why: see
  :mod:`sentinelle.analysis.change`); ``min_area_ha`` 0.5 (50 pixels of 10 m);
* ``changes`` polygons are GeoJSON in **CRS84** (RFC 7946), one per 4-connected component,
  areas computed on the output grid (pixels × pixel area, geodesic for EPSG:4326);
* ``raster`` is a float32 COG with two bands: 1 the change (``delta``), 2 the class as a
  signed number (−1 loss, 0 stable, 1 gain), NaN = no data; ``classes`` is the same class as
  a uint8 COG with a colour table (0 no data, 1 stable, 2 loss, 3 gain) for GIS styling;
* one requested output (``outputs: {"changes": {}}``) comes back alone with its own media
  type; none or several come back as one JSON object holding the GeoJSON, the summary and
  the rasters as base64 qualified values (``{"mediaType", "encoding": "base64", "value"}``).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Mapping

import dask
import dask.array
import numpy as np
import xarray as xr
from affine import Affine

from sentinelle.analysis import change as ch
from sentinelle.analysis.indices import INDICES, compute_index, get_index
from sentinelle.analysis.render import classes_rgba, colorize
from sentinelle.catalog.area import Area, Grid
from sentinelle.catalog.composite import METHODS as COMPOSITES
from sentinelle.catalog.dates import Interval
from sentinelle.catalog.imagery import read_imagery
from sentinelle.catalog.source import Catalog
from sentinelle.encode import to_cog, to_png
from sentinelle.errors import InvalidInput, NoData, SentinelleError
from sentinelle.processes import inputs as inp
from sentinelle.processes.base import CatalogProcessor
from sentinelle.processes.spectral_index import GEOTIFF, _inside
from sentinelle.settings import Limits

GEOJSON = "application/geo+json"
JSON = "application/json"
PNG = "image/png"
MEDIA = {"changes": GEOJSON, "raster": GEOTIFF, "classes": GEOTIFF, "summary": JSON,
         "png": PNG}
DEFAULT_MIN_AREA_HA = 0.5

#: zones as the zonal-statistics process takes them (inline GeoJSON or a served collection)
ZONES_SCHEMA: dict = inp.ZONES_SCHEMA


def _text(fr: str, en: str) -> dict:
    return {"fr": fr, "en": en}


PROCESS_METADATA: dict = {
    "version": "0.1.0",
    "id": "change-detection",
    "title": _text("Détection de changements Sentinel-2", "Sentinel-2 change detection"),
    "description": _text(
        "Compare un indice spectral (NDVI par défaut) entre deux périodes (avant / après), "
        "chacune composée après masquage des nuages (SCL), et cartographie les pertes et les "
        "gains au-delà d'un seuil : polygones GeoJSON (surface, différence moyenne, valeurs "
        "avant/après), raster de différence et de classes (COG), surfaces changées au total "
        "et par zone, aperçu PNG. Les taches plus petites que min_area_ha sont ignorées.",
        "Compares a spectral index (NDVI by default) between two periods (before / after), "
        "each composited after cloud masking (SCL), and maps losses and gains beyond a "
        "threshold: GeoJSON polygons (area, mean difference, before/after values), "
        "difference and class rasters (COG), changed area in total and per zone, PNG "
        "quick-look. Patches smaller than min_area_ha are dropped."),
    "jobControlOptions": ["sync-execute", "async-execute"],
    "outputTransmission": ["value"],
    "keywords": _text(["Sentinel-2", "Copernicus", "changement", "déforestation",
                       "artificialisation", "NDVI"],
                      ["Sentinel-2", "Copernicus", "change detection", "deforestation",
                       "land take", "NDVI"]),
    "links": [],
    "inputs": {
        "area": {
            "title": _text("Zone", "Area"),
            "description": _text(
                "Emprise [minx, miny, maxx, maxy] en CRS84, {\"bbox\": [...], \"crs\": ...}, "
                "géométrie GeoJSON ou entité servie {\"collection\": ..., \"id\": ...}.",
                "A bbox [minx, miny, maxx, maxy] in CRS84, {\"bbox\": [...], \"crs\": ...}, a "
                "GeoJSON geometry or a served feature {\"collection\": ..., \"id\": ...}."),
            "schema": inp.AREA_SCHEMA, "minOccurs": 1, "maxOccurs": 1,
        },
        "before": {
            "title": _text("Période avant", "Before period"),
            "description": _text(
                "Date ou intervalle RFC 3339 (2024-07-01/2024-07-31) : composite des dates "
                "claires ; doit finir avant le début de after.",
                "RFC 3339 date or interval (2024-07-01/2024-07-31): composite of its clear "
                "dates; must end before after starts."),
            "schema": inp.DATETIME_SCHEMA, "minOccurs": 1, "maxOccurs": 1,
        },
        "after": {
            "title": _text("Période après", "After period"),
            "description": _text("Date ou intervalle RFC 3339, après before.",
                                 "RFC 3339 date or interval, after before."),
            "schema": inp.DATETIME_SCHEMA, "minOccurs": 1, "maxOccurs": 1,
        },
        "index": {
            "title": _text("Indice", "Index"),
            "description": _text("Indice spectral comparé : " + ", ".join(INDICES) + ".",
                                 "Spectral index compared: " + ", ".join(INDICES) + "."),
            "schema": {"type": "string", "enum": list(INDICES), "default": "NDVI"},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "method": {
            "title": _text("Méthode", "Method"),
            "description": _text(
                "difference : après − avant (seuil en unités d'indice, 0,2 par défaut) ; "
                "relative : (après − avant) / |avant| (seuil en fraction, 0,3 par défaut).",
                "difference: after − before (threshold in index units, default 0.2); "
                "relative: (after − before) / |before| (threshold as a fraction, default "
                "0.3)."),
            "schema": {"type": "string", "enum": list(ch.METHODS), "default": "difference"},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "threshold": {
            "title": _text("Seuil", "Threshold"),
            "description": _text(
                "Variation minimale comptée comme perte (≤ −seuil) ou gain (≥ seuil). Par "
                "défaut 0,2 (difference) : le bruit entre deux dates claires sur un sol "
                "inchangé reste sous 0,13 dans les données d'exemple ; un défrichement ou une "
                "construction fait chuter le NDVI d'environ 0,7.",
                "Smallest change counted as loss (≤ −threshold) or gain (≥ threshold). "
                "Default 0.2 (difference): between two clear dates, unchanged land stays "
                "within 0.13 in the sample data; clearing or building drops NDVI by ≈0.7."),
            "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "min_area_ha": {
            "title": _text("Surface minimale (ha)", "Minimum area (ha)"),
            "description": _text(
                "Les taches de changement (pixels contigus par un côté) plus petites sont "
                "ignorées (0,5 ha par défaut, 0 pour tout garder).",
                "Change patches (pixels sharing an edge) smaller than this are dropped "
                "(default 0.5 ha, 0 keeps everything)."),
            "schema": {"type": "number", "minimum": 0, "maximum": 1_000_000,
                       "default": DEFAULT_MIN_AREA_HA},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "zones": {
            "title": _text("Zones", "Zones"),
            "description": _text(
                "Zones pour un bilan par zone : FeatureCollection GeoJSON en CRS84 ou "
                "entités d'une collection servie {\"collection\": ..., \"filter\": ...}.",
                "Zones for a per-zone summary: a GeoJSON FeatureCollection in CRS84 or "
                "features of a served collection {\"collection\": ..., \"filter\": ...}."),
            "schema": ZONES_SCHEMA, "minOccurs": 0, "maxOccurs": 1,
        },
        "composite": {
            "title": _text("Composite temporel", "Temporal composite"),
            "description": _text("median (défaut), max ou latest, pour chaque période.",
                                 "median (default), max or latest, for each period."),
            "schema": {"type": "string", "enum": list(COMPOSITES), "default": "median"},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "source": inp.SOURCE_INPUT,
        "grid": inp.GRID_INPUT,
        "max_cloud": {
            "title": _text("Nébulosité maximale (%)", "Maximum cloud cover (%)"),
            "description": _text("Part maximale de la zone sous les nuages (masque de nuages de la "
                                 "source : SCL, CLM Theia… ; sans masque, inconnue et non "
                                 "filtrée), en %.",
                                 "Largest share of the area under clouds (the source's cloud "
                                 "mask: SCL, Theia CLM…; without one, unknown and not "
                                 "filtered), in %."),
            "schema": dict(inp.MAX_CLOUD_SCHEMA, default=30), "minOccurs": 0, "maxOccurs": 1,
        },
        "crs": {
            "title": _text("SCR de sortie", "Output CRS"),
            "description": _text("EPSG:2154, 2972, 3857, 4326 ou zone UTM (défaut : celle "
                                 "des scènes).", "EPSG:2154, 2972, 3857, 4326 or a UTM "
                                 "zone (default: the scenes')."),
            "schema": inp.CRS_SCHEMA, "minOccurs": 0, "maxOccurs": 1,
        },
        "resolution": {
            "title": _text("Résolution (m)", "Resolution (m)"),
            "description": _text("Taille des pixels en mètres (10).",
                                 "Pixel size in metres (10)."),
            "schema": dict(inp.RESOLUTION_SCHEMA, default=10), "minOccurs": 0, "maxOccurs": 1,
        },
    },
    "outputs": {
        "changes": {
            "title": _text("Changements", "Changes"),
            "description": _text(
                "Polygones (CRS84) des pertes et gains : type, area_ha, pixels, mean_delta, "
                "before, after.",
                "Loss and gain polygons (CRS84): type, area_ha, pixels, mean_delta, before, "
                "after."),
            "schema": {"type": "object", "contentMediaType": GEOJSON},
        },
        "raster": {
            "title": _text("Raster de différence", "Difference raster"),
            "description": _text(
                "COG float32, bande 1 : différence ; bande 2 : classe (−1 perte, 0 stable, "
                "1 gain), NaN = pas de donnée.",
                "float32 COG, band 1: difference; band 2: class (−1 loss, 0 stable, 1 gain), "
                "NaN = no data."),
            "schema": {"type": "string", "format": "binary", "contentMediaType": GEOTIFF},
        },
        "classes": {
            "title": _text("Classes de changement", "Change classes"),
            "description": _text(
                "COG uint8 avec table de couleurs : 0 pas de donnée, 1 stable, 2 perte, "
                "3 gain.", "uint8 COG with a colour table: 0 no data, 1 stable, 2 loss, "
                "3 gain."),
            "schema": {"type": "string", "format": "binary", "contentMediaType": GEOTIFF},
        },
        "summary": {
            "title": _text("Bilan", "Summary"),
            "description": _text("Surfaces perdues, gagnées et stables (ha), au total et "
                                 "par zone ; dates et scènes utilisées.",
                                 "Lost, gained and stable area (ha), in total and per "
                                 "zone; dates and scenes used."),
            "schema": {"type": "object", "contentMediaType": JSON},
        },
        "png": {
            "title": _text("Aperçu", "Quick-look"),
            "description": _text("PNG : pertes en rouge, gains en vert, stable en gris "
                                 "clair, transparent sans donnée.",
                                 "PNG: losses red, gains green, stable light grey, "
                                 "transparent where no data."),
            "schema": {"type": "string", "format": "binary", "contentMediaType": PNG},
        },
    },
    "example": {
        "inputs": {
            "area": [-52.49, 4.81, -52.46, 4.83],
            "before": "2024-07-01/2024-07-31",
            "after": "2024-08-01/2024-08-31",
            "index": "NDVI",
            "threshold": 0.2,
            "min_area_ha": 0.5,
        },
        "outputs": {"changes": {}},
    },
}


# --- the work --------------------------------------------------------------------------------

def _read(catalog: Catalog, area: Area, interval: Interval, name: str, index: str, *,
          crs, resolution: float, composite: str, max_cloud: float,
          limits: Limits | None, grid: str = "default") -> xr.DataArray:
    """The index composite of one period, not clipped (the caller masks both periods with
    one area mask, and none when the area covers the grid)."""
    spec = get_index(index)
    try:
        imagery = read_imagery(catalog, area, interval, spec.bands, crs=crs,
                               resolution=resolution, method=composite, max_cloud=max_cloud,
                               clip=False, limits=limits, grid=grid)
    except SentinelleError as err:
        text = str(err)
        if isinstance(err, InvalidInput) and "asset" in text:
            text = (f"{spec.name} needs the band(s) {', '.join(spec.bands)}, which these "
                    f"scenes lack ({err}); choose another index")
        raise type(err)(f"{name}: {text}") from err
    values = compute_index(imagery, spec.name)
    values.attrs = dict(imagery.attrs)
    return values.rio.write_crs(imagery.rio.crs).rio.write_transform(imagery.rio.transform())


#: what each period's result says about its read
INFO = ("dates", "scenes", "cloud_fractions", "cloud_masked", "warnings")


def change_detection(catalog: Catalog, area: Area, before: Interval, after: Interval, *,
                     index: str = "NDVI", method: str = "difference",
                     threshold: float | None = None, composite: str = "median",
                     max_cloud: float = 30, crs=None, resolution: float = 10.0,
                     grid: str = "default", limits: Limits | None = None) -> xr.Dataset:
    """Lazy :func:`~sentinelle.analysis.change.detect_change` of ``index`` between the two
    periods (NaN / class 0 outside the area and where either period has no clear value);
    attributes: index, method, threshold, dates, scenes and cloud fractions per period."""
    check_periods(before, after)
    common = dict(resolution=resolution, composite=composite, max_cloud=max_cloud,
                  limits=limits, grid=grid)
    first = _read(catalog, area, before, "before", index, crs=crs, **common)
    second = _read(catalog, area, after, "after", index, crs=first.rio.crs, **common)
    if set(first.attrs["scenes"]) & set(second.attrs["scenes"]):
        raise InvalidInput("before and after share scenes; give periods that do not overlap")
    inside = _inside(area, Grid(first.rio.crs, first.rio.transform(), first.shape))
    if inside is not None:
        mask = xr.DataArray(inside, dims=("y", "x"))
        first, second = first.where(mask), second.where(mask)
    out = ch.detect_change(first, second, threshold=threshold, method=method)
    out.attrs.update(index=get_index(index).name, composite=composite,
                     before={k: first.attrs[k] for k in INFO}, after={k: second.attrs[k]
                                                                    for k in INFO})
    return out


def check_periods(before: Interval, after: Interval) -> None:
    """``before`` must end before ``after`` starts (both ends known)."""
    if before.end is None:
        raise InvalidInput("before: give an interval with an end (it must end before after "
                           "starts)")
    if after.start is None:
        raise InvalidInput("after: give an interval with a start (it must start after before "
                           "ends)")
    if before.end >= after.start:
        raise InvalidInput(
            f"before ({_day(before.start)}/{_day(before.end)}) must end before after "
            f"({_day(after.start)}/{_day(after.end)}) starts; swap them or shorten the periods")


def _day(moment) -> str:
    return ".." if moment is None else moment.date().isoformat()


@dataclass
class ChangeResult:
    """Computed arrays (numpy, output grid) and the vector and tabular results."""

    delta: np.ndarray
    classes: np.ndarray  # sieved, uint8 (0 no data, 1 stable, 2 loss, 3 gain)
    transform: Any
    crs: Any
    attrs: dict
    changes: dict
    summary: dict


def run(ds: xr.Dataset, *, min_area_ha: float = DEFAULT_MIN_AREA_HA, zones=None,
        area: Area | None = None) -> ChangeResult:
    """Compute the lazy change dataset, drop components under ``min_area_ha``, build the
    polygons and the summary (per zone with the zonal engine when ``zones`` is given)."""
    transform, crs = ds.rio.transform(), ds.rio.crs
    delta, classes = _compute(ds["delta"], ds["change"])
    if not (classes != ch.NODATA).any():
        raise NoData("no pixel is clear on both periods over the area; widen the before and "
                     "after intervals or raise max_cloud")
    pixel_m2 = ch.pixel_area_m2(transform, crs)
    needed = ch.min_pixels(min_area_ha, pixel_m2)
    classes = ch.sieve(classes, needed)
    changes = {"type": "FeatureCollection", "features": []}
    window = _changed_window(classes)
    if window is not None:  # the before values are read again, over the changes' extent only
        rows, cols = window
        before = _compute(ds["before"][rows, cols])[0]
        changes = ch.change_polygons(classes[rows, cols], delta[rows, cols], before,
                                     transform=transform * Affine.translation(cols.start,
                                                                              rows.start),
                                     crs=crs, method=ds.attrs["method"])
        del before
    inside = None if area is None else _inside(area, _grid(transform, crs, classes.shape))
    totals = ch.summarise(classes, pixel_m2, inside=inside).as_dict()
    totals["loss_patches"] = sum(f["properties"]["type"] == "loss" for f in changes["features"])
    totals["gain_patches"] = sum(f["properties"]["type"] == "gain" for f in changes["features"])
    epsg = crs.to_epsg() if crs is not None else None
    summary = {
        "index": ds.attrs["index"], "method": ds.attrs["method"],
        "threshold": ds.attrs["threshold"], "min_area_ha": min_area_ha,
        "min_pixels": needed, "composite": ds.attrs.get("composite"),
        "before": ds.attrs["before"], "after": ds.attrs["after"],
        "crs": f"EPSG:{epsg}" if epsg else None, "resolution": abs(transform.a),
        "total": totals,
    }
    if zones is not None:
        da = xr.DataArray(classes, dims=("y", "x")).rio.write_crs(crs) \
            .rio.write_transform(transform)
        summary["zones"] = ch.summarise_zones(da, zones, pixel_m2)
    return ChangeResult(delta, classes, transform, crs, dict(ds.attrs), changes, summary)


def _changed_window(classes: np.ndarray) -> tuple[slice, slice] | None:
    """The smallest (rows, cols) window holding every loss and gain pixel, or ``None``."""
    changed = classes >= ch.LOSS
    rows = np.flatnonzero(changed.any(axis=1))
    if not len(rows):
        return None
    cols = np.flatnonzero(changed[rows[0]:rows[-1] + 1].any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def _compute(*arrays: xr.DataArray) -> list[np.ndarray]:
    """Compute lazy arrays together (one pass over the imagery), each block written straight
    into its preallocated numpy array (no concatenation copies)."""
    lazy = [a for a in arrays if isinstance(a.data, dask.array.Array)]
    out = [np.empty(a.shape, dtype=a.dtype) if isinstance(a.data, dask.array.Array)
           else np.asarray(a.data) for a in arrays]
    if lazy:
        targets = [o for o, a in zip(out, arrays) if isinstance(a.data, dask.array.Array)]
        dask.array.store([a.data for a in lazy], targets, lock=False)
    return out


def _grid(transform, crs, shape) -> Grid:
    return Grid(crs, transform, shape)


# --- encoding --------------------------------------------------------------------------------

def _tags(result: ChangeResult) -> dict:
    s = result.summary
    return {"index": s["index"], "method": s["method"], "threshold": s["threshold"],
            "min_area_ha": s["min_area_ha"],
            "before_dates": ",".join(s["before"]["dates"]),
            "after_dates": ",".join(s["after"]["dates"]),
            "before_scenes": ",".join(s["before"]["scenes"]),
            "after_scenes": ",".join(s["after"]["scenes"])}


def encode_output(result: ChangeResult, name: str) -> tuple[str, Any]:
    """(media type, payload) of one output."""
    if name == "changes":
        return GEOJSON, result.changes
    if name == "summary":
        return JSON, result.summary
    index = result.summary["index"]
    if name == "raster":
        signed = np.full(result.classes.shape, np.nan, dtype="float32")
        signed[result.classes == ch.STABLE] = 0
        signed[result.classes == ch.LOSS] = -1
        signed[result.classes == ch.GAIN] = 1
        delta = np.where(result.classes == ch.NODATA, np.nan, result.delta).astype("float32")
        label = "after - before" if result.summary["method"] == "difference" else \
            "(after - before) / |before|"
        return GEOTIFF, to_cog(np.stack([delta, signed]), transform=result.transform,
                               crs=result.crs, nodata=np.nan,
                               descriptions=[f"{index} change ({label})",
                                             "change class: -1 loss, 0 stable, 1 gain"],
                               tags=_tags(result))
    if name == "classes":
        colormap = {0: (0, 0, 0, 0), **{k: (*v, 255) for k, v in ch.CHANGE_COLOURS.items()}}
        tags = dict(_tags(result), **{f"class_{k}": v["en"]
                                      for k, v in ch.CHANGE_CLASSES.items()})
        return GEOTIFF, to_cog(result.classes.astype("uint8"), transform=result.transform,
                               crs=result.crs, nodata=0, colormap=colormap,
                               descriptions=["change class: 0 no data, 1 stable, 2 loss, "
                                             "3 gain"], tags=tags)
    if name == "png":
        rgba = colorize(np.where(result.classes == ch.NODATA, np.nan, result.delta),
                        "difference")
        changed = classes_rgba(result.classes, {ch.LOSS: ch.CHANGE_COLOURS[ch.LOSS],
                                                ch.GAIN: ch.CHANGE_COLOURS[ch.GAIN]})
        where = changed[..., 3] > 0
        rgba[where] = changed[where]
        return PNG, to_png(rgba)
    raise InvalidInput(f"outputs: unknown output {name!r}; use {', '.join(MEDIA)}")


def qualified(media: str, payload: Any) -> Any:
    """A JSON-ready value: bytes as an OGC qualified value in base64."""
    if isinstance(payload, bytes):
        return {"mediaType": media, "encoding": "base64",
                "value": base64.b64encode(payload).decode("ascii")}
    return payload


def encode(result: ChangeResult, names: list[str]) -> tuple[str, Any]:
    """One output alone (its media type), or several as one JSON object."""
    if len(names) == 1:
        media, payload = encode_output(result, names[0])
        if media == GEOJSON:  # pygeoapi serialises dicts only for application/json
            payload = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        return media, payload
    return JSON, {name: qualified(*encode_output(result, name)) for name in names}


def requested_outputs(outputs: Any) -> list[str]:
    """Output names asked for (all when none), in the description's order."""
    if not outputs:
        return list(MEDIA)
    if not isinstance(outputs, Mapping):
        raise InvalidInput("outputs: must be an object mapping output names to options")
    unknown = [k for k in outputs if k not in MEDIA]
    if unknown:
        raise InvalidInput(f"outputs: unknown output(s) {', '.join(map(repr, unknown))}; "
                           f"this process offers {', '.join(MEDIA)}")
    return [k for k in MEDIA if k in outputs]


# --- the pygeoapi adapter --------------------------------------------------------------------

def parse_zones(value: Any, limits: Limits, config: Mapping | None = None):
    """Zones through the shared parser (:func:`sentinelle.processes.inputs.parse_zones`);
    ``None`` when not given."""
    if value is None:
        return None
    return inp.parse_zones(value, max_zones=limits.max_zones, config=config)


def parse_inputs(data: Any, *, limits: Limits, config: Mapping | None = None) -> dict:
    """Validated keyword arguments for :func:`change_detection` plus ``min_area_ha``,
    ``zones`` (``None`` or a ``Zones``)."""
    if isinstance(data, Mapping) and isinstance(data.get("index"), str):
        data = dict(data, index=data["index"].upper())
    given = inp.validate_inputs(data, PROCESS_METADATA["inputs"])
    crs = inp.parse_output_crs(given["crs"])
    resolution = inp.parse_resolution(given["resolution"], crs)
    spec = get_index(given["index"])
    area = inp.parse_area(given["area"], config=config)
    if given["grid"] != "native":
        inp.check_size(area, crs, resolution, len(spec.bands) + 1, limits)
    before = inp.parse_datetime(given["before"], "before")
    after = inp.parse_datetime(given["after"], "after")
    check_periods(before, after)
    return {"area": area, "before": before, "after": after, "index": spec.name,
            "method": given["method"], "threshold": given["threshold"],
            "composite": given["composite"], "max_cloud": float(given["max_cloud"]),
            "crs": crs, "resolution": resolution, "grid": given["grid"],
            "source": given["source"], "min_area_ha": float(given["min_area_ha"]),
            "zones": parse_zones(given["zones"], limits, config)}


class ChangeDetectionProcessor(CatalogProcessor):
    """pygeoapi processor for ``change-detection`` (config keys: see ``CatalogProcessor``)."""

    def __init__(self, processor_def: dict):
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, data, outputs, *, limits):
        names = requested_outputs(outputs)
        kwargs = parse_inputs(data, limits=limits)
        min_area_ha, zones = kwargs.pop("min_area_ha"), kwargs.pop("zones")
        catalog = self.catalog(kwargs["area"], kwargs.pop("source"))
        ds = change_detection(catalog, limits=limits, **kwargs)
        return encode(run(ds, min_area_ha=min_area_ha, zones=zones, area=kwargs["area"]),
                      names)


__all__ = ["ChangeDetectionProcessor", "ChangeResult", "PROCESS_METADATA", "change_detection",
           "encode", "run"]
