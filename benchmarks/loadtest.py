"""Load test: the real server under 20 then 50 concurrent clients, on loopback, with locust.

The server starts the way production runs it — gunicorn with ``deploy/gunicorn.conf.py``
(``--server flask`` for ``sentinelle serve``) — on a free loopback port over a data folder
(default ``$SENTINELLE_DATA``, else the sample), with its own job records and results folder
so the run leaves the data folder as it found it. ``benchmarks/locustfile.py`` is the mix of
requests (WMS tiles, maps, Features, Records, NDVI coverages, small synchronous processes).

A warm-up at the highest level fills the caches (catalogs, layers, GDAL blocks) and brings
every server thread into play, then each level runs for ``--duration`` seconds. The server's
memory (RSS of the whole process tree: gunicorn master and workers) is sampled every second;
"flat" means the level at the end of the run is within ``--memory-tolerance`` of the level
right after the warm-up.

Prints requests, requests/s, p50/p95/p99 per kind of request and overall, errors (with the
first messages), peak RSS and drift; writes the same as JSON (``build/loadtest.json``). Exit
status 1 when a request failed, 2 when memory grew beyond the tolerance, else 0.

    python benchmarks/loadtest.py [DATA_DIR] [--users 20 50] [--duration 60] [--warmup 60]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import runpy
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
LOCUSTFILE = Path(__file__).resolve().parent / "locustfile.py"
GUNICORN_CONF = REPO / "deploy" / "gunicorn.conf.py"
LEVEL_WINDOW = 5  # samples (s) averaged for "the level" of memory at a point of the run


# --- the server -----------------------------------------------------------------------------

def has_gunicorn() -> bool:
    try:
        import gunicorn  # noqa: F401  (the ``deploy`` extra)
    except ImportError:
        return False
    return True


def start_server(data: Path, workdir: Path, kind: str, env_extra: dict[str, str],
                 conf: Path = GUNICORN_CONF) -> tuple[str, subprocess.Popen, Path]:
    """The server on a free loopback port; (url, process, log). Job records and results go
    to ``workdir``, not to the data folder."""
    sys.path.insert(0, str(REPO))
    from tests.conftest import free_port, wait_until_serving

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (workdir / "results").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SENTINELLE_DATA=str(data), SENTINELLE_URL=url, PORT=str(port),
               SENTINELLE_HOST="127.0.0.1", PYGEOAPI_OPENAPI=str(workdir / "openapi.yml"),
               SENTINELLE_JOBS_DB=str(workdir / "jobs.tinydb"),
               SENTINELLE_RESULTS=str(workdir / "results"), **env_extra)
    for name in ("PYGEOAPI_CONFIG", "SENTINELLE_CATALOG"):
        env.pop(name, None)
    if kind == "gunicorn":
        command = [sys.executable, "-m", "gunicorn", "-c", str(conf)]
    else:
        command = [sys.executable, "-m", "sentinelle.cli", "serve", "--port", str(port)]
    log = workdir / "server.log"
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log.open("w"),
                               stderr=subprocess.STDOUT, start_new_session=True,
                               preexec_fn=_die_with_parent)
    try:
        wait_until_serving(url, process, log, seconds=180, poll=0.5)
    except RuntimeError:
        stop_server(process)
        raise
    return url, process, log


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if this script is killed, instead of running on."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM to the server's own process group (gunicorn stops its workers), then KILL."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=45)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


# --- memory -----------------------------------------------------------------------------------

class MemorySampler(threading.Thread):
    """RSS (MB) of a process and all its descendants, every ``interval`` seconds, labelled
    with the phase of the run (``warm-up``, ``level 1: 20 users``…)."""

    def __init__(self, pid: int, interval: float = 1.0):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.phase = "start"
        self.samples: list[tuple[float, float, str]] = []  # (seconds, MB, phase)
        self._done = threading.Event()
        self._t0 = time.monotonic()

    def rss_mb(self) -> float:
        total = 0
        for process in [self.root, *self.root.children(recursive=True)]:
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:  # a worker recycled between listing and reading
                pass
        return total / 2 ** 20

    def run(self) -> None:
        while not self._done.wait(self.interval):
            try:
                self.samples.append((round(time.monotonic() - self._t0, 1),
                                     round(self.rss_mb(), 1), self.phase))
            except psutil.NoSuchProcess:
                return

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)

    def of(self, phase: str) -> list[float]:
        return [mb for _, mb, p in self.samples if p == phase]


def level(values: list[float], *, last: bool) -> float:
    """Median of the first (or last) few samples: one GC pause does not move it."""
    window = values[-LEVEL_WINDOW:] if last else values[:LEVEL_WINDOW]
    return statistics.median(window) if window else float("nan")


# --- locust -----------------------------------------------------------------------------------

def run_locust(url: str, users: int, seconds: int, prefix: Path, env: dict[str, str]
               ) -> subprocess.CompletedProcess:
    """One headless locust run (its own process: gevent stays out of this one)."""
    command = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
               "--host", url, "--users", str(users), "--spawn-rate", str(users),
               "--run-time", f"{seconds}s", "--stop-timeout", "30", "--only-summary",
               "--csv", str(prefix), "--loglevel", "WARNING"]
    return subprocess.run(command, cwd=REPO, env=dict(os.environ, **env), text=True,
                          capture_output=True, timeout=seconds + 180,
                          preexec_fn=_die_with_parent)


def read_results(prefix: Path, seconds: int) -> dict:
    """Figures of one run from locust's CSV files: per kind of request and overall."""
    kinds, overall = {}, None
    with open(f"{prefix}_stats.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            figures = {"requests": int(row["Request Count"]),
                       "errors": int(row["Failure Count"]),
                       "rps": float(row["Requests/s"]),
                       "p50_ms": _ms(row["50%"]), "p95_ms": _ms(row["95%"]),
                       "p99_ms": _ms(row["99%"]), "max_ms": _ms(row["Max Response Time"])}
            if row["Name"] == "Aggregated":
                overall = figures
            else:
                kinds[row["Name"]] = figures
    errors = []
    with open(f"{prefix}_failures.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            errors.append({"kind": row["Name"], "occurrences": int(row["Occurrences"]),
                           "message": row["Error"]})
    exceptions_csv = Path(f"{prefix}_exceptions.csv")
    if exceptions_csv.exists():
        with exceptions_csv.open(newline="") as handle:
            for row in csv.DictReader(handle):
                errors.append({"kind": "locust", "occurrences": int(row["Count"]),
                               "message": row["Message"]})
    if overall is None:
        overall = {"requests": 0, "errors": 0, "rps": 0.0}
    return {"seconds": seconds, **overall, "kinds": kinds,
            "errors_listed": sorted(errors, key=lambda e: -e["occurrences"])}


