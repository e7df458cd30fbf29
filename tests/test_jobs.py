"""Asynchronous jobs (issue 6), as a client sees them, against real server processes.

* Embedded default (always run): a local Dask cluster inside the server, TinyDB records.
* Production set-up (run when ``.ci/services`` started them, skipped otherwise; required when
  ``SENTINELLE_REQUIRE_SERVICES=1``, as in ``.ci/run``): a real ``dask scheduler`` with two
  ``dask worker`` processes on loopback (``SENTINELLE_TEST_DASK_SCHEDULER``) and PostgreSQL
  as the job store (``SENTINELLE_TEST_JOBS_DB``).
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import start_server

pytestmark = pytest.mark.server

#: every parcel of the Brittany sample (4,368), one row per parcel and clear date of 2024:
#: 40 blocks read by the engine, ~5 s on one worker
SERIES = {"zones": {"collection": "bretagne-parcels"}, "datetime": "2024-01-01/2024-12-31",
          "temporal": "series"}
#: a few seconds more work (quantiles), for the tests that interrupt a job
LONG = dict(SERIES, statistics=["mean", "median", "p10", "p90", "std", "count"])
#: one commune, one date: about a second
QUICK = {"zones": {"collection": "bretagne-parcels", "filter": "commune = '35051'"},
         "datetime": "2024-05-17"}
#: no scene over Paris: the job fails with a 404 reason
NO_DATA = {"zones": {"type": "FeatureCollection", "features": [{
    "type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [
        [[2.3, 48.8], [2.31, 48.8], [2.31, 48.81], [2.3, 48.8]]]}}]},
    "datetime": "2024-05-17"}
FINAL = ("successful", "failed", "dismissed")
STATUS_FIELDS = {"jobID", "status", "type", "progress", "created", "started", "finished",
                 "updated", "links", "processID", "message"}


def submit(url: str, inputs: dict, **extra) -> requests.Response:
    response = requests.post(f"{url}/processes/zonal-statistics/execution",
                             json={"inputs": inputs, **extra},
                             headers={"Prefer": "respond-async"}, timeout=60)
    assert response.status_code == 201, response.text
    return response


def status(location: str) -> dict:
    response = requests.get(location, params={"f": "json"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(location: str, predicate, timeout: float = 120, interval: float = 0.05) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = status(location)
        if predicate(info):
            return info
        time.sleep(interval)
    raise AssertionError(f"job {location} never reached the state wanted: {info}")


def finished(location: str, timeout: float = 120) -> dict:
    return wait_for(location, lambda s: s["status"] in FINAL, timeout, 0.1)


def stop(server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(timeout=10)


# --- the services -------------------------------------------------------------------------------

def _service(variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        if os.environ.get("SENTINELLE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{variable} is not set although SENTINELLE_REQUIRE_SERVICES=1")
        pytest.skip(f"{variable} is not set (start the services with .ci/services start)")
    return value


@pytest.fixture(scope="module")
def cluster_env(tmp_path_factory) -> dict:
    """Server environment: the real scheduler, PostgreSQL in a table of our own."""
    return {
        "DASK_SCHEDULER_ADDRESS": _service("SENTINELLE_TEST_DASK_SCHEDULER"),
        "SENTINELLE_JOBS_DB": _service("SENTINELLE_TEST_JOBS_DB"),
        "SENTINELLE_JOBS_TABLE": f"jobs_test_{uuid.uuid4().hex[:10]}",
        "SENTINELLE_RESULTS": str(tmp_path_factory.mktemp("results")),
        "SENTINELLE_JOBS_MAX_RUNNING": "2",
    }


@pytest.fixture(scope="module")
def dask_client(cluster_env):
    from distributed import Client

    with Client(cluster_env["DASK_SCHEDULER_ADDRESS"], timeout="30s") as client:
        client.wait_for_workers(2, timeout=90)
        yield client


@pytest.fixture(scope="module")
def cluster_server(sample_dir, tmp_path_factory, cluster_env):
    server = start_server(sample_dir, tmp_path_factory.mktemp("cluster-server"), cluster_env)
    yield server
    stop(server)


def _busy(client) -> dict:
    """Tasks executing on each worker (thread → key), as the workers themselves see them."""
    return client.run(lambda dask_worker: dict(dask_worker.active_threads))


def _job_worker(client, job_id: str) -> str | None:
    for worker, keys in client.processing().items():
        if any(str(k).endswith(job_id) for k in keys):
            return worker
    return None


# --- on a real cluster with PostgreSQL ----------------------------------------------------------

def test_async_zonal_job_progress_and_result(cluster_server, dask_client):
    started = time.monotonic()
    response = submit(cluster_server.url, SERIES)
    body = response.json()
    location = response.headers["Location"]
    assert STATUS_FIELDS <= set(body) and body["type"] == "process"
    assert body["status"] == "accepted" and location.endswith(body["jobID"])
    assert any(link["rel"] == "self" for link in body["links"])

    history, listed_running = [], False
    info = body
    deadline = time.monotonic() + 180
    while info["status"] not in FINAL and time.monotonic() < deadline:
        info = status(location)
        history.append((info["status"], info["progress"], info["message"]))
        if info["status"] == "running" and not listed_running:
            running = requests.get(f"{cluster_server.url}/jobs",
                                   params={"status": "running", "f": "json"}, timeout=30).json()
            assert body["jobID"] in {j["jobID"] for j in running["jobs"]}
            assert all(j["status"] == "running" for j in running["jobs"])
            listed_running = True
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    assert info["status"] == "successful", info
    assert info["progress"] == 100 and info["finished"] and info["started"]
    progress = [p for s, p, _ in history]
    assert progress == sorted(progress), "progress must never go down"
    distinct = sorted({p for s, p, _ in history if s == "running" and 0 < p < 100})
    assert len(distinct) >= 3, history
    assert listed_running and any("blocks done" in m for _, _, m in history)
    # accepted → running → successful, in that order
    statuses = [s for s, _, _ in history]
    assert statuses.index("running") < statuses.index("successful")

    result = requests.get(f"{location}/results", timeout=60)
    assert result.status_code == 200
    assert result.headers["Content-Type"].startswith("application/geo+json")
    sync = requests.post(f"{cluster_server.url}/processes/zonal-statistics/execution",
                         json={"inputs": SERIES}, timeout=300)
    assert sync.status_code == 200
    assert result.json() == sync.json()
    assert len(result.json()["features"]) == 4368
    print(f"async series over 4,368 parcels: {elapsed:.1f} s, progress {distinct}")

    listed = requests.get(f"{cluster_server.url}/jobs",
                          params={"status": "successful", "f": "json"}, timeout=30).json()
    assert body["jobID"] in {j["jobID"] for j in listed["jobs"]}
    assert requests.get(f"{cluster_server.url}/jobs", params={"status": "nonsense"},
                        timeout=30).status_code == 400


def test_killing_a_worker_does_not_lose_the_job(cluster_server, dask_client):
    location = submit(cluster_server.url, LONG).headers["Location"]
    job_id = location.rsplit("/", 1)[-1]
    wait_for(location, lambda s: s["status"] == "running" and s["progress"] > 5, 120)
    worker = _job_worker(dask_client, job_id)
    assert worker, dask_client.processing()
    pid = dask_client.run(os.getpid, workers=[worker])[worker]
    os.kill(pid, signal.SIGKILL)  # its nanny starts a new worker process
    info = finished(location, 240)
    assert info["status"] == "successful", info
    result = requests.get(f"{location}/results", timeout=60).json()
    assert len(result["features"]) == 4368
    dask_client.wait_for_workers(2, timeout=120)


def test_dismissing_a_running_job_stops_its_tasks(cluster_server, dask_client):
    location = submit(cluster_server.url, LONG).headers["Location"]
    job_id = location.rsplit("/", 1)[-1]
    wait_for(location, lambda s: s["status"] == "running" and s["progress"] > 5, 120)
    assert any(job_id in str(k) for keys in _busy(dask_client).values() for k in keys.values())
    response = requests.delete(location, timeout=30)
    assert response.status_code == 200 and response.json()["status"] == "dismissed"
    dismissed_at = time.monotonic()
    deadline = dismissed_at + 10
    while time.monotonic() < deadline:
        busy = [k for keys in _busy(dask_client).values() for k in keys.values()
                if job_id in str(k)]
        if not busy and _job_worker(dask_client, job_id) is None:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the job still runs on the cluster: {_busy(dask_client)}")
    assert time.monotonic() - dismissed_at < 5
    info = status(location)
    assert info["status"] == "dismissed" and "cancel" in info["message"]
    assert requests.get(f"{location}/results", timeout=30).status_code == 404
    # a second DELETE removes the record
    assert requests.delete(location, timeout=30).status_code == 200
    assert requests.get(location, params={"f": "json"}, timeout=30).status_code == 404


def test_another_web_process_can_dismiss_a_job(cluster_server, dask_client, sample_dir,
                                              tmp_path, cluster_env):
    """Two web processes on one scheduler and one database (gunicorn workers, pods): a DELETE
    reaching the process that did not submit the job still stops it on the cluster."""
    other = start_server(sample_dir, tmp_path, cluster_env)
    try:
        submitted = time.monotonic()
        location = submit(cluster_server.url, LONG).headers["Location"]
        job_id = location.rsplit("/", 1)[-1]
        wait_for(location, lambda s: s["status"] == "running" and s["progress"] > 5, 120)
        # the worker stops at its next block: allow the time the first blocks took (a
        # loaded machine, measured 14 s, reads blocks slower than an idle one, ~2 s)
        allowed = 5 + 2 * (time.monotonic() - submitted)
        assert status(f"{other.url}/jobs/{job_id}")["status"] == "running"
        assert requests.delete(f"{other.url}/jobs/{job_id}", timeout=30).status_code == 200
        deadline = time.monotonic() + allowed
        while time.monotonic() < deadline:
            if not any(job_id in str(k) for keys in _busy(dask_client).values()
                       for k in keys.values()):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the job still runs on the cluster: {_busy(dask_client)}")
        time.sleep(0.5)  # the submitting process hears of the cancellation
        assert status(location)["status"] == "dismissed"
    finally:
        stop(other)


def test_restart_keeps_finished_jobs_and_fails_running_ones(sample_dir, tmp_path, cluster_env,
                                                            dask_client):
    first = start_server(sample_dir, tmp_path, cluster_env)
    try:
        done = submit(first.url, QUICK).headers["Location"].rsplit("/", 1)[-1]
        assert finished(f"{first.url}/jobs/{done}")["status"] == "successful"
        before = requests.get(f"{first.url}/jobs/{done}/results", timeout=30).content
        running = submit(first.url, LONG).headers["Location"].rsplit("/", 1)[-1]
        wait_for(f"{first.url}/jobs/{running}", lambda s: s["status"] == "running", 120)
    finally:
        stop(first)
    second = start_server(sample_dir, tmp_path, cluster_env)
    try:
        info = status(f"{second.url}/jobs/{done}")
        assert info["status"] == "successful"
        after = requests.get(f"{second.url}/jobs/{done}/results", timeout=30)
        assert after.status_code == 200 and after.content == before
        info = status(f"{second.url}/jobs/{running}")
        assert info["status"] == "failed", info
        assert "restarted" in info["message"] and "submit it again" in info["message"]
        assert not requests.get(f"{second.url}/jobs", params={"status": "running"},
                                timeout=30).json()["jobs"]
    finally:
        stop(second)


def test_owslib_executes_asynchronously(cluster_server):
    from owslib.ogcapi.processes import Processes

    api = Processes(cluster_server.url)
    job = api.execute("zonal-statistics", QUICK, async_=True)  # response=document
    assert job["status"] == "accepted" and job["jobID"]
    path = f"jobs/{job['jobID']}"
    deadline = time.monotonic() + 120
    while (info := api._request(path=path))["status"] not in FINAL:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert info["status"] == "successful"
    results = api._request(path=f"{path}/results")
    output = results["outputs"][0]
    assert output["mediaType"] == "application/geo+json"
    assert output["value"]["type"] == "FeatureCollection" and output["value"]["features"]


# --- embedded default: local cluster in the server, TinyDB ------------------------------------

class _Receiver(http.server.BaseHTTPRequestHandler):
    calls: list

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.calls.append((self.path, self.headers.get("Content-Type"), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture()
def receiver():
    calls: list = []
    handler = type("Receiver", (_Receiver,), {"calls": calls})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", calls
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def callback_server(sample_dir, tmp_path_factory):
    """A server allowed to call back loopback receivers (refused by default: SSRF)."""
    workdir = tmp_path_factory.mktemp("callback-server")
    srv = start_server(sample_dir, workdir, {"SENTINELLE_CALLBACK_NETWORKS": "127.0.0.0/8",
                                             "SENTINELLE_JOBS_DB": str(workdir / "jobs.db"),
                                             "SENTINELLE_RESULTS": str(workdir / "results")})
    yield srv
    stop(srv)


def test_subscriber_callbacks_fire(callback_server, receiver):
    server = callback_server
    base, calls = receiver
    subscriber = {"successUri": f"{base}/success", "inProgressUri": f"{base}/progress",
                  "failedUri": f"{base}/failed"}
    ok = submit(server.url, QUICK, subscriber=subscriber).headers["Location"]
    bad = submit(server.url, NO_DATA, subscriber=subscriber).headers["Location"]
    assert finished(ok)["status"] == "successful"
    assert finished(bad)["status"] == "failed"
    deadline = time.monotonic() + 30
    while len({c[0] for c in calls}) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    by_path = {}
    for path, ctype, body in calls:
        by_path.setdefault(path, []).append((ctype, body))
    success = by_path["/success"][0]
    assert success[0].startswith("application/geo+json")
    assert json.loads(success[1])["type"] == "FeatureCollection"
    progress_ids = {json.loads(b)["jobID"] for _, b in by_path["/progress"]}
    assert ok.rsplit("/", 1)[-1] in progress_ids
    failure = json.loads(by_path["/failed"][0][1])
    assert failure["status"] == "failed" and failure["jobID"] == bad.rsplit("/", 1)[-1]


def test_synchronous_execution_calls_back_too(callback_server, receiver):
    """pygeoapi posts a synchronous job's callbacks from the request, unchecked and without
    timeout; ours go through the same checked background calls as asynchronous jobs."""
    base, calls = receiver
    response = requests.post(f"{callback_server.url}/processes/zonal-statistics/execution",
                             json={"inputs": QUICK, "subscriber": {
                                 "successUri": f"{base}/sync-success",
                                 "inProgressUri": f"{base}/sync-progress"}}, timeout=120)
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + 30
    while len({c[0] for c in calls}) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    by_path = {path: (ctype, body) for path, ctype, body in calls}
    assert json.loads(by_path["/sync-success"][1]) == response.json()
    assert by_path["/sync-success"][0].startswith("application/geo+json")
    assert json.loads(by_path["/sync-progress"][1])["status"] in ("running", "accepted")


@pytest.mark.parametrize("uri, reason", [
    ("http://127.0.0.1:9/hook", "internal address (127.0.0.1)"),
    ("http://localhost/hook", "internal address"),
    ("http://169.254.169.254/latest/meta-data/", "internal address (169.254.169.254)"),
    ("http://[::ffff:10.0.0.1]/hook", "internal address"),
    ("http://2130706433/hook", "internal address (127.0.0.1)"),  # 127.0.0.1 as a number
    ("http://10.1.2.3:8080/hook", "internal address (10.1.2.3)"),
    ("file:///etc/passwd", "scheme 'file' not allowed"),
    ("gopher://example.org/", "scheme 'gopher' not allowed"),
    ("http:///nohost", "has no host"),
    (12, "must be a URL"),
])
def test_subscriber_urls_to_internal_addresses_are_refused(server, uri, reason):
    """The default policy (the session server): callbacks only to public addresses."""
    response = requests.post(f"{server.url}/processes/zonal-statistics/execution",
                             json={"inputs": QUICK, "subscriber": {
                                 "successUri": "https://192.0.43.10/done",  # public
                                 "failedUri": uri}},
                             headers={"Prefer": "respond-async"}, timeout=30)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "InvalidParameterValue"
    assert body["description"].startswith("subscriber.failedUri : adresse de rappel refusée")
    assert reason in body["description"]
    assert "Location" not in response.headers


def test_callback_policy_host_allow_list():
    from sentinelle.errors import InvalidInput
    from sentinelle.processes.callbacks import CallbackPolicy, check_url

    policy = CallbackPolicy(hosts=("*.example.fr",))
    with pytest.raises(InvalidInput, match="not in the callback allow-list"):
        check_url("https://hooks.example.org/x", policy)
    # allowed host name, but an internal address: still refused
    with pytest.raises(InvalidInput, match="internal address"):
        check_url("https://10.0.0.1/x", CallbackPolicy(hosts=("10.0.0.1",)))
    import ipaddress

    inside = CallbackPolicy(networks=(ipaddress.ip_network("10.20.0.0/16"),))
    assert check_url("http://10.20.3.4:8080/hook", inside)
    with pytest.raises(InvalidInput, match="internal address"):
        check_url("http://10.21.0.1/hook", inside)
    with pytest.raises(InvalidInput, match="scheme 'http' not allowed"):
        check_url("http://8.8.8.8/", CallbackPolicy(schemes=("https",)))
    assert check_url("https://8.8.8.8/hook", CallbackPolicy())  # public address literal


def test_failed_job_says_why(server):
    location = submit(server.url, NO_DATA).headers["Location"]
    info = finished(location)
    assert info["status"] == "failed" and "outside every territory" in info["message"]
    result = requests.get(f"{location}/results", params={"f": "json"}, timeout=30)
    assert result.status_code == 404 and "outside every territory" in result.text


def test_concurrency_limit_queues_jobs(sample_dir, tmp_path):
    srv = start_server(sample_dir, tmp_path, {"SENTINELLE_JOBS_MAX_RUNNING": "1",
                                              "SENTINELLE_RESULTS": str(tmp_path / "r")})
    try:
        locations = [submit(srv.url, QUICK).headers["Location"] for _ in range(3)]
        seen_queued = False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            infos = [status(loc) for loc in locations]
            running = [i for i in infos if i["status"] == "running"]
            assert len(running) <= 1, infos
            if any(i["status"] == "accepted" and i["message"].startswith("Queued")
                   for i in infos):
                seen_queued = True
            if all(i["status"] in FINAL for i in infos):
                break
            time.sleep(0.05)
        assert seen_queued
        assert [i["status"] for i in infos] == ["successful"] * 3
        # every result has its own file in the results folder, with the right media type
        assert len(list((tmp_path / "r").glob("zonal-statistics-*.geojson"))) == 3
    finally:
        stop(srv)


def test_delete_unknown_and_finished_jobs(server):
    assert requests.delete(f"{server.url}/jobs/nope", timeout=30).status_code == 404
    location = submit(server.url, QUICK).headers["Location"]
    assert finished(location)["status"] == "successful"
    assert requests.delete(location, timeout=30).status_code == 200
    info = status(location)
    assert info["status"] == "dismissed" and "results were deleted" in info["message"]
    assert requests.get(f"{location}/results", timeout=30).status_code == 404


# --- the stores themselves ---------------------------------------------------------------------

def _exercise_store(store) -> None:
    from pygeoapi.process.base import JobNotFoundError

    from sentinelle.processes.jobstore import now

    ids = [str(uuid.uuid4()) for _ in range(3)]
    for n, job_id in enumerate(ids):
        store.add({"type": "process", "identifier": job_id, "process_id": f"p{n % 2}",
                   "created": now(), "started": None, "finished": None, "updated": now(),
                   "status": "accepted", "location": None, "mimetype": None,
                   "message": "Job accepted", "progress": 0, "owner": "h:1"})
        time.sleep(0.002)
    assert store.update(ids[0], {"status": "running", "progress": 40, "started": now()})
    assert not store.update(ids[1], {"status": "failed"}, only_if_status=["running"])
    assert store.update(ids[1], {"status": "failed"}, only_if_status=["accepted", "running"])
    job = store.get(ids[0])
    assert job["status"] == "running" and job["progress"] == 40 and job["started"].endswith("Z")
    running, matched = store.list(status=["running"])
    assert [j["identifier"] for j in running] == [ids[0]] and matched == 1
    page, matched = store.list(limit=2, offset=0)
    assert matched >= 3 and len(page) == 2 and page[0]["identifier"] == ids[2]  # newest first
    only, _ = store.list(process_ids=["p1"])
    assert {j["identifier"] for j in only} >= {ids[1]}
    assert store.delete(ids[2]) and not store.delete(ids[2])
    with pytest.raises(JobNotFoundError):
        store.get(ids[2])

    # principals: reads limited to one caller see only their jobs (None: anonymous ones)
    owned = {"key:alice": str(uuid.uuid4()), "oidc:https://sso|bob": str(uuid.uuid4())}
    for principal, job_id in owned.items():
        store.add({"type": "process", "identifier": job_id, "process_id": "p0",
                   "created": now(), "updated": now(), "status": "accepted", "progress": 0,
                   "owner": "h:1", "principal": principal})
    alice, bob = owned.values()
    assert store.get(alice, principal="key:alice")["principal"] == "key:alice"
    for principal in ("oidc:https://sso|bob", None):
        with pytest.raises(JobNotFoundError):
            store.get(alice, principal=principal)
    mine, matched = store.list(principal="key:alice")
    assert [j["identifier"] for j in mine] == [alice] and matched == 1
    anonymous, _ = store.list(principal=None)
    assert {j["identifier"] for j in anonymous} >= {ids[0], ids[1]}
    assert not {alice, bob} & {j["identifier"] for j in anonymous}
    everyone, _ = store.list()  # ANY: the server's own bookkeeping
    assert {alice, bob, ids[0]} <= {j["identifier"] for j in everyone}


def test_tinydb_store(tmp_path):
    from sentinelle.processes.jobstore import TinyDBJobStore

    _exercise_store(TinyDBJobStore(tmp_path / "jobs.tinydb"))


def test_tinydb_store_survives_an_interrupted_write(tmp_path):
    """A server killed while TinyDB rewrote the file in place left a longer version's tail
    (seen on a shared job file): it is read anyway, and writes replace the file whole."""
    from sentinelle.processes.jobstore import JobStoreUnavailable, TinyDBJobStore, now

    path = tmp_path / "jobs.tinydb"
    store = TinyDBJobStore(path)
    store.add({"identifier": "a", "process_id": "p", "status": "accepted", "created": now()})
    path.write_text(path.read_text() + "}")  # the tail of a longer previous version
    assert store.get("a")["status"] == "accepted"
    assert store.update("a", {"status": "running"})
    assert json.loads(path.read_text())["_default"]["1"]["status"] == "running"
    assert not list(tmp_path.glob(".jobs.tinydb.*.tmp"))
    path.write_text('{"_default": {"1": ')  # cut short: not a job file any more
    with pytest.raises(JobStoreUnavailable, match="not valid JSON"):
        store.get("a")


def test_postgres_store():
    from sentinelle.processes.jobstore import PostgresJobStore

    store = PostgresJobStore(_service("SENTINELLE_TEST_JOBS_DB"),
                             f"jobs_unit_{uuid.uuid4().hex[:8]}")
    try:
        _exercise_store(store)
    finally:
        store._execute(f"DROP TABLE {store.table}")
        store.close()


def test_results_dir_is_configurable(server, sample_dir):
    # the session server writes results under SENTINELLE_DATA/results (the config default)
    location = submit(server.url, QUICK).headers["Location"]
    assert finished(location)["status"] == "successful"
    job_id = location.rsplit("/", 1)[-1]
    assert list(Path(sample_dir, "results").glob(f"zonal-statistics-{job_id}.geojson"))
