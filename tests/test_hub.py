"""The Copernicus hub against a real upstream on loopback: COGs served by an HTTP server that
honours Range requests and counts the bytes it sends, and a real STAC API (``rustac serve``)
whose items point to them.  Bytes are counted where they leave: on the server."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import shapely
import yaml
from click.testing import CliRunner
from pyproj import Transformer
from rio_cogeo.cogeo import cog_validate

from sentinelle.catalog import Area, Grid, StaticCatalog, load_cube, open_catalog, search
from sentinelle.catalog.dates import parse_interval
from sentinelle.catalog.hub import load_config, parse_config, sync
from sentinelle.catalog.hub.fetch import RateLimiter, covering_bytes, with_retries
from sentinelle.catalog.hub.plan import load_area, merge_boxes, part_boxes, snapped_box
from sentinelle.catalog.hub.testing import RangeServer, StacApi, publish_items, rustac_executable
from sentinelle.cli import main as cli
from sentinelle.errors import InvalidInput
from tests.conftest import REPO

pytestmark = pytest.mark.timeout(300)

INTERVAL = "2024-03-01/2024-10-31"
MAX_CLOUD = 30
ASSETS = ["red", "nir", "scl"]
#: 2 × 2 km in RGFG95 / UTM 22N inside the Guiana sample tile (one 512 px block of 10 m bands)
UTM_BOX = (335000, 538000, 337000, 540000)
#: per file opened: GDAL's first read (16 kB) and the rounding of ranges to its 16 kB chunks
HEADER_ALLOWANCE = 2 * 16384


def _area_geometry() -> shapely.Geometry:
    to_lonlat = Transformer.from_crs(32622, "OGC:CRS84", always_xy=True)
    return shapely.transform(shapely.segmentize(shapely.box(*UTM_BOX), 100), to_lonlat.transform,
                             interleaved=False)


@pytest.fixture(scope="module")
def upstream(sample_dir, tmp_path_factory):
    """All sample items (Brittany and Guiana) published over HTTP + a STAC API."""
    if rustac_executable() is None:
        pytest.skip("rustac (pip install rustac) is not installed")
    work = tmp_path_factory.mktemp("hub-upstream")
    server = RangeServer(work / "files").start()
    items = publish_items(sample_dir / "catalog", work / "files", server.url)
    collection = json.loads((sample_dir / "catalog" / "sentinel-2-l2a" /
                             "collection.json").read_text())
    api = StacApi(collection, items, work / "api").start()
    area_file = work / "montsinery.geojson"
    area_file.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "montsinery"},
         "geometry": shapely.geometry.mapping(_area_geometry())}]}))
    yield {"server": server, "api": api, "files": work / "files", "area_file": area_file,
           "work": work}
    api.stop()
    server.stop()


def _config(upstream, target: Path, **extra) -> dict:
    data = {"upstream": {"url": upstream["api"].url, "preset": "earth-search"},
            "collections": ["sentinel-2-l2a"],
            "areas": [str(upstream["area_file"])],
            "datetime": INTERVAL, "max_cloud": MAX_CLOUD, "assets": ASSETS,
            "target": str(target), "retries": 2, "backoff": 0.05, "timeout": 10}
    data.update(extra)
    return data


def _expected_ids(sample_dir) -> list[str]:
    """What the catalog layer itself finds over the area in the sample (the reference)."""
    matches = search(StaticCatalog(sample_dir / "catalog"), Area(_area_geometry()),
                     parse_interval(INTERVAL), max_cloud=MAX_CLOUD)
    return [m.scene.id for m in matches]


def _local_files(target: Path) -> list[Path]:
    return sorted(p for p in target.rglob("*.tif"))


def _check_hub(target: Path, ids: list[str], bands=ASSETS) -> dict:
    """Every item once, every asset a valid COG whose checksum matches; no partial files."""
    assert not list(target.rglob("*.part"))
    catalog = StaticCatalog(target)
    assert sorted(s.id for s in catalog.scenes) == sorted(ids)
    items = {}
    for path in target.rglob("*.json"):
        data = json.loads(path.read_text())
        if data.get("type") == "Feature":
            items[data["id"]] = data
    assert sorted(items) == sorted(ids)
    for item in items.values():
        assert sorted(item["assets"]) == sorted(bands)
        item_dir = target / item["collection"] / item["id"]
        for band, asset in item["assets"].items():
            path = (item_dir / asset["href"]).resolve()
            valid, errors, _ = cog_validate(str(path), quiet=True)
            assert valid, (path, errors)
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            assert asset["file:checksum"] == "1220" + digest
            assert asset["file:size"] == path.stat().st_size
            assert asset["hub:upstream_href"] == asset["alternate"]["upstream"]["href"]
            assert asset["hub:upstream_href"].startswith("http://127.0.0.1")
            assert asset["hub:fetched"]
    # one local file per item and band, nothing else
    assert len(_local_files(target)) == len(ids) * len(bands)
    return items


@pytest.fixture(scope="module")
def first_sync(upstream, tmp_path_factory):
    target = tmp_path_factory.mktemp("hub") / "guyane"
    upstream["server"].reset_counters()
    report = sync(parse_config(_config(upstream, target)))
    return {"target": target, "report": report, "all_paths": upstream["server"].paths(),
            "paths": {p: n for p, n in upstream["server"].paths().items() if p.endswith(".tif")},
            "bytes": upstream["server"].bytes_sent("*.tif"),
            "body": upstream["server"].bytes_sent("*.tif", headers=False),
            "requests": upstream["server"].requests("*.tif")}


def test_sync_fetches_the_right_items_and_only_the_area_bytes(first_sync, upstream, sample_dir):
    report, target = first_sync["report"], first_sync["target"]
    assert report.ok, report.format()
    expected = _expected_ids(sample_dir)
    assert 0 < len(expected) < 7  # some Guiana dates of the interval are too cloudy
    assert sorted(report.fetched) == sorted(expected)
    assert all("22NCL" in i for i in report.fetched)  # no Brittany item, no date outside
    assert len(report.rejected) == 7 - len(expected)  # the cloudy ones, with a reason
    assert all("cloud" in why for why in report.rejected.values())
    items = _check_hub(target, expected)

    # native grid kept: same CRS and resolution, origin on the upstream pixel lattice
    for item in items.values():
        for band, asset in item["assets"].items():
            upstream_tile = StaticCatalog(sample_dir / "catalog").get(item["id"]).assets[band]
            a, _, c, _, e, f = asset["proj:transform"]
            assert asset["proj:epsg"] == 32622
            assert (a, e) == (upstream_tile.transform[0], upstream_tile.transform[4])
            assert (c - upstream_tile.transform[2]) % a == 0
            assert (f - upstream_tile.transform[5]) % a == 0
            assert c <= UTM_BOX[0] and f >= UTM_BOX[3]  # the clip covers the area

    # bytes: at most 1.5 × the compressed blocks covering the area, plus headers
    least, opened = 0, 0
    for path in first_sync["paths"]:
        if not path.endswith(".tif"):
            continue
        local = upstream["files"] / path.lstrip("/")
        least += covering_bytes(str(local), UTM_BOX)[0]
        opened += 1
    http_headers = first_sync["bytes"] - first_sync["body"]
    assert first_sync["bytes"] <= 1.5 * least + opened * HEADER_ALLOWANCE + http_headers
    whole = sum((upstream["files"] / p.lstrip("/")).stat().st_size
                for p in first_sync["paths"] if p.endswith(".tif"))
    assert first_sync["body"] < 0.5 * whole
    # the client's own count (GDAL's network statistics) is the server's count
    assert report.bytes_assets + report.bytes_cloud == first_sync["body"]
    assert report.bytes_full > report.bytes_assets > 0
    assert report.bytes_written == sum(p.stat().st_size for p in _local_files(target))
    assert (target / ".hub" / "last-sync.json").exists()


def test_mirror_gives_the_upstream_ndvi(first_sync, sample_dir):
    from sentinelle.analysis.indices import compute_index

    hub = open_catalog(first_sync["target"])
    area = Area(_area_geometry())
    interval = parse_interval(INTERVAL)
    local = search(hub, area, interval, max_cloud=MAX_CLOUD)
    remote = search(StaticCatalog(sample_dir / "catalog"), area, interval, max_cloud=MAX_CLOUD)
    assert [m.scene.id for m in local] == [m.scene.id for m in remote]
    assert [m.cloud_fraction for m in local] == [m.cloud_fraction for m in remote]
    grid = Grid.from_area(area, 32622, 10)
    a = compute_index(load_cube([m.scene for m in local], ["red", "nir"], grid), "NDVI")
    b = compute_index(load_cube([m.scene for m in remote], ["red", "nir"], grid), "NDVI")
    a, b = a.compute().values, b.compute().values
    assert np.isfinite(a).mean() > 0.9
    np.testing.assert_array_equal(a, b)


def test_the_hub_is_served_as_a_stac_api(first_sync, upstream):
    """``rustac serve`` over the files the sync writes in .hub/api: the catalog layer searches
    it like any STAC API and reads the local COGs."""
    files = sorted((first_sync["target"] / ".hub" / "api").glob("*.json"))
    assert [f.name for f in files] == ["sentinel-2-l2a.collection.json",
                                       "sentinel-2-l2a.items.json"]
    collection = json.loads(files[0].read_text())
    items = json.loads(files[1].read_text())["features"]
    with StacApi(collection, items, upstream["work"] / "hub-api") as api:
        from sentinelle.catalog.source import StacApiCatalog

        area = Area(_area_geometry())
        served = search(StacApiCatalog(api.url), area, parse_interval(INTERVAL))
        local = search(open_catalog(first_sync["target"]), area, parse_interval(INTERVAL))
        assert [m.scene.id for m in served] == [m.scene.id for m in local]
        assert [m.cloud_fraction for m in served] == [m.cloud_fraction for m in local]


def test_second_sync_transfers_nothing(first_sync, upstream):
    server = upstream["server"]
    server.reset_counters()
    report = sync(parse_config(_config(upstream, first_sync["target"])))
    assert report.ok
    assert server.bytes_sent("*.tif") == 0 and server.requests("*.tif") == 0
    assert report.assets_fetched == 0 and report.fetched == []
    assert sorted(report.up_to_date) == sorted(first_sync["report"].fetched)
    assert report.bytes_assets == 0 and report.bytes_cloud == 0


def test_a_changed_local_file_is_fetched_again(first_sync, upstream, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(first_sync["target"], target)
    damaged = _local_files(target)[0]
    damaged.write_bytes(damaged.read_bytes()[:-10] + b"0123456789")
    upstream["server"].reset_counters()
    report = sync(parse_config(_config(upstream, target)))
    assert report.ok and report.assets_fetched == 1
    _check_hub(target, first_sync["report"].fetched)


def test_killed_sync_resumes_without_refetching(upstream, tmp_path, sample_dir):
    server = upstream["server"]
    target = tmp_path / "hub"
    config = tmp_path / "hub.yml"
    config.write_text(yaml.safe_dump(_config(upstream, target)))
    journal = target / ".hub" / "state.jsonl"
    server.set_rate(400_000)  # slow enough to be killed mid-run
    process = subprocess.Popen([sys.executable, "-m", "sentinelle.cli", "hub", "sync",
                                str(config), "--no-progress"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if journal.exists() and journal.read_text().count('"kind":"asset"') >= 4:
                break
            time.sleep(0.05)
        assert process.poll() is None, process.stdout.read().decode()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        server.set_rate(None)
        if process.poll() is None:
            process.kill()
    # what the killed run published is complete; nothing half-written is visible as .tif
    done = [json.loads(line) for line in journal.read_text().splitlines()
            if line.endswith("}") and '"kind":"asset"' in line]
    assert 4 <= len(done) < len(_expected_ids(sample_dir)) * len(ASSETS)
    visible = {str(p.relative_to(target)) for p in _local_files(target)}
    assert visible == {d["path"] for d in done}
    server.reset_counters()
    report = sync(parse_config(yaml.safe_load(config.read_text())))
    assert report.ok, report.format()
    assert report.assets_skipped == len(done)
    refetched = {p for p in server.paths() if any(d["upstream_href"].endswith(p) for d in done)}
    assert refetched == set()
    _check_hub(target, _expected_ids(sample_dir))


def test_upstream_dying_mid_sync_is_reported_then_resumed(upstream, tmp_path, sample_dir):
    server = upstream["server"]
    target = tmp_path / "hub"
    # no cloud filter: every request is an asset read (HEAD, header, blocks)
    config = parse_config(_config(upstream, target, retries=1, max_cloud=None))
    ids = [s.id for s in StaticCatalog(sample_dir / "catalog").find(
        Area(_area_geometry()), parse_interval(INTERVAL))]
    server.reset_counters()
    server.fail_after(10)  # the upstream answers 10 requests, then only 503s
    try:
        report = sync(config)
    finally:
        server.clear_faults()
    assert not report.ok and report.failed
    assert all("503" in msg or "Error" in msg for msg in report.failed.values())
    assert not list(target.rglob("*.part"))
    again = sync(config)
    assert again.ok, again.format()
    assert 0 < report.assets_fetched == again.assets_skipped
    _check_hub(target, ids)


def test_errors_are_retried_then_reported_per_item(upstream, tmp_path, sample_dir):
    server = upstream["server"]
    expected = _expected_ids(sample_dir)
    flaky, broken, slow = expected[0], expected[1], expected[2]
    server.add_fault(f"/{flaky}/B04.tif", "status", status=500, times=4)  # transient
    server.add_fault(f"/{slow}/B08.tif", "stall", seconds=4, times=1)  # one timeout
    server.add_fault(f"/{broken}/B08.tif", "corrupt")  # a corrupt COG, every time
    target = tmp_path / "hub"
    config = tmp_path / "hub.yml"
    config.write_text(yaml.safe_dump(_config(upstream, target, timeout=1)))
    try:
        result = CliRunner().invoke(cli, ["hub", "sync", str(config), "--no-progress"])
    finally:
        server.clear_faults()
    assert result.exit_code == 1, result.output
    assert f"FAILED {broken}: nir" in result.output
    assert "could not be fetched" in result.output
    report = json.loads((target / ".hub" / "last-sync.json").read_text())
    assert list(report["failed"]) == [broken]
    assert report["retries"] >= 2  # the flaky red, the slow nir, the corrupt nir
    assert sorted(report["fetched"]) == sorted(set(expected) - {broken})
    # the next run, upstream repaired, completes with exit status 0
    result = CliRunner().invoke(cli, ["hub", "sync", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    _check_hub(target, expected)


def test_whole_files_and_the_bandwidth_cap(upstream, tmp_path, sample_dir):
    server = upstream["server"]
    target = tmp_path / "whole"
    ids = [i for i in _expected_ids(sample_dir) if "_202407" in i or "_202408" in i]
    config = parse_config(_config(upstream, target, whole=True, assets=["scl", "red"],
                                  datetime="2024-07-01/2024-08-31",
                                  max_bytes_per_second=1_000_000))
    server.reset_counters()
    report = sync(config)
    assert report.ok and sorted(report.fetched) == sorted(ids)
    for item_id in ids:  # byte-for-byte copies of the upstream files
        for band, name in (("scl", "SCL.tif"), ("red", "B04.tif")):
            local = target / "sentinel-2-l2a" / item_id / f"{band}.tif"
            assert local.read_bytes() == (upstream["files"] / item_id / name).read_bytes()
    assert report.bytes_assets == report.bytes_full
    # the cap holds on average: the bytes took at least bytes / rate seconds
    assert report.throttled_seconds > 0
    assert report.seconds >= report.bytes_total / 1_000_000 * 0.9


def test_byte_counters_are_read_from_rasterios_gdal():
    """pyogrio's wheel bundles another libgdal: the counters must be rasterio's."""
    import pyogrio.raw  # noqa: F401
    import rasterio.env

    from sentinelle.catalog.hub.fetch import GdalTraffic

    rasterio.env.set_gdal_config("SENTINELLE_HUB_TEST", "seen")
    try:
        assert GdalTraffic.lib().CPLGetConfigOption(b"SENTINELLE_HUB_TEST", None) == b"seen"
    finally:
        rasterio.env.set_gdal_config("SENTINELLE_HUB_TEST", None)


def test_rate_limiter_and_retries_units():
    now, slept = [0.0], []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(1000, sleep=sleep, clock=lambda: now[0])
    limiter.consume(500)
    now[0] += 0.25  # time spent reading
    limiter.consume(1500)
    assert slept == [0.5, 1.25] and limiter.slept == 1.75
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OSError("boom")
        return "ok"

    waits = []
    assert with_retries(flaky, retries=3, backoff=1, sleep=waits.append) == "ok"
    assert len(waits) == 2 and 0.9 <= waits[0] <= 1.1 and 1.8 <= waits[1] <= 2.2
    with pytest.raises(OSError):
        with_retries(lambda: (_ for _ in ()).throw(OSError("down")), retries=1, backoff=0,
                     sleep=waits.append)


def test_config_is_checked_and_areas_are_read(tmp_path, sample_dir):
    base = {"upstream": "http://127.0.0.1:1", "areas": [{"bbox": [-52.5, 4.8, -52.4, 4.9]}],
            "assets": ["red"], "target": "hub"}
    config = parse_config(dict(base, days=90), tmp_path)
    interval = config.interval()
    assert (interval.end - interval.start).days == 90
    assert config.target == tmp_path / "hub"
    for bad, message in [({"colour": 1}, "unknown configuration keys"),
                         ({"assets": ["B04"]}, "our names"),
                         ({"days": 90, "datetime": "2024-01-01/2024-02-01"}, "either"),
                         ({"max_cloud": 120}, "percentage"),
                         ({"areas": []}, "at least one area")]:
        with pytest.raises(InvalidInput, match=message):
            parse_config(dict(base, **bad), tmp_path)
    path = tmp_path / "hub.yml"
    path.write_text(yaml.safe_dump(dict(base, areas=[str(sample_dir / "vectors" /
                                                         "guyane-communes.gpkg")])))
    spec = load_config(path).areas[0]
    (named,) = load_area(spec)
    assert named.name == "guyane-communes" and named.area.crs.to_epsg() == 2972
    box = snapped_box(named.area, 32622)
    assert all(v % 60 == 0 for v in box)
    communes = load_area(replace(spec, split="code"))
    assert len(communes) > 1 and all(c.name.startswith("973") for c in communes)
    # overlapping boxes merge; far or diagonal neighbours keep tight boxes
    groups = merge_boxes({"a": (0, 0, 60, 60), "b": (20, 20, 80, 80),
                          "c": (600, 600, 660, 660), "d": (660, 660, 720, 720)})
    assert sorted(g[0] for g in groups) == [("a", "b"), ("c",), ("d",)]
    # an area with an islet far away: two boxes, not one over the sea
    islands = Area(shapely.MultiPolygon([shapely.box(0, 0, 1000, 1000),
                                         shapely.box(50_000, 0, 50_100, 100)]), "EPSG:32622")
    assert part_boxes(islands, 32622) == [(0, 0, 1020, 1020), (49980, 0, 50100, 120)]


def test_bad_config_is_a_usage_error(tmp_path):
    path = tmp_path / "hub.yml"
    path.write_text("upstream: {url: http://127.0.0.1:1}\nassets: [red]\n")
    result = CliRunner().invoke(cli, ["hub", "sync", str(path)])
    assert result.exit_code == 2 and "areas" in result.output


def test_search_failure_exits_non_zero(tmp_path):
    from tests.conftest import free_port

    path = tmp_path / "hub.yml"
    path.write_text(yaml.safe_dump({
        "upstream": f"http://127.0.0.1:{free_port()}", "assets": ["red"], "target": "hub",
        "areas": [{"bbox": [-52.5, 4.8, -52.4, 4.9]}], "retries": 1, "backoff": 0.01}))
    result = CliRunner().invoke(cli, ["hub", "sync", str(path), "--no-progress"])
    assert result.exit_code == 1
    assert "FAILED search" in result.output and "unavailable" in result.output
