"""WMS GetMap latency: 256 × 256 Web-Mercator tiles of ``bretagne:NDVI`` over the sample area.

Methods, in the same run, on the same tiles (every XYZ tile of zooms 14–16 that lies inside the
sample area east of Rennes, one date, so every tile takes the tile fast path):

* ``wms``: ``GET /wms?REQUEST=GetMap`` against a real ``sentinelle serve`` process (Flask's
  threaded server, a thread per request, as the tests run it);
* ``wms-gunicorn``: the same against gunicorn with ``deploy/gunicorn.conf.py`` (gthread
  workers, as deployed);
* ``wms-general``: ``sentinelle serve`` with ``SENTINELLE_TILE_FAST_PATH=0``, the general path
  every tile took before the fast path (SCL cloud search, stackstac/Dask cube);
* ``render_map``: :func:`sentinelle.rendering.render_map` + PNG in-process (what the WMS does
  minus HTTP and parameter checks);
* ``rasterio``: a plain rasterio read of the scene's red, nir and SCL COGs through a
  ``WarpedVRT`` straight onto the tile grid (nearest, or average when coarser than 10 m),
  numpy NDVI, SCL mask, the same colour ramp, PNG — the hand-written way to serve that tile.

Each method runs sequentially, then with ``--clients`` concurrent clients; each phase starts
with one untimed pass (GDAL caches, imports), then times ``--repeat`` passes.  The machine's
load average is printed before and after: on a shared machine, compare methods within a run.

    python benchmarks/wms.py [DATA_DIR] [--repeat 2] [--clients 8] [--methods wms,rasterio]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib.util
import io
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
LAYER = "bretagne:NDVI"
DATE = "2024-06-11"
ZOOMS = (14, 15, 16)
MAX_TILES = 60  # a seeded sample of the tiles, spread over the zooms
ORIGIN = 20037508.342789244


def tile_bounds(x: int, y: int, z: int) -> tuple[float, float, float, float]:
    size = 2 * ORIGIN / 2 ** z
    return (-ORIGIN + x * size, ORIGIN - (y + 1) * size, -ORIGIN + (x + 1) * size,
            ORIGIN - y * size)


def tiles_inside(data: Path) -> list[tuple[float, float, float, float]]:
    """Tiles of ZOOMS whose four corners lie inside the sample area (a seeded sample of
    ``MAX_TILES`` of them)."""
    import shapely

    from sentinelle.catalog.sample import outline

    area = outline(data, "bretagne").to_crs(3857).geometry
    minx, miny, maxx, maxy = area.bounds
    tiles = []
    for z in ZOOMS:
        size = 2 * ORIGIN / 2 ** z
        for x in range(math.floor((minx + ORIGIN) / size), math.ceil((maxx + ORIGIN) / size)):
            for y in range(math.floor((ORIGIN - maxy) / size),
                           math.ceil((ORIGIN - miny) / size)):
                bounds = tile_bounds(x, y, z)
                if area.contains(shapely.box(*bounds)):
                    tiles.append(bounds)
    if len(tiles) > MAX_TILES:
        import random

        tiles = random.Random(42).sample(tiles, MAX_TILES)
    return tiles


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return {"n": len(ordered), "p50_ms": statistics.median(ordered) * 1000,
            "p95_ms": p95 * 1000, "max_ms": ordered[-1] * 1000}


def run(fn, tiles, *, clients: int, repeat: int) -> tuple[dict[str, float], float]:
    """Untimed warm-up pass, then ``repeat`` timed passes; (latency stats, tiles/s)."""
    def timed(bounds):
        start = time.perf_counter()
        fn(bounds)
        return time.perf_counter() - start

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(timed, tiles))
        start = time.perf_counter()
        samples = [t for _ in range(repeat) for t in pool.map(timed, tiles)]
        wall = time.perf_counter() - start
    return percentiles(samples), len(samples) / wall


# --- the three ways to draw a tile ----------------------------------------------------------

def wms_client(url: str):
    session = requests.Session()

    def fetch(bounds):
        response = session.get(f"{url}/wms", params={
            "SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap", "LAYERS": LAYER,
            "STYLES": "", "CRS": "EPSG:3857", "BBOX": ",".join(f"{v:.3f}" for v in bounds),
            "WIDTH": 256, "HEIGHT": 256, "FORMAT": "image/png", "TRANSPARENT": "TRUE",
            "TIME": DATE}, timeout=120)
        if response.status_code != 200 or response.headers["Content-Type"] != "image/png":
            raise RuntimeError(response.text[:300])
        return response.content
    return fetch


def render_map_inprocess(data: Path):
    from sentinelle.catalog.sample import outline
    from sentinelle.catalog.source import open_catalog
    from sentinelle.encode import to_png
    from sentinelle.rendering import parse_when, render_map

    catalog = open_catalog(data / "catalog")
    area = outline(data, "bretagne")
    when = parse_when(DATE)

    def draw(bounds):
        return to_png(render_map(catalog, area, bounds, "EPSG:3857", (256, 256), index="NDVI",
                                 when=when).rgba)
    return draw


def rasterio_plain(data: Path):
    import numpy as np
    import rasterio
    from affine import Affine
    from PIL import Image
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    from sentinelle.analysis.render import colorize

    scene = next((data / "catalog" / "sentinel-2-l2a").glob(f"*_{DATE.replace('-', '')}_*"))
    if "30U" not in scene.name:
        scene = next(p for p in (data / "catalog" / "sentinel-2-l2a").glob(
            f"*30U*_{DATE.replace('-', '')}_*"))
    masked = np.array([0, 1, 3, 8, 9, 10, 11])

    def read(name, transform, resampling):
        with rasterio.open(scene / f"{name}.tif") as src, WarpedVRT(
                src, crs="EPSG:3857", transform=transform, width=256, height=256,
                resampling=resampling, nodata=0) as vrt:
            return vrt.read(1)

    def draw(bounds):
        minx, miny, maxx, maxy = bounds
        transform = Affine((maxx - minx) / 256, 0, minx, 0, -(maxy - miny) / 256, maxy)
        ground = (maxx - minx) / 256 * math.cos(math.radians(48.1))
        resampling = Resampling.average if ground > 10.1 else Resampling.nearest
        red = read("B04", transform, resampling).astype("float32")
        nir = read("B08", transform, resampling).astype("float32")
        scl = read("SCL", transform, Resampling.nearest)
        red_r, nir_r = red * 0.0001 - 0.1, nir * 0.0001 - 0.1
        with np.errstate(invalid="ignore", divide="ignore"):
            ndvi = (nir_r - red_r) / (nir_r + red_r)
        ndvi[(red == 0) | (nir == 0) | np.isin(scl, masked)] = np.nan
        buffer = io.BytesIO()
        Image.fromarray(colorize(ndvi, "ndvi"), "RGBA").save(buffer, format="PNG",
                                                              optimize=False)
        return buffer.getvalue()
    return draw


# --- servers --------------------------------------------------------------------------------

def start_server(data: Path, extra_env: dict | None = None) -> tuple[str, subprocess.Popen]:
    """``sentinelle serve`` (Flask's threaded server) on a free port."""
    sys.path.insert(0, str(REPO))
    import tempfile

    from tests.conftest import start_server as start

    server = start(data, Path(tempfile.mkdtemp(prefix="wms-bench-")), extra_env)
    return server.url, server.process


def start_gunicorn(data: Path) -> tuple[str, subprocess.Popen]:
    """gunicorn with ``deploy/gunicorn.conf.py`` on a free loopback port."""
    sys.path.insert(0, str(REPO))
    import tempfile

    from tests.conftest import free_port, wait_until_serving

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    workdir = Path(tempfile.mkdtemp(prefix="wms-bench-"))
    env = dict(os.environ, SENTINELLE_DATA=str(data), SENTINELLE_URL=url, PORT=str(port),
               SENTINELLE_HOST="127.0.0.1", PYGEOAPI_OPENAPI=str(workdir / "openapi.yml"))
    env.pop("PYGEOAPI_CONFIG", None)
    env.pop("SENTINELLE_CATALOG", None)
    log = workdir / "gunicorn.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(REPO / "deploy" / "gunicorn.conf.py")],
        cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_until_serving(url, process, log)
    except RuntimeError:
        process.terminate()
        raise
    return url, process


SERVERS = {"wms": lambda data: start_server(data),
           "wms-gunicorn": start_gunicorn,
           "wms-general": lambda data: start_server(data, {"SENTINELLE_TILE_FAST_PATH": "0"})}
METHODS = ("wms", "wms-gunicorn", "wms-general", "render_map", "rasterio")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path,
                        default=Path(os.environ.get("SENTINELLE_DATA", REPO / "data")))
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated, among {', '.join(METHODS)}")
    args = parser.parse_args()
    data = args.data.resolve()
    chosen = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(chosen) - set(METHODS)
    if unknown:
        parser.error(f"unknown method(s) {', '.join(sorted(unknown))}")
    tiles = tiles_inside(data)
    print(f"{len(tiles)} tiles of 256×256 (sampled from zooms {ZOOMS}) inside the Brittany sample, "
          f"{LAYER}, TIME={DATE}, {os.cpu_count()} cores; {load()}")
    print(f"{'method':<13} {'clients':>7} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'max ms':>8} {'tiles/s':>8}", flush=True)
    for name in chosen:
        if name == "wms-gunicorn" and importlib.util.find_spec("gunicorn") is None:
            print(f"{name:<13} skipped: gunicorn is not installed (pip install gunicorn)")
            continue
        process = None
        try:
            if name in SERVERS:
                url, process = SERVERS[name](data)
                fn = wms_client(url)
            else:
                fn = render_map_inprocess(data) if name == "render_map" else rasterio_plain(data)
            for clients in (1, args.clients):
                stats, rate = run(fn, tiles, clients=clients, repeat=args.repeat)
                print(f"{name:<13} {clients:>7} {stats['n']:>5} {stats['p50_ms']:>8.1f} "
                      f"{stats['p95_ms']:>8.1f} {stats['max_ms']:>8.1f} {rate:>8.1f}",
                      flush=True)
        finally:
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
    print(load())


if __name__ == "__main__":
    main()
