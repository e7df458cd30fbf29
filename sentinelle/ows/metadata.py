"""ISO 19139 metadata records with INSPIRE fields, bulk downloads and licence pages.

Routes (register ``metadata.BLUEPRINT``):

* ``/metadata/{id}.xml`` — an ISO 19139 record (``application/xml``) for: a feature collection
  of the configuration (``bretagne-parcels``…), a product (``bretagne-s2``, ``bretagne-ndvi``,
  ``guyane-landcover``, ``guyane-ndvi-change``…, one per WMS layer and per record of the
  ``products`` collection), the products series (``products``), the scene series
  (``sentinel-2-l2a``), one scene (``S2B_30UXU_20240517_0_L2A``), the WMS view service
  (``sentinelle-wms``) or the OGC API Features download service (``sentinelle-api``).
  Each record is written by pygeometa's ``iso19139`` schema from an MCF built here, then
  completed with what INSPIRE's metadata technical guidance asks and pygeometa does not
  write: unique resource identifier, INSPIRE theme keyword from GEMET with its thesaurus
  citation, spatial resolution, limitations on public access and conditions for use as
  INSPIRE code-list anchors, the conformity report against Regulation 1089/2010, the
  reference system of the data, and for the services ``srv:SV_ServiceIdentification``
  (view or download service, operations, coupled datasets).
* ``/metadata/{id}.jsonld`` — the same dataset as DCAT JSON-LD (pygeometa's ``dcat`` schema).
* ``/download/{id}.gpkg`` — the whole GeoPackage of a feature collection (HEAD gives the
  length): the ``rel=enclosure`` of INSPIRE's OGC API Features download good practice.
* ``/licences/{id}`` — local summaries of the licences the ``rel=license`` links point to
  (Licence Ouverte 2.0, Copernicus data), each linking to the official text.

Enclosure links in the configuration carry no ``length`` (file sizes depend on the data
folder); :func:`fill_enclosure_lengths` fills them once, when the blueprint is registered,
so pygeoapi never issues HEAD requests to itself.

pygeoapi 0.21 has no configuration for the links of ``/collections`` itself, which the
INSPIRE download good practice also asks for: :func:`add_collections_links` (an
``after_app_request`` hook of this blueprint) adds them to the JSON document and to the HTML
page (at the marker of ``templates/collections/index.html``), from
:func:`collections_links`.
"""

from __future__ import annotations

import datetime as dt
import gzip
import html
import json
import logging
import re
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, g, request, send_file
from lxml import etree
from pygeoapi import l10n
from werkzeug.datastructures import Headers

from sentinelle.errors import NotFound, SentinelleError
from sentinelle.ows.layers import area_sources, layers, load_config

BLUEPRINT = Blueprint("metadata", __name__)
LOGGER = logging.getLogger(__name__)

GMD = "http://www.isotc211.org/2005/gmd"
GCO = "http://www.isotc211.org/2005/gco"
GMX = "http://www.isotc211.org/2005/gmx"
SRV = "http://www.isotc211.org/2005/srv"
XLINK = "http://www.w3.org/1999/xlink"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS = {"gmd": GMD, "gco": GCO, "gmx": GMX, "srv": SRV, "xlink": XLINK}
CODELISTS = "http://standards.iso.org/iso/19139/resources/gmxCodelists.xml"
XML_TYPE = "application/xml"
GPKG_TYPE = "application/geopackage+sqlite3"
SERVICE_RECORD = "sentinelle-wms"
SERIES_RECORD = "sentinel-2-l2a"
#: the OGC API Records collection of derived products (sentinelle.providers.products)
PRODUCTS_RECORD = "products"
#: the download service (OGC API Features, INSPIRE download good practice) described by
#: /collections
API_RECORD = "sentinelle-api"

#: INSPIRE themes (GEMET "INSPIRE themes, version 1.0"): code → (French, English label).
INSPIRE_THEMES = {
    "cp": ("Parcelles cadastrales", "Cadastral parcels"),
    "au": ("Unités administratives", "Administrative units"),
    "lu": ("Usage des sols", "Land use"),
    "oi": ("Ortho-imagerie", "Orthoimagery"),
    "lc": ("Occupation des terres", "Land cover"),
}
#: Collection id fragment → (INSPIRE theme, ISO topic category).
THEME_RULES = (("agri-parcels", "lu", "farming"), ("parcels", "cp", "planningCadastre"),
               ("communes", "au", "boundaries"), ("planning", "lu", "planningCadastre"))
LICENCES = {
    "etalab-2.0": {
        "url": "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
        "title": {"fr": "Licence Ouverte / Open Licence version 2.0 (Etalab)",
                  "en": "Licence Ouverte / Open Licence version 2.0 (Etalab)"},
        "summary": {
            "fr": "Vous êtes libre de réutiliser l'information — la reproduire, la copier, "
                  "l'adapter, la modifier, l'extraire et la transformer, la communiquer, la "
                  "diffuser, l'exploiter y compris commercialement — sous réserve de "
                  "mentionner la paternité de l'information : sa source (au moins le nom du "
                  "producteur) et la date de sa dernière mise à jour.",
            "en": "You are free to reuse the information — reproduce, copy, adapt, modify, "
                  "extract, transform, communicate, distribute and exploit it, including "
                  "commercially — provided you acknowledge its source (at least the name of "
                  "the producer) and the date of its last update."},
    },
    "copernicus": {
        "url": "https://sentinels.copernicus.eu/documents/247904/690755/"
               "Sentinel_Data_Legal_Notice",
        "title": {"fr": "Conditions d'utilisation des données Copernicus Sentinel",
                  "en": "Copernicus Sentinel data legal notice"},
        "summary": {
            "fr": "Accès gratuit, complet et ouvert aux données Copernicus Sentinel, pour tout "
                  "usage licite, y compris commercial. Mention obligatoire : « Contient des "
                  "données Copernicus Sentinel modifiées [année] ».",
            "en": "Free, full and open access to Copernicus Sentinel data for any lawful use, "
                  "including commercial use. Attribution required: \"Contains modified "
                  "Copernicus Sentinel data [year]\"."},
    },
}
INSPIRE_NO_LIMITATIONS = ("http://inspire.ec.europa.eu/metadata-codelist/"
                          "LimitationsOnPublicAccess/noLimitations")
