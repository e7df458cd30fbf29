"""One full-size scene (a whole 109.8 km Sentinel-2 tile at 10980 px) for benchmarks.

Same item format, band model and encoding as the sample areas, but the landscape is simpler so
that it scales: rectangular parcels (about 8 ha, so ≈ 150,000 on a real tile) whose cover is
read from low-frequency random fields (towns, lakes, forests, farmland), and no clouds.  The
scene is rendered and written window by window: only the uint16 bands are held in memory (GDAL
buffers each COG until it is closed), never full-size float arrays.
"""

from __future__ import annotations

import datetime as dt
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import rasterio.windows
import shapely
from affine import Affine
from tqdm import tqdm

from . import clouds, imagery, vectors
from .areas import BRETAGNE, FULLSIZE_ACQUISITION, FULLSIZE_ORIGIN, FULLSIZE_TILE
from .classes import COVERS
from .fields import rng, wave_field
from .landscape import split_rectangles
from .readme import FULLSIZE_README
from .scene import ParcelModel, block_mean, encode, surface

WINDOW = 1024  # pixels of 10 m; even, so that 20 m windows nest
PARCEL_HA = (4.0, 16.0)
NAME = "fullsize"


def generate(out: Path, *, tile_size: int, seed: int, progress: bool) -> dict:
    """Write the scene, its catalog and its parcels into ``out``."""
    if tile_size % 2 or not 2 <= tile_size <= 10980:
        raise ValueError(f"tile_size must be even and at most 10980, got {tile_size}")
    boxes = split_rectangles(tile_size, tile_size, PARCEL_HA, rng(seed, "parcels", NAME))
    covers = _covers(boxes, tile_size, seed)
    acquisition = FULLSIZE_ACQUISITION
    model = ParcelModel.draw(len(boxes), rng(seed, "parcel-model", NAME))
    parcel_ndvi, families = model.ndvi(covers, acquisition.date)
    land_class = np.array([COVERS[c].land_class for c in covers], np.uint8)

    x0, y1 = FULLSIZE_ORIGIN
    transform = Affine(10, 0, x0, 0, -10, y1)
    bounds = (x0, y1 - 10 * tile_size, x0 + 10 * tile_size, y1)
    when = dt.datetime.combine(acquisition.date, BRETAGNE.time_utc)
    identifier = imagery.item_id(acquisition.platform, FULLSIZE_TILE, acquisition.date)
    folder = out / "catalog" / imagery.COLLECTION / identifier
    folder.mkdir(parents=True, exist_ok=True)

    scl_counts = np.zeros(12, np.int64)
    with ExitStack() as stack:
        outputs = {}
        for band in imagery.BANDS:
            factor = band.resolution // 10
            outputs[band.key] = stack.enter_context(imagery.open_cog(
                folder / f"{band.code}.tif", (tile_size // factor,) * 2,
                "uint8" if band.key == "scl" else "uint16",
                transform @ Affine.scale(factor), BRETAGNE.epsg,
                description=f"{band.code} {band.key}", blocksize=512,
                categorical=band.key == "scl"))
        starts = range(0, tile_size, WINDOW)
        windows = [(r, c) for r in starts for c in starts]
        for index, (row, col) in enumerate(tqdm(windows, desc="full-size scene",
                                                disable=not progress)):
            rows = np.arange(row, min(row + WINDOW, tile_size))
            cols = np.arange(col, min(col + WINDOW, tile_size))
            parcels = _paint(boxes, rows, cols)
            reflectance, ndvi = surface(parcels, rows, cols, parcel_ndvi, families, seed, NAME)
            scl = clouds.majority_2x2(clouds.surface_scl(land_class[parcels], ndvi))
            scl_counts += np.bincount(scl.ravel(), minlength=12)
            noise = rng(seed, "noise", NAME, index)
            swir = encode(block_mean(reflectance.pop("swir16")), noise)
            window = rasterio.windows.Window(col, row, cols.size, rows.size)
            half = rasterio.windows.Window(col // 2, row // 2, cols.size // 2, rows.size // 2)
            for band, value in reflectance.items():
                outputs[band].write(encode(value, noise), 1, window=window)
            outputs["swir16"].write(swir, 1, window=half)
            outputs["scl"].write(scl, 1, window=half)

    sun = clouds.sun_position(*imagery.center_lonlat(bounds, BRETAGNE.epsg), when)
    entry = imagery.item(identifier, tile=FULLSIZE_TILE, epsg=BRETAGNE.epsg, when=when,
                         platform=acquisition.platform, bounds=bounds, scl_counts=scl_counts,
                         sun=sun)
    catalog = imagery.write_catalog(out / "catalog", [entry], "Synthetic full-size Sentinel-2 "
                                    "L2A scene for benchmarks (tile 30UXU grid).")
    parcels_path = vectors.write_layer(
        out / "vectors" / "fullsize-parcels.gpkg",
        shapely.box(x0 + 10 * boxes[:, 0], y1 - 10 * boxes[:, 3],
                    x0 + 10 * boxes[:, 2], y1 - 10 * boxes[:, 1]),
        {"id": np.array([f"{FULLSIZE_TILE}-{i:06d}" for i in range(len(boxes))]),
         "landcover_code": land_class.astype(np.int32),
         "cover": covers,
         "area_m2": ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) * 100)},
        src_epsg=BRETAGNE.epsg, dst_epsg=BRETAGNE.epsg)
    (out / "README.md").write_text(FULLSIZE_README, encoding="utf-8")
    return {"catalog": str(catalog), "item": identifier, "tile_size": tile_size,
            "parcels": len(boxes), "parcels_path": str(parcels_path)}


def _covers(boxes: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Cover of each rectangle from smooth fields sampled at its centre (every 50 px)."""
    step = 50
    coarse = np.arange(0, size + step, step)
    towns = wave_field(coarse, coarse, rng(seed, "towns", NAME), (400, 2500), waves=24)
    lakes = wave_field(coarse, coarse, rng(seed, "lakes", NAME), (150, 800), waves=24)
    woods = wave_field(coarse, coarse, rng(seed, "woods", NAME), (300, 3000), waves=24)
    r = ((boxes[:, 1] + boxes[:, 3]) // 2) // step
    c = ((boxes[:, 0] + boxes[:, 2]) // 2) // step
    names = [name for name, _ in BRETAGNE.landscape.open_covers]
    weights = np.array([w for _, w in BRETAGNE.landscape.open_covers])
    covers = rng(seed, "covers", NAME).choice(names, size=len(boxes), p=weights / weights.sum())
    covers = covers.astype("<U32")
    covers[woods[r, c] > 1.1] = BRETAGNE.landscape.forest_cover
    covers[towns[r, c] > 2.0] = "built_up"
    covers[lakes[r, c] > 2.4] = "water"
    return covers


def _paint(boxes: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Parcel index of every pixel of the window ``rows × cols``."""
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    inside = np.flatnonzero((boxes[:, 0] < c1) & (boxes[:, 2] > c0)
                            & (boxes[:, 1] < r1) & (boxes[:, 3] > r0))
    out = np.zeros((rows.size, cols.size), np.int64)
    for i in inside:
        b0, a0, b1, a1 = boxes[i]
        out[max(a0, r0) - r0:min(a1, r1) - r0, max(b0, c0) - c0:min(b1, c1) - c0] = i
    return out
