"""Fault: the job database unavailable (issue 10, part 4), against a real server process.

The server's PostgreSQL job store (``.ci/services``: skipped without it, required when
``SENTINELLE_REQUIRE_SERVICES=1``) is reached through a TCP relay on loopback that the test
can turn into a black hole: connections are accepted and never answered, and the open ones
stall mid-statement — the worst case for a client, worse than a refused connection.  Then:

* asynchronous executions and job reads answer 503 with a message and ``Retry-After``
  within a bounded time (``SENTINELLE_JOBS_DB_TIMEOUT``, 2 s here);
* at the same time features, the WMS and a synchronous spectral-index execution succeed;
* a job that finishes during the outage is recorded when the database is back, and new jobs
  work again.
"""

from __future__ import annotations

import os
import select
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.conftest import start_server

pytestmark = pytest.mark.server

TIMEOUT = 2  # SENTINELLE_JOBS_DB_TIMEOUT of the server under test
#: every parcel of the Brittany sample over 2024: a job of several seconds
SERIES = {"zones": {"collection": "bretagne-parcels"}, "datetime": "2024-01-01/2024-12-31",
          "temporal": "series"}
QUICK = {"zones": {"collection": "bretagne-parcels", "filter": "commune = '35051'"},
         "datetime": "2024-05-17"}
SPECTRAL = {"area": {"collection": "bretagne-communes", "id": "35051"},
            "datetime": "2024-05-17", "index": "NDVI", "format": "json"}
FINAL = ("successful", "failed", "dismissed")


