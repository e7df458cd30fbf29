"""Cloud-optimised GeoTIFFs and the static STAC catalog describing them (Earth Search v1 style).

The catalog is written as plain JSON (not with pystac) so that it stays STAC 1.0.0 with
projection v1.1.0 (``proj:epsg``) exactly like Earth Search v1, whatever the pystac version;
pystac reads it back fine.  Layout: ``catalog.json`` → ``sentinel-2-l2a/collection.json`` →
``sentinel-2-l2a/<item>/<item>.json`` with the assets next to each item, all links relative.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer

COLLECTION = "sentinel-2-l2a"
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.0.0/schema.json",
]


@dataclass(frozen=True)
class Band:
    key: str  # asset key (Earth Search v1 names)
    code: str  # file name and band name, e.g. B04
    title: str
    resolution: int
    center: float | None = None  # µm
    fwhm: float | None = None


BANDS = (
    Band("blue", "B02", "Blue (band 2) - 10m", 10, 0.49, 0.098),
    Band("green", "B03", "Green (band 3) - 10m", 10, 0.56, 0.045),
    Band("red", "B04", "Red (band 4) - 10m", 10, 0.665, 0.038),
    Band("nir", "B08", "NIR 1 (band 8) - 10m", 10, 0.842, 0.145),
    Band("swir16", "B11", "SWIR 1.6μm (band 11) - 20m", 20, 1.61, 0.143),
    Band("scl", "SCL", "Scene classification map (SCL)", 20),
)

_SCL_PERCENTAGES = {
    3: "s2:cloud_shadow_percentage", 4: "s2:vegetation_percentage",
    5: "s2:not_vegetated_percentage", 6: "s2:water_percentage",
    8: "s2:medium_proba_clouds_percentage", 9: "s2:high_proba_clouds_percentage",
    10: "s2:thin_cirrus_percentage",
}


@contextmanager
def open_cog(path: Path, shape: tuple[int, int], dtype: str, transform: Affine, epsg: int, *,
             description: str, blocksize: int, categorical: bool = False
             ) -> Iterator[rasterio.io.DatasetWriterBase]:
    """A single-band COG being written (buffered by GDAL, converted when closed).

    DEFLATE with horizontal differencing, internal tiles, overviews (average for reflectance,
    nearest for classes), no data 0 and the band description set.
    """
    with rasterio.open(
        path, "w", driver="COG", width=shape[1], height=shape[0], count=1, dtype=dtype,
        crs=f"EPSG:{epsg}", transform=transform, nodata=0, compress="DEFLATE",
        predictor=2, blocksize=blocksize,
        overview_resampling="NEAREST" if categorical else "AVERAGE",
        num_threads="ALL_CPUS",
    ) as dataset:
        dataset.set_band_description(1, description)
        yield dataset


def write_cog(path: Path, array: np.ndarray, transform: Affine, epsg: int, *, description: str,
              blocksize: int, categorical: bool = False,
              colormap: dict[int, tuple[int, int, int]] | None = None) -> None:
    with open_cog(path, array.shape, array.dtype.name, transform, epsg, description=description,
                  blocksize=blocksize, categorical=categorical) as dataset:
        dataset.write(array, 1)
        if colormap:
            dataset.write_colormap(1, colormap)


def item_id(platform: str, tile: str, date: dt.date) -> str:
    return f"S2{platform.upper()}_{tile}_{date:%Y%m%d}_0_L2A"


def footprint(bounds: tuple[float, float, float, float], epsg: int) -> dict:
    """GeoJSON polygon (lon/lat, counter-clockwise, 8 points per edge) of UTM ``bounds``."""
    x0, y0, x1, y1 = bounds
    t = np.linspace(0, 1, 8, endpoint=False)
    xs = np.concatenate([x0 + (x1 - x0) * t, np.full(8, x1), x1 - (x1 - x0) * t, np.full(8, x0)])
    ys = np.concatenate([np.full(8, y0), y0 + (y1 - y0) * t, np.full(8, y1), y1 - (y1 - y0) * t])
    lon, lat = Transformer.from_crs(epsg, 4326, always_xy=True).transform(xs, ys)
    ring = [[round(a, 7), round(b, 7)] for a, b in zip(lon, lat)]
    return {"type": "Polygon", "coordinates": [ring + ring[:1]]}


def center_lonlat(bounds: tuple[float, float, float, float], epsg: int) -> tuple[float, float]:
    x0, y0, x1, y1 = bounds
    return Transformer.from_crs(epsg, 4326, always_xy=True).transform((x0 + x1) / 2,
                                                                      (y0 + y1) / 2)


def item(identifier: str, *, tile: str, epsg: int, when: dt.datetime, platform: str,
         bounds: tuple[float, float, float, float], scl_counts: np.ndarray,
         sun: tuple[float, float]) -> dict:
    """The STAC item of one scene whose assets are ``<code>.tif`` next to the item file.

    ``scl_counts`` are the pixel counts of SCL classes 0–11 (for the percentages).
    """
    geometry = footprint(bounds, epsg)
    ring = np.array(geometry["coordinates"][0])
    counts = scl_counts / scl_counts.sum() * 100
    properties = {
        "created": _timestamp(when + dt.timedelta(hours=3)),
        "platform": f"sentinel-2{platform}",
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "eo:cloud_cover": round(float(counts[8] + counts[9] + counts[10]), 6),
        "proj:epsg": epsg,
        "proj:code": f"EPSG:{epsg}",
        "mgrs:utm_zone": int(tile[:2]),
        "mgrs:latitude_band": tile[2],
        "mgrs:grid_square": tile[3:],
        "grid:code": f"MGRS-{tile}",
        "view:sun_azimuth": round(sun[0], 4),
        "view:sun_elevation": round(sun[1], 4),
        "s2:mgrs_tile": tile,
        "s2:product_type": "S2MSI2A",
        "s2:processing_baseline": "05.10",
        "s2:degraded_msi_data_percentage": 0,
        "s2:nodata_pixel_percentage": round(float(counts[0]), 6),
        "s2:saturated_defective_pixel_percentage": 0,
        "s2:dark_features_percentage": 0,
        "s2:unclassified_percentage": 0,
        "s2:snow_ice_percentage": 0,
        **{key: round(float(counts[code]), 6) for code, key in _SCL_PERCENTAGES.items()},
        "datetime": _timestamp(when),
        "earthsearch:boa_offset_applied": False,
        "updated": _timestamp(when + dt.timedelta(hours=3)),
    }
    x0, y0, x1, y1 = bounds
    assets = {}
    for band in BANDS:
        res = band.resolution
        shape = [round((y1 - y0) / res), round((x1 - x0) / res)]
        asset = {
            "href": f"./{band.code}.tif",
            "type": COG_TYPE,
            "title": band.title,
            "proj:shape": shape,
            "proj:transform": [res, 0, x0, 0, -res, y1],
            "roles": ["data"] if band.key == "scl" else ["data", "reflectance"],
        }
        asset["gsd"] = res
        if band.key == "scl":
            asset["raster:bands"] = [{"nodata": 0, "data_type": "uint8",
                                      "spatial_resolution": res}]
        else:
            asset["eo:bands"] = [{"name": band.code, "common_name": band.key,
                                  "center_wavelength": band.center,
                                  "full_width_half_max": band.fwhm}]
            asset["raster:bands"] = [{"nodata": 0, "data_type": "uint16",
                                      "spatial_resolution": res, "scale": 0.0001,
                                      "offset": -0.1}]
        assets[band.key] = asset
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "stac_extensions": EXTENSIONS,
        "id": identifier,
        "geometry": geometry,
        "bbox": [float(ring[:, 0].min()), float(ring[:, 1].min()),
                 float(ring[:, 0].max()), float(ring[:, 1].max())],
        "properties": properties,
        "links": [
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
        ],
        "assets": assets,
        "collection": COLLECTION,
    }


def write_catalog(root: Path, items: list[dict], description: str) -> Path:
    """Write ``catalog.json``, the collection and the items (whose assets are already in
    ``<root>/sentinel-2-l2a/<id>/``); return the catalog path."""
    items = sorted(items, key=lambda i: i["id"])
    collection_dir = root / COLLECTION
    for entry in items:
        _dump(collection_dir / entry["id"] / f"{entry['id']}.json", entry)
    boxes = np.array([entry["bbox"] for entry in items])
    union = [*boxes[:, :2].min(axis=0).tolist(), *boxes[:, 2:].max(axis=0).tolist()]
    per_tile = {}
    for entry in items:
        per_tile.setdefault(entry["properties"]["s2:mgrs_tile"], entry["bbox"])
    times = sorted(entry["properties"]["datetime"] for entry in items)
    json_link = {"type": "application/json"}
    collection = {
        "type": "Collection",
        "id": COLLECTION,
        "stac_version": "1.0.0",
        "stac_extensions": [],
        "title": "Sentinel-2 Level-2A (synthetic sample)",
        "description": description,
        "license": "CC0-1.0",
        "keywords": ["sentinel", "copernicus", "sentinel-2", "l2a", "synthetic"],
        "extent": {
            "spatial": {"bbox": [union, *per_tile.values()] if len(per_tile) > 1 else [union]},
            "temporal": {"interval": [[times[0], times[-1]]]},
        },
        "summaries": {
            "platform": sorted({entry["properties"]["platform"] for entry in items}),
            "constellation": ["sentinel-2"],
            "instruments": ["msi"],
            "gsd": [10, 20],
            "s2:mgrs_tile": sorted(per_tile),
        },
        "links": [
            {"rel": "root", "href": "../catalog.json", **json_link},
            {"rel": "parent", "href": "../catalog.json", **json_link},
            *({"rel": "item", "href": f"./{entry['id']}/{entry['id']}.json", **json_link}
              for entry in items),
        ],
    }
    _dump(collection_dir / "collection.json", collection)
    catalog = {
        "type": "Catalog",
        "id": "sentinelle-sample",
        "stac_version": "1.0.0",
        "description": "Synthetic Sentinel-2 L2A sample written by `sentinelle sample-data`.",
        "links": [
            {"rel": "root", "href": "./catalog.json", **json_link},
            {"rel": "child", "href": f"./{COLLECTION}/collection.json", **json_link,
             "title": collection["title"]},
        ],
    }
    _dump(root / "catalog.json", catalog)
    return root / "catalog.json"


def _timestamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dump(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
