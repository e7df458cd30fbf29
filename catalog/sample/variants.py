"""The sample republished as other providers publish imagery, to prove that a territory is a
matter of configuration: same pixels, another place, another naming.

* :func:`republish_cdse` — one sample area moved to another UTM zone (default: UTM 31N, near
  Clermont-Ferrand) and written as a Copernicus-Data-Space-style STAC 1.1 catalog: asset keys
  ``B04_10m``…, ``proj:code``, ``grid:code``, ``raster:scale``/``raster:offset``, and a cloud
  probability band ``CLD_20m`` (0–100, 255 = no data) instead of SCL; its communes and parcels
  moved the same way and stored in Lambert-93;
* :func:`republish_l1c` — one area as an Earth-Search-style Level-1C catalog: no SCL at all;
* :func:`ndvi_series` — NDVI of a few clear dates as a float32 single-band product on a grid
  that is not Sentinel-2's (Lambert-93, 15 m), one item per date with one ``data`` asset.

Pixel values are the sample's own (only the georeferencing moves), so tests can compute the
expected answer from the source COGs with numpy.  Used by the tests and the documentation.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pyogrio
import rasterio
import rasterio.shutil
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.io import MemoryFile
from rasterio.warp import Resampling, reproject

#: cloud probability written for each SCL class (255: no data); a threshold of 50 masks
#: cloud shadows, medium and high probability clouds and cirrus
CLOUD_PROBABILITY = {0: 255, 3: 60, 8: 70, 9: 95, 10: 55}
CDSE_KEYS = {"blue": "B02_10m", "green": "B03_10m", "red": "B04_10m", "nir": "B08_10m",
             "swir16": "B11_20m"}
BAND_NAMES = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11"}
SAMPLE_FILES = {"blue": "B02.tif", "green": "B03.tif", "red": "B04.tif", "nir": "B08.tif",
                "swir16": "B11.tif", "scl": "SCL.tif"}


def _items(sample: Path, area: str) -> list[tuple[Path, dict]]:
    """(item folder, item dict) of the sample scenes of ``area`` (by date)."""
    tiles = {"bretagne": "_30U", "guyane": "_22N"}
    out = []
    for path in sorted((sample / "catalog" / "sentinel-2-l2a").glob("*/*.json")):
        if tiles[area] in path.stem:
            out.append((path.parent, json.loads(path.read_text("utf-8"))))
    return sorted(out, key=lambda pair: pair[1]["properties"]["datetime"])


def _write_cog(path: Path, data: np.ndarray, transform: Affine, crs: str, nodata) -> None:
    profile = dict(driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                   dtype=str(data.dtype), crs=crs, transform=transform, nodata=nodata,
                   tiled=True, blockxsize=256, blockysize=256)
    with MemoryFile() as memfile:
        with memfile.open(**profile) as ds:
            ds.write(data, 1)
        with memfile.open() as src:
            rasterio.shutil.copy(src, str(path), driver="COG", compress="DEFLATE",
                                 overview_resampling="nearest" if data.dtype.kind in "ui"
                                 else "average")


def _catalog(root: Path, collection: dict, items: list[dict]) -> None:
    """A static STAC catalog: root → collection → items (relative links)."""
    cid = collection["id"]
    (root / cid).mkdir(parents=True, exist_ok=True)
    catalog = {"type": "Catalog", "stac_version": collection["stac_version"],
               "id": f"{cid}-catalog", "description": collection["description"],
               "links": [{"rel": "root", "href": "./catalog.json"},
                         {"rel": "child", "href": f"./{cid}/collection.json"}]}
    collection["links"] = [{"rel": "root", "href": "../catalog.json"},
                           {"rel": "parent", "href": "../catalog.json"}] + [
        {"rel": "item", "href": f"./{item['id']}/{item['id']}.json"} for item in items]
    (root / "catalog.json").write_text(json.dumps(catalog, indent=1), "utf-8")
    (root / cid / "collection.json").write_text(json.dumps(collection, indent=1), "utf-8")
    for item in items:
        item["links"] = [{"rel": "root", "href": "../../catalog.json"},
                         {"rel": "collection", "href": "../collection.json"},
                         {"rel": "parent", "href": "../collection.json"}]
        folder = root / cid / item["id"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{item['id']}.json").write_text(json.dumps(item, indent=1), "utf-8")


def _lonlat(bounds, epsg: int) -> shapely.Geometry:
    to_lonlat = Transformer.from_crs(epsg, 4326, always_xy=True)
    box = shapely.segmentize(shapely.box(*bounds), (bounds[2] - bounds[0]) / 16)
    return shapely.transform(box, to_lonlat.transform, interleaved=False)


def _moved_vectors(sample: Path, area: str, out: Path, shift, source_epsg: int,
                   target_epsg: int, storage_epsg: int) -> list[str]:
    """The area's vector layers moved by ``shift`` (metres, in the source UTM zone) into the
    target UTM zone, stored in ``storage_epsg``; returns the written file names."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted((sample / "vectors").glob(f"{area}-*.gpkg")):
        meta, _fids, wkb, fields = pyogrio.raw.read(path)
        geometries = shapely.from_wkb(wkb)
        to_utm = Transformer.from_crs(meta["crs"], source_epsg, always_xy=True)
        from_utm = Transformer.from_crs(target_epsg, storage_epsg, always_xy=True)

        def move(x, y, to_utm=to_utm, from_utm=from_utm):
            ux, uy = to_utm.transform(x, y)
            return from_utm.transform(np.asarray(ux) + shift[0], np.asarray(uy) + shift[1])

        moved = shapely.transform(geometries, lambda xy: np.column_stack(
            move(xy[:, 0], xy[:, 1])))
        name = path.name
        layer = path.stem
        pyogrio.raw.write(out / name, shapely.to_wkb(moved), field_data=fields,
                          fields=meta["fields"], crs=f"EPSG:{storage_epsg}", layer=layer,
                          geometry_type=meta["geometry_type"], driver="GPKG")
        written.append(name)
    return written