REGULATION_1089 = ("Règlement (UE) n° 1089/2010 de la Commission du 23 novembre 2010 portant "
                   "modalités d'application de la directive 2007/2/CE en ce qui concerne "
                   "l'interopérabilité des séries et des services de données géographiques")
REGULATION_976 = ("Règlement (CE) n° 976/2009 de la Commission du 19 octobre 2009 portant "
                  "modalités d'application de la directive 2007/2/CE en ce qui concerne les "
                  "services en réseau")


# --- what a record describes ------------------------------------------------------------------

def _base(config: dict) -> str:
    return str(config["server"]["url"]).rstrip("/")


def _both(value: Any) -> dict[str, str]:
    """A configuration value (plain or ``{fr:…, en:…}``) as French and English text."""
    return {"fr": str(l10n.translate(value, "fr") or ""), "en": str(l10n.translate(value, "en")
                                                                      or "")}


def _iso_lang(text: dict[str, str]) -> dict[str, str]:
    return {"fre": text["fr"], "eng": text["en"]}


def _theme(collection_id: str) -> tuple[str, str]:
    for fragment, theme, topic in THEME_RULES:
        if fragment in collection_id:
            return theme, topic
    return "oi", "imageryBaseMapsEarthCover"


def _feature_provider(resource: dict) -> dict | None:
    for provider in resource.get("providers") or []:
        if provider.get("type") == "feature":
            return provider
    return None


def gpkg_path(config: dict, collection_id: str) -> Path | None:
    """The GeoPackage behind a feature collection (None when it is not one)."""
    resource = (config.get("resources") or {}).get(collection_id)
    provider = _feature_provider(resource or {})
    if provider is None or not str(provider.get("data", "")).endswith(".gpkg"):
        return None
    return Path(provider["data"])


def _contact(config: dict) -> dict:
    contact = config.get("metadata", {}).get("contact", {})
    return {"organization": config.get("metadata", {}).get("provider", {}).get("name",
                                                                             "Sentinelle"),
            "individualname": contact.get("name", ""), "positionname": contact.get("position"),
            "phone": contact.get("phone"), "fax": contact.get("fax"),
            "address": contact.get("address"), "city": contact.get("city"),
            "administrativearea": contact.get("stateorprovince"),
            "postalcode": contact.get("postalcode", ""), "country": contact.get("country"),
            "email": contact.get("email"), "url": contact.get("url", "")}


def _mcf(config: dict, *, identifier: str, title: dict, abstract: dict, keywords: dict,
         bbox: list[float], temporal: tuple[str, str] | None, datatype: str, topic: str,
         distribution: dict, lineage: dict, licence: str, hierarchy: str = "dataset",
         parent: str | None = None, dates: dict | None = None,
         cloud: float | None = None) -> dict:
    base = _base(config)
    today = dt.date.today().isoformat()
    licence_info = LICENCES[licence]
    mcf: dict[str, Any] = {
        "mcf": {"version": "1.0"},
        "metadata": {"identifier": identifier, "language": "fre", "language_alternate": "eng",
                     "charset": "utf8", "hierarchylevel": hierarchy, "datestamp": today,
                     "dataseturi": f"{base}/metadata/{identifier}.xml",
                     "parentidentifier": parent},
        "spatial": {"datatype": datatype, "geomtype": "surface"},
        "identification": {
            "language": "fre", "charset": "utf8", "title": _iso_lang(title),
            "abstract": _iso_lang(abstract), "dates": dates or {"publication": today},
            "keywords": {"default": {"keywords": _iso_lang_lists(keywords),
                                     "keywords_type": "theme"}},
            "topiccategory": [topic],
            "extents": {"spatial": [{"bbox": [round(v, 6) for v in bbox], "crs": 4326}],
                        "temporal": [{"begin": temporal[0], "end": temporal[1]}]
                        if temporal else []},
            "fees": "None", "accessconstraints": "otherRestrictions",
            "rights": _iso_lang(licence_info["title"]),
            "license": {"name": licence_info["title"]["fr"], "url": licence_info["url"]},
            "url": f"{base}/metadata/{identifier}.xml", "status": "onGoing",
            "maintenancefrequency": "asNeeded",
        },
        "contact": {"pointOfContact": _contact(config), "distributor": _contact(config)},
        "distribution": distribution,
        "dataquality": {"scope": {"level": hierarchy},
                        "lineage": {"statement": _iso_lang(lineage)}},
    }
    if cloud is not None:
        mcf["content_info"] = {"type": "image", "cloud_cover": round(cloud, 2),
                               "processing_level": "Level-2A", "dimensions": []}
    return mcf


def _iso_lang_lists(keywords: dict) -> dict:
    return {"fre": list(keywords["fr"]), "eng": list(keywords["en"])}


def _link(url: str, kind: str, name: dict, description: dict, function: str) -> dict:
    return {"url": url, "type": kind, "name": _iso_lang(name),
            "description": _iso_lang(description), "function": function}


def feature_mcf(config: dict, collection_id: str) -> tuple[dict, dict]:
    resource = config["resources"][collection_id]
    provider = _feature_provider(resource)
    base = _base(config)
    title, abstract = _both(resource.get("title")), _both(resource.get("description"))
    keywords = {"fr": list(l10n.translate(resource.get("keywords"), "fr") or []),
                "en": list(l10n.translate(resource.get("keywords"), "en") or [])}
    theme, topic = _theme(collection_id)
    distribution = {
        "oapif": _link(f"{base}/collections/{collection_id}", "OGC:API-Features",
                       {"fr": "API OGC Features", "en": "OGC API Features"},
                       {"fr": "Accès aux objets", "en": "Feature access"}, "download"),
        "gpkg": _link(f"{base}/download/{collection_id}.gpkg", "WWW:DOWNLOAD-1.0-http--download",
                      {"fr": "GeoPackage complet", "en": "Full GeoPackage"},
                      {"fr": "Téléchargement de la série de données entière",
                       "en": "Download of the whole dataset"}, "download"),
    }
    distribution["gpkg"]["format"] = "GeoPackage"
    lineage = {"fr": "Données d'échantillon générées par Sentinelle (géométries synthétiques, "
                     "codes INSEE réels).",
               "en": "Sample data generated by Sentinelle (synthetic geometries, real INSEE "
                     "codes)."}
    bbox = resource.get("extents", {}).get("spatial", {}).get("bbox", [-180, -90, 180, 90])
    mcf = _mcf(config, identifier=collection_id, title=title, abstract=abstract,
               keywords=keywords, bbox=bbox, temporal=None, datatype="vector", topic=topic,
               distribution=distribution, lineage=lineage, licence="etalab-2.0")
    storage = str(provider.get("storage_crs", "http://www.opengis.net/def/crs/OGC/1.3/CRS84"))
    extra = {"theme": theme, "crs": [storage], "resolution": None,
             "identifier": f"{base}/collections/{collection_id}"}
    return mcf, extra


