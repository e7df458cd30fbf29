"""The WMS 1.3.0 GetCapabilities document, with INSPIRE view-service extended capabilities.

Built from the pygeoapi configuration's ``metadata`` (service title, abstract, keywords,
contact, licence) and the layers of :mod:`sentinelle.ows.layers`, in the requested language
(French by default, English available).  Element order follows the WMS 1.3.0 schema
(``capabilities_1_3_0.xsd``) and the INSPIRE ``inspire_vs`` 1.0 schema (scenario 2: the
service metadata record is linked by ``inspire_common:MetadataUrl``).
"""

from __future__ import annotations

from typing import Iterable

from lxml import etree
from pygeoapi import l10n

from sentinelle.catalog.area import CRS84
from sentinelle.ows.layers import Layer
from sentinelle.ows.params import (
    INFO_FORMATS,
    ISO639_2,
    MAP_FORMATS,
    MAX_LAYERS,
    axis_ordered,
    crs_from_code,
)
from sentinelle.rendering import MAX_MAP_SIDE

WMS = "http://www.opengis.net/wms"
XLINK = "http://www.w3.org/1999/xlink"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SLD = "http://www.opengis.net/sld"
INSPIRE_COMMON = "http://inspire.ec.europa.eu/schemas/common/1.0"
INSPIRE_VS = "http://inspire.ec.europa.eu/schemas/inspire_vs/1.0"
NSMAP = {None: WMS, "xlink": XLINK, "xsi": XSI, "sld": SLD,
         "inspire_common": INSPIRE_COMMON, "inspire_vs": INSPIRE_VS}
SCHEMA_LOCATION = (
    f"{WMS} http://schemas.opengis.net/wms/1.3.0/capabilities_1_3_0.xsd "
    f"{SLD} http://schemas.opengis.net/sld/1.1.0/sld_capabilities.xsd "
    f"{INSPIRE_VS} https://inspire.ec.europa.eu/schemas/inspire_vs/1.0/inspire_vs.xsd")
SERVICE_RECORD = "sentinelle-wms"


def _el(parent, tag: str, text: str | None = None, ns: str = WMS, **attrib):
    node = etree.SubElement(parent, f"{{{ns}}}{tag}", {k: str(v) for k, v in attrib.items()})
    if text is not None:
        node.text = str(text)
    return node


def _href(parent, tag: str, href: str, ns: str = WMS):
    return _el(parent, tag, ns=ns, **{f"{{{XLINK}}}type": "simple", f"{{{XLINK}}}href": href})


def _keywords(parent, words: Iterable[str]) -> None:
    box = _el(parent, "KeywordList")
    for word in dict.fromkeys(words):
        _el(box, "Keyword", word)


def _fmt(value: float) -> str:
    return f"{value:.8f}".rstrip("0").rstrip(".")


def _bounding_boxes(parent, layer_bbox_lonlat: tuple[float, ...], area, crs_codes) -> None:
    west, south, east, north = layer_bbox_lonlat
    geo = _el(parent, "EX_GeographicBoundingBox")
    _el(geo, "westBoundLongitude", _fmt(west))
    _el(geo, "eastBoundLongitude", _fmt(east))
    _el(geo, "southBoundLatitude", _fmt(south))
    _el(geo, "northBoundLatitude", _fmt(north))
    for code in crs_codes:
        crs = crs_from_code(code)
        bounds = area.bounds_in(CRS84 if code == "CRS:84" else crs)
        minx, miny, maxx, maxy = axis_ordered(bounds, crs)
        _el(parent, "BoundingBox", CRS=code, minx=_fmt(minx), miny=_fmt(miny),
            maxx=_fmt(maxx), maxy=_fmt(maxy))


def legend_url(base: str, layer: Layer, lang: str) -> str:
    return (f"{base}/wms?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetLegendGraphic&FORMAT=image/png"
            f"&LAYER={layer.name}&STYLE={layer.style}&SLD_VERSION=1.1.0"
            f"&LANGUAGE={ISO639_2[lang]}")


