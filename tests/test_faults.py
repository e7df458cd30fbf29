"""Faults, injected for real: each one answers the request it concerns with a clear error (the
status says whose fault it is, the message names the file, scene or upstream) while the
requests it does not concern, sent at the same time, succeed.

* damaged catalog: a copy of the sample with one COG truncated, one overwritten with garbage
  and one deleted — 502 naming the file and the scene; a composite leaves out the scene whose
  file does not open and says so;
* upstream STAC API (``rustac serve`` behind a loopback proxy that can refuse, stall or fail)
  and COGs over HTTP (:class:`~sentinelle.catalog.hub.testing.RangeServer`): 503 when down,
  504 within a bounded time when slow, 502 on a 5xx or a 404 asset;
* full results disk: a 64 KiB tmpfs as the results folder (skipped when mount is not
  allowed) — 507 "results disk full", the job failed with that message, no half file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import requests
import yaml
from lxml import etree
from rasterio.io import MemoryFile

from tests.conftest import REPO, free_port, start_server

pytestmark = pytest.mark.server

BRITTANY = [-1.58, 48.08, -1.54, 48.11]  # inside the Brittany sample area
SMALL = [-1.57, 48.09, -1.566, 48.093]  # a few hundred metres: results fit in 64 KiB
GUIANA = [-52.47, 4.83, -52.43, 4.87]
TRUNCATED = "S2B_30UXU_20240517_0_L2A"  # red (B04) cut to a tenth: header intact, blocks not
GARBAGE = "S2A_30UXU_20240611_0_L2A"  # nir (B08) overwritten with random bytes
MISSING = "S2B_30UXU_20240227_0_L2A"  # nir (B08) deleted
HEALTHY_DAY = "2024-08-25"  # a clear day untouched by the faults
BOUND = 60.0  # s: no request may take longer, faulty or not


def concurrently(*calls):
    """Run the calls at the same time; their results (or exceptions raised) and durations."""
    def timed(call):
        start = time.monotonic()
        try:
            return call(), time.monotonic() - start
        except Exception as err:  # noqa: BLE001 - reported by the test
            return err, time.monotonic() - start

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(timed, calls))


def get(server, path, **params):
    return lambda: requests.get(f"{server.url}{path}", params=params, timeout=BOUND * 2)


def execute(server, inputs, headers=None):
    return lambda: requests.post(f"{server.url}/processes/spectral-index/execution",
                                 json={"inputs": inputs}, headers=headers, timeout=BOUND * 2)


def assert_clear(response, status: int, *words: str) -> str:
    """The response has ``status``, no traceback, and a message containing ``words``."""
    assert isinstance(response, requests.Response), response
    text = response.text
    assert response.status_code == status, (response.status_code, text[:500])
    assert "Traceback" not in text and "Internal Server Error" not in text
    if response.headers.get("Content-Type", "").startswith("text/xml"):
        message = etree.fromstring(response.content).xpath("string(//*[local-name()="
                                                           "'ServiceException'])")
    else:
        body = response.json()
        message = body.get("description") or body.get("detail") or json.dumps(body)
    for word in words:
        assert word in message, (word, message)
    return message


def assert_ok(response, kind: str = "application/prs.coverage+json"):
    assert isinstance(response, requests.Response), response
    assert response.status_code == 200, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith(kind), response.headers["Content-Type"]
    return response


def copy_sample(sample_dir: Path, target: Path) -> Path:
    """The sample's catalog and vectors, copied (so they can be damaged)."""
    for part in ("catalog", "vectors"):
        shutil.copytree(sample_dir / part, target / part)
    return target


def scene_dir(data: Path, scene: str) -> Path:
    return next((data / "catalog").glob(f"*/{scene}"))


# --- a damaged catalog ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def results_disk(tmp_path_factory):
    """A 64 KiB tmpfs for the results folder: ``(folder, None)``, or ``(folder, reason)``
    when mounting is not allowed here (then a plain folder, and the disk test skips)."""
    folder = tmp_path_factory.mktemp("results")
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)],
                              capture_output=True, text=True, timeout=10)
        reason = None if done.returncode == 0 else \
            f"cannot mount a tmpfs: {done.stderr.strip() or done.returncode}"
    except (OSError, subprocess.SubprocessError) as err:
        reason = f"cannot mount a tmpfs: {err}"
    yield folder, reason
    if reason is None:
        subprocess.run(["umount", str(folder)], check=False, timeout=30)


