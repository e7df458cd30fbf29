"""Process ``classification``: a land-cover map of an area from a Sentinel-2 composite.

The work is :func:`classification` (the composite through the catalog's one path
:func:`~sentinelle.catalog.imagery.read_imagery`, then one of the methods of
:mod:`sentinelle.analysis.classify`: ``rules`` on index thresholds, ``kmeans`` clusters or a
``random-forest`` trained on polygons), :func:`run` (computes the classes, areas per class
in total and per zone with the zonal engine) and :func:`encode`.
:class:`ClassificationProcessor` only parses inputs and maps errors.

Outputs: ``classes`` — a uint8 COG (0 = no data) with a colour table, the class names in the
band description and in tags ``class_<code>`` (and ``classes`` as JSON); ``summary`` — JSON
with the legend, areas (ha) per class in total and per zone, dates and scenes; ``png`` — the
map in the legend's colours.  One requested output comes back alone; none or several as one
JSON object (rasters as base64 qualified values).  Training polygons and zones are GeoJSON in
CRS84.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import xarray as xr

from sentinelle.analysis import classify as cl
from sentinelle.analysis.change import pixel_area_m2
from sentinelle.analysis.render import classes_rgba
from sentinelle.analysis.zones import Zones
from sentinelle.catalog.area import Area
from sentinelle.catalog.composite import METHODS as COMPOSITES
from sentinelle.catalog.dates import Interval
from sentinelle.catalog.imagery import read_imagery
from sentinelle.catalog.source import Catalog
from sentinelle.encode import to_cog, to_png
from sentinelle.errors import InvalidInput, NoData
from sentinelle.processes import inputs as inp
from sentinelle.processes.base import CatalogProcessor
from sentinelle.processes.change_detection import parse_zones
from sentinelle.processes.spectral_index import GEOTIFF
from sentinelle.settings import Limits

JSON = "application/json"
PNG = "image/png"
MEDIA = {"classes": GEOTIFF, "summary": JSON, "png": PNG}
METHODS = ("rules", "kmeans", "random-forest")
#: training features at most (each a polygon)
MAX_TRAINING_FEATURES = 10_000


def _text(fr: str, en: str) -> dict:
    return {"fr": fr, "en": en}


_RULES_TEXT = "; ".join(f"{cl.RULES_LEGEND.name(c)}" for c in sorted(cl.RULES_LEGEND.names))

PROCESS_METADATA: dict = {
    "version": "0.1.0",
    "id": "classification",
    "title": _text("Classification de l'occupation du sol", "Land-cover classification"),
    "description": _text(
        "Classe chaque pixel d'une zone à partir d'un composite Sentinel-2 sans nuages : "
        "règles sur les indices (eau, sol nu / bâti, végétation clairsemée, prairie / "
        "culture, arbres ; à utiliser en été), k-means non supervisé, ou forêt aléatoire "
        "entraînée sur des polygones. Résultat : COG uint8 avec table de couleurs et noms "
        "des classes, surfaces par classe (ha) au total et par zone, aperçu PNG.",
        "Classifies every pixel of an area from a cloud-free Sentinel-2 composite: rules on "
        "spectral indices (water, bare soil / built-up, sparse vegetation, grassland / crop, "
        "trees; use a summer composite), unsupervised k-means, or a random forest trained "
        "on polygons. Output: a uint8 COG with a colour table and class names, class areas "
        "(ha) in total and per zone, a PNG quick-look."),
    "jobControlOptions": ["sync-execute", "async-execute"],
    "outputTransmission": ["value"],
    "keywords": _text(["Sentinel-2", "occupation du sol", "classification", "k-means",
                       "forêt aléatoire"],
                      ["Sentinel-2", "land cover", "classification", "k-means",
                       "random forest"]),
    "links": [],
    "inputs": {
        "area": {
            "title": _text("Zone", "Area"),
            "description": _text("Emprise, géométrie GeoJSON ou entité servie (comme "
                                 "spectral-index).", "A bbox, GeoJSON geometry or served "
                                 "feature (as in spectral-index)."),
            "schema": inp.AREA_SCHEMA, "minOccurs": 1, "maxOccurs": 1,
        },
        "datetime": {
            "title": _text("Date ou période", "Date or period"),
            "description": _text(
                "Date ou intervalle RFC 3339, composite des dates claires. Pour les règles, "
                "une date claire d'été (feuilles, prairies fauchées).",
                "RFC 3339 date or interval, composite of its clear dates. For the rules, a "
                "clear summer date (leaf on, grassland mown)."),
            "schema": inp.DATETIME_SCHEMA, "minOccurs": 1, "maxOccurs": 1,
        },
        "method": {
            "title": _text("Méthode", "Method"),
            "description": _text(
                "rules (défaut ; classes : " + _RULES_TEXT + "), kmeans (n_classes groupes, "
                "numérotés par NDVI croissant) ou random-forest (entrée training).",
                "rules (default; classes: " + _RULES_TEXT + "), kmeans (n_classes clusters, "
                "numbered by increasing NDVI) or random-forest (the training input)."),
            "schema": {"type": "string", "enum": list(METHODS), "default": "rules"},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "n_classes": {
            "title": _text("Nombre de groupes", "Number of clusters"),
            "description": _text("Pour kmeans (6 par défaut).", "For kmeans (default 6)."),
            "schema": {"type": "integer", "minimum": 2, "maximum": 20, "default": 6},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "training": {
            "title": _text("Polygones d'entraînement", "Training polygons"),
            "description": _text(
                "Pour random-forest : FeatureCollection GeoJSON (CRS84) dont chaque polygone "
                "porte sa classe dans la propriété class_property (entier 1–254 ou nom).",
                "For random-forest: a GeoJSON FeatureCollection (CRS84) whose polygons carry "
                "their class in the class_property property (integer 1–254 or a name)."),
            "schema": {"type": "object", "required": ["type", "features"],
                       "properties": {"type": {"const": "FeatureCollection"},
                                      "features": {"type": "array", "minItems": 1}}},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "class_property": {
            "title": _text("Propriété de classe", "Class property"),
            "description": _text("Nom de la propriété des polygones d'entraînement qui "
                                 "donne la classe (class par défaut).",
                                 "Property of the training polygons holding the class "
                                 "(default class)."),
            "schema": {"type": "string", "minLength": 1, "default": "class"},
            "minOccurs": 0, "maxOccurs": 1,
        },
        "zones": {
            "title": _text("Zones", "Zones"),
            "description": _text("Zones pour les surfaces par classe et par zone.",
                                 "Zones for class areas per zone."),
            "schema": inp.ZONES_SCHEMA, "minOccurs": 0, "maxOccurs": 1,
        },
        "composite": {
            "title": _text("Composite temporel", "Temporal composite"),
            "description": _text("median (défaut), max ou latest.",
                                 "median (default), max or latest."),
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
            "description": _text("EPSG:2154, 2972, 3857, 4326 ou zone UTM.",
                                 "EPSG:2154, 2972, 3857, 4326 or a UTM zone."),
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
        "classes": {
            "title": _text("Classes", "Classes"),
            "description": _text("COG uint8 (0 = pas de donnée) avec table de couleurs ; "
                                 "noms dans les métadonnées (class_<code>).",
                                 "uint8 COG (0 = no data) with a colour table; names in "
                                 "the tags (class_<code>)."),
            "schema": {"type": "string", "format": "binary", "contentMediaType": GEOTIFF},
        },
        "summary": {
            "title": _text("Bilan", "Summary"),
            "description": _text("Légende, surfaces par classe (ha) au total et par zone.",
                                 "Legend, class areas (ha) in total and per zone."),
            "schema": {"type": "object", "contentMediaType": JSON},
        },
        "png": {
            "title": _text("Aperçu", "Quick-look"),
            "description": _text("PNG aux couleurs de la légende.",
                                 "PNG in the legend's colours."),
            "schema": {"type": "string", "format": "binary", "contentMediaType": PNG},
        },
    },
    "example": {
        "inputs": {"area": [-1.60, 48.09, -1.55, 48.13], "datetime": "2024-06-11",
                   "method": "rules"},
        "outputs": {"summary": {}},
    },
}


# --- the work --------------------------------------------------------------------------------

@dataclass
class Classified:
    """Lazy classes, their legend and the fitted model's notes."""

    classes: xr.DataArray
    legend: cl.Legend
    info: dict