def metadata_url(base: str, record_id: str) -> str:
    return f"{base}/metadata/{record_id}.xml"


def _operation(parent, name: str, formats: Iterable[str], url: str, ns: str = WMS) -> None:
    op = _el(parent, name, ns=ns)
    for fmt in formats:
        _el(op, "Format", fmt)
    http = _el(_el(op, "DCPType"), "HTTP")
    _href(_el(http, "Get"), "OnlineResource", url)


def _contact(parent, contact: dict) -> None:
    info = _el(parent, "ContactInformation")
    primary = _el(info, "ContactPersonPrimary")
    _el(primary, "ContactPerson", contact.get("name", ""))
    _el(primary, "ContactOrganization", contact.get("organization") or "Sentinelle")
    _el(info, "ContactPosition", contact.get("position", ""))
    address = _el(info, "ContactAddress")
    _el(address, "AddressType", "postal")
    _el(address, "Address", contact.get("address", ""))
    _el(address, "City", contact.get("city", ""))
    _el(address, "StateOrProvince", contact.get("stateorprovince", ""))
    _el(address, "PostCode", contact.get("postalcode", ""))
    _el(address, "Country", contact.get("country", ""))
    if contact.get("phone"):
        _el(info, "ContactVoiceTelephone", contact["phone"])
    if contact.get("email"):
        _el(info, "ContactElectronicMailAddress", contact["email"])


def _layer(parent, layer: Layer, base: str, lang: str) -> None:
    node = _el(parent, "Layer", queryable="1", opaque="0")
    _el(node, "Name", layer.name)
    _el(node, "Title", layer.title(lang))
    _el(node, "Abstract", layer.abstract(lang))
    _keywords(node, layer.keywords(lang))
    area = layer.source.area
    _bounding_boxes(node, area.lonlat_bounds, area, layer.crs)
    info = layer.time
    if info.dates:
        _el(node, "Dimension", ",".join(info.dates), name="time", units="ISO8601",
            default=info.default or info.dates[-1], multipleValues="1", nearestValue="0",
            current="0")
    _el(node, "Identifier", layer.product_id, authority="sentinelle")
    meta = _el(node, "MetadataURL", type="ISO19115:2003")
    _el(meta, "Format", "text/xml")
    _href(meta, "OnlineResource", metadata_url(base, layer.product_id))
    style = _el(node, "Style")
    _el(style, "Name", layer.style)
    _el(style, "Title", layer.style_title(lang))
    width, height = layer.legend_size
    legend = _el(style, "LegendURL", width=width, height=height)
    _el(legend, "Format", "image/png")
    _href(legend, "OnlineResource", legend_url(base, layer, lang))