def _ms(text: str) -> float | None:
    return None if text in ("", "N/A") else round(float(text), 1)


# --- report -----------------------------------------------------------------------------------

def print_table(result: dict) -> None:
    head = (f"{'users':>5}  {'kind':<26} {'requests':>8} {'req/s':>7} {'p50 ms':>7} "
            f"{'p95 ms':>7} {'p99 ms':>7} {'errors':>6}")
    print(head)
    print("-" * len(head))
    for run in result["levels"]:
        rows = [*sorted(run["kinds"].items()), ("all", run)]
        for name, fig in rows:
            print(f"{run['users']:>5}  {name:<26} {fig['requests']:>8} {fig['rps']:>7.1f} "
                  f"{_fmt(fig.get('p50_ms'))} {_fmt(fig.get('p95_ms'))} "
                  f"{_fmt(fig.get('p99_ms'))} {fig['errors']:>6}")
        memory = run.get("memory")
        if memory:
            print(f"{'':>5}  server RSS: {memory['start_mb']:.0f} MB at start, "
                  f"{memory['end_mb']:.0f} MB at end, peak {memory['peak_mb']:.0f} MB")
        for error in run["errors_listed"][:5]:
            print(f"{'':>5}  ! {error['occurrences']} × {error['kind']}: "
                  f"{error['message'][:160]}")
        print()
    memory = result["memory"]
    if memory:
        print(f"server memory: {memory['post_warmup_mb']:.0f} MB after warm-up, "
              f"{memory['end_mb']:.0f} MB at the end ({memory['drift_percent']:+.1f} %, "
              f"tolerance {memory['tolerance_percent']:.0f} %: "
              f"{'flat' if memory['flat'] else 'GROWING'}), peak {memory['peak_mb']:.0f} MB")
    verdict = "no errors" if result["errors"] == 0 else f"{result['errors']} ERRORS"
    print(f"{verdict}; load average {result['load_average'][0]:.1f} → "
          f"{result['load_average'][1]:.1f} on {result['cores']} cores")


