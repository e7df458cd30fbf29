"""Asynchronous job throughput: 20 concurrent zonal-statistics jobs, three ways, same run.

Each job is the NDVI time series of 2024 for the parcels of one commune of the Brittany sample
(12 communes, 167–559 parcels, 10 dates; the communes rotate), submitted at once with
``Prefer: respond-async`` to a real ``sentinelle serve`` process on loopback, then polled
until every job is finished:

* ``sentinelle-1w``: our manager, a local Dask cluster of 1 worker process × 1 thread;
* ``sentinelle-2w``: the same with 2 worker processes × 1 thread (2 cores);
* ``pygeoapi-tinydb``: pygeoapi's own ``TinyDB`` manager — one thread per job inside the web
  process, no limit, no queue (the config with ``server.manager.name: TinyDB``).

Every server first runs one warm-up job (imports, catalog), not timed.  Prints jobs/minute
(20 / wall time from the first submission to the last job finished), the web process's peak
RSS, and the ratios.

    python benchmarks/jobs.py [DATA] [--jobs 20]      # DATA: the sample (default ./data)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import free_port  # noqa: E402

COMMUNES = ["35051", "35207", "35001", "35099", "35204", "35334", "35039", "35055", "35069",
            "35250", "35327", "35352"]


def job_inputs(n: int) -> dict:
    return {"zones": {"collection": "bretagne-parcels",
                      "filter": f"commune = '{COMMUNES[n % len(COMMUNES)]}'"},
            "datetime": "2024-01-01/2024-12-31", "temporal": "series"}


def start(data: Path, workdir: Path, env: dict, config: Path | None = None):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    full_env = dict(os.environ, SENTINELLE_DATA=str(data), SENTINELLE_URL=url, PORT=str(port),
                    PYGEOAPI_OPENAPI=str(workdir / f"openapi-{port}.yml"),
                    SENTINELLE_RESULTS=str(workdir / f"results-{port}"), **env)
    full_env.pop("PYGEOAPI_CONFIG", None)
    full_env.pop("SENTINELLE_CATALOG", None)
    full_env.pop("DASK_SCHEDULER_ADDRESS", None)
    full_env.pop("SENTINELLE_JOBS_DB", None)
    command = [sys.executable, "-m", "sentinelle.cli", "serve", "--port", str(port)]
    if config is not None:
        command += ["--config", str(config)]
    log = workdir / f"server-{port}.log"
    process = subprocess.Popen(command, cwd=REPO, env=full_env, stdout=log.open("w"),
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(log.read_text())
        try:
            if requests.get(f"{url}/conformance?f=json", timeout=2).ok:
                return url, process
        except requests.RequestException:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"server did not start:\n{log.read_text()}")


def submit(url: str, n: int) -> str:
    response = requests.post(f"{url}/processes/zonal-statistics/execution",
                             json={"inputs": job_inputs(n)},
                             headers={"Prefer": "respond-async"}, timeout=120)
    response.raise_for_status()
    return response.headers["Location"]


def wait_all(locations: list[str], timeout: float = 1800) -> list[str]:
    pending = dict.fromkeys(locations)
    statuses = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for location in list(pending):
            info = requests.get(location, params={"f": "json"}, timeout=60).json()
            if info["status"] in ("successful", "failed", "dismissed"):
                statuses[location] = info["status"]
                pending.pop(location)
        time.sleep(0.25)
    if pending:
        raise RuntimeError(f"{len(pending)} jobs did not finish within {timeout} s")
    return [statuses[loc] for loc in locations]


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def run(name: str, data: Path, workdir: Path, jobs: int, env: dict,
        config: Path | None = None) -> dict:
    url, process = start(data, workdir, env, config)
    try:
        assert wait_all([submit(url, 0)]) == ["successful"], "warm-up job failed"
        started = time.monotonic()
        locations = [submit(url, n) for n in range(jobs)]
        submitted = time.monotonic() - started
        statuses = wait_all(locations)
        elapsed = time.monotonic() - started
        rss = peak_rss_mb(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    ok = statuses.count("successful")
    result = {"name": name, "jobs": jobs, "successful": ok, "seconds": elapsed,
              "submit_seconds": submitted, "jobs_per_minute": ok / elapsed * 60,
              "web_rss_mb": rss}
    print(f"{name:16s} {ok}/{jobs} ok  {elapsed:6.1f} s  {result['jobs_per_minute']:6.1f} "
          f"jobs/min  (20 submissions answered in {submitted:.2f} s, web process peak RSS "
          f"{rss:.0f} MB)", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", default=str(REPO / "data"))
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    data = Path(args.data).resolve()
    with tempfile.TemporaryDirectory(prefix="sentinelle-bench-jobs-") as tmp:
        workdir = Path(tmp)
        config = yaml.safe_load((REPO / "pygeoapi-config.yml").read_text())
        config["server"]["manager"] = {"name": "TinyDB",
                                       "connection": str(workdir / "pygeoapi-jobs.tinydb"),
                                       "output_dir": str(workdir / "pygeoapi-results")}
        (workdir / "pygeoapi-results").mkdir()
        pygeoapi_config = workdir / "pygeoapi-tinydb.yml"
        pygeoapi_config.write_text(yaml.safe_dump(config, allow_unicode=True))
        common = {"SENTINELLE_JOBS_MAX_RUNNING": str(args.jobs), "SENTINELLE_DASK_PROCESSES": "1",
                  "SENTINELLE_DASK_THREADS": "1"}
        print(f"{args.jobs} concurrent async zonal-statistics jobs (series 2024, one commune "
              f"each) on {os.cpu_count()} cores", flush=True)
        one = run("sentinelle-1w", data, workdir, args.jobs,
                  dict(common, SENTINELLE_DASK_WORKERS="1"))
        two = run("sentinelle-2w", data, workdir, args.jobs,
                  dict(common, SENTINELLE_DASK_WORKERS="2"))
        threads = run("pygeoapi-tinydb", data, workdir, args.jobs,
                      {"SENTINELLE_JOBS_DB": ""}, config=pygeoapi_config)
    print(f"2 workers / 1 worker:            "
          f"{two['jobs_per_minute'] / one['jobs_per_minute']:.2f}×")
    print(f"sentinelle 2 workers / pygeoapi: "
          f"{two['jobs_per_minute'] / threads['jobs_per_minute']:.2f}×")
    print(f"sentinelle 1 worker / pygeoapi:  "
          f"{one['jobs_per_minute'] / threads['jobs_per_minute']:.2f}×")


if __name__ == "__main__":
    main()
