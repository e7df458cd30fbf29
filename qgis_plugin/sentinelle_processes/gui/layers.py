"""Build a territory's QGIS layers: WMS-T layers (QGIS's temporal controller drives TIME)
and OGC API Features layers."""

from __future__ import annotations

from urllib.parse import quote

from qgis.core import QgsRasterLayer, QgsVectorLayer

from ..network import QgsTransport
from ..ogc.client import Client, check
from ..ogc.territories import Territory, attach_collections, parse_capabilities


def territories(url: str, *, wms_path: str = "wms", lang: str = "fr",
                transport=None) -> list[Territory]:
    """The territories of the server at ``url`` (WMS at ``{url}/{wms_path}``)."""
    client = Client(url, transport=transport or QgsTransport(), lang=lang)
    language = "fre" if lang == "fr" else "eng"
    answer = check(client.request("GET", wms_path, params={
        "SERVICE": "WMS", "REQUEST": "GetCapabilities", "VERSION": "1.3.0",
        "LANGUAGE": language}))
    found = parse_capabilities(answer.body)
    attach_collections(found, client.collections())
    return found


def wms_uri(url: str, layer, *, wms_path: str = "wms", crs: str = "EPSG:3857") -> str:
    """A QGIS WMS data source; with a time dimension, a WMS-T one driven by the temporal
    controller."""
    uri = (f"crs={crs}&dpiMode=7&format=image/png&layers={quote(layer.name, safe=':')}"
           f"&styles=&url={url.rstrip('/')}/{wms_path}")
    if layer.times:
        uri += ("&type=wmst&allowTemporalUpdates=true&temporalSource=provider"
                f"&timeDimensionExtent={','.join(layer.times)}")
    return uri


def oapif_uri(url: str, collection_id: str) -> str:
    return f"url='{url.rstrip('/')}' typename='{collection_id}' restrictToRequestBBOX='1'"


def territory_layers(url: str, territory: Territory, *, wms_path: str = "wms") -> list:
    """The territory's layers, vector layers first (they draw above the imagery)."""
    layers = [QgsVectorLayer(oapif_uri(url, c["id"]), str(c.get("title") or c["id"]), "OAPIF")
              for c in territory.collections]
    layers += [QgsRasterLayer(wms_uri(url, layer, wms_path=wms_path), layer.title or layer.name,
                              "wms") for layer in territory.wms]
    return layers
