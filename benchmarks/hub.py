"""The hub's cost: mirroring a 10 × 10 km area out of a full-size scene versus downloading the
whole assets, both over loopback HTTP in the same run, bytes counted by the server.

The full-size scene (``sentinelle sample-data build/fullsize --tile-size 10980``, made by
``make bench``) is served by :class:`~sentinelle.catalog.hub.testing.RangeServer` (Range
requests, byte counting) behind a real STAC API (``rustac serve``).  Two syncs run: the areas'
windows (the hub's default) and ``whole: true``.  The figures are printed and written as JSON
(``--output``, default ``build/hub-benchmark.json``) for ``benchmarks/hub_costs.py``.

    python benchmarks/hub.py build/fullsize [--km 10] [--rate 12.5e6]

It runs twice: at loopback speed, then with the server capped at ``--rate`` bytes/s per
connection (default 100 Mbit/s, a plausible public upstream), where time follows bytes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

BANDS = ["blue", "green", "red", "nir", "swir16", "scl"]


def _area_bbox(transform: list[float], shape: list[int], km: float) -> list[float]:
    """A km × km square centred on the tile, in the tile's CRS."""
    x0, y1 = transform[2], transform[5]
    size = transform[0] * shape[1]
    cx, cy = x0 + size / 2, y1 - size / 2
    half = km * 500
    return [cx - half, cy - half, cx + half, cy + half]


def run(fullsize: Path, km: float, work: Path, rate: float | None = None) -> dict:
    import shapely
    from pyproj import Transformer

    from sentinelle.catalog.hub import parse_config, sync
    from sentinelle.catalog.hub.fetch import covering_bytes
    from sentinelle.catalog.hub.testing import RangeServer, StacApi, publish_items
    from sentinelle.catalog.presets import get_preset
    from sentinelle.catalog.scenes import scene_from_item

    catalog = fullsize / "catalog"
    collection_dir = catalog / "sentinel-2-l2a"
    with RangeServer(collection_dir, rate=rate) as server:
        # serve the files where they are: hrefs <server>/<item id>/<file> match the layout
        items = publish_items(catalog, collection_dir, server.url)
        item = items[0]
        epsg = scene_from_item(item, get_preset("earth-search")).epsg
        red = item["assets"]["red"]
        utm = _area_bbox(red["proj:transform"], red["proj:shape"], km)
        to_lonlat = Transformer.from_crs(epsg, "OGC:CRS84", always_xy=True)
        area = shapely.transform(shapely.segmentize(shapely.box(*utm), 100),
                                 to_lonlat.transform, interleaved=False)
        area_file = work / "area.geojson"
        area_file.write_text(json.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {}, "geometry": shapely.geometry.mapping(area)}]}))
        collection = json.loads((collection_dir / "collection.json").read_text())
        with StacApi(collection, items, work / "api") as api:
            base = {"upstream": {"url": api.url, "preset": "earth-search"},
                    "areas": [{"path": str(area_file), "name": f"{km:g}km"}],
                    "assets": BANDS, "max_cloud": 80, "retries": 1, "backoff": 0.5,
                    "timeout": 600}
            results = {}
            for mode, extra in (("window", {}), ("whole", {"whole": True})):
                target = work / f"{mode}-{rate}"
                server.reset_counters()
                start = time.perf_counter()
                report = sync(parse_config(dict(base, target=str(target), **extra)))
                seconds = time.perf_counter() - start
                if not report.ok:
                    raise SystemExit(report.format())
                stored = sum(p.stat().st_size for p in target.rglob("*.tif"))
                results[mode] = {
                    "seconds": round(seconds, 2),
                    "server_bytes": server.bytes_sent("*.tif"),
                    "server_body_bytes": server.bytes_sent("*.tif", headers=False),
                    "requests": server.requests("*.tif"),
                    "client_bytes": report.bytes_assets,
                    "cloud_check_bytes": report.bytes_cloud,
                    "stored_bytes": stored,
                    "whole_bytes": report.bytes_full,
                }
                if mode == "window":
                    results[mode]["least_bytes"] = sum(
                        covering_bytes(str(collection_dir / p.lstrip("/")), tuple(utm))[0]
                        for p in server.paths())
                    results[mode]["per_band_stored"] = {
                        p.stem: p.stat().st_size for p in target.rglob("*.tif")}
            # a second sync of the windows: nothing new, nothing transferred
            server.reset_counters()
            start = time.perf_counter()
            again = sync(parse_config(dict(base, target=str(work / f"window-{rate}"))))
            results["resync"] = {"seconds": round(time.perf_counter() - start, 2),
                                 "server_bytes": server.bytes_sent("*.tif"),
                                 "assets_skipped": again.assets_skipped}
    tile_km = red["proj:shape"][1] * red["proj:transform"][0] / 1000
    window, whole = results["window"], results["whole"]
    return {
        "server_rate": rate,
        "scene": item["id"], "bands": BANDS, "area_km2": km * km,
        "tile_km2": round(tile_km * tile_km, 1),
        "area_fraction": round(km * km / (tile_km * tile_km), 5),
        **results,
        "ratio_bytes": round(whole["server_bytes"] / window["server_bytes"], 1),
        "ratio_seconds": round(whole["seconds"] / max(window["seconds"], 1e-9), 1),
        "fetched_over_least": round(window["server_body_bytes"] / window["least_bytes"], 3),
        "stored_per_km2_per_date": round(window["stored_bytes"] / (km * km)),
        "fetched_per_km2_per_date": round(window["server_bytes"] / (km * km)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("fullsize", type=Path, nargs="?", default=Path("build/fullsize"))
    parser.add_argument("--km", type=float, default=10.0, help="side of the square area (km)")
    parser.add_argument("--rate", type=float, default=12.5e6,
                        help="second run: server bytes/s per connection (12.5e6 = 100 Mbit/s)")
    parser.add_argument("--output", type=Path, default=Path("build/hub-benchmark.json"))
    args = parser.parse_args()
    if not (args.fullsize / "catalog" / "catalog.json").exists():
        sys.exit(f"no full-size scene in {args.fullsize}: run "
                 f"`sentinelle sample-data {args.fullsize} --tile-size 10980` (or make bench)")
    runs = []
    for rate in (None, args.rate):
        work = Path(tempfile.mkdtemp(prefix="hub-bench-"))
        try:
            runs.append(run(args.fullsize, args.km, work, rate))
        finally:
            shutil.rmtree(work, ignore_errors=True)
    for result in runs:
        _print(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"loopback": runs[0], "throttled": runs[1]}, indent=1))
    print(f"written to {args.output}")