def training_zones(training: Mapping, class_property: str) -> tuple[Zones, list]:
    """Training polygons as :class:`Zones` (CRS84, repaired) and their class values;
    :class:`InvalidInput` naming the first feature without ``class_property``."""
    features = training.get("features") or []
    if len(features) > MAX_TRAINING_FEATURES:
        raise InvalidInput(f"training: at most {MAX_TRAINING_FEATURES:,} polygons, got "
                           f"{len(features):,}")
    values = []
    for index, feature in enumerate(features):
        props = (feature or {}).get("properties") or {}
        if props.get(class_property) is None:
            raise InvalidInput(
                f"training: feature {index} has no property {class_property!r} (its "
                f"properties: {', '.join(props) or 'none'}); set class_property to the "
                "property that holds the class")
        values.append(props[class_property])
    with inp.about("training"):
        zones = Zones.from_features(training)
    return zones, values


def classification(catalog: Catalog, area: Area, datetime_: Interval, *,
                   method: str = "rules", n_classes: int = 6, training: Mapping | None = None,
                   class_property: str = "class", composite: str = "median",
                   max_cloud: float = 30, crs=None, resolution: float = 10.0,
                   grid: str = "default", limits: Limits | None = None) -> Classified:
    """Classes over ``area`` (lazy for rules; fitting kmeans / random forest reads a sample of
    the composite)."""
    if method not in METHODS:
        raise InvalidInput(f"method: must be one of {', '.join(METHODS)}, got {method!r}")
    if method == "random-forest" and not training:
        raise InvalidInput("training: random-forest needs training polygons (a GeoJSON "
                           "FeatureCollection with a class property)")
    if method == "random-forest":  # check the training data before reading any pixel
        zones, values = training_zones(training, class_property)
        mapping, legend = cl.training_codes(values)
    imagery = read_imagery(catalog, area, datetime_, cl.BANDS, crs=crs, resolution=resolution,
                           method=composite, max_cloud=max_cloud, limits=limits, grid=grid)
    info = {k: imagery.attrs[k] for k in ("dates", "scenes", "cloud_fractions", "composite",
                                          "cloud_masked", "warnings")}
    if method == "rules":
        return Classified(cl.classify_rules(imagery), cl.RULES_LEGEND,
                          dict(info, thresholds=dict(cl.RULES)))
    stack = cl.features(imagery)
    if method == "kmeans":
        model = cl.fit_kmeans(stack, n_classes)
    else:
        grid_zones = zones.to_crs(imagery.rio.crs)
        labels = cl.rasterize_training(grid_zones.geometries, [mapping[v] for v in values],
                                       transform=imagery.rio.transform(),
                                       shape=stack.shape[1:])
        model = cl.fit_random_forest(stack, labels, legend)
    return Classified(cl.predict(stack, model), model.legend, dict(info, **model.info))