def _products(config: dict) -> dict[str, Any]:
    return {layer.product_id: layer for layer in layers(config)}


def product_mcf(config: dict, product_id: str) -> tuple[dict, dict]:
    layer = _products(config)[product_id]
    base = _base(config)
    resource = (config.get("resources") or {}).get(product_id)
    if resource:
        title, abstract = _both(resource.get("title")), _both(resource.get("description"))
    else:
        title = {lang: layer.title(lang) for lang in ("fr", "en")}
        abstract = {lang: layer.abstract(lang) for lang in ("fr", "en")}
    keywords = {lang: layer.keywords(lang) for lang in ("fr", "en")}
    dates = layer.time.dates
    temporal = (f"{dates[0]}T00:00:00Z", f"{dates[-1]}T23:59:59Z") if dates else None
    distribution = {
        "wms": _link(f"{base}/wms?SERVICE=WMS&REQUEST=GetCapabilities", "OGC:WMS",
                     {"fr": layer.name, "en": layer.name},
                     {"fr": "Couche WMS", "en": "WMS layer"}, "information"),
    }
    if resource:
        distribution["coverage"] = _link(
            f"{base}/collections/{product_id}/coverage?f=GTiff", "OGC:API-Coverages",
            {"fr": "Couverture GeoTIFF (COG)", "en": "GeoTIFF coverage (COG)"},
            {"fr": "Téléchargement des valeurs", "en": "Download of the values"}, "download")
    if PRODUCTS_RECORD in (config.get("resources") or {}):
        distribution["record"] = _link(
            f"{base}/collections/{PRODUCTS_RECORD}/items/{product_id}", "OGC:API-Records",
            {"fr": "Fiche du produit", "en": "Product record"},
            {"fr": "Fiche et liens (WMS, couverture, traitement)",
             "en": "Record and links (WMS, coverage, process)"}, "information")
    if layer.process:
        distribution["process"] = _link(
            f"{base}/processes/{layer.process}", "OGC:API-Processes",
            {"fr": f"Traitement {layer.process}", "en": f"Process {layer.process}"},
            {"fr": "Calcul du produit sur une autre zone ou période",
             "en": "Computes the product over another area or period"}, "information")
    lineage = {lang: layer.lineage(lang) for lang in ("fr", "en")}
    theme = "oi" if layer.kind == "true-color" else "lc"
    mcf = _mcf(config, identifier=product_id, title=title, abstract=abstract,
               keywords=keywords, bbox=list(layer.source.area.lonlat_bounds),
               temporal=temporal, datatype="grid", topic="imageryBaseMapsEarthCover",
               distribution=distribution, lineage=lineage,
               licence="etalab-2.0" if layer.kind == "product" else "copernicus",
               parent=PRODUCTS_RECORD if PRODUCTS_RECORD in (config.get("resources") or {})
               else SERIES_RECORD)
    crs = [f"http://www.opengis.net/def/crs/EPSG/0/{layer.time.native_epsg}"] \
        if layer.time.native_epsg else []
    crs += [f"http://www.opengis.net/def/crs/EPSG/0/{c.split(':')[1]}"
            for c in layer.source.crs_list if c.upper().startswith("EPSG:")
            and c.upper() not in ("EPSG:4326", "EPSG:3857")]
    return mcf, {"theme": theme, "crs": crs, "resolution": 10,
                 "identifier": f"{base}/metadata/{product_id}"}


def _series_mcf(config: dict, record_id: str, *, distribution: dict, lineage: dict,
                theme: str, parent: str | None = None) -> tuple[dict, dict]:
    """A series record of a configured collection (scenes, products): its title, description,
    keywords and extent, over the dates of every WMS layer."""
    resource = config["resources"][record_id]
    dates = sorted({d for p in _products(config).values() for d in p.time.dates})
    bbox = resource.get("extents", {}).get("spatial", {}).get("bbox", [-180, -90, 180, 90])
    mcf = _mcf(config, identifier=record_id, title=_both(resource.get("title")),
               abstract=_both(resource.get("description")),
               keywords={"fr": l10n.translate(resource.get("keywords"), "fr") or [],
                         "en": l10n.translate(resource.get("keywords"), "en") or []},
               bbox=bbox, temporal=(f"{dates[0]}T00:00:00Z", f"{dates[-1]}T23:59:59Z")
               if dates else None, datatype="grid", topic="imageryBaseMapsEarthCover",
               distribution=distribution, lineage=lineage, licence="copernicus",
               hierarchy="series", parent=parent)
    return mcf, {"theme": theme, "crs": [], "resolution": 10,
                 "identifier": f"{_base(config)}/collections/{record_id}"}


def series_mcf(config: dict) -> tuple[dict, dict]:
    base = _base(config)
    distribution = {"records": _link(f"{base}/collections/{SERIES_RECORD}/items",
                                     "OGC:API-Records", {"fr": "Fiches des scènes",
                                                         "en": "Scene records"},
                                     {"fr": "Une fiche par scène", "en": "One record per scene"},
                                     "search")}
    lineage = {"fr": "Produits Copernicus Sentinel-2 niveau 2A (ESA, Sen2Cor) : réflectance "
                     "de surface et classification de scène.",
               "en": "Copernicus Sentinel-2 Level-2A products (ESA, Sen2Cor): surface "
                     "reflectance and scene classification."}
    return _series_mcf(config, SERIES_RECORD, distribution=distribution, lineage=lineage,
                       theme="oi")