@pytest.fixture(scope="module")
def damaged(sample_dir, tmp_path_factory, results_disk):
    """A server over a copy of the sample with a truncated, a garbage and a missing COG, its
    results folder on a tiny disk (one server for both kinds of fault: faster)."""
    data = copy_sample(sample_dir, tmp_path_factory.mktemp("damaged"))
    red = scene_dir(data, TRUNCATED) / "B04.tif"
    with red.open("r+b") as handle:
        handle.truncate(red.stat().st_size // 10)  # overview and full-resolution blocks cut
    nir = scene_dir(data, GARBAGE) / "B08.tif"
    nir.write_bytes(np.random.default_rng(0).bytes(nir.stat().st_size))
    (scene_dir(data, MISSING) / "B08.tif").unlink()
    srv = start_server(data, tmp_path_factory.mktemp("damaged-server"),
                       {"SENTINELLE_RESULTS": str(results_disk[0])})
    yield srv
    srv.stop()


def test_damaged_files_give_502_naming_them_while_the_rest_is_served(damaged):
    srv = damaged
    bbox = ",".join(map(str, BRITTANY))
    wms = dict(SERVICE="WMS", REQUEST="GetMap", VERSION="1.3.0", LAYERS="bretagne:NDVI",
               STYLES="", CRS="CRS:84", BBOX=bbox, WIDTH=64, HEIGHT=64, FORMAT="image/png")
    results = concurrently(
        # concerned by a fault
        get(srv, "/collections/bretagne-ndvi/coverage", bbox=bbox, datetime="2024-05-17"),
        get(srv, "/collections/bretagne-ndvi/map", bbox=bbox, datetime="2024-05-17",
            width=64, height=64),
        get(srv, "/wms", TIME="2024-05-17", **wms),
        execute(srv, {"area": BRITTANY, "datetime": "2024-06-11"}),
        get(srv, "/collections/bretagne-s2/coverage", bbox=bbox, datetime="2024-02-27",
            properties="red,nir"),
        # not concerned: another date, another area, features, records
        get(srv, "/collections/bretagne-ndvi/coverage", bbox=bbox, datetime=HEALTHY_DAY),
        get(srv, "/wms", TIME=HEALTHY_DAY, **wms),
        get(srv, "/collections/guyane-ndvi/map", bbox=",".join(map(str, GUIANA)),
            width=64, height=64),
        get(srv, "/collections/bretagne-parcels/items", limit=5, f="json"),
        get(srv, f"/collections/sentinel-2-l2a/items/{TRUNCATED}", f="json"),
    )
    (cov, map_, getmap, process, missing, *healthy), durations = zip(*results)
    red = f"{TRUNCATED}/B04.tif"
    for response in (cov, map_, getmap):
        assert_clear(response, 502, "upstream asset unreadable", red, f"scene {TRUNCATED}",
                     "band red", "truncated")
    assert getmap.headers["Content-Type"].startswith("text/xml")  # a WMS exception report
    assert_clear(process, 502, "upstream asset unreadable", f"{GARBAGE}/B08.tif",
                 "not a readable GeoTIFF")
    message = assert_clear(missing, 502, "upstream asset missing", f"{MISSING}/B08.tif",
                           "band nir", "no such file")
    assert str(srv.url) not in message and "/tmp/" not in message  # no server paths shown
    coverage, tile, guiana, features, record = healthy
    assert assert_ok(coverage).json()["sentinelle:scenes"] == ["S2B_30UXU_20240825_0_L2A"]
    assert_ok(tile, "image/png")
    assert_ok(guiana, "image/png")
    assert len(assert_ok(features, "application/").json()["features"]) == 5
    assert assert_ok(record, "application/").json()["id"] == TRUNCATED
    assert max(durations) < BOUND, durations


def test_composite_leaves_out_a_scene_that_does_not_open_and_says_so(damaged, server):
    """A missing or corrupt file is a scene lost, like a cloudy date: the composite is made
    of the others, names the scene left out, and equals the composite of the others."""
    bbox = ",".join(map(str, BRITTANY))
    (got, _), (reference, _), (tiff, _) = concurrently(
        get(damaged, "/collections/bretagne-ndvi/coverage", bbox=bbox,
            datetime="2024-06-01/2024-08-31"),
        get(server, "/collections/bretagne-ndvi/coverage", bbox=bbox,
            datetime="2024-07-01/2024-08-31"),  # the pristine sample, without that scene
        get(damaged, "/collections/bretagne-ndvi/coverage", bbox=bbox,
            datetime="2024-06-01/2024-08-31", f="GTiff"),
    )
    body = assert_ok(got).json()
    assert body["sentinelle:scenes"] == ["S2A_30UXU_20240721_0_L2A", "S2B_30UXU_20240825_0_L2A"]
    assert body["sentinelle:composite"] == "median"
    assert list(body["sentinelle:skippedScenes"]) == [GARBAGE]
    assert "not a readable GeoTIFF" in body["sentinelle:skippedScenes"][GARBAGE]
    expected = assert_ok(reference).json()
    assert "sentinelle:skippedScenes" not in expected
    assert body["ranges"] == expected["ranges"]
    with MemoryFile(assert_ok(tiff, "image/tiff").content) as memfile, memfile.open() as ds:
        assert ds.tags()["SKIPPED_SCENES"] == GARBAGE


def test_composite_through_a_truncated_file_fails_naming_it(damaged):
    """Damage found only while reading blocks is not papered over: part of a scene would
    pass for clouds."""
    response = requests.get(f"{damaged.url}/collections/bretagne-ndvi/coverage", timeout=BOUND,
                            params={"bbox": ",".join(map(str, BRITTANY)),
                                    "datetime": "2024-05-01/2024-06-30"})
    assert_clear(response, 502, f"{TRUNCATED}/B04.tif", "truncated")


# --- a full results disk ----------------------------------------------------------------------

def fill(folder: Path) -> Path:
    """Fill the disk of ``folder`` to the last byte; returns the filler file."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while handle.write(b"\1" * 512):
                pass
        except OSError as err:
            assert err.errno == 28, err  # ENOSPC
    return filler


def wait_job(location: str) -> dict:
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        status = requests.get(f"{location}?f=json", timeout=30).json()
        if status["status"] not in ("accepted", "running"):
            return status
        time.sleep(0.2)
    raise AssertionError(f"job {location} still {status['status']} after {BOUND} s")


def test_full_results_disk_fails_jobs_with_507_while_maps_and_features_are_served(
        damaged, results_disk):
    folder, reason = results_disk
    if reason:
        pytest.skip(reason)
    srv = damaged
    inputs = {"area": SMALL, "datetime": HEALTHY_DAY}  # a COG of a few KB
    filler = fill(folder)
    try:
        results = concurrently(
            execute(srv, inputs, headers={"Prefer": "respond-async"}),
            execute(srv, inputs),  # synchronous: pygeoapi stores the result too
            get(srv, "/collections/bretagne-ndvi/map", bbox=",".join(map(str, BRITTANY)),
                datetime=HEALTHY_DAY, width=64, height=64),
            get(srv, "/collections/bretagne-ndvi/coverage", bbox=",".join(map(str, BRITTANY)),
                datetime=HEALTHY_DAY, f="GTiff"),
            get(srv, "/collections/bretagne-parcels/items", limit=5, f="json"),
        )
        (accepted, sync, map_, tiff, features), durations = zip(*results)
        assert accepted.status_code == 201, accepted.text
        job = wait_job(accepted.headers["Location"])
        assert job["status"] == "failed" and "results disk full" in job["message"], job
        failure = requests.get(f"{accepted.headers['Location']}/results?f=json", timeout=30)
        assert_clear(failure, 507, "results disk full")
        assert_clear(sync, 507, "results disk full")
        assert_ok(map_, "image/png")
        assert_ok(tiff, "image/tiff")
        assert len(assert_ok(features, "application/").json()["features"]) == 5
        assert sorted(p.name for p in folder.iterdir()) == ["filler"]  # no half file
        assert max(durations) < BOUND, durations
    finally:
        filler.unlink()
    # room again: jobs work again
    again = execute(srv, inputs, headers={"Prefer": "respond-async"})()
    assert again.status_code == 201
    assert_ok(execute(srv, inputs)(), "image/tiff")
    done = wait_job(again.headers["Location"])
    assert done["status"] == "successful", done["message"]
    stored = [p for p in folder.iterdir() if p.name.startswith("spectral-index-")]
    assert len(stored) == 2  # the synchronous result is stored too
    for path in stored:
        with MemoryFile(path.read_bytes()) as memfile, memfile.open() as ds:
            assert ds.count == 1 and ds.crs.to_epsg() == 32630


# --- an upstream STAC API and COGs over HTTP ---------------------------------------------------

SLOW_COG = "S2A_22NCL_20240812_0_L2A"  # its red band stalls longer than the timeout
GONE_COG = "S2A_22NCL_20241021_0_L2A"  # its nir band is not on the COG server (404)
GUIANA_DAY = "2024-07-13"  # a clear day over Guiana with every file served
HTTP_TIMEOUT = 2  # s, SENTINELLE_HTTP_TIMEOUT of the server under test
HTTP_RETRIES = 1


class FaultyProxy:
    """A loopback HTTP proxy in front of a real STAC API that can be down (the port refuses
    connections), ``slow`` (stalls ``delay`` seconds first) or answer ``error`` (HTTP 500).
    The upstream's own URL is rewritten to the proxy's in what it answers, so that clients
    follow links through the proxy."""

    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.mode, self.delay = "ok", 30.0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadingHTTPServer | None = None

    def _handler(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.mode == "slow":
                    time.sleep(proxy.delay)
                if proxy.mode == "error":
                    payload, status, kind = b'{"code": "ServerError"}', 500, "application/json"
                else:
                    answer = requests.request(
                        self.command, proxy.upstream + self.path, data=body or None,
                        headers={k: v for k, v in self.headers.items()
                                 if k.lower() in ("content-type", "accept")}, timeout=30)
                    payload = answer.content.replace(proxy.upstream.encode(),
                                                     proxy.url.encode())
                    status = answer.status_code
                    kind = answer.headers.get("Content-Type", "application/json")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (timeout)
                    pass

            do_GET = do_POST = _forward  # noqa: N815

        return Handler

    def up(self) -> None:
        if self._server is None:
            self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
            self._server.daemon_threads = True
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.mode = "ok"

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture(scope="module")
def upstream(sample_dir, tmp_path_factory):
    """Guiana's scenes behind a real STAC API (rustac) and a proxy, their COGs on a Range
    server: one COG stalls, one is missing."""
    from sentinelle.catalog.hub.testing import (
        RangeServer,
        StacApi,
        publish_items,
        rustac_executable,
    )

    if rustac_executable() is None:
        pytest.skip("rustac (pip install rustac) is not installed")
    work = tmp_path_factory.mktemp("upstream")
    with RangeServer(work / "cogs") as cogs:
        items = publish_items(sample_dir / "catalog", work / "cogs", cogs.url,
                              keep=lambda item: "_22NCL_" in item["id"])
        (work / "cogs" / GONE_COG / "B08.tif").unlink()
        cogs.add_fault(f"*/{SLOW_COG}/B04.tif", "stall", seconds=30)
        collection = json.loads((sample_dir / "catalog" / "sentinel-2-l2a" /
                                 "collection.json").read_text())
        with StacApi(collection, items, work / "api") as api:
            proxy = FaultyProxy(api.url)
            proxy.up()
            yield proxy
            proxy.down()


@pytest.fixture(scope="module")
def api_server(upstream, sample_dir, tmp_path_factory):
    """A server whose Guiana territory reads the upstream STAC API (its collections, WMS
    layers and the processes over Guiana); Brittany and the features stay local."""
    work = tmp_path_factory.mktemp("api-server")
    config = yaml.safe_load((REPO / "pygeoapi-config.yml").read_text(encoding="utf-8"))
    config["territories"]["guyane"]["imagery"]["s2"]["catalog"] = upstream.url
    (work / "config.yml").write_text(yaml.safe_dump(config, allow_unicode=True),
                                     encoding="utf-8")
    srv = start_server(sample_dir, work, {"SENTINELLE_HTTP_TIMEOUT": str(HTTP_TIMEOUT),
                                          "SENTINELLE_HTTP_RETRIES": str(HTTP_RETRIES)},
                       config=work / "config.yml")
    yield srv
    srv.stop()


def local_requests(srv):
    """Requests that do not touch the upstream: Brittany imagery, features, records, WMS."""
    bbox = ",".join(map(str, BRITTANY))
    return [
        get(srv, "/collections/bretagne-ndvi/coverage", bbox=bbox, datetime=HEALTHY_DAY),
        get(srv, "/collections/bretagne-parcels/items", limit=5, f="json"),
        get(srv, "/collections/sentinel-2-l2a/items", limit=2, f="json"),
        get(srv, "/wms", SERVICE="WMS", REQUEST="GetMap", VERSION="1.3.0",
            LAYERS="bretagne:NDVI", STYLES="", CRS="CRS:84", BBOX=bbox, WIDTH=64, HEIGHT=64,
            FORMAT="image/png", TIME=HEALTHY_DAY),
    ]


def assert_local_ok(responses) -> None:
    coverage, features, records, tile = responses
    assert assert_ok(coverage).json()["sentinelle:scenes"] == ["S2B_30UXU_20240825_0_L2A"]
    assert len(assert_ok(features, "application/").json()["features"]) == 5
    assert len(assert_ok(records, "application/").json()["features"]) == 2
    assert_ok(tile, "image/png")


def test_upstream_stac_api_served_when_healthy(api_server, upstream):
    """The baseline (and the WMS learns its Guiana layers, as a running server would have:
    a WMS asked for the first time while the API is down lists no Guiana index layer; once
    it knows them, its tiles are read from the COGs without asking the API)."""
    upstream.up()
    bbox = ",".join(map(str, GUIANA))
    response = requests.get(f"{api_server.url}/collections/guyane-ndvi/coverage", timeout=BOUND,
                            params={"bbox": bbox, "datetime": GUIANA_DAY})
    assert assert_ok(response).json()["sentinelle:scenes"] == ["S2A_22NCL_20240713_0_L2A"]
    capabilities = requests.get(f"{api_server.url}/wms", timeout=BOUND, params={
        "SERVICE": "WMS", "REQUEST": "GetCapabilities"})
    assert "guyane:NDVI" in assert_ok(capabilities, "text/xml").text


@pytest.mark.parametrize("mode, status, words, bound", [
    ("down", 503, ["the STAC API", "is unavailable", "cannot be reached"], 10),
    ("slow", 504, ["the STAC API", f"did not answer within {HTTP_TIMEOUT} s"],
     HTTP_TIMEOUT * 3 + 5),
    ("error", 502, ["the STAC API", "answered HTTP 500"], 10),
])
def test_upstream_stac_api_fault_while_local_data_is_served(api_server, upstream, mode, status,
                                                            words, bound):
    upstream.up()
    if mode == "down":
        upstream.down()
    upstream.mode = mode
    bbox = ",".join(map(str, GUIANA))
    try:
        results = concurrently(
            get(api_server, "/collections/guyane-ndvi/coverage", bbox=bbox,
                datetime=GUIANA_DAY),
            get(api_server, "/collections/guyane-ndvi/map", bbox=bbox, datetime=GUIANA_DAY,
                width=64, height=64),
            execute(api_server, {"area": GUIANA, "datetime": GUIANA_DAY}),
            get(api_server, "/collections/guyane-ndvi", f="json"),
            *local_requests(api_server),
        )
    finally:
        upstream.up()
    (coverage, map_, process, described, *local), durations = zip(*results)
    for response in (coverage, map_, process):
        assert_clear(response, status, upstream.url, *words)
    # the collection is still described, from its configuration
    assert assert_ok(described, "application/json").json()["id"] == "guyane-ndvi"
    assert_local_ok(local)
    assert max(durations[:3]) < bound, durations


def test_cog_host_slow_or_missing_file_while_other_dates_are_served(api_server, upstream):
    """COGs over HTTP: a file that stalls times out (504) after about (retries + 1) ×
    timeout; a file the host does not have is a 502 naming it."""
    upstream.up()
    bbox = ",".join(map(str, GUIANA))
    results = concurrently(
        get(api_server, "/collections/guyane-ndvi/coverage", bbox=bbox, datetime="2024-08-12"),
        get(api_server, "/wms", SERVICE="WMS", REQUEST="GetMap", VERSION="1.3.0",
            LAYERS="guyane:NDVI", STYLES="", CRS="CRS:84", BBOX=bbox, WIDTH=64, HEIGHT=64,
            FORMAT="image/png", TIME="2024-08-12"),
        get(api_server, "/collections/guyane-ndvi/coverage", bbox=bbox, datetime="2024-10-21"),
        get(api_server, "/collections/guyane-ndvi/coverage", bbox=bbox, datetime=GUIANA_DAY),
        *local_requests(api_server),
    )
    (slow, slow_tile, gone, healthy, *local), durations = zip(*results)
    for response in (slow, slow_tile):
        assert_clear(response, 504, "upstream asset timed out", f"{SLOW_COG}/B04.tif",
                     f"within {HTTP_TIMEOUT} s")
    assert slow_tile.headers["Content-Type"].startswith("text/xml")
    assert_clear(gone, 502, "upstream asset missing", f"{GONE_COG}/B08.tif", "HTTP 404")
    assert assert_ok(healthy).json()["sentinelle:scenes"] == ["S2A_22NCL_20240713_0_L2A"]
    assert_local_ok(local)
    assert max(durations[:2]) < (HTTP_RETRIES + 1) * HTTP_TIMEOUT + 10, durations