@dataclass
class ClassificationResult:
    classes: np.ndarray
    transform: Any
    crs: Any
    legend: cl.Legend
    summary: dict


def run(result: Classified, *, method: str, zones=None) -> ClassificationResult:
    """Compute the classes, class areas in total and per zone."""
    da = result.classes
    transform, crs = da.rio.transform(), da.rio.crs
    classes = np.asarray(da.values, dtype="uint8")
    if not (classes > 0).any():
        raise NoData(f"no clear pixel over the area on {', '.join(result.info['dates'])}; "
                     "widen the datetime interval or raise max_cloud")
    pixel_m2 = pixel_area_m2(transform, crs)
    epsg = crs.to_epsg() if crs is not None else None
    summary = {"method": method, "legend": result.legend.as_list(),
               "areas": cl.class_areas(classes, result.legend, pixel_m2),
               "classified_ha": round(float((classes > 0).sum() * pixel_m2 / 10_000), 4),
               "crs": f"EPSG:{epsg}" if epsg else None, "resolution": abs(transform.a),
               **result.info}
    if zones is not None:
        grid = xr.DataArray(classes, dims=("y", "x")).rio.write_crs(crs) \
            .rio.write_transform(transform)
        summary["zones"] = cl.class_areas_by_zone(grid, result.legend, zones, pixel_m2)
    return ClassificationResult(classes, transform, crs, result.legend, summary)