def scene_mcf(config: dict, scene_id: str) -> tuple[dict, dict]:
    from sentinelle.providers.records import find_scene, record_catalogs

    provider = config["resources"][SERIES_RECORD]["providers"][0]
    scene = find_scene(record_catalogs(provider), scene_id)  # NotFound when absent
    base = _base(config)
    day, tile = scene.date.isoformat(), scene.mgrs_tile or scene.id
    cloud = scene.cloud_cover
    title = {"fr": f"Sentinel-2 L2A {tile} {day}", "en": f"Sentinel-2 L2A {tile} {day}"}
    abstract = {"fr": f"Scène Sentinel-2 niveau 2A (réflectance de surface) de la tuile {tile} "
                      f"du {day}" + (f", {cloud:.1f} % de nuages sur la tuile." if cloud
                                     is not None else "."),
                "en": f"Sentinel-2 Level-2A surface reflectance scene of tile {tile} on {day}"
                      + (f", {cloud:.1f} % cloud over the tile." if cloud is not None
                         else ".")}
    distribution = {"record": _link(f"{base}/collections/{SERIES_RECORD}/items/{scene_id}",
                                    "OGC:API-Records", {"fr": "Fiche de la scène",
                                                        "en": "Scene record"},
                                    {"fr": "Fiche et liens vers les bandes (COG)",
                                     "en": "Record and links to the bands (COG)"},
                                    "information")}
    moment = scene.datetime.isoformat().replace("+00:00", "Z")
    mcf = _mcf(config, identifier=scene_id, title=title, abstract=abstract,
               keywords={"fr": ["Copernicus", "Sentinel-2", "L2A", "Orthoimagerie"],
                         "en": ["Copernicus", "Sentinel-2", "L2A", "Orthoimagery"]},
               bbox=list(scene.bbox), temporal=(moment, moment), datatype="grid",
               topic="imageryBaseMapsEarthCover", distribution=distribution,
               lineage={"fr": "Produit Copernicus Sentinel-2 niveau 2A (ESA, Sen2Cor).",
                        "en": "Copernicus Sentinel-2 Level-2A product (ESA, Sen2Cor)."},
               licence="copernicus", parent=SERIES_RECORD, dates={"creation": moment},
               cloud=cloud)
    crs = [f"http://www.opengis.net/def/crs/EPSG/0/{scene.epsg}"] if scene.epsg else []
    return mcf, {"theme": "oi", "crs": crs, "resolution": 10,
                 "identifier": f"{base}/collections/{SERIES_RECORD}/items/{scene_id}"}


def service_mcf(config: dict) -> tuple[dict, dict]:
    base = _base(config)
    ident = config.get("metadata", {}).get("identification", {})
    title = _both(ident.get("title"))
    title = {"fr": title["fr"] + " — service de visualisation WMS",
             "en": title["en"] + " — WMS view service"}
    keywords = {lang: list(l10n.translate(ident.get("keywords", []), lang) or [])
                for lang in ("fr", "en")}
    bbox = [180.0, 90.0, -180.0, -90.0]
    for source in area_sources(config):
        west, south, east, north = source.area.lonlat_bounds
        bbox = [min(bbox[0], west), min(bbox[1], south), max(bbox[2], east),
                max(bbox[3], north)]
    distribution = {"wms": _link(f"{base}/wms?SERVICE=WMS&REQUEST=GetCapabilities",
                                 "OGC:WMS", {"fr": "Capacités WMS", "en": "WMS capabilities"},
                                 {"fr": "Service de visualisation", "en": "View service"},
                                 "information")}
    mcf = _mcf(config, identifier=SERVICE_RECORD, title=title,
               abstract=_both(ident.get("description")), keywords=keywords, bbox=bbox,
               temporal=None, datatype="grid", topic="imageryBaseMapsEarthCover",
               distribution=distribution,
               lineage={"fr": "Service WMS 1.3.0 de Sentinelle.",
                        "en": "Sentinelle's WMS 1.3.0 service."},
               licence="copernicus", hierarchy="service")
    operates = [f"{base}/metadata/{pid}.xml" for pid in _products(config)]
    return mcf, {"theme": None, "crs": [], "resolution": None, "service": True,
                 "operates_on": operates, "identifier": f"{base}/wms"}


def products_mcf(config: dict) -> tuple[dict, dict]:
    """The series of derived products (the ``products`` record collection)."""
    base = _base(config)
    distribution = {
        "records": _link(f"{base}/collections/{PRODUCTS_RECORD}/items", "OGC:API-Records",
                         {"fr": "Fiches des produits", "en": "Product records"},
                         {"fr": "Une fiche par produit et par zone",
                          "en": "One record per product and area"}, "search"),
        "wms": _link(f"{base}/wms?SERVICE=WMS&REQUEST=GetCapabilities", "OGC:WMS",
                     {"fr": "Capacités WMS", "en": "WMS capabilities"},
                     {"fr": "Une couche par produit", "en": "One layer per product"},
                     "information"),
    }
    lineage = {"fr": "Produits calculés à la demande depuis les scènes Copernicus Sentinel-2 "
                     "niveau 2A du catalogue (série sentinel-2-l2a) : couleurs naturelles, "
                     "indices spectraux, classification de l'occupation du sol par règles, "
                     "changements d'indice entre deux périodes.",
               "en": "Products computed on demand from the catalog's Copernicus Sentinel-2 "
                     "Level-2A scenes (sentinel-2-l2a series): true colour, spectral "
                     "indices, rules land-cover classification, index change between two "
                     "periods."}
    return _series_mcf(config, PRODUCTS_RECORD, distribution=distribution, lineage=lineage,
                       theme="lc", parent=SERIES_RECORD)


def feature_collections(config: dict) -> list[str]:
    """Ids of the configuration's feature collections backed by a GeoPackage."""
    return [cid for cid in (config.get("resources") or {}) if gpkg_path(config, cid)]


