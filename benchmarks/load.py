"""Read throughput: the catalog layer (stackstac + Dask) versus plain rasterio window reads.

Both read the red and nir bands of the same full-size scene (``make bench`` generates it with
``sentinelle sample-data build/fullsize --tile-size 10980``) and reduce them to reflectance sums,
so nothing but reading, decoding and scaling is measured.  Each method runs in its own
process so that its peak memory (max RSS) is its own.

    python benchmarks/load.py build/fullsize [--repeat 2]
"""

from __future__ import annotations

import time
from pathlib import Path

import _runner  # benchmarks/_runner.py: child processes, best run, peak memory

BANDS = ("red", "nir")


def _scene(catalog_dir: Path):
    from sentinelle.catalog import open_catalog

    catalog = open_catalog(catalog_dir / "catalog")
    return catalog.scenes[0]


def run_ours(catalog_dir: Path) -> dict:
    import dask

    from sentinelle.catalog import Area, Grid, load_cube
    from sentinelle.settings import Limits

    scene = _scene(catalog_dir)
    asset = scene.assets["red"]
    x0, y1 = asset.transform[2], asset.transform[5]
    height, width = asset.shape
    area = Area.from_bbox([x0, y1 - 10 * height, x0 + 10 * width, y1], crs=scene.epsg)
    grid = Grid.from_area(area, scene.epsg, 10)
    limits = Limits(max_pixels=10**10, chunk_size=2048)
    start = time.perf_counter()
    cube = load_cube([scene], list(BANDS), grid, limits=limits)
    with dask.config.set(scheduler="threads"):
        sums = dask.compute(*[cube[b].sum() for b in BANDS])
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "pixels": grid.npixels * len(BANDS),
            "sums": [float(s) for s in sums]}


def run_rasterio(catalog_dir: Path) -> dict:
    import numpy as np
    import rasterio

    scene = _scene(catalog_dir)
    start = time.perf_counter()
    sums, pixels = [], 0
    for band in BANDS:
        asset = scene.assets[band]
        total = 0.0
        with rasterio.open(asset.href) as ds:
            for _, window in ds.block_windows(1):
                dn = ds.read(1, window=window)
                valid = dn != asset.nodata
                total += float((dn[valid].astype("float32") * np.float32(asset.scale)
                                + np.float32(asset.offset)).sum(dtype="float64"))
            pixels += ds.width * ds.height
        sums.append(total)
    return {"seconds": time.perf_counter() - start, "pixels": pixels, "sums": sums}


METHODS = {"sentinelle": run_ours, "rasterio": run_rasterio}


def report(best: dict, peak: dict) -> None:
    ours, plain = best["sentinelle"], best["rasterio"]
    for a, b in zip(ours["sums"], plain["sums"]):
        if abs(a - b) > 1e-3 * abs(b):
            raise SystemExit(f"results differ: {ours['sums']} vs {plain['sums']}")
    print(f"{'method':<28}{'Mpx/s':>10}{'seconds':>10}{'peak RSS MB':>14}")
    for name, key in (("sentinelle (stackstac+dask)", "sentinelle"),
                      ("rasterio windows", "rasterio")):
        result = best[key]
        rate = result["pixels"] / result["seconds"] / 1e6
        print(f"{name:<28}{rate:>10.1f}{result['seconds']:>10.2f}{peak[key]:>14.0f}")
    ratio = plain["seconds"] / ours["seconds"]
    print(f"ratio sentinelle / rasterio throughput: {ratio:.2f}x")


if __name__ == "__main__":
    _runner.main(__doc__, __file__, METHODS, report)
