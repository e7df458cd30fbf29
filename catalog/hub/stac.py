"""The hub's static STAC catalog: ``catalog.json`` → ``<collection>/collection.json`` → items.

Items keep the upstream metadata (properties, asset titles, bands) but describe the local
files: asset keys are our band names, hrefs are relative, ``proj:*`` give the clipped grids,
``file:checksum`` (multihash sha2-256) and ``file:size`` the files, ``alternate.upstream`` and
``hub:upstream_href`` where the bytes came from, ``hub:fetched`` when.  Scale and offset are
written as the catalog layer resolved them upstream (offset 0 when already applied) and the
upstream properties (``earthsearch:boa_offset_applied``) are kept: both readings agree, so
any reader gets the same reflectance.  Every JSON file is written atomically.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

import shapely
import shapely.geometry
from pyproj import Transformer

from sentinelle.catalog.hub.fetch import multihash
from sentinelle.catalog.hub.plan import ItemPlan
from sentinelle.catalog.hub.state import AssetRecord

STAC_VERSION = "1.0.0"
EXTENSIONS = [
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "https://stac-extensions.github.io/alternate-assets/v1.2.0/schema.json",
]
#: upstream item properties that describe the whole tile, not the clipped files
_TILE_ONLY = {"proj:shape", "proj:transform", "proj:bbox", "proj:geometry", "proj:centroid"}


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    with open(part, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=1, ensure_ascii=False)
        out.flush()
        os.fsync(out.fileno())
    os.replace(part, path)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _footprint(plan: ItemPlan, records: Iterable[AssetRecord]) -> shapely.Geometry:
    """Lon/lat footprint: the clipped rasters' extent, within the upstream footprint."""
    boxes = []
    for record in records:
        a, _, c, _, e, f = record.transform
        height, width = record.shape
        boxes.append(shapely.box(c, f + e * height, c + a * width, f))
    extent = shapely.union_all(boxes).envelope
    dense = shapely.segmentize(extent, max(extent.length / 16, 1.0))  # 4 points a side
    to_lonlat = Transformer.from_crs(f"EPSG:{plan.epsg}", "OGC:CRS84", always_xy=True)
    lonlat = shapely.transform(dense, to_lonlat.transform, interleaved=False)
    clipped = lonlat.intersection(plan.scene.footprint) if plan.bounds is not None else lonlat
    return clipped if not clipped.is_empty else lonlat


def build_item(plan: ItemPlan, records: Mapping[str, AssetRecord], item_dir: Path,
               root: Path) -> dict:
    """The local STAC item (a dict) for a plan whose assets are all fetched."""
    scene, raw = plan.scene, plan.raw
    raw_assets = raw.get("assets", {})
    props = {k: v for k, v in raw.get("properties", {}).items() if k not in _TILE_ONLY}
    props["proj:epsg"] = plan.epsg
    props["proj:code"] = f"EPSG:{plan.epsg}"
    props["hub:fetched"] = max(r.fetched for r in records.values())
    props["hub:areas"] = list(plan.areas)
    if plan.cloud and any(v is not None for v in plan.cloud.values()):
        props["hub:cloud_over_areas"] = {k: None if v is None else round(v * 100, 3)
                                         for k, v in plan.cloud.items()}
    assets = {}
    for band, record in records.items():
        source = scene.assets[band]
        upstream = dict(raw_assets.get(source.source_key, {}))
        entry: dict[str, Any] = {
            "href": os.path.relpath(root / record.path, item_dir),
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": upstream.get("roles", ["data"]),
            "proj:epsg": record.epsg,
            "proj:shape": list(record.shape),
            "proj:transform": list(record.transform),
            "raster:bands": [{"nodata": record.nodata, "data_type": record.dtype,
                              "spatial_resolution": abs(record.transform[0]),
                              **({} if band == "scl" else
                                 {"scale": source.scale, "offset": source.offset})}],
            "file:size": record.size,
            "file:checksum": multihash(record.sha256),
            "hub:upstream_href": record.upstream_href,
            "hub:fetched": record.fetched,
            "alternate": {"upstream": {"href": record.upstream_href,
                                       "title": "Upstream asset (whole tile)"}},
        }
        for key in ("title", "description", "gsd", "eo:bands", "bands"):
            if key in upstream:
                entry[key] = upstream[key]
        if plan.bounds is not None:
            entry["hub:clip_bounds"] = list(record.bounds or plan.bounds)
        assets[band] = entry
    footprint = _footprint(plan, records.values())
    links = [{"rel": "collection", "href": "../collection.json", "type": "application/json"},
             {"rel": "parent", "href": "../collection.json", "type": "application/json"},
             {"rel": "root", "href": "../../catalog.json", "type": "application/json"}]
    upstream_self = scene.self_href
    if upstream_self:
        links.append({"rel": "via", "href": upstream_self, "type": "application/geo+json",
                      "title": "Upstream item"})
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": sorted(set(EXTENSIONS) | set(raw.get("stac_extensions", []))),
        "id": plan.id,
        "collection": scene.collection or "sentinel-2-l2a",
        "geometry": shapely.geometry.mapping(footprint),
        "bbox": list(footprint.bounds),
        "properties": props,
        "links": links,
        "assets": assets,
    }


