"""A server's territories, read from its WMS capabilities and its collections, so that one
click adds a territory's imagery (WMS with its time dimension) and vector data (OGC API
Features).

A territory is a WMS layer group (a ``<Layer>`` with a title and no name, holding named
layers), as Sentinelle publishes one per area; its feature collections are those whose
spatial extent meets the group's bounding box.  A WMS without groups is one territory."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

WMS = "{http://www.opengis.net/wms}"


@dataclass
class WmsLayer:
    name: str
    title: str
    times: list[str] = field(default_factory=list)
    default_time: str = ""


@dataclass
class Territory:
    title: str
    bbox: tuple[float, float, float, float] | None
    wms: list[WmsLayer] = field(default_factory=list)
    collections: list[dict] = field(default_factory=list)


def _bbox(layer) -> tuple[float, float, float, float] | None:
    box = layer.find(f"{WMS}EX_GeographicBoundingBox")
    if box is None:
        return None
    values = [box.findtext(f"{WMS}{k}") for k in ("westBoundLongitude", "southBoundLatitude",
                                                    "eastBoundLongitude", "northBoundLatitude")]
    try:
        return tuple(float(v) for v in values)  # type: ignore[return-value]
    except (TypeError, ValueError):
        return None


def _named(layer) -> WmsLayer:
    dimension = next((d for d in layer.findall(f"{WMS}Dimension")
                      if d.get("name", "").lower() == "time"), None)
    times = [t.strip() for t in (dimension.text or "").split(",") if t.strip()] \
        if dimension is not None else []
    return WmsLayer(layer.findtext(f"{WMS}Name") or "", layer.findtext(f"{WMS}Title") or "",
                    times, dimension.get("default", "") if dimension is not None else "")


def parse_capabilities(xml: bytes) -> list[Territory]:
    """Territories of a WMS 1.3.0 ``GetCapabilities`` document."""
    root = ET.fromstring(xml)
    top = root.find(f"{WMS}Capability/{WMS}Layer")
    if top is None:
        return []
    territories = []
    for group in top.findall(f"{WMS}Layer"):
        if group.find(f"{WMS}Name") is not None:
            continue
        named = [_named(layer) for layer in group.iter(f"{WMS}Layer")
                 if layer.find(f"{WMS}Name") is not None]
        if named:
            territories.append(Territory(group.findtext(f"{WMS}Title") or "", _bbox(group),
                                         named))
    if not territories:
        named = [_named(layer) for layer in top.iter(f"{WMS}Layer")
                 if layer.find(f"{WMS}Name") is not None]
        if named:
            territories.append(Territory(top.findtext(f"{WMS}Title") or "WMS", _bbox(top),
                                         named))
    return territories


def collection_bbox(collection: dict) -> tuple[float, float, float, float] | None:
    try:
        box = collection["extent"]["spatial"]["bbox"][0]
        return (box[0], box[1], box[-2], box[-1]) if len(box) in (4, 6) else None
    except (KeyError, IndexError, TypeError):
        return None


def intersects(a, b) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def attach_collections(territories: list[Territory], collections: list[dict]) -> None:
    """Give each territory the feature collections whose extent meets its bounding box."""
    for territory in territories:
        territory.collections = [
            c for c in collections
            if territory.bbox is None or (collection_bbox(c) is not None
                                          and intersects(territory.bbox, collection_bbox(c)))]