def capabilities(config: dict, layers: list[Layer], base: str, lang: str = "fr") -> bytes:
    """The capabilities document (UTF-8 bytes) for ``base`` (the public server URL)."""
    meta = config.get("metadata", {})
    ident = meta.get("identification", {})
    root = etree.Element(f"{{{WMS}}}WMS_Capabilities", nsmap=NSMAP, version="1.3.0")
    root.set(f"{{{XSI}}}schemaLocation", SCHEMA_LOCATION)
    wms_url = f"{base}/wms?"

    # --- Service
    service = _el(root, "Service")
    _el(service, "Name", "WMS")
    _el(service, "Title", l10n.translate(ident.get("title", "Sentinelle"), lang)
        + (" — service de visualisation WMS" if lang == "fr" else " — WMS view service"))
    _el(service, "Abstract", l10n.translate(ident.get("description", ""), lang))
    keywords = list(l10n.translate(ident.get("keywords", []), lang) or [])
    _keywords(service, keywords + ["infoMapAccessService"])
    _href(service, "OnlineResource", f"{base}/wms")
    _contact(service, meta.get("contact", {}))
    licence = meta.get("license", {})
    _el(service, "Fees", "aucun frais" if lang == "fr" else "no fees")
    _el(service, "AccessConstraints",
        (f"Pas de restriction d'accès public. Licence : {licence.get('name', '')} "
         f"({licence.get('url', '')})") if lang == "fr" else
        (f"No limitations on public access. Licence: {licence.get('name', '')} "
         f"({licence.get('url', '')})"))
    _el(service, "LayerLimit", MAX_LAYERS)
    _el(service, "MaxWidth", MAX_MAP_SIDE)
    _el(service, "MaxHeight", MAX_MAP_SIDE)

    # --- Capability
    capability = _el(root, "Capability")
    request = _el(capability, "Request")
    _operation(request, "GetCapabilities", ["text/xml"], wms_url)
    _operation(request, "GetMap", MAP_FORMATS, wms_url)
    _operation(request, "GetFeatureInfo", INFO_FORMATS, wms_url)
    _operation(request, "GetLegendGraphic", ["image/png"], wms_url, ns=SLD)
    exception = _el(capability, "Exception")
    _el(exception, "Format", "XML")

    extended = _el(capability, "ExtendedCapabilities", ns=INSPIRE_VS)
    record = _el(extended, "MetadataUrl", ns=INSPIRE_COMMON)
    record.set(f"{{{XSI}}}type", "inspire_common:resourceLocatorType")
    _el(record, "URL", metadata_url(base, SERVICE_RECORD), ns=INSPIRE_COMMON)
    _el(record, "MediaType", "application/xml", ns=INSPIRE_COMMON)
    languages = _el(extended, "SupportedLanguages", ns=INSPIRE_COMMON)
    default = _el(languages, "DefaultLanguage", ns=INSPIRE_COMMON)
    _el(default, "Language", "fre", ns=INSPIRE_COMMON)
    supported = _el(languages, "SupportedLanguage", ns=INSPIRE_COMMON)
    _el(supported, "Language", "eng", ns=INSPIRE_COMMON)
    response = _el(extended, "ResponseLanguage", ns=INSPIRE_COMMON)
    _el(response, "Language", ISO639_2[lang], ns=INSPIRE_COMMON)

    # --- Layers: root (no name) → one group per area (no name) → named layers
    top = _el(capability, "Layer")
    _el(top, "Title", l10n.translate(ident.get("title", "Sentinelle"), lang))
    _el(top, "Abstract", "Copernicus Sentinel-2 L2A" + (
        " : couleurs naturelles, indices spectraux, occupation du sol et changements de NDVI, "
        "par zone." if lang == "fr" else
        ": true colour, spectral indices, land cover and NDVI change, per area."))
    for code in ("CRS:84", "EPSG:4326", "EPSG:3857"):
        _el(top, "CRS", code)
    groups: dict[str, list[Layer]] = {}
    for layer in layers:
        groups.setdefault(layer.source.name, []).append(layer)
    if groups:
        from shapely import unary_union

        outline = unary_union([g[0].source.area.to_crs(CRS84).geometry
                               for g in groups.values()])
        west, south, east, north = outline.bounds
        geo = _el(top, "EX_GeographicBoundingBox")
        for tag, value in (("westBoundLongitude", west), ("eastBoundLongitude", east),
                           ("southBoundLatitude", south), ("northBoundLatitude", north)):
            _el(geo, tag, _fmt(value))
        _el(top, "BoundingBox", CRS="CRS:84", minx=_fmt(west), miny=_fmt(south),
            maxx=_fmt(east), maxy=_fmt(north))
    for members in groups.values():
        source = members[0].source
        group = _el(top, "Layer")
        _el(group, "Title", source.title[lang])
        _el(group, "Abstract", ("Produits Sentinel-2 sur " if lang == "fr" else
                                "Sentinel-2 products over ") + source.title[lang])
        extra = [c for c in members[0].crs if c not in ("CRS:84", "EPSG:4326", "EPSG:3857")]
        for code in extra:
            _el(group, "CRS", code)
        area = source.area
        _bounding_boxes(group, area.lonlat_bounds, area, members[0].crs)
        for layer in members:
            _layer(group, layer, base, lang)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