class Relay:
    """A TCP relay to PostgreSQL that can become a black hole (``down()``) and come back
    (``up()``: the stalled connections are closed, new ones are relayed again)."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.blocked = threading.Event()
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self._held.append(client)
            if self.blocked.is_set():
                continue  # accepted, never answered
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._held.append(upstream)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket):
        peers = {a: b, b: a}
        try:
            while not self._closed:
                readable, _, _ = select.select(list(peers), [], [], 0.1)
                if self.blocked.is_set():
                    continue  # stall: keep the bytes, answer nothing
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
        except OSError:
            return
        finally:
            for sock in (a, b):
                try:
                    sock.close()
                except OSError:
                    pass

    def down(self):
        self.blocked.set()

    def up(self):
        with self._lock:
            held, self._held = self._held, []
        for sock in held:
            try:
                sock.close()
            except OSError:
                pass
        self.blocked.clear()

    def close(self):
        self._closed = True
        self.up()
        self.listener.close()


def _database() -> str:
    value = os.environ.get("SENTINELLE_TEST_JOBS_DB")
    if not value:
        if os.environ.get("SENTINELLE_REQUIRE_SERVICES") == "1":
            pytest.fail("SENTINELLE_TEST_JOBS_DB is not set although "
                        "SENTINELLE_REQUIRE_SERVICES=1")
        pytest.skip("SENTINELLE_TEST_JOBS_DB is not set (start the services with "
                    ".ci/services start)")
    return value


@pytest.fixture(scope="module")
def relay():
    url = urlsplit(_database())
    r = Relay(url.hostname, url.port or 5432)
    yield r
    r.close()


@pytest.fixture(scope="module")
def jobdb_server(sample_dir, tmp_path_factory, relay):
    url = urlsplit(_database())
    netloc = url.netloc.rsplit("@", 1)
    netloc = f"{netloc[0]}@127.0.0.1:{relay.port}" if len(netloc) == 2 \
        else f"127.0.0.1:{relay.port}"
    table = f"jobs_fault_{uuid.uuid4().hex[:8]}"
    workdir = tmp_path_factory.mktemp("jobdb-fault")
    srv = start_server(sample_dir, workdir, {
        "SENTINELLE_JOBS_DB": urlunsplit(url._replace(netloc=netloc)),
        "SENTINELLE_JOBS_TABLE": table,
        "SENTINELLE_JOBS_DB_TIMEOUT": str(TIMEOUT),
        "SENTINELLE_RESULTS": str(workdir / "results"),
    })
    srv.results = workdir / "results"
    yield srv
    srv.stop(15)
    import psycopg

    with psycopg.connect(_database(), autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def submit(url: str, inputs: dict) -> requests.Response:
    return requests.post(f"{url}/processes/zonal-statistics/execution",
                         json={"inputs": inputs}, headers={"Prefer": "respond-async"},
                         timeout=60)


def finished(location: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = requests.get(location, params={"f": "json"}, timeout=30)
        if response.status_code == 200 and response.json()["status"] in FINAL:
            return response.json()
        time.sleep(0.2)
    raise AssertionError(f"{location} did not finish")


def timed(call):
    start = time.monotonic()
    response = call()
    return response, time.monotonic() - start


def assert_unavailable(response: requests.Response, elapsed: float) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    body = response.json()
    assert "The job database cannot be reached" in body["description"]
    assert body["description"].startswith("La base des traitements est injoignable")
    # one connect or statement timeout (measured: 2.0 s), plus a loaded machine's slack
    assert elapsed < 2 * TIMEOUT + 2, f"503 after {elapsed:.1f} s"


def test_jobs_fail_clearly_while_everything_else_is_served(jobdb_server, relay):
    url = jobdb_server.url
    # the database up: jobs work (and the server holds an open connection to it)
    before = submit(url, QUICK)
    assert before.status_code == 201, before.text
    assert finished(before.headers["Location"])["status"] == "successful"

    # a longer job, still running when the database goes away
    running = submit(url, SERIES)
    assert running.status_code == 201, running.text
    running_id = running.json()["jobID"]
    relay.down()
    try:
        with ThreadPoolExecutor(6) as pool:
            # the job requests and the others, at the same time
            jobs_list = pool.submit(timed, lambda: requests.get(
                f"{url}/jobs", params={"f": "json"}, timeout=60))
            new_job = pool.submit(timed, lambda: submit(url, QUICK))
            collections = pool.submit(timed, lambda: requests.get(
                f"{url}/collections/bretagne-communes/items",
                params={"f": "json", "limit": 5}, timeout=60))
            wms = pool.submit(timed, lambda: requests.get(f"{url}/wms", params={
                "SERVICE": "WMS", "REQUEST": "GetMap", "VERSION": "1.3.0",
                "LAYERS": "bretagne:NDVI", "STYLES": "", "CRS": "EPSG:4326",
                "BBOX": "48.09,-1.58,48.11,-1.56", "WIDTH": "128", "HEIGHT": "128",
                "FORMAT": "image/png", "TIME": "2024-05-17"}, timeout=60))
            sync = pool.submit(timed, lambda: requests.post(
                f"{url}/processes/spectral-index/execution", json={"inputs": SPECTRAL},
                timeout=120))
            status = pool.submit(timed, lambda: requests.get(
                before.headers["Location"], params={"f": "json"}, timeout=60))

            for future in (jobs_list, new_job, status):
                assert_unavailable(*future.result())
            # the next ones fail at once (no pile-up behind a dead database)
            response, elapsed = timed(lambda: requests.get(
                f"{url}/jobs/{running_id}", params={"f": "json"}, timeout=60))
            assert_unavailable(response, elapsed)
            assert elapsed < 1.0, f"503 after {elapsed:.1f} s"
            assert requests.delete(f"{url}/jobs/{running_id}", timeout=60).status_code == 503
            page, _ = collections.result()
            assert page.status_code == 200 and len(page.json()["features"]) == 5
            image, _ = wms.result()
            assert image.status_code == 200, image.text[:300]
            assert image.headers["Content-Type"] == "image/png"
            assert image.content.startswith(b"\x89PNG")
            result, _ = sync.result()
            assert result.status_code == 200, result.text
            assert result.json()  # the index statistics, computed without a job record
            assert "Location" not in result.headers
        # the running job goes on and writes its result meanwhile
        deadline = time.monotonic() + 180
        while not list(Path(jobdb_server.results).glob(f"*{running_id}*")):
            assert time.monotonic() < deadline, "the running job never finished"
            time.sleep(0.5)
    finally:
        relay.up()

    # the database back: its end was recorded, and jobs work again
    info = finished(f"{url}/jobs/{running_id}", timeout=60)
    assert info["status"] == "successful", info
    after = None
    deadline = time.monotonic() + 4 * TIMEOUT + 10
    while time.monotonic() < deadline:  # within Retry-After
        after = submit(url, QUICK)
        if after.status_code == 201:
            break
        time.sleep(0.5)
    assert after.status_code == 201, after.text
    assert finished(after.headers["Location"])["status"] == "successful"
    listed = requests.get(f"{url}/jobs", params={"f": "json"}, timeout=30).json()
    ids = {job["jobID"] for job in listed["jobs"]}
    assert {before.json()["jobID"], running_id, after.json()["jobID"]} <= ids