def _fmt(value: float | None) -> str:
    return f"{'—':>7}" if value is None else f"{value:>7.0f}"


# --- main -------------------------------------------------------------------------------------

def server_settings(kind: str, env: dict[str, str], conf: Path = GUNICORN_CONF) -> dict:
    """Workers, threads and timeout the server runs with (gunicorn: read from its config)."""
    if kind != "gunicorn":
        return {"workers": 1, "threads": "one per request", "timeout_s": None}
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        values = runpy.run_path(str(conf))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {"workers": values["workers"], "threads": values["threads"],
            "timeout_s": values["timeout"], "max_requests": values.get("max_requests")}


def load_test(args: argparse.Namespace) -> dict:
    """Start the server (unless ``--url``), warm up, run each level; the result as a dict."""
    data = args.data.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="sentinelle-load-"))
    server_env = {k: str(v) for k, v in (("SENTINELLE_WORKERS", args.workers),
                                         ("SENTINELLE_THREADS", args.threads)) if v}
    locust_env = {"SENTINELLE_LOADTEST_THINK": args.think,
                  "SENTINELLE_LOADTEST_AREAS": args.areas,
                  "SENTINELLE_LOADTEST_TIMEOUT": str(args.timeout)}
    load_before = os.getloadavg()[0]
    process = log = sampler = None
    if args.url:
        url, settings = args.url.rstrip("/"), {}
        print(f"server at {url} (not started here: memory is not sampled)", flush=True)
    else:
        url, process, log = start_server(data, workdir, args.server, server_env,
                                         args.gunicorn_config)
        settings = server_settings(args.server, server_env, args.gunicorn_config)
        sampler = MemorySampler(process.pid)
        sampler.start()
        print(f"{args.server} on {url} ({settings['workers']} worker(s) × "
              f"{settings['threads']} threads), data {data}, {os.cpu_count()} cores, "
              f"load average {load_before:.1f}", flush=True)
    levels = []
    try:
        if args.warmup:
            if sampler:
                sampler.phase = "warm-up"
            print(f"warm-up: {max(args.users)} users, {args.warmup} s", flush=True)
            done = run_locust(url, max(args.users), args.warmup, workdir / "warmup",
                              locust_env)
            _check_tool(done, workdir / "warmup")
        for index, users in enumerate(args.users):
            phase, prefix = f"{users} users", workdir / f"level{index}"
            if sampler:
                sampler.phase = phase_name(index, users)
            print(f"{phase}, {args.duration} s", flush=True)
            done = run_locust(url, users, args.duration, prefix, locust_env)
            _check_tool(done, prefix)
            run = {"users": users, **read_results(prefix, args.duration)}
            if sampler:
                values = sampler.of(phase_name(index, users))
                run["memory"] = {"start_mb": level(values, last=False),
                                 "end_mb": level(values, last=True),
                                 "peak_mb": max(values, default=float("nan"))}
            levels.append(run)
    except Exception:
        if log is not None:
            print(f"server log (tail):\n{log.read_text()[-2000:]}", file=sys.stderr)
        print(f"files of the run kept in {workdir}", file=sys.stderr)
        raise
    finally:
        try:
            if sampler:
                sampler.stop()
        finally:
            if process:
                stop_server(process)
    result = {
        "url": url if args.url else None,
        "server": (None if args.url else f"gunicorn -c {_shown(args.gunicorn_config)}"
                   if args.server == "gunicorn" else "sentinelle serve"),
        **settings, "data": None if args.url else str(data),
        "cores": os.cpu_count(), "load_average": [load_before, os.getloadavg()[0]],
        "think_seconds": args.think, "areas": args.areas.split(","),
        "client_timeout_s": args.timeout,
        "warmup_seconds": args.warmup, "duration_seconds": args.duration,
        "errors": sum(run["errors"] for run in levels),
        "levels": levels,
        "memory": memory_summary(sampler, args) if sampler else None,
    }
    if result["errors"] and log is not None:  # keep the server's log to find the cause
        result["server_log"] = str(log)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def phase_name(index: int, users: int) -> str:
    return f"level {index + 1}: {users} users"


