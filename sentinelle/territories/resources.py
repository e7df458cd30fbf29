"""pygeoapi's configuration generated from the territory blocks.

pygeoapi stays the OGC API engine and reads a plain configuration; this module writes it.
:func:`expand` keeps the configuration as the administrator wrote it (``server``,
``metadata``, ``resources`` such as the scene records, the products records and the
processes — ``${VAR}`` left for pygeoapi to interpolate) and adds, per territory:

* one OGC API Features collection per local layer (``<territory>-<layer>``);
* per optical imagery source, a Coverages + Maps collection of the bands
  (``<territory>-<source>``, e.g. ``bretagne-s2``) and one per served index
  (``<territory>-ndvi``…);
* per product source, a Coverages + Maps collection of its values
  (``<territory>-<source>``);

with titles and descriptions in French and English, the territory's extent and CRSs, licence,
ISO-record and download links.  The scene records collection (``SceneRecordsProvider``) gets
the list of every territory's sources, and collections configured without ``extents`` get
the union of the territories.  Temporal extents are not written: they follow the
catalogs live (:mod:`sentinelle.territories.extents`).

:func:`write_resolved` writes the result next to the OpenAPI document, where
``sentinelle serve`` (and ``create_app``) point pygeoapi.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from sentinelle.analysis.indices import get_index
from sentinelle.catalog.area import crs_uri, parse_crs
from sentinelle.territories.model import (
    ImagerySource,
    LocalLayer,
    Territory,
    parse_territories,
)
from sentinelle.territories.registry import Registry

LOGGER = logging.getLogger(__name__)

CRS84_URI = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
#: CRSs every feature collection offers (besides the territory's own)
FEATURE_CRS = ("OGC:CRS84", "EPSG:4326", "EPSG:3857", "EPSG:4258")
COVERAGE_PROVIDER = "sentinelle.providers.coverage.SentinelCoverageProvider"
MAP_PROVIDER = "sentinelle.providers.maps.SentinelMapProvider"
SCENES_PROVIDER = "sentinelle.providers.records.SceneRecordsProvider"
WORLD = [-180.0, -90.0, 180.0, 90.0]
ISO_TITLE = {"fr": "Fiche de métadonnées ISO 19139 (INSPIRE)",
             "en": "ISO 19139 metadata record (INSPIRE)"}
#: default bands of an optical collection (those the scenes carry are served)
OPTICAL_BANDS = ["blue", "green", "red", "nir", "swir16", "scl"]


def _licence(base: str, licence: str) -> dict:
    titles = {"etalab-2.0": "Licence Ouverte 2.0 (Etalab)",
              "copernicus": {"fr": "Conditions d'utilisation des données Copernicus Sentinel",
                             "en": "Copernicus Sentinel data legal notice"}}
    return {"type": "text/html", "rel": "license", "title": titles[licence],
            "href": f"{base}/licences/{licence}", "hreflang": "fr"}


def _describedby(base: str, collection_id: str) -> dict:
    return {"type": "application/xml", "rel": "describedby", "title": dict(ISO_TITLE),
            "href": f"{base}/metadata/{collection_id}.xml", "hreflang": "fr"}


def _extent(bbox: list[float]) -> dict:
    return {"spatial": {"bbox": [round(v, 6) for v in bbox], "crs": CRS84_URI}}


def _both(fr: str, en: str) -> dict[str, str]:
    return {"fr": fr, "en": en}


def _layer_resource(layer: LocalLayer, territory: Territory, bbox: list[float],
                    base: str) -> dict:
    keywords = {lang: list(layer.keywords[lang]) or [territory.title[lang].split(" (")[0]]
                for lang in ("fr", "en")}
    provider = dict(layer.provider)
    provider["crs"] = [crs_uri(parse_crs(c)) for c in
                       dict.fromkeys((*FEATURE_CRS, *territory.crs, layer.storage_crs))]
    provider["storage_crs"] = crs_uri(parse_crs(layer.storage_crs))
    links = [_licence(base, "etalab-2.0"), _describedby(base, layer.collection_id)]
    if provider["name"].endswith("GeoPackageProvider"):
        links.append({"type": "application/geopackage+sqlite3", "rel": "enclosure",
                      "title": _both("Série de données complète (GeoPackage)",
                                     "Whole dataset (GeoPackage)"),
                      "href": f"{base}/download/{layer.collection_id}.gpkg", "hreflang": "fr"})
    return {
        "type": "collection",
        "title": dict(layer.title),
        "description": dict(layer.description) if layer.description["fr"] else dict(
            layer.title),
        "keywords": keywords,
        "links": links,
        "extents": _extent(bbox),
        "providers": [provider],
    }


def _imagery_resource(source: ImagerySource, territory: Territory, index: str | None,
                      bbox: list[float], base: str) -> dict:
    place = territory.title
    collection_id = source.index_collection_id(index) if index else source.collection_id
    options: dict[str, Any] = {**source.options, "name": collection_id}
    if index:
        spec = get_index(index)
        options["index"] = spec.name
        title = _both(f"{spec.name} Sentinel-2 — {place['fr']}",
                      f"Sentinel-2 {spec.name} — {place['en']}")
        description = _both(
            f"{spec.title['fr']} ({spec.name} = {spec.formula}) calculé à la demande depuis "
            f"Sentinel-2, nuages masqués quand la source a un masque, sur {place['fr']} ; une "
            "date ou la composition d'une période.",
            f"{spec.title['en']} ({spec.name} = {spec.formula}) computed on demand from "
            f"Sentinel-2, clouds masked when the source has a mask, over {place['en']}; one "
            "date or the composite of a period.")
        keywords = _both(["Copernicus", "Sentinel-2", spec.name, "végétation"],
                         ["Copernicus", "Sentinel-2", spec.name, "vegetation"])
        licence = "copernicus"
    elif source.kind == "product":
        product = source.product
        title = dict(source.title or _both(f"{product.title['fr']} — {place['fr']}",
                                           f"{product.title['en']} — {place['en']}"))
        description = dict(source.description or product.description
                           if (source.description or product.description.get("fr"))
                           else title)
        keywords = _both(["produit", product.name], ["product", product.name])
        licence = "etalab-2.0"
    else:
        title = dict(source.title or _both(
            f"Sentinel-2 — {place['fr']} (bandes, réflectance)",
            f"Sentinel-2 — {place['en']} (bands, reflectance)"))
        description = dict(source.description or _both(
            f"Bandes Sentinel-2 sur {place['fr']}, à {source.resolution:g} m : une date "
            "(valeurs brutes) ou une composition temporelle sans nuages "
            f"({source.composite}). Carte en couleurs naturelles.",
            f"Sentinel-2 bands over {place['en']}, at {source.resolution:g} m: one date (raw "
            f"values) or a cloud-free temporal composite ({source.composite}). True-colour "
            "map."))
        keywords = _both(["Copernicus", "Sentinel-2", "réflectance", "couverture"],
                         ["Copernicus", "Sentinel-2", "reflectance", "coverage"])
        licence = "copernicus"
    for lang in ("fr", "en"):
        keywords[lang] = keywords[lang] + [place[lang].split(" (")[0]]
    return {
        "type": "collection",
        "title": title,
        "description": description,
        "keywords": keywords,
        "links": [_licence(base, licence), _describedby(base, collection_id)],
        "extents": _extent(bbox),
        "providers": [
            {"type": "coverage", "name": COVERAGE_PROVIDER, "data": source.catalog,
             "options": options, "format": {"name": "GTiff", "mimetype": "image/tiff"}},
            {"type": "map", "name": MAP_PROVIDER, "data": source.catalog, "options": options,
             "format": {"name": "png", "mimetype": "image/png"}},
        ],
    }


def _union(boxes: list[list[float]]) -> list[float]:
    if not boxes:
        return list(WORLD)
    return [min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes)]


def generated_resources(registry: Registry, base: str) -> tuple[dict[str, dict], list[float]]:
    """The territories' collections (in order: every layer, then every imagery collection)
    and the union of their extents."""
    layers, imagery, boxes = {}, {}, []
    for territory in registry.territories:
        try:
            bbox = list(registry.area(territory).bounds)
        except Exception as err:  # noqa: BLE001 - one broken area must not stop the service
            LOGGER.error("territory %s: its area cannot be read (%s); its collections are "
                         "described with a world extent", territory.id, err)
            bbox = list(WORLD)
        boxes.append(bbox)
        for layer in territory.layers:
            layers[layer.collection_id] = _layer_resource(layer, territory, bbox, base)
        for source in territory.imagery:
            imagery[source.collection_id] = _imagery_resource(source, territory, None, bbox,
                                                              base)
            for index in source.indices:
                imagery[source.index_collection_id(index)] = _imagery_resource(
                    source, territory, index, bbox, base)
    return {**layers, **imagery}, _union(boxes)


def scene_sources(registry: Registry) -> list[dict]:
    """Every distinct Sentinel-2 source of the territories (what the scene records list)."""
    out, seen = [], set()
    for source in registry.sources:
        if source.kind != "optical":
            continue
        key = (source.catalog, source.preset, repr(source.assets), repr(source.mask),
               source.collections)
        if key in seen:
            continue
        seen.add(key)
        out.append({"territory": source.territory, "source": source.id})
    return out


def expand(raw: Mapping[str, Any], resolved: Mapping[str, Any]) -> dict:
    """The configuration pygeoapi loads: ``raw`` (as written, ``${VAR}`` kept) with the
    territories' collections generated from ``resolved`` (the same file interpolated)."""
    registry = Registry(resolved, parse_territories(resolved))
    base = str((resolved.get("server") or {}).get("url", "")).rstrip("/")
    generated, bbox = generated_resources(registry, base)
    out = copy.deepcopy(dict(raw))
    configured = dict(out.get("resources") or {})
    clash = sorted(set(generated) & set(configured))
    if clash:
        raise ValueError(f"resources {', '.join(clash)} are both configured and generated "
                         "from the territories; remove them from resources:")
    for resource in configured.values():
        for provider in resource.get("providers") or []:
            if provider.get("name") == SCENES_PROVIDER and not provider.get("sources"):
                provider["sources"] = scene_sources(registry)
        if resource.get("type") in ("collection", "stac-collection") \
                and not resource.get("extents"):  # no extent: the territories' union
            resource["extents"] = _extent(bbox)
    out["resources"] = {**generated, **configured}
    return out