def api_mcf(config: dict) -> tuple[dict, dict]:
    """The OGC API Features interface as an INSPIRE download service (the record
    ``/collections`` points to with ``rel=describedby``)."""
    base = _base(config)
    ident = config.get("metadata", {}).get("identification", {})
    title = _both(ident.get("title"))
    title = {"fr": title["fr"] + " — service de téléchargement OGC API Features",
             "en": title["en"] + " — OGC API Features download service"}
    keywords = {lang: list(l10n.translate(ident.get("keywords", []), lang) or [])
                for lang in ("fr", "en")}
    datasets = feature_collections(config)
    bbox = [180.0, 90.0, -180.0, -90.0]
    for cid in datasets:
        west, south, east, north = config["resources"][cid].get("extents", {}).get(
            "spatial", {}).get("bbox", [-180, -90, 180, 90])
        bbox = [min(bbox[0], west), min(bbox[1], south), max(bbox[2], east),
                max(bbox[3], north)]
    distribution = {"api": _link(f"{base}/collections", "OGC:API-Features",
                                 {"fr": "Collections", "en": "Collections"},
                                 {"fr": "Service de téléchargement (objets et GeoPackage "
                                        "complets)",
                                  "en": "Download service (features and whole GeoPackages)"},
                                 "download")}
    mcf = _mcf(config, identifier=API_RECORD, title=title,
               abstract=_both(ident.get("description")), keywords=keywords, bbox=bbox,
               temporal=None, datatype="vector", topic="planningCadastre",
               distribution=distribution,
               lineage={"fr": "Interface OGC API Features de Sentinelle (bonnes pratiques "
                              "INSPIRE pour les services de téléchargement).",
                        "en": "Sentinelle's OGC API Features interface (INSPIRE download "
                              "service good practice)."},
               licence="etalab-2.0", hierarchy="service")
    operations = [("GetCollections", f"{base}/collections"),
                  *((f"GetFeatures {cid}", f"{base}/collections/{cid}/items")
                    for cid in datasets)]
    return mcf, {"theme": None, "crs": [], "resolution": None, "service": True,
                 "service_type": "download", "service_version": "OGC API - Features 1.0",
                 "service_keyword": "infoFeatureAccessService", "operations": operations,
                 "operates_on": [f"{base}/metadata/{cid}.xml" for cid in datasets],
                 "identifier": f"{base}/collections"}


def record_mcf(config: dict, record_id: str) -> tuple[dict, dict]:
    """The MCF of record ``record_id`` and the INSPIRE extras pygeometa does not write."""
    resources = config.get("resources") or {}
    if record_id == SERVICE_RECORD:
        return service_mcf(config)
    if record_id == API_RECORD:
        return api_mcf(config)
    if record_id == PRODUCTS_RECORD and record_id in resources:
        return products_mcf(config)
    if record_id in resources and _feature_provider(resources[record_id]):
        return feature_mcf(config, record_id)
    if record_id == SERIES_RECORD and record_id in resources:
        return series_mcf(config)
    if record_id in _products(config):
        return product_mcf(config, record_id)
    if SERIES_RECORD in resources and re.fullmatch(r"[A-Za-z0-9_.-]+", record_id):
        return scene_mcf(config, record_id)
    raise NotFound(f"no metadata record {record_id!r}")


# --- ISO 19139 -----------------------------------------------------------------------------------

def _q(tag: str) -> str:
    prefix, name = tag.split(":")
    return f"{{{NS[prefix]}}}{name}"


def _sub(parent, tag: str, text: str | None = None, **attrib):
    node = etree.SubElement(parent, _q(tag), {(_q(k) if ":" in k else k): str(v)
                                              for k, v in attrib.items()})
    if text is not None:
        node.text = str(text)
    return node


def _new(tag: str, text: str | None = None, **attrib):
    node = etree.Element(_q(tag), {(_q(k) if ":" in k else k): str(v)
                                   for k, v in attrib.items()}, nsmap=NS)
    if text is not None:
        node.text = str(text)
    return node


def _code(parent, tag: str, codelist: str, value: str):
    return _sub(parent, tag, value, codeList=f"{CODELISTS}#{codelist}", codeListValue=value)


def _char(parent, tag: str, text: str):
    _sub(_sub(parent, tag), "gco:CharacterString", text)


def _anchor(parent, tag: str, href: str, text: str):
    _sub(_sub(parent, tag), "gmx:Anchor", text, **{"xlink:href": href})


def _citation(parent, title: str, date: str, date_type: str = "publication"):
    citation = _sub(parent, "gmd:CI_Citation")
    _char(citation, "gmd:title", title)
    ci_date = _sub(_sub(citation, "gmd:date"), "gmd:CI_Date")
    _sub(_sub(ci_date, "gmd:date"), "gco:Date", date)
    _code(_sub(ci_date, "gmd:dateType"), "gmd:CI_DateTypeCode", "CI_DateTypeCode", date_type)
    return citation


def _insert_after(parent, node, names: list[str]) -> None:
    """Insert ``node`` after the last child of ``parent`` named in ``names`` (schema order),
    else first."""
    position = 0
    for k, child in enumerate(parent):
        if etree.QName(child).localname in names:
            position = k + 1
    parent.insert(position, node)


def _inspire_keywords(theme: str):
    fr, _en = INSPIRE_THEMES[theme]
    keywords = _new("gmd:descriptiveKeywords")
    box = _sub(keywords, "gmd:MD_Keywords")
    _anchor(box, "gmd:keyword", f"http://inspire.ec.europa.eu/theme/{theme}", fr)
    _code(_sub(box, "gmd:type"), "gmd:MD_KeywordTypeCode", "MD_KeywordTypeCode", "theme")
    thesaurus = _sub(box, "gmd:thesaurusName")
    citation = _sub(thesaurus, "gmd:CI_Citation")
    _anchor(citation, "gmd:title", "http://www.eionet.europa.eu/gemet/inspire_themes",
            "GEMET - INSPIRE themes, version 1.0")
    ci_date = _sub(_sub(citation, "gmd:date"), "gmd:CI_Date")
    _sub(_sub(ci_date, "gmd:date"), "gco:Date", "2008-06-01")
    _code(_sub(ci_date, "gmd:dateType"), "gmd:CI_DateTypeCode", "CI_DateTypeCode",
          "publication")
    return keywords