def republish_cdse(sample: str | Path, out: str | Path, *, area: str = "bretagne",
                   epsg: int = 32631, origin: tuple[float, float] = (500_000.0, 5_075_000.0),
                   tile: str = "31TEL", storage_epsg: int = 2154) -> dict:
    """The sample area as a CDSE-style STAC 1.1 catalog in ``epsg`` with its upper-left corner
    at ``origin`` (see the module docstring).  Returns the catalog path, the vectors folder,
    the lon/lat bounds, the dates and the shift applied (metres)."""
    sample, out = Path(sample), Path(out)
    scenes = _items(sample, area)
    first = scenes[0][1]["assets"]["red"]
    source_epsg = int(scenes[0][1]["properties"]["proj:epsg"])
    t = first["proj:transform"]
    shift = (origin[0] - t[2], origin[1] - t[5])
    items, dates = [], []
    for folder, item in scenes:
        stamp = item["properties"]["datetime"]
        day = stamp[:10].replace("-", "")
        platform = item["properties"]["platform"]
        sid = f"S2{platform[-1].upper()}_MSIL2A_{day}T105031_N0510_R051_T{tile}_{day}T141010"
        target = out / "catalog" / "sentinel-2-l2a" / sid
        target.mkdir(parents=True, exist_ok=True)
        assets = {}
        for band, key in {**CDSE_KEYS, "cloud": "CLD_20m"}.items():
            source = folder / SAMPLE_FILES["scl" if band == "cloud" else band]
            with rasterio.open(source) as ds:
                data = ds.read(1)
                transform = ds.transform
                nodata = ds.nodata
            moved = Affine(transform.a, 0, transform.c + shift[0], 0, transform.e,
                           transform.f + shift[1])
            if band == "cloud":  # SCL classes → a cloud probability
                probability = np.full(data.shape, 5, dtype="uint8")
                for scl, value in CLOUD_PROBABILITY.items():
                    probability[data == scl] = value
                data, nodata = probability, 255
            _write_cog(target / f"{key}.tif", data, moved, f"EPSG:{epsg}", nodata)
            meta = {"href": f"./{key}.tif",
                    "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                    "proj:code": f"EPSG:{epsg}", "proj:shape": list(data.shape),
                    "proj:transform": list(moved)[:6], "roles": ["data"]}
            if band == "cloud":
                meta.update({"title": "Cloud probability (%)",
                             "bands": [{"name": "CLD", "nodata": 255, "data_type": "uint8"}]})
            else:
                meta.update({"bands": [{"name": BAND_NAMES[band], "eo:common_name": band,
                                        "nodata": 0, "data_type": "uint16"}],
                             "raster:scale": 0.0001, "raster:offset": -0.1,
                             "roles": ["data", "reflectance"]})
            assets[key] = meta
        bounds = (moved.c, moved.f + moved.e * data.shape[0],
                  moved.c + moved.a * data.shape[1], moved.f)
        footprint = _lonlat(bounds, epsg)
        items.append({
            "type": "Feature", "stac_version": "1.1.0", "id": sid,
            "collection": "sentinel-2-l2a",
            "geometry": shapely.geometry.mapping(footprint), "bbox": list(footprint.bounds),
            "properties": {"datetime": stamp, "platform": platform,
                           "constellation": "sentinel-2", "instruments": ["msi"],
                           "eo:cloud_cover": item["properties"].get("eo:cloud_cover"),
                           "grid:code": f"MGRS-{tile}", "proj:code": f"EPSG:{epsg}",
                           "processing:level": "L2", "product:type": "S2MSI2A",
                           "processing:version": "05.10"},
            "assets": assets})
        dates.append(stamp[:10])
    collection = {"type": "Collection", "stac_version": "1.1.0", "id": "sentinel-2-l2a",
                  "description": "Sentinel-2 L2A (sample republished as CDSE publishes it)",
                  "license": "other", "extent": {
                      "spatial": {"bbox": [list(shapely.union_all(
                          [shapely.geometry.shape(i["geometry"]) for i in items]).bounds)]},
                      "temporal": {"interval": [[items[0]["properties"]["datetime"],
                                                 items[-1]["properties"]["datetime"]]]}}}
    _catalog(out / "catalog", collection, items)
    vectors = _moved_vectors(sample, area, out / "vectors", shift, source_epsg, epsg,
                             storage_epsg)
    lonlat = shapely.union_all([shapely.geometry.shape(i["geometry"]) for i in items]).bounds
    return {"catalog": out / "catalog", "vectors": out / "vectors", "files": vectors,
            "bounds": tuple(lonlat), "dates": dates, "shift": shift, "epsg": epsg,
            "items": [i["id"] for i in items]}