def resolved_path(config: Path, openapi: Path) -> Path:
    """Where the generated configuration of ``config`` is written (beside the OpenAPI
    document, which is generated from it)."""
    return openapi.parent / f"{config.stem}.resolved.yml"


GENERATED = "# Generated by Sentinelle"


class _Dumper(yaml.SafeDumper):
    """Writes shared values in full (no ``&id001`` anchors in a file people read)."""

    def ignore_aliases(self, data):
        return True


def is_generated(path: Path) -> bool:
    """Whether ``path`` is a configuration :func:`write_resolved` wrote."""
    try:
        with path.open(encoding="utf-8") as handle:
            return handle.readline().startswith(GENERATED)
    except OSError:
        return False


def write_resolved(config: Path, target: Path) -> Path:
    """Generate pygeoapi's configuration from ``config`` into ``target`` (atomically; left
    untouched when nothing changed, so that the OpenAPI document stays current)."""
    from pygeoapi.util import yaml_load

    text = config.read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    with config.open(encoding="utf-8") as handle:
        resolved = yaml_load(handle)
    expanded = expand(raw, resolved)
    header = (f"{GENERATED} from {config} — do not edit: edit that file's territories and "
              "resources instead.\n")
    body = header + yaml.dump(expanded, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                              width=100)
    try:
        if target.read_text(encoding="utf-8") == body:
            return target
    except OSError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, target)
    return target