def _constraints(licence: str) -> list:
    info = LICENCES[licence]
    access = _new("gmd:resourceConstraints")
    legal = _sub(access, "gmd:MD_LegalConstraints")
    _code(_sub(legal, "gmd:accessConstraints"), "gmd:MD_RestrictionCode", "MD_RestrictionCode",
          "otherRestrictions")
    _anchor(legal, "gmd:otherConstraints", INSPIRE_NO_LIMITATIONS,
            "Pas de restriction d'accès public")
    use = _new("gmd:resourceConstraints")
    legal = _sub(use, "gmd:MD_LegalConstraints")
    _code(_sub(legal, "gmd:useConstraints"), "gmd:MD_RestrictionCode", "MD_RestrictionCode",
          "otherRestrictions")
    _anchor(legal, "gmd:otherConstraints", info["url"], info["title"]["fr"])
    return [access, use]


def _quality(level: str, lineage: str, service: bool):
    quality = _new("gmd:dataQualityInfo")
    dq = _sub(quality, "gmd:DQ_DataQuality")
    scope = _sub(_sub(dq, "gmd:scope"), "gmd:DQ_Scope")
    _code(_sub(scope, "gmd:level"), "gmd:MD_ScopeCode", "MD_ScopeCode", level)
    report = _sub(_sub(dq, "gmd:report"), "gmd:DQ_DomainConsistency")
    result = _sub(_sub(report, "gmd:result"), "gmd:DQ_ConformanceResult")
    spec = _sub(result, "gmd:specification")
    if service:
        _citation(spec, REGULATION_976, "2009-10-20")
    else:
        _citation(spec, REGULATION_1089, "2010-12-08")
    _char(result, "gmd:explanation", "Voir la spécification référencée / see the referenced "
                                     "specification")
    _sub(result, "gmd:pass", **{"gco:nilReason": "unknown"})
    if not service:
        statement = _sub(_sub(dq, "gmd:lineage"), "gmd:LI_Lineage")
        _char(statement, "gmd:statement", lineage)
    return quality


def _reference_systems(crs_list: list[str]) -> list:
    nodes = []
    for uri in crs_list:
        node = _new("gmd:referenceSystemInfo")
        rs = _sub(_sub(_sub(node, "gmd:MD_ReferenceSystem"), "gmd:referenceSystemIdentifier"),
                  "gmd:RS_Identifier")
        _anchor(rs, "gmd:code", uri, "EPSG:" + uri.rsplit("/", 1)[-1])
        nodes.append(node)
    return nodes


def _to_service(root, ident, extra: dict) -> None:
    """Turn pygeometa's MD_DataIdentification into an INSPIRE network service identification
    (a view service unless ``extra`` says otherwise: ``service_type``, ``service_version``,
    ``service_keyword``, ``operations``)."""
    data_id = ident.find(_q("gmd:MD_DataIdentification"))
    service = _new("srv:SV_ServiceIdentification")
    keep = ("citation", "abstract", "status", "pointOfContact", "resourceMaintenance",
            "descriptiveKeywords", "resourceConstraints")
    for child in list(data_id):
        if etree.QName(child).localname in keep:
            service.append(child)
    # service classification keyword (INSPIRE, Regulation 1205/2008)
    words = _new("gmd:descriptiveKeywords")
    box = _sub(words, "gmd:MD_Keywords")
    _char(box, "gmd:keyword", extra.get("service_keyword", "infoMapAccessService"))
    _code(_sub(box, "gmd:type"), "gmd:MD_KeywordTypeCode", "MD_KeywordTypeCode", "theme")
    _insert_after(service, words, ["descriptiveKeywords", "resourceMaintenance",
                                   "pointOfContact", "status", "abstract"])
    _sub(_sub(service, "srv:serviceType"), "gco:LocalName", extra.get("service_type", "view"))
    _char(service, "srv:serviceTypeVersion", extra.get("service_version", "1.3.0"))
    extent = data_id.find(_q("gmd:extent"))
    if extent is not None:
        moved = _sub(service, "srv:extent")
        for child in extent:
            moved.append(child)
    _code(_sub(service, "srv:couplingType"), "srv:SV_CouplingType", "SV_CouplingType", "tight")
    operations = extra.get("operations") or [
        (name, extra["identifier"]) for name in ("GetCapabilities", "GetMap", "GetFeatureInfo")]
    for operation, url in operations:
        meta = _sub(_sub(service, "srv:containsOperations"), "srv:SV_OperationMetadata")
        _char(meta, "srv:operationName", operation)
        _code(_sub(meta, "srv:DCP"), "srv:DCPList", "DCPList", "WebServices")
        online = _sub(_sub(meta, "srv:connectPoint"), "gmd:CI_OnlineResource")
        _sub(_sub(online, "gmd:linkage"), "gmd:URL", url)
    for href in extra.get("operates_on", []):
        _sub(service, "srv:operatesOn", **{"xlink:href": href})
    ident.replace(data_id, service)


