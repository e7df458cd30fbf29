"""Shared fixtures: the sample data (generated once) and a real server process on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    """The sample data: ``SENTINELLE_DATA`` when it already holds it (``make test`` made it),
    else generated once into a temporary folder."""
    configured = os.environ.get("SENTINELLE_DATA")
    if configured and (Path(configured) / "catalog" / "catalog.json").exists():
        return Path(configured)
    from sentinelle.catalog.sample import generate

    out = tmp_path_factory.mktemp("sample")
    generate(out)
    return out


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real public data); tests using it skip when it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data is not present beside the repository")
    return SHARED


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path

    def stop(self, timeout: float = 10) -> None:
        """Terminate the server, killed if it has not stopped within ``timeout`` seconds."""
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_server(data: Path, workdir: Path, extra_env: dict | None = None,
                 config: Path | None = None) -> Server:
    """``sentinelle serve`` over ``data`` (with ``--config`` when given), once it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, SENTINELLE_DATA=str(data), SENTINELLE_URL=url, PORT=str(port),
               PYGEOAPI_OPENAPI=str(workdir / "openapi.yml"), **(extra_env or {}))
    env.pop("PYGEOAPI_CONFIG", None)
    env.pop("SENTINELLE_CATALOG", None)
    log = workdir / f"server-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "sentinelle.cli", "serve", "--port", str(port),
         *(["--config", str(config)] if config else [])],
        cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_until_serving(url, process, log)
    except RuntimeError:
        process.terminate()
        raise
    return Server(url, process, log)


def wait_until_serving(url: str, process: subprocess.Popen, log: Path,
                       seconds: float = 120, poll: float = 0.3) -> None:
    """Return once ``url`` answers ``/conformance``; RuntimeError with the end of ``log`` if the
    process exits first or ``seconds`` pass (stopping it is the caller's choice)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/conformance?f=json", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(poll)
    raise RuntimeError(f"server did not answer within {seconds:g} s:\n"
                       f"{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def server(sample_dir, tmp_path_factory):
    """A real ``sentinelle serve`` process on a free loopback port, over the sample data."""
    srv = start_server(sample_dir, tmp_path_factory.mktemp("server"))
    yield srv
    srv.stop()
