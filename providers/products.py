"""OGC API Records: one record per derived product and area — true colour, each spectral index,
the land-cover classification and the index change — so that a catalogue (GeoNetwork through
its OGC API Records harvester, QGIS's metadata search, a browser) finds the layers before
asking for pixels.

The products are the WMS layers of the territories (:func:`sentinelle.ows.layers.layers`:
each territory's imagery, the index registry, the derived presets of its ``products:`` block,
its product sources), so a record, its WMS layer and its ISO 19139 record
(``/metadata/{id}.xml``) always describe the same thing.  Each record links to its WMS layer
(capabilities, a GetMap preview, the legend), its coverage when the configuration serves one,
the process that computes it, the scene series it comes from, its licence and its ISO 19139 /
DCAT records.  Titles and descriptions
follow ``lang`` / ``Accept-Language`` (French first, English).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import shapely
import shapely.geometry
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
)

from sentinelle.catalog.area import CRS84, Area
from sentinelle.catalog.dates import parse_interval
from sentinelle.ows.layers import Layer, layers, load_config
from sentinelle.providers.records import filter_sort_page

FIELDS = {
    "title": {"type": "string"},
    "description": {"type": "string"},
    "kind": {"type": "string", "enum": ["true-color", "index", "classification", "change",
                                        "product"]},
    "area": {"type": "string"},
    "index": {"type": "string"},
    "wms_layer": {"type": "string"},
    "process": {"type": "string"},
    "inspire_theme": {"type": "string"},
    "start_datetime": {"type": "string", "format": "date-time"},
    "end_datetime": {"type": "string", "format": "date-time"},
    "default_datetime": {"type": "string", "format": "date"},
}
LANGUAGES = ("fr", "en")
ISO639_2 = {"fr": "fre", "en": "eng"}
XML = "application/xml"
#: OGC link relations (http://www.opengis.net/def/rel/ogc/1.0/…)
REL_COVERAGE = "http://www.opengis.net/def/rel/ogc/1.0/coverage"
REL_EXECUTE = "http://www.opengis.net/def/rel/ogc/1.0/execute"
REL_LEGEND = "http://www.opengis.net/def/rel/ogc/1.0/legend"
PREVIEW_WIDTH = 512


def _text(lang: str, fr: str, en: str) -> str:
    return fr if lang == "fr" else en


class ProductRecordsProvider(BaseProvider):
    """pygeoapi ``record`` provider over the configuration's products (``data`` unused;
    ``base_url`` the public server URL for links, else ``server.url``)."""

    def __init__(self, provider_def):
        super().__init__(provider_def)
        self.base_url = str(provider_def.get("base_url") or "").rstrip("/")
        self._fields = dict(FIELDS)

    def get_fields(self):
        return self._fields

    # --- records ---------------------------------------------------------------------------

    def _products(self) -> tuple[list[Layer], dict]:
        config = load_config()
        if not self.base_url:
            self.base_url = str(config["server"]["url"]).rstrip("/")
        return layers(config), config

    @staticmethod
    def _lang(language) -> str:
        """The response language: ``language`` when pygeoapi gives one, else the request's
        ``lang`` / ``Accept-Language`` (pygeoapi 0.21 cannot match a provider's
        ``languages``: ``l10n.get_plugin_locale`` hands ``best_match`` the raw header as a
        string, which it ignores, so a provider with languages always gets the first; without
        them pygeoapi sets ``Content-Language`` from the request, as read here)."""
        code = getattr(language, "language", None)
        if code is None:
            from flask import has_request_context, request

            if has_request_context():
                if request.args.get("lang"):  # as pygeoapi: an unknown lang → French
                    code = request.args["lang"][:2].lower()
                else:
                    code = request.accept_languages.best_match(LANGUAGES)
        return code if code in LANGUAGES else "fr"

    def _properties(self, layer: Layer, config: dict, lang: str) -> dict[str, Any]:
        from pygeoapi import l10n

        resource = (config.get("resources") or {}).get(layer.product_id)
        title = l10n.translate(resource["title"], lang) if resource and resource.get("title") \
            else layer.title(lang)
        description = l10n.translate(resource["description"], lang) \
            if resource and resource.get("description") else layer.abstract(lang)
        dates = layer.time.dates
        theme = "oi" if layer.kind == "true-color" else "lc"
        index = layer.index or (layer.preset.index if layer.kind == "change" else None)
        return {
            "type": "dataset",
            "title": title,
            "description": description,
            "keywords": layer.keywords(lang),
            "kind": layer.kind,
            "area": layer.source.name,
            "index": index,
            "wms_layer": layer.name,
            "process": layer.process,
            "inspire_theme": theme,
            "themes": [{"scheme": "http://inspire.ec.europa.eu/theme",
                        "concepts": [{"id": theme,
                                      "url": f"http://inspire.ec.europa.eu/theme/{theme}"}]}],
            "start_datetime": f"{dates[0]}T00:00:00Z" if dates else None,
            "end_datetime": f"{dates[-1]}T23:59:59Z" if dates else None,
            "default_datetime": layer.time.default,
            "dates": list(dates),
            "formats": ["image/png", "image/jpeg"]
            + (["image/tiff; application=geotiff"] if resource else []),
            "license": ("Licence Ouverte 2.0 (Etalab)" if layer.kind == "product" else
                        "Copernicus Sentinel data, free, full and open access"),
            "language": {"code": lang},
        }

    def _links(self, layer: Layer, config: dict, lang: str) -> list[dict]:
        base = self.base_url
        pid, name = layer.product_id, layer.name
        wms = f"{base}/wms"
        west, south, east, north = layer.source.area.lonlat_bounds
        height = max(1, round(PREVIEW_WIDTH * (north - south) / (east - west)))
        getmap = {"SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap", "LAYERS": name,
                  "STYLES": layer.style, "CRS": "CRS:84",
                  "BBOX": f"{west:.6f},{south:.6f},{east:.6f},{north:.6f}",
                  "WIDTH": PREVIEW_WIDTH, "HEIGHT": height, "FORMAT": "image/png",
                  "TRANSPARENT": "TRUE"}
        if layer.time.default:
            getmap["TIME"] = layer.time.default
        legend = {"SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetLegendGraphic",
                  "LAYER": name, "STYLE": layer.style, "FORMAT": "image/png",
                  "SLD_VERSION": "1.1.0", "LANGUAGE": ISO639_2[lang]}
        links = [
            {"rel": "describedby", "type": XML, "hreflang": "fr",
             "href": f"{base}/metadata/{pid}.xml",
             "title": _text(lang, "Fiche ISO 19139 (INSPIRE)", "ISO 19139 record (INSPIRE)")},
            {"rel": "alternate", "type": "application/ld+json",
             "href": f"{base}/metadata/{pid}.jsonld",
             "title": _text(lang, "Fiche DCAT (JSON-LD)", "DCAT record (JSON-LD)")},
            {"rel": "service", "type": "text/xml",
             "href": f"{wms}?SERVICE=WMS&REQUEST=GetCapabilities&LANGUAGE={ISO639_2[lang]}",
             "title": _text(lang, f"Capacités WMS (couche {name})",
                            f"WMS capabilities (layer {name})")},
            # STAC web-map-links convention: the layer, its style and default time
            {"rel": "wms", "type": "image/png", "href": wms, "wms:layers": [name],
             "wms:styles": [layer.style],
             "wms:dimensions": {"TIME": layer.time.default} if layer.time.default else {},
             "title": _text(lang, f"Couche WMS {name}", f"WMS layer {name}")},
            {"rel": "preview", "type": "image/png", "href": f"{wms}?{urlencode(getmap)}",
             "title": _text(lang, "Aperçu (GetMap, date par défaut)",
                            "Preview (GetMap, default date)")},
            {"rel": REL_LEGEND, "type": "image/png", "href": f"{wms}?{urlencode(legend)}",
             "title": _text(lang, "Légende", "Legend")},
        ]
        resources = config.get("resources") or {}
        if pid in resources:
            links.append({"rel": REL_COVERAGE, "type": "image/tiff; application=geotiff",
                          "href": f"{base}/collections/{pid}/coverage?f=GTiff",
                          "title": _text(lang, "Couverture (GeoTIFF)", "Coverage (GeoTIFF)")})
        if layer.process:
            links.append({"rel": "related", "type": "application/json",
                          "href": f"{base}/processes/{layer.process}",
                          "title": _text(lang, f"Traitement qui calcule ce produit : "
                                               f"{layer.process}",
                                         f"Process that computes this product: "
                                         f"{layer.process}")})
            links.append({"rel": REL_EXECUTE, "type": "application/json",
                          "href": f"{base}/processes/{layer.process}/execution",
                          "title": _text(lang, "Exécuter le traitement (POST)",
                                         "Execute the process (POST)")})
        if "sentinel-2-l2a" in resources:
            links.append({"rel": "derived_from", "type": "application/json",
                          "href": f"{base}/collections/sentinel-2-l2a",
                          "title": _text(lang, "Scènes Sentinel-2 L2A", "Sentinel-2 L2A scenes")})
        if layer.kind == "product":
            links.append({"rel": "license", "type": "text/html", "hreflang": "fr",
                          "href": f"{base}/licences/etalab-2.0",
                          "title": "Licence Ouverte 2.0 (Etalab)"})
        else:
            links.append({"rel": "license", "type": "text/html", "hreflang": "fr",
                          "href": f"{base}/licences/copernicus",
                          "title": _text(lang, "Conditions d'utilisation des données "
                                               "Copernicus Sentinel",
                                         "Copernicus Sentinel data legal notice")})
        return links

    def _record(self, layer: Layer, config: dict, lang: str, *, properties: dict | None = None,
                skip_geometry: bool = False, select: list[str] | None = None) -> dict:
        properties = properties or self._properties(layer, config, lang)
        dates = layer.time.dates
        if select:
            properties = {k: v for k, v in properties.items() if k in select}
        geometry = None if skip_geometry else shapely.geometry.mapping(
            layer.source.area.to_crs(CRS84).geometry)
        return {
            "id": layer.product_id,
            "type": "Feature",
            "conformsTo": ["http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/"
                           "record-core"],
            "time": {"interval": [dates[0], dates[-1]]} if dates else None,
            "geometry": geometry,
            "properties": properties,
            "links": self._links(layer, config, lang),
        }

    # --- search ----------------------------------------------------------------------------

    def query(self, offset=0, limit=10, resulttype="results", bbox=None, datetime_=None,
              properties=None, sortby=None, select_properties=None, skip_geometry=False,
              q=None, filterq=None, language=None, **kwargs):
        lang = self._lang(language)
        try:
            box = Area.from_bbox(bbox).to_crs(CRS84).geometry if bbox else None
            interval = parse_interval(datetime_) if datetime_ else None
        except ValueError as err:
            raise ProviderInvalidQueryError(user_msg=str(err)) from err
        products, config = self._products()
        records = [(layer, self._properties(layer, config, lang)) for layer in products]
        if box is not None:
            records = [(lay, p) for lay, p in records
                       if shapely.intersects(lay.source.area.to_crs(CRS84).geometry, box)]
        if interval is not None:
            records = [(lay, p) for lay, p in records if _overlaps(lay, interval)]
        for name, value in properties or []:
            records = [(lay, p) for lay, p in records if str(p.get(name)) == str(value)]
        if q:
            terms = [t.strip().lower() for t in str(q).split(",") if t.strip()]
            records = [(lay, p) for lay, p in records
                       if any(term in _searchable(lay, p) for term in terms)]
        records, matched, page = filter_sort_page(
            records, filterq, self._fields,
            lambda layer: layer.source.area.to_crs(CRS84).geometry, sortby, offset, limit,
            resulttype)
        features = [self._record(lay, config, lang, properties=p, skip_geometry=skip_geometry,
                                 select=select_properties) for lay, p in page]
        return {"type": "FeatureCollection", "features": features,
                "numberMatched": matched, "numberReturned": len(features)}

    def get(self, identifier, language=None, **kwargs):
        lang = self._lang(language)
        products, config = self._products()
        for layer in products:
            if layer.product_id == str(identifier):
                return self._record(layer, config, lang)
        known = ", ".join(layer.product_id for layer in products)
        raise ProviderItemNotFoundError(
            user_msg=f"no product {identifier!r}; known: {known}")

    def __repr__(self):
        return "<ProductRecordsProvider>"


def _overlaps(layer: Layer, interval) -> bool:
    """Whether the product has a date inside ``interval`` (open ends allowed)."""
    low = interval.start.date().isoformat() if interval.start else "0000"
    high = interval.end.date().isoformat() if interval.end else "9999"
    return any(low <= d <= high for d in layer.time.dates)


def _searchable(layer: Layer, properties: dict) -> str:
    """Text ``q`` looks in: id, layer name and both languages' titles, abstracts, keywords."""
    words = [layer.product_id, layer.name, properties.get("kind") or ""]
    for lang in LANGUAGES:
        words += [layer.title(lang), layer.abstract(lang), " ".join(layer.keywords(lang))]
    words += [str(properties.get("title")), str(properties.get("description"))]
    return " ".join(words).lower()