def iso_xml(config: dict, record_id: str) -> bytes:
    """The ISO 19139 record ``record_id`` (UTF-8 bytes), INSPIRE-complete."""
    from pygeometa.schemas.iso19139 import ISO19139OutputSchema

    mcf, extra = record_mcf(config, record_id)
    text = ISO19139OutputSchema().write(mcf)
    root = etree.fromstring(text.encode("utf-8") if isinstance(text, str) else text)
    service = bool(extra.get("service"))
    # pygeometa names the alternate locale "locale-fr" but points to "#eng": align them
    for locale in root.iter(_q("gmd:PT_Locale")):
        locale.set("id", "eng")
    for node in root.iter(_q("gmd:LocalisedCharacterString")):
        node.set("locale", "#eng")
    # pygeometa leaves spatialRepresentationInfo empty for grids
    for node in root.findall(_q("gmd:spatialRepresentationInfo")):
        if len(node) == 0:
            root.remove(node)
    # distribution format names need a CharacterString
    for name in root.iter(_q("gmd:name")):
        if name.getparent().tag == _q("gmd:MD_Format") and len(name) == 0:
            text_value, name.text = name.text, None
            _sub(name, "gco:CharacterString", (text_value or "").strip())
    # the metadata point of contact (pygeometa writes only the resource's)
    party = root.find(f".//{_q('gmd:pointOfContact')}/{_q('gmd:CI_ResponsibleParty')}")
    if party is not None and root.find(_q("gmd:contact")) is None:
        contact = _new("gmd:contact")
        contact.append(etree.fromstring(etree.tostring(party)))
        contact[0].attrib.pop("id", None)
        _insert_after(root, contact, ["fileIdentifier", "language", "characterSet",
                                      "parentIdentifier", "hierarchyLevel",
                                      "hierarchyLevelName"])
    # reference systems of the data
    for node in root.findall(_q("gmd:referenceSystemInfo")):
        root.remove(node)
    for node in reversed(_reference_systems(extra.get("crs") or [])):
        _insert_after(root, node, ["dataSetURI", "locale", "spatialRepresentationInfo"])
    ident = root.find(_q("gmd:identificationInfo"))
    data_id = ident.find(_q("gmd:MD_DataIdentification"))
    citation = data_id.find(f"{_q('gmd:citation')}/{_q('gmd:CI_Citation')}")
    identifier = _new("gmd:identifier")
    _char(_sub(identifier, "gmd:MD_Identifier"), "gmd:code", extra["identifier"])
    _insert_after(citation, identifier, ["title", "alternateTitle", "date", "edition",
                                         "editionDate"])
    if extra.get("theme"):
        _insert_after(data_id, _inspire_keywords(extra["theme"]),
                      ["descriptiveKeywords", "resourceFormat", "graphicOverview",
                       "resourceMaintenance", "pointOfContact"])
    for node in data_id.findall(_q("gmd:resourceConstraints")):
        data_id.remove(node)
    licence = "etalab-2.0" if LICENCES["etalab-2.0"]["url"] in text else "copernicus"
    for node in reversed(_constraints(licence)):
        _insert_after(data_id, node, ["descriptiveKeywords", "resourceFormat",
                                      "graphicOverview", "resourceMaintenance"])
    if extra.get("resolution"):
        resolution = _new("gmd:spatialResolution")
        _sub(_sub(_sub(resolution, "gmd:MD_Resolution"), "gmd:distance"), "gco:Distance",
             extra["resolution"], uom="m")
        _insert_after(data_id, resolution, ["spatialRepresentationType", "aggregationInfo",
                                            "resourceConstraints"])
    lineage = mcf["dataquality"]["lineage"]["statement"]["fre"]
    for node in root.findall(_q("gmd:dataQualityInfo")):
        root.remove(node)
    _insert_after(root, _quality(mcf["metadata"]["hierarchylevel"], lineage, service),
                  ["contentInfo", "distributionInfo"])
    if service:
        _to_service(root, ident, extra)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def dcat_jsonld(config: dict, record_id: str) -> str:
    """The record as DCAT JSON-LD (pygeometa's ``dcat`` schema)."""
    from pygeometa.schemas.dcat import DCATOutputSchema

    mcf, _extra = record_mcf(config, record_id)
    return DCATOutputSchema().write(mcf)


# --- enclosure lengths ----------------------------------------------------------------------------

def fill_enclosure_lengths(config: dict) -> None:
    """Give each ``rel=enclosure`` link to ``/download/{id}.gpkg`` its file's length, so
    pygeoapi neither HEADs it per request nor drops it."""
    for cid, resource in (config.get("resources") or {}).items():
        for link in resource.get("links") or []:
            if link.get("rel") != "enclosure" or link.get("length"):
                continue
            match = re.search(r"/download/([^/]+)\.gpkg$", str(link.get("href", "")))
            path = gpkg_path(config, match.group(1)) if match else None
            if path is not None and path.is_file():
                link["length"] = path.stat().st_size


@BLUEPRINT.record_once
def _on_register(_state) -> None:
    try:
        from pygeoapi import flask_app
    except Exception:  # noqa: BLE001 - no pygeoapi app: nothing to fill
        return
    fill_enclosure_lengths(flask_app.CONFIG)


# --- links of the /collections document ----------------------------------------------------------

#: where templates/collections/index.html wants the links section (else before </main>)
LINKS_MARKER = "<!-- sentinelle:collections-links -->"


def collections_links(config: dict, lang: str = "fr") -> list[dict]:
    """What INSPIRE's OGC API Features download good practice asks of ``/collections``:
    ``rel=describedby`` (the download service's and the scene series' ISO records),
    ``rel=license`` (the licences of the data, local summaries) and one ``rel=enclosure`` per
    whole-dataset GeoPackage (type, length, title, hreflang)."""
    base, resources = _base(config), config.get("resources") or {}
    fr = lang == "fr"
    links = [{"rel": "describedby", "type": XML_TYPE, "hreflang": "fr",
              "href": f"{base}/metadata/{API_RECORD}.xml",
              "title": ("Fiche ISO 19139 (INSPIRE) du service de téléchargement" if fr else
                        "ISO 19139 record (INSPIRE) of the download service")}]
    for record, what in ((SERIES_RECORD, {"fr": "de la série des scènes Sentinel-2",
                                          "en": "of the Sentinel-2 scene series"}),
                         (PRODUCTS_RECORD, {"fr": "de la série des produits dérivés",
                                            "en": "of the derived products series"})):
        if record in resources:
            links.append({"rel": "describedby", "type": XML_TYPE, "hreflang": "fr",
                          "href": f"{base}/metadata/{record}.xml",
                          "title": ("Fiche ISO 19139 (INSPIRE) " if fr else
                                    "ISO 19139 record (INSPIRE) ") + what[lang]})
    for licence in ("etalab-2.0", "copernicus"):
        links.append({"rel": "license", "type": "text/html", "hreflang": "fr",
                      "href": f"{base}/licences/{licence}",
                      "title": LICENCES[licence]["title"][lang]})
    for cid in feature_collections(config):
        path = gpkg_path(config, cid)
        if path is None or not path.is_file():
            continue
        title = l10n.translate(resources[cid].get("title"), lang) or cid
        links.append({"rel": "enclosure", "type": GPKG_TYPE, "hreflang": "fr",
                      "href": f"{base}/download/{cid}.gpkg", "length": path.stat().st_size,
                      "title": f"{title} — " + ("série de données complète (GeoPackage)" if fr
                                                else "whole dataset (GeoPackage)")})
    return links


