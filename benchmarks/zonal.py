"""Zonal statistics throughput: mean NDVI of 50,000 parcels over a full Sentinel-2 scene.

Every method reads red and nir of the full-size scene (``make bench`` generates it with
``sentinelle sample-data build/fullsize --tile-size 10980``), computes NDVI and its mean,
standard deviation and pixel count per parcel (a seeded random subset of
``vectors/fullsize-parcels.gpkg``, spread over the whole scene):

* ``sentinelle``: the path the ``zonal-statistics`` process takes — ``read_imagery`` (search
  with the cloud fraction from SCL, lazy cube, SCL mask, clip to the zones' bbox) →
  ``compute_index`` → :func:`sentinelle.analysis.zonal.zonal_stats` (Dask, block by block,
  exact coverage fractions);
* ``sentinelle-nomask``: the same without the SCL mask (the same work as the competitors);
* ``exactextract``: rasterio reads both bands whole, numpy NDVI held in memory, exactextract
  called directly (``mean``, ``stdev``, ``count``) on GeoJSON-like features;
* ``rasterstats``: the same read + NDVI written to a GeoTIFF, then ``rasterstats.zonal_stats``
  as it is usually called (a raster path; centre-of-pixel rasterisation, one window read
  per parcel) on a 2,000-parcel subset, its time scaled to the full number of parcels;
* ``rasterstats-array``: the same with the NDVI array held in memory (rasterstats' fastest
  way).  Both are skipped when rasterstats is not installed (``pip install rasterstats``;
  a benchmark-only dependency).

Each method runs in its own process so that its peak memory (max RSS) is its own.  Reading
the parcels from the GeoPackage is common to all and not timed.

    python benchmarks/zonal.py build/fullsize [--parcels 50000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

STATS = ("mean", "std", "count")
RASTERSTATS_SUBSET = 2_000


def _parcels(root: Path, n: int):
    """``n`` parcels picked at random (seeded) over the scene: ids, shapely polygons, EPSG."""
    import numpy as np
    import pyogrio.raw
    import shapely

    meta, _, wkb, fields = pyogrio.raw.read(root / "vectors" / "fullsize-parcels.gpkg",
                                            columns=["id"])
    pick = np.sort(np.random.default_rng(42).choice(len(wkb), size=min(n, len(wkb)),
                                                    replace=False))
    return fields[0][pick], shapely.from_wkb(wkb[pick]), meta["crs"]


def _scene(root: Path):
    from sentinelle.catalog import open_catalog

    return open_catalog(root / "catalog").scenes[0]


def run_ours(root: Path, n: int, mask: bool = True) -> dict:
    import dask
    import shapely

    from sentinelle.analysis.indices import compute_index
    from sentinelle.analysis.zonal import Zones, zonal_stats
    from sentinelle.catalog import Area, open_catalog
    from sentinelle.catalog.imagery import read_imagery
    from sentinelle.settings import Limits

    ids, geoms, crs = _parcels(root, n)
    catalog = open_catalog(root / "catalog")
    limits = Limits(max_pixels=10**10, chunk_size=2048)
    start = time.perf_counter()
    with dask.config.set(scheduler="threads"):
        zones = Zones.from_arrays(ids, geoms, crs)
        area = Area(shapely.box(*shapely.total_bounds(zones.geometries)), zones.crs)
        imagery = read_imagery(catalog, area, None, ["red", "nir"], mask=mask, limits=limits)
        rows = zonal_stats(compute_index(imagery, "NDVI"), zones, STATS, max_zones=len(zones))
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "zones": len(rows),
            "mean": {str(r["id"]): r["mean"] for r in rows[::50]}}


def run_ours_nomask(root: Path, n: int) -> dict:
    return run_ours(root, n, mask=False)


def _read_ndvi(root: Path):
    """red + nir read whole with rasterio, NDVI in float32 with NaN for nodata."""
    import numpy as np
    import rasterio

    scene = _scene(root)
    bands = {}
    for name in ("red", "nir"):
        asset = scene.assets[name]
        with rasterio.open(asset.href) as ds:
            dn = ds.read(1)
            transform, crs = ds.transform, ds.crs
        values = dn.astype("float32") * np.float32(asset.scale) + np.float32(asset.offset)
        values[dn == asset.nodata] = np.nan
        bands[name] = values
    red, nir = bands["red"], bands["nir"]
    ndvi = (nir - red) / (nir + red)
    return ndvi, transform, crs


def run_exactextract(root: Path, n: int) -> dict:
    from exactextract import exact_extract
    from exactextract.raster import NumPyRasterSource

    ids, geoms, _ = _parcels(root, n)
    start = time.perf_counter()
    ndvi, t, crs = _read_ndvi(root)
    height, width = ndvi.shape
    source = NumPyRasterSource(ndvi, t.c, t.f + t.e * height, t.c + t.a * width, t.f,
                               srs_wkt=crs.wkt)
    features = [{"type": "Feature", "id": str(i), "properties": {},
                 "geometry": g.__geo_interface__} for i, g in zip(ids, geoms)]
    results = exact_extract(source, features, ["mean", "stdev", "count"], include_cols=["id"])
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "zones": len(results),
            "mean": {f["id"]: f["properties"]["mean"] for f in results[::50]}}


def run_rasterstats(root: Path, n: int, in_memory: bool = False) -> dict:
    import tempfile

    import numpy as np
    import rasterio
    from rasterstats import zonal_stats

    ids, geoms, _ = _parcels(root, n)
    subset = slice(0, RASTERSTATS_SUBSET)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        ndvi, transform, crs = _read_ndvi(root)
        if in_memory:
            raster, options = ndvi, {"affine": transform, "nodata": np.nan}
        else:  # the usual way: rasterstats reads the window of each feature from a file
            raster, options = str(Path(tmp) / "ndvi.tif"), {}
            height, width = ndvi.shape
            with rasterio.open(raster, "w", driver="GTiff", width=width, height=height,
                               count=1, dtype="float32", crs=crs, transform=transform,
                               nodata=np.nan, tiled=True, blockxsize=512,
                               blockysize=512) as dst:
                dst.write(ndvi, 1)
            del ndvi
        read = time.perf_counter() - start
        start = time.perf_counter()
        results = zonal_stats(list(geoms[subset]), raster, stats=["mean", "std", "count"],
                              **options)
        stats = time.perf_counter() - start
    done = len(results)
    return {"seconds": read + stats * len(ids) / done, "measured_seconds": read + stats,
            "read_seconds": read, "zones": len(ids), "measured_zones": done,
            "mean": {str(i): r["mean"] for i, r in zip(ids[subset][::50], results[::50])}}


def run_rasterstats_array(root: Path, n: int) -> dict:
    return run_rasterstats(root, n, in_memory=True)


METHODS = {"sentinelle": run_ours, "sentinelle-nomask": run_ours_nomask,
           "exactextract": run_exactextract, "rasterstats": run_rasterstats,
           "rasterstats-array": run_rasterstats_array}


def child(method: str, root: Path, n: int) -> None:
    result = METHODS[method](root, n)
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _agree(ours: dict, other: dict, tolerance: float) -> float:
    """Largest difference of the mean over the parcels both report (sampled)."""
    common = [k for k in ours["mean"] if k in other["mean"]
              and ours["mean"][k] is not None and other["mean"][k] is not None]
    worst = max((abs(ours["mean"][k] - other["mean"][k]) for k in common), default=0.0)
    if worst > tolerance:
        raise SystemExit(f"mean NDVI differs by {worst:.2g} (> {tolerance}) between methods")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder with catalog/ and vectors/")
    parser.add_argument("--parcels", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", choices=sorted(METHODS))
    args = parser.parse_args()
    if args.child:
        child(args.child, args.root, args.parcels)
        return
    methods = list(METHODS)
    try:
        import rasterstats  # noqa: F401
    except ImportError:
        print("rasterstats is not installed (pip install rasterstats): skipped")
        methods = [m for m in methods if not m.startswith("rasterstats")]
    best: dict[str, dict] = {}
    for _ in range(args.repeat):
        for method in methods:
            out = subprocess.run([sys.executable, __file__, str(args.root), "--child", method,
                                  "--parcels", str(args.parcels)],
                                 check=True, capture_output=True, text=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            if method not in best or result["seconds"] < best[method]["seconds"]:
                best[method] = result
    ours = best["sentinelle"]
    diff = _agree(best["sentinelle-nomask"], best["exactextract"], 1e-6)
    print(f"{args.parcels:,} parcels, statistics {', '.join(STATS)}; best of {args.repeat}")
    print(f"{'method':<22}{'parcels/s':>11}{'seconds':>9}{'peak RSS MB':>13}")
    for name in methods:
        result = best[name]
        rate = result["zones"] / result["seconds"]
        note = (f"  (read+NDVI {result['read_seconds']:.2f} s, then "
                f"{result['measured_zones']:,} parcels in "
                f"{result['measured_seconds'] - result['read_seconds']:.2f} s, scaled)"
                if name.startswith("rasterstats") else "")
        print(f"{name:<22}{rate:>11,.0f}{result['seconds']:>9.2f}{result['max_rss_mb']:>13.0f}"
              f"{note}")
    print(f"mean NDVI, sentinelle-nomask vs exactextract: max difference {diff:.1e}")
    for name in ("sentinelle", "sentinelle-nomask"):
        for other, target in (("exactextract", 0.8), ("rasterstats", 20),
                              ("rasterstats-array", 20)):
            if other in best:
                ratio = best[other]["seconds"] / best[name]["seconds"]
                print(f"ratio {name} / {other} throughput: {ratio:.2f}x (target ≥ {target}x)")
    if "rasterstats" in best:
        rs = _agree(ours, best["rasterstats"], 0.05)
        print(f"mean NDVI, sentinelle vs rasterstats (centre-of-pixel): max difference {rs:.1e}")


if __name__ == "__main__":
    main()