def encode_output(result: ClassificationResult, name: str) -> tuple[str, Any]:
    legend = result.legend
    if name == "summary":
        return JSON, result.summary
    if name == "png":
        return PNG, to_png(classes_rgba(result.classes, legend.colours))
    if name == "classes":
        names = {code: legend.name(code) for code in sorted(legend.names)}
        tags = {f"class_{code}": n for code, n in names.items()}
        tags.update(method=result.summary["method"],
                    dates=",".join(result.summary.get("dates", [])),
                    classes=json.dumps({str(k): v for k, v in names.items()},
                                       ensure_ascii=False))
        description = "class: 0 no data, " + ", ".join(f"{k} {v}" for k, v in names.items())
        return GEOTIFF, to_cog(result.classes, transform=result.transform, crs=result.crs,
                               nodata=0, colormap=legend.colormap(),
                               descriptions=[description], tags=tags)
    raise InvalidInput(f"outputs: unknown output {name!r}; use {', '.join(MEDIA)}")


def encode(result: ClassificationResult, names: list[str]) -> tuple[str, Any]:
    if len(names) == 1:
        return encode_output(result, names[0])
    out = {}
    for name in names:
        media, payload = encode_output(result, name)
        out[name] = payload if not isinstance(payload, bytes) else {
            "mediaType": media, "encoding": "base64",
            "value": base64.b64encode(payload).decode("ascii")}
    return JSON, out


def requested_outputs(outputs: Any) -> list[str]:
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

def parse_inputs(data: Any, *, limits: Limits, config: Mapping | None = None) -> dict:
    given = inp.validate_inputs(data, PROCESS_METADATA["inputs"])
    crs = inp.parse_output_crs(given["crs"])
    resolution = inp.parse_resolution(given["resolution"], crs)
    area = inp.parse_area(given["area"], config=config)
    if given["grid"] != "native":
        inp.check_size(area, crs, resolution, len(cl.BANDS) + 1, limits)
    method = given["method"]
    if method == "random-forest":
        if not given["training"]:
            raise InvalidInput("training: random-forest needs training polygons (a GeoJSON "
                               "FeatureCollection with a class property)")
        training_zones(given["training"], given["class_property"])
    return {"area": area, "datetime_": inp.parse_datetime(given["datetime"]),
            "method": method, "n_classes": int(given["n_classes"]),
            "training": given["training"], "class_property": given["class_property"],
            "composite": given["composite"], "max_cloud": float(given["max_cloud"]),
            "crs": crs, "resolution": resolution, "grid": given["grid"],
            "source": given["source"], "zones": parse_zones(given["zones"], limits, config)}


class ClassificationProcessor(CatalogProcessor):
    """pygeoapi processor for ``classification`` (config keys: see ``CatalogProcessor``)."""

    def __init__(self, processor_def: dict):
        super().__init__(processor_def, PROCESS_METADATA)

    def run(self, data, outputs, *, limits):
        names = requested_outputs(outputs)
        kwargs = parse_inputs(data, limits=limits)
        zones = kwargs.pop("zones")
        catalog = self.catalog(kwargs["area"], kwargs.pop("source"))
        classified = classification(catalog, limits=limits, **kwargs)
        return encode(run(classified, method=kwargs["method"], zones=zones), names)


__all__ = ["ClassificationProcessor", "PROCESS_METADATA", "classification", "encode", "run"]