def republish_l1c(sample: str | Path, out: str | Path, *, area: str = "guyane") -> dict:
    """The sample area as an Earth-Search-style Level-1C catalog (same files, no SCL)."""
    sample, out = Path(sample), Path(out)
    items = []
    for folder, item in _items(sample, area):
        sid = item["id"].replace("_L2A", "_L1C")
        target = out / "catalog" / "sentinel-2-l1c" / sid
        target.mkdir(parents=True, exist_ok=True)
        assets = {}
        for band in ("blue", "green", "red", "nir", "swir16"):
            source = folder / SAMPLE_FILES[band]
            (target / source.name).write_bytes(source.read_bytes())
            meta = dict(item["assets"][band])
            meta["href"] = f"./{source.name}"
            assets[band] = meta
        properties = {k: v for k, v in item["properties"].items()
                      if not k.startswith(("s2:", "earthsearch:"))}
        properties["s2:product_type"] = "S2MSI1C"
        properties["s2:processing_baseline"] = item["properties"].get("s2:processing_baseline")
        items.append({**{k: v for k, v in item.items() if k not in ("links", "assets")},
                      "id": sid, "collection": "sentinel-2-l1c", "properties": properties,
                      "assets": assets})
    collection = {"type": "Collection", "stac_version": "1.0.0", "id": "sentinel-2-l1c",
                  "description": "Sentinel-2 L1C (sample republished without SCL)",
                  "license": "other", "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]},
                                                 "temporal": {"interval": [[None, None]]}}}
    _catalog(out / "catalog", collection, items)
    return {"catalog": out / "catalog", "items": [i["id"] for i in items],
            "dates": [i["properties"]["datetime"][:10] for i in items]}


