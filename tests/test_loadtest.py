"""The load test tool itself (``benchmarks/loadtest.py`` + ``benchmarks/locustfile.py``), run
for a few seconds so that it cannot rot: it starts the server as production does, the mix of
requests gets answers, the figures and the JSON are written — and failed requests are
reported and make it exit non-zero."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.server

SCRIPT = REPO / "benchmarks" / "loadtest.py"
KINDS = {"wms GetMap 256²", "wms GetFeatureInfo", "wms GetCapabilities", "maps PNG 256²",
         "features parcels bbox", "features CQL2 filter", "records search",
         "coverages NDVI subset", "process spectral-index", "process zonal-statistics"}


def run(*args: str, timeout: int = 150) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout)


def test_short_run_has_no_errors_and_writes_the_figures(sample_dir, tmp_path):
    out = tmp_path / "loadtest.json"
    # one worker and a few seconds: the tool is checked here, not the server's capacity
    done = run(str(sample_dir), "--users", "3", "--duration", "6", "--warmup", "0",
               "--workers", "1", "--think", "0.1-0.3", "--memory-tolerance", "10",
               "--json", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["errors"] == 0
    (level,) = result["levels"]
    assert level["users"] == 3 and level["requests"] >= 3 and level["rps"] > 0
    assert level["errors_listed"] == []
    assert level["p50_ms"] > 0 and level["p95_ms"] >= level["p50_ms"]
    assert sum(kind["requests"] for kind in level["kinds"].values()) == level["requests"]
    assert set(level["kinds"]) <= KINDS
    memory = result["memory"]
    assert 100 < memory["peak_mb"] < 20_000 and memory["samples"]
    assert result["workers"] == 1 or result["server"] == "sentinelle serve"
    assert "req/s" in done.stdout and "no errors" in done.stdout


def test_failed_requests_are_reported_and_fail_the_run(server, tmp_path):
    # a client timeout (1 ms) that the answers cannot meet: requests fail
    out = tmp_path / "loadtest.json"
    done = run("--url", server.url, "--users", "2", "--duration", "3", "--warmup", "0",
               "--timeout", "0.001", "--json", str(out))
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    (level,) = result["levels"]
    assert result["errors"] == level["errors"] > 0
    assert level["errors_listed"] and level["errors_listed"][0]["message"]
    assert "ERRORS" in done.stdout
