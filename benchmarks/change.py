"""Change-detection throughput: the ``change-detection`` process's compute path versus plain
rasterio + numpy, over the full-size scene (``make bench`` generates it with
``sentinelle sample-data build/fullsize --tile-size 10980``).

The full-size catalog has one date, so a second item is written into a temporary catalog: the
same COGs under another id and date (25 days later).  Both dates are therefore read from disk
in full by both methods (no cache shortcut on our side: the items differ, so Dask does not
merge the reads), and the NDVI difference is zero everywhere — no change polygons; the run
still measures reading two dates, masking, the index, the difference, the classes, the
connected-component sieve and the summary.

* ``sentinelle``: :func:`sentinelle.processes.change_detection.change_detection` (search with
  the cloud fraction from SCL, lazy cubes, SCL masks, NDVI, difference and classes, streamed
  block by block) then :func:`~sentinelle.processes.change_detection.run` (sieve of
  components under 0.5 ha, polygons, areas);
* ``rasterio``: for each date red, nir and SCL read whole into numpy, SCL upsampled ×2, NDVI;
  then the difference and the threshold with numpy (the simplest script a user would write:
  no sieve, no polygons).

Each method runs in its own process so that its peak memory (max RSS) is its own.

    python benchmarks/change.py build/fullsize [--repeat 2]
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import _runner  # benchmarks/_runner.py: child processes, best run, peak memory

MASKED = (0, 1, 3, 8, 9, 10, 11)  # SCL classes masked by default
THRESHOLD = 0.2
SHIFT = dt.timedelta(days=25)


def two_date_catalog(catalog_dir: Path, out: Path) -> Path:
    """A static catalog with the full-size item and a copy of it ``SHIFT`` later (same COGs,
    absolute hrefs)."""
    source = catalog_dir / "catalog"
    root = json.loads((source / "catalog.json").read_text())
    collection_path = next(source.glob("*/collection.json"))
    collection = json.loads(collection_path.read_text())
    item_link = next(link for link in collection["links"] if link["rel"] == "item")
    item_path = (collection_path.parent / item_link["href"]).resolve()
    item = json.loads(item_path.read_text())
    for asset in item["assets"].values():
        if not asset["href"].startswith(("http", "/")):
            asset["href"] = str((item_path.parent / asset["href"]).resolve())
    when = dt.datetime.fromisoformat(item["properties"]["datetime"].replace("Z", "+00:00"))
    later = json.loads(json.dumps(item))
    later_when = when + SHIFT
    later["id"] = item["id"].replace(when.strftime("%Y%m%d"), later_when.strftime("%Y%m%d"))
    later["properties"]["datetime"] = later_when.isoformat().replace("+00:00", "Z")
    (out / collection_path.parent.name).mkdir(parents=True)
    (out / "catalog.json").write_text(json.dumps(root))
    links = [link for link in collection["links"] if link["rel"] != "item"]
    for entry in (item, later):
        folder = out / collection_path.parent.name / entry["id"]
        folder.mkdir()
        (folder / f"{entry['id']}.json").write_text(json.dumps(entry))
        links.append({"rel": "item", "href": f"./{entry['id']}/{entry['id']}.json",
                      "type": "application/json"})
    collection["links"] = links
    (out / collection_path.parent.name / "collection.json").write_text(json.dumps(collection))
    return out


def _dates(catalog):
    return sorted({s.date for s in catalog.scenes})


def run_ours(catalog_dir: Path) -> dict:
    import dataclasses

    import dask

    from sentinelle.catalog import Area, Interval, open_catalog
    from sentinelle.processes.change_detection import change_detection, run
    from sentinelle.settings import Limits

    with tempfile.TemporaryDirectory() as tmp:
        catalog = open_catalog(two_date_catalog(catalog_dir, Path(tmp)))
        scene = catalog.scenes[0]
        asset = scene.assets["red"]
        x0, y1 = asset.transform[2], asset.transform[5]
        height, width = asset.shape
        area = Area.from_bbox([x0, y1 - 10 * height, x0 + 10 * width, y1], crs=scene.epsg)
        first, second = _dates(catalog)
        day = dt.timedelta(days=1)
        utc = dt.timezone.utc

        def interval(d):
            start = dt.datetime.combine(d, dt.time.min, tzinfo=utc)
            return Interval(start, start + day - dt.timedelta(microseconds=1))

        limits = dataclasses.replace(Limits(), max_pixels=10**10, chunk_size=2048)
        start = time.perf_counter()
        with dask.config.set(scheduler="threads"):
            ds = change_detection(catalog, area, interval(first), interval(second),
                                  index="NDVI", threshold=THRESHOLD, max_cloud=100,
                                  limits=limits)
            result = run(ds, min_area_ha=0.5)
        seconds = time.perf_counter() - start
    valid = int((result.classes != 0).sum())
    return {"seconds": seconds, "pixels": width * height, "valid": valid,
            "loss": int((result.classes == 2).sum()), "gain": int((result.classes == 3).sum()),
            "polygons": len(result.changes["features"])}


def run_rasterio(catalog_dir: Path) -> dict:
    import numpy as np
    import rasterio

    from sentinelle.catalog import open_catalog

    with tempfile.TemporaryDirectory() as tmp:
        catalog = open_catalog(two_date_catalog(catalog_dir, Path(tmp)))
        scenes = sorted(catalog.scenes, key=lambda s: s.datetime)
        start = time.perf_counter()
        ndvis = []
        for scene in scenes:
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
            red, nir = bands.pop("red"), bands.pop("nir")
            ndvi = (nir - red) / (nir + red)
            del red, nir
            ndvi[bad] = np.nan
            ndvis.append(ndvi)
        delta = ndvis[1] - ndvis[0]
        del ndvis
        valid = np.isfinite(delta)
        loss = int((delta <= -THRESHOLD).sum())
        gain = int((delta >= THRESHOLD).sum())
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "pixels": delta.size, "valid": int(valid.sum()), "loss": loss,
            "gain": gain}


METHODS = {"sentinelle": run_ours, "rasterio": run_rasterio}


def report(best: dict, peak: dict) -> None:
    ours, plain = best["sentinelle"], best["rasterio"]
    if ours["valid"] != plain["valid"]:
        raise SystemExit(f"results differ: {ours} vs {plain}")
    print(f"{'method':<36}{'Mpx/s':>10}{'seconds':>10}{'peak RSS MB':>14}")
    for name, key in (("sentinelle change-detection (dask)", "sentinelle"),
                      ("rasterio + numpy, whole bands", "rasterio")):
        result = best[key]
        rate = result["pixels"] / result["seconds"] / 1e6
        print(f"{name:<36}{rate:>10.1f}{result['seconds']:>10.2f}{peak[key]:>14.0f}")
    print(f"ratio sentinelle / plain throughput: {plain['seconds'] / ours['seconds']:.2f}x "
          f"({ours['valid']:,} valid px on both dates, loss {ours['loss']}, gain "
          f"{ours['gain']}, {ours['polygons']} polygons)")


if __name__ == "__main__":
    _runner.main(__doc__, __file__, METHODS, report)