def _human_size(length: int, lang: str) -> str:
    value, unit = (length / 1e6, "Mo" if lang == "fr" else "MB") if length >= 1e6 else \
        (length / 1e3, "ko" if lang == "fr" else "kB")
    text = f"{value:.1f} {unit}"
    return text.replace(".", ",") if lang == "fr" else text


def _links_html(links: list[dict], lang: str) -> str:
    heading = ("Téléchargement, métadonnées et licences" if lang == "fr"
               else "Downloads, metadata and licences")
    items = []
    for link in links:
        size = f" ({_human_size(link['length'], lang)})" if link.get("length") else ""
        extra = f' data-length="{link["length"]}"' if link.get("length") else ""
        items.append(f'<li><a rel="{html.escape(link["rel"])}" type="{html.escape(link["type"])}"'
                     f' hreflang="{html.escape(link["hreflang"])}"{extra}'
                     f' href="{html.escape(link["href"])}">{html.escape(link["title"])}</a>'
                     f"{size}</li>")
    return (f'<section id="collections-links"><h2>{heading}</h2><ul>{"".join(items)}</ul>'
            "</section>")


def _with_links(body: bytes, mimetype: str, lang: str) -> bytes:
    links = collections_links(load_config(), lang)
    if mimetype == "application/json":
        document = json.loads(body)
        present = {(link.get("rel"), link.get("href")) for link in document.get("links", [])}
        document.setdefault("links", []).extend(
            link for link in links if (link["rel"], link["href"]) not in present)
        return json.dumps(document, ensure_ascii=False).encode("utf-8")
    text = body.decode("utf-8")
    snippet = _links_html(links, lang)
    if LINKS_MARKER in text:
        text = text.replace(LINKS_MARKER, snippet, 1)
    elif "</main>" in text:
        text = text.replace("</main>", snippet + "</main>", 1)
    else:
        text = text.replace("</body>", snippet + "</body>", 1)
    return text.encode("utf-8")


@BLUEPRINT.after_app_request
def add_collections_links(response: Response) -> Response:
    """Add the download good practice's links to pygeoapi's ``/collections`` (JSON and HTML),
    which has no configuration for them in pygeoapi 0.21."""
    if request.path.rstrip("/") != "/collections" or request.method not in ("GET", "HEAD"):
        return response
    if not isinstance(response.headers, Headers):  # pygeoapi assigns a plain dict
        response.headers = Headers(response.headers)
    if (response.status_code != 200 or response.direct_passthrough
            or response.mimetype not in ("application/json", "text/html")):
        return response
    lang = (response.headers.get("Content-Language") or "fr")[:2].lower()
    lang = lang if lang in ("fr", "en") else "fr"
    zipped = response.headers.get("Content-Encoding") == "gzip"
    body = response.get_data()
    if zipped:
        body = gzip.decompress(body)
    try:
        body = _with_links(body, response.mimetype, lang)
    except (ValueError, UnicodeDecodeError, SentinelleError, OSError) as err:
        LOGGER.warning("links not added to /collections: %s", err)
        return response
    response.set_data(gzip.compress(body) if zipped else body)
    return response


# --- routes --------------------------------------------------------------------------------------

def _lang() -> str:
    value = request.args.get("lang") or ""
    if value[:2].lower() in ("fr", "en"):
        return value[:2].lower()
    best = request.accept_languages.best_match(["fr", "en"])
    return best or "fr"


@BLUEPRINT.route("/metadata/<record_id>.xml", methods=["GET", "HEAD"])
def metadata_xml(record_id: str) -> Response:
    try:
        body = iso_xml(load_config(), record_id)
    except NotFound as err:
        abort(Response(str(err) + "\n", status=404, mimetype="text/plain"))
    except SentinelleError as err:
        abort(Response(str(err) + "\n", status=err.http_status, mimetype="text/plain"))
    g.content_language = "fr"
    return Response(body, mimetype=XML_TYPE)


@BLUEPRINT.route("/metadata/<record_id>.jsonld", methods=["GET", "HEAD"])
def metadata_jsonld(record_id: str) -> Response:
    try:
        body = dcat_jsonld(load_config(), record_id)
    except NotFound as err:
        abort(Response(str(err) + "\n", status=404, mimetype="text/plain"))
    g.content_language = "fr"
    return Response(body if isinstance(body, str) else json.dumps(body),
                    mimetype="application/ld+json")


@BLUEPRINT.route("/download/<collection_id>.gpkg", methods=["GET", "HEAD"])
def download_gpkg(collection_id: str) -> Response:
    path = gpkg_path(load_config(), collection_id)
    if path is None or not path.is_file():
        abort(Response(f"no GeoPackage for collection {collection_id!r}\n", status=404,
                       mimetype="text/plain"))
    g.content_language = "fr"
    return send_file(path, mimetype=GPKG_TYPE, as_attachment=True,
                     download_name=f"{collection_id}.gpkg", conditional=True)


@BLUEPRINT.route("/licences/<licence_id>", methods=["GET", "HEAD"])
def licence_page(licence_id: str) -> Response:
    if licence_id not in LICENCES:
        abort(Response(f"no licence {licence_id!r}; known: {', '.join(LICENCES)}\n",
                       status=404, mimetype="text/plain"))
    info, lang = LICENCES[licence_id], _lang()
    g.content_language = lang
    official = "Texte officiel" if lang == "fr" else "Official text"
    body = (f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">'
            f"<title>{html.escape(info['title'][lang])}</title></head><body>"
            f"<h1>{html.escape(info['title'][lang])}</h1>"
            f"<p>{html.escape(info['summary'][lang])}</p>"
            f'<p><a rel="license" href="{html.escape(info["url"])}">{official}</a></p>'
            "</body></html>")
    return Response(body, mimetype="text/html")


@BLUEPRINT.after_request
def content_language(response: Response) -> Response:
    response.headers.setdefault("Content-Language", getattr(g, "content_language", "fr"))
    return response


__all__ = ["BLUEPRINT", "collections_links", "dcat_jsonld", "fill_enclosure_lengths",
           "iso_xml"]