def ndvi_series(sample: str | Path, out: str | Path, *, area: str = "bretagne",
                dates: Iterable[str] = ("2024-05-17", "2024-06-11", "2024-08-25"),
                epsg: int = 2154, resolution: float = 15.0) -> dict:
    """NDVI of ``dates`` (unmasked, float32, NaN = no data) resampled onto a ``resolution``
    grid in ``epsg`` — a product that is not on the Sentinel-2 grid — as a static STAC
    catalog with one ``data`` asset per item."""
    sample, out = Path(sample), Path(out)
    wanted = set(dates)
    items = []
    for folder, item in _items(sample, area):
        day = item["properties"]["datetime"][:10]
        if day not in wanted:
            continue
        with rasterio.open(folder / "B04.tif") as red_ds, \
                rasterio.open(folder / "B08.tif") as nir_ds:
            red = red_ds.read(1).astype("float32")
            nir = nir_ds.read(1).astype("float32")
            src_transform, src_crs = red_ds.transform, red_ds.crs
            valid = (red > 0) & (nir > 0)
            red, nir = red * 1e-4 - 0.1, nir * 1e-4 - 0.1
            with np.errstate(divide="ignore", invalid="ignore"):
                ndvi = np.where(valid, (nir - red) / (nir + red), np.nan).astype("float32")
            bounds = red_ds.bounds
        to_target = Transformer.from_crs(src_crs, epsg, always_xy=True)
        xs, ys = to_target.transform([bounds.left, bounds.right, bounds.left, bounds.right],
                                     [bounds.bottom, bounds.bottom, bounds.top, bounds.top])
        # an origin off any multiple of 10 m: this grid is not Sentinel-2's
        x0 = np.floor(min(xs) / resolution) * resolution + 7.0
        y1 = np.ceil(max(ys) / resolution) * resolution + 7.0
        width = int(np.ceil((max(xs) - x0) / resolution))
        height = int(np.ceil((y1 - min(ys)) / resolution))
        transform = Affine(resolution, 0, x0, 0, -resolution, y1)
        target = np.full((height, width), np.nan, dtype="float32")
        reproject(ndvi, target, src_transform=src_transform, src_crs=src_crs,
                  dst_transform=transform, dst_crs=f"EPSG:{epsg}", src_nodata=np.nan,
                  dst_nodata=np.nan, resampling=Resampling.bilinear)
        sid = f"ndvi-{area}-{day}"
        folder_out = out / "catalog" / "ndvi-series" / sid
        folder_out.mkdir(parents=True, exist_ok=True)
        _write_cog(folder_out / "ndvi.tif", target, transform, f"EPSG:{epsg}", np.nan)
        footprint = _lonlat((x0, y1 - height * resolution, x0 + width * resolution, y1), epsg)
        items.append({
            "type": "Feature", "stac_version": "1.0.0", "id": sid,
            "collection": "ndvi-series",
            "geometry": shapely.geometry.mapping(footprint), "bbox": list(footprint.bounds),
            "properties": {"datetime": f"{day}T11:00:00Z", "proj:epsg": epsg},
            "assets": {"data": {
                "href": "./ndvi.tif", "type": "image/tiff; application=geotiff",
                "proj:epsg": epsg, "proj:shape": [height, width],
                "proj:transform": list(transform)[:6],
                "raster:bands": [{"data_type": "float32", "nodata": "nan"}],
                "roles": ["data"]}}})
    collection = {"type": "Collection", "stac_version": "1.0.0", "id": "ndvi-series",
                  "description": "NDVI series (a product published by a partner)",
                  "license": "etalab-2.0", "extent": {
                      "spatial": {"bbox": [[-180, -90, 180, 90]]},
                      "temporal": {"interval": [[None, None]]}}}
    _catalog(out / "catalog", collection, items)
    return {"catalog": out / "catalog", "items": [i["id"] for i in items],
            "dates": sorted(wanted), "epsg": epsg, "resolution": resolution,
            "created": dt.datetime.now(dt.timezone.utc).isoformat()}