def memory_summary(sampler: MemorySampler, args: argparse.Namespace) -> dict:
    """Peak of the measured levels, and the drift from right after the warm-up (or from the
    start of the first level without warm-up) to the end of the run."""
    warm = sampler.of("warm-up") if args.warmup else []
    baseline = level(warm, last=True) if warm else level(
        sampler.of(phase_name(0, args.users[0])), last=False)
    last = len(args.users) - 1
    end = level(sampler.of(phase_name(last, args.users[last])), last=True)
    drift = (end - baseline) / baseline
    measured = [mb for _, mb, phase in sampler.samples if phase.startswith("level")]
    return {"post_warmup_mb": baseline, "end_mb": end,
            "peak_mb": max(measured, default=float("nan")),
            "drift_percent": round(100 * drift, 1),
            "tolerance_percent": round(100 * args.memory_tolerance, 1),
            "flat": drift <= args.memory_tolerance,
            "samples": sampler.samples}


def _check_tool(done: subprocess.CompletedProcess, prefix: Path) -> None:
    """Locust exits 1 when requests failed (reported as errors); anything else, or no
    statistics at all, is a failure of the tool itself."""
    if done.returncode not in (0, 1) or not Path(f"{prefix}_stats.csv").exists():
        raise RuntimeError(f"locust failed (exit {done.returncode}):\n{done.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path,
                        default=Path(os.environ.get("SENTINELLE_DATA", REPO / "data")))
    parser.add_argument("--users", type=int, nargs="+", default=[20, 50],
                        help="concurrent clients, one run per value (default 20 50)")
    parser.add_argument("--duration", type=int, default=60, help="seconds per level")
    parser.add_argument("--warmup", type=int, default=60,
                        help="seconds of warm-up at the highest level (0: none)")
    parser.add_argument("--server", choices=("gunicorn", "flask"),
                        default="gunicorn" if has_gunicorn() else "flask",
                        help="gunicorn -c deploy/gunicorn.conf.py (default when installed) "
                             "or sentinelle serve")
    parser.add_argument("--gunicorn-config", type=Path, default=GUNICORN_CONF,
                        help="gunicorn settings (default deploy/gunicorn.conf.py)")
    parser.add_argument("--workers", type=int, help="gunicorn workers (SENTINELLE_WORKERS)")
    parser.add_argument("--threads", type=int, help="threads per worker (SENTINELLE_THREADS)")
    parser.add_argument("--think", default="0.5-2",
                        help="think time of a client between requests, seconds (MIN-MAX)")
    parser.add_argument("--areas", default="bretagne,guyane")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="client timeout, seconds: a slower answer is an error")
    parser.add_argument("--memory-tolerance", type=float, default=0.15,
                        help="allowed growth of server RSS from warm-up to the end (0.15 = 15 %%)")
    parser.add_argument("--url", help="load a server already running at this URL instead "
                        "(nothing started, memory not sampled)")
    parser.add_argument("--json", type=Path, default=REPO / "build" / "loadtest.json")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server on the way out
    if args.server == "flask" and not has_gunicorn():
        print("gunicorn is not installed (pip install -e '.[deploy]'): "
              "measuring `sentinelle serve` instead", file=sys.stderr)
    result = load_test(args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    print()
    print_table(result)
    print(f"JSON: {args.json}")
    if result.get("server_log"):
        print(f"server log: {result['server_log']}")
    if result["errors"]:
        return 1
    return 2 if result["memory"] and not result["memory"]["flat"] else 0


if __name__ == "__main__":
    sys.exit(main())