def write_catalog(root: Path, items: Mapping[str, Mapping[str, Any]], *, title: str) -> Path:
    """(Re)write ``catalog.json`` and one ``collection.json`` per collection, linking every
    item JSON listed in ``items`` (id → {"json": relative path, "collection": id})."""
    by_collection: dict[str, list[tuple[str, str]]] = {}
    for item_id, entry in sorted(items.items()):
        if (root / entry["json"]).exists():
            by_collection.setdefault(entry["collection"], []).append((item_id, entry["json"]))
    catalog_links = [{"rel": "root", "href": "./catalog.json", "type": "application/json"},
                     {"rel": "self", "href": "./catalog.json", "type": "application/json"}]
    for collection, entries in sorted(by_collection.items()):
        boxes, stamps = [], []
        for _, rel in entries:
            item = json.loads((root / rel).read_text())
            boxes.append(item["bbox"])
            stamps.append(item["properties"].get("datetime"))
        bbox = [min(b[0] for b in boxes), min(b[1] for b in boxes),
                max(b[2] for b in boxes), max(b[3] for b in boxes)]
        stamps = sorted(s for s in stamps if s)
        write_json(root / collection / "collection.json", {
            "type": "Collection",
            "stac_version": STAC_VERSION,
            "id": collection,
            "title": f"{title}: {collection}",
            "description": "Sentinel-2 L2A clipped to the hub's areas of interest "
                           "(local mirror of an upstream STAC API).",
            "license": "proprietary",
            "extent": {"spatial": {"bbox": [bbox]},
                       "temporal": {"interval": [[stamps[0] if stamps else None,
                                                  stamps[-1] if stamps else None]]}},
            "links": [{"rel": "root", "href": "../catalog.json", "type": "application/json"},
                      {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
                      *[{"rel": "item", "href": os.path.relpath(rel, collection),
                         "type": "application/geo+json"} for _, rel in entries]],
        })
        catalog_links.append({"rel": "child", "href": f"./{collection}/collection.json",
                              "type": "application/json"})
    path = root / "catalog.json"
    write_json(path, {"type": "Catalog", "stac_version": STAC_VERSION, "id": "hub",
                      "title": title, "description": "Sentinelle hub: Sentinel-2 L2A mirrored "
                      "over areas of interest.", "links": catalog_links})
    return path


def write_api_files(root: Path, items: Mapping[str, Mapping[str, Any]], *,
                    public_url: str | None = None) -> list[Path]:
    """Files for ``rustac serve`` (a STAC API over the hub), in ``.hub/api/``: per collection a
    ``<id>.collection.json`` without item links and a ``<id>.items.json`` FeatureCollection
    whose asset hrefs are absolute — ``public_url`` + the path in the hub when the folder is
    served over HTTP, else local paths (rustac resolves relative links against its working
    directory, not the file, hence absolute hrefs).  Returns the files to pass to rustac."""
    folder = root / ".hub" / "api"
    by_collection: dict[str, list[dict]] = {}
    for entry in sorted(items.values(), key=lambda e: e["json"]):
        path = root / entry["json"]
        if not path.exists():
            continue
        item = json.loads(path.read_text())
        for asset in item["assets"].values():
            local = (path.parent / asset["href"]).resolve()
            asset["href"] = (f"{public_url.rstrip('/')}/{local.relative_to(root.resolve())}"
                             if public_url else str(local))
        item["links"] = [link for link in item["links"] if link["rel"] == "via"]
        by_collection.setdefault(entry["collection"], []).append(item)
    out = []
    for collection, features in by_collection.items():
        data = json.loads((root / collection / "collection.json").read_text())
        data["links"] = []
        write_json(folder / f"{collection}.collection.json", data)
        write_json(folder / f"{collection}.items.json",
                   {"type": "FeatureCollection", "features": features})
        out += [folder / f"{collection}.collection.json", folder / f"{collection}.items.json"]
    return out