def _print(result: dict) -> None:
    window, whole = result["window"], result["whole"]
    mb = 1e6
    link = "loopback, full speed" if not result["server_rate"] else \
        f"server capped at {result['server_rate'] * 8 / 1e6:g} Mbit/s per connection"
    print(f"scene {result['scene']}, {len(result['bands'])} bands, area {result['area_km2']:g} km²"
          f" of {result['tile_km2']:g} km² ({result['area_fraction']:.2%} of the tile); {link}")
    print(f"  windows: {window['server_bytes'] / mb:8.1f} MB in {window['seconds']:6.2f} s "
          f"({window['requests']} requests; {window['stored_bytes'] / mb:.1f} MB stored; "
          f"{result['fetched_over_least']:.2f} × the compressed blocks covering the area; "
          f"{window['cloud_check_bytes'] / mb:.2f} MB of it to measure clouds)")
    print(f"  whole:   {whole['server_bytes'] / mb:8.1f} MB in {whole['seconds']:6.2f} s "
          f"({whole['requests']} requests)")
    print(f"  ratio:   {result['ratio_bytes']:.1f} × fewer bytes, "
          f"{result['ratio_seconds']:.1f} × less time")
    print(f"  re-sync: {result['resync']['server_bytes']} bytes in "
          f"{result['resync']['seconds']:.2f} s ({result['resync']['assets_skipped']} assets "
          "verified and skipped)")


if __name__ == "__main__":
    main()
