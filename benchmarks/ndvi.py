"""NDVI throughput: the ``spectral-index`` process's compute path versus plain rasterio + numpy.

Both compute NDVI statistics (count, mean, min, max of the valid pixels) over the whole
full-size scene (``make bench`` generates it with ``sentinelle sample-data build/fullsize
--tile-size 10980``), with the SCL mask applied:

* ``sentinelle``: :func:`sentinelle.processes.spectral_index.spectral_index` (search with the
  cloud fraction from SCL, lazy cube, SCL mask, index, area mask) then
  :func:`~sentinelle.processes.spectral_index.statistics`, a block-by-block reduction: the
  index never exists whole in memory;
* ``rasterio``: red, nir and SCL read entirely into numpy arrays, SCL upsampled ×2, NDVI and
  its statistics with numpy (the simplest script a user would write).

Each method runs in its own process so that its peak memory (max RSS) is its own.

    python benchmarks/ndvi.py build/fullsize [--repeat 2]
"""

from __future__ import annotations

import time
from pathlib import Path

import _runner  # benchmarks/_runner.py: child processes, best run, peak memory

MASKED = (0, 1, 3, 8, 9, 10, 11)  # SCL classes masked by default


def _scene(catalog_dir: Path):
    from sentinelle.catalog import open_catalog

    return open_catalog(catalog_dir / "catalog").scenes[0]


def run_ours(catalog_dir: Path) -> dict:
    import dask

    from sentinelle.catalog import Area, open_catalog, parse_interval
    from sentinelle.processes.spectral_index import spectral_index, statistics
    from sentinelle.settings import Limits

    catalog = open_catalog(catalog_dir / "catalog")
    scene = catalog.scenes[0]
    asset = scene.assets["red"]
    x0, y1 = asset.transform[2], asset.transform[5]
    height, width = asset.shape
    area = Area.from_bbox([x0, y1 - 10 * height, x0 + 10 * width, y1], crs=scene.epsg)
    limits = Limits(max_pixels=10**10, chunk_size=2048)
    start = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        # the scene's own day: the same pixels the plain pipeline reads, whatever the catalog
        values = spectral_index(catalog, area, parse_interval(scene.date.isoformat()),
                                index="NDVI", max_cloud=100,
                                resolution=10, limits=limits)
        stats = statistics(values)
    return {"seconds": time.perf_counter() - start, "pixels": width * height,
            "count": stats["valid_pixels"], "mean": stats["mean"], "min": stats["min"],
            "max": stats["max"]}


def run_rasterio(catalog_dir: Path) -> dict:
    import numpy as np
    import rasterio

    scene = _scene(catalog_dir)
    start = time.perf_counter()
    bands = {}
    for band in ("red", "nir"):
        asset = scene.assets[band]
        with rasterio.open(asset.href) as ds:
            dn = ds.read(1)
        values = dn.astype("float32")
        values *= np.float32(asset.scale)
        values += np.float32(asset.offset)
        values[dn == asset.nodata] = np.nan
        bands[band] = values
        del dn
    with rasterio.open(scene.assets["scl"].href) as ds:
        scl = ds.read(1)
    bad = np.isin(scl, MASKED).repeat(2, axis=0).repeat(2, axis=1)
    red, nir = bands["red"], bands["nir"]
    ndvi = (nir - red) / (nir + red)
    ndvi[bad] = np.nan
    valid = np.isfinite(ndvi)
    count = int(valid.sum())
    finite = ndvi[valid]
    return {"seconds": time.perf_counter() - start, "pixels": ndvi.size, "count": count,
            "mean": float(finite.mean(dtype="float64")), "min": float(finite.min()),
            "max": float(finite.max())}


METHODS = {"sentinelle": run_ours, "rasterio": run_rasterio}


def report(best: dict, peak: dict) -> None:
    ours, plain = best["sentinelle"], best["rasterio"]
    if ours["count"] != plain["count"] or abs(ours["mean"] - plain["mean"]) > 1e-5:
        raise SystemExit(f"results differ: {ours} vs {plain}")
    print(f"{'method':<32}{'Mpx/s':>10}{'seconds':>10}{'peak RSS MB':>14}")
    for name, key in (("sentinelle spectral-index (dask)", "sentinelle"),
                      ("rasterio + numpy, whole bands", "rasterio")):
        result = best[key]
        rate = result["pixels"] / result["seconds"] / 1e6
        print(f"{name:<32}{rate:>10.1f}{result['seconds']:>10.2f}{peak[key]:>14.0f}")
    print(f"ratio sentinelle / plain throughput: {plain['seconds'] / ours['seconds']:.2f}x "
          f"(NDVI mean {ours['mean']:.5f}, {ours['count']:,} valid px)")


if __name__ == "__main__":
    _runner.main(__doc__, __file__, METHODS, report)
