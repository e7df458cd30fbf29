"""Helpers of the QGIS plugin tests: a stock pygeoapi server (its ``hello-world`` example, to
prove the plugin is not tied to Sentinelle), the headless QGIS it is checked in, and the
plugin zip installed into a clean QGIS profile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, Server, free_port, wait_until_serving

PLUGIN_DIR = REPO / "qgis_plugin"
RUNNER = Path(__file__).with_name("qgis_runner.py")
QGIS_PYTHON = "/usr/bin/python3"
QGIS_ENV = {"QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": "/tmp"}

STOCK_CONFIG = """
server:
  bind: {{host: 127.0.0.1, port: {port}}}
  url: {url}
  mimetype: application/json; charset=UTF-8
  encoding: utf-8
  languages: [en-US, fr-FR]
  limits: {{default_items: 10, max_items: 50}}
  map:
    url: https://tile.openstreetmap.org/{{z}}/{{x}}/{{y}}.png
    attribution: OpenStreetMap
  manager:
    name: TinyDB
    connection: {workdir}/jobs.db
    output_dir: {workdir}/results
logging:
  level: ERROR
metadata:
  identification:
    title: {{en: Stock pygeoapi, fr: pygeoapi d'origine}}
    description: {{en: The hello-world example only, fr: "L'exemple hello-world seulement"}}
    keywords: {{en: [test]}}
    keywords_type: theme
    terms_of_service: https://creativecommons.org/licenses/by/4.0/
    url: https://pygeoapi.io
  license: {{name: CC-BY 4.0, url: https://creativecommons.org/licenses/by/4.0/}}
  provider: {{name: test, url: https://pygeoapi.io}}
  contact:
    name: test
    position: test
    address: test
    city: test
    stateorprovince: test
    postalcode: "0"
    country: test
    phone: "0"
    fax: "0"
    email: test@example.org
    url: https://pygeoapi.io
    hours: any
    instructions: none
    role: pointOfContact
resources:
  hello-world:
    type: process
    processor: {{name: HelloWorld}}
"""


def start_stock_pygeoapi(workdir: Path) -> Server:
    """pygeoapi's own Flask app from the installed package, with only ``hello-world``
    (TinyDB jobs so that asynchronous execution works)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (workdir / "results").mkdir(parents=True, exist_ok=True)
    config = workdir / "pygeoapi-config.yml"
    config.write_text(STOCK_CONFIG.format(port=port, url=url, workdir=workdir))
    env = dict(os.environ, PYGEOAPI_CONFIG=str(config),
               PYGEOAPI_OPENAPI=str(workdir / "openapi.yml"))
    bin_dir = Path(sys.executable).parent
    subprocess.run([str(bin_dir / "pygeoapi"), "openapi", "generate", str(config),
                    "--output-file", str(workdir / "openapi.yml")], env=env, check=True,
                   capture_output=True)
    log = workdir / f"pygeoapi-{port}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "pygeoapi.flask_app", "run",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=workdir, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_until_serving(url, process, log, seconds=60)
    except RuntimeError:
        process.terminate()
        raise
    return Server(url, process, log)


def qgis_missing() -> str | None:
    """Why QGIS cannot be used here (``None`` when Debian's QGIS imports headless)."""
    if not Path(QGIS_PYTHON).exists():
        return f"{QGIS_PYTHON} is not installed"
    probe = subprocess.run(
        [QGIS_PYTHON, "-c", "from qgis.core import Qgis; print(Qgis.QGIS_VERSION)"],
        capture_output=True, text=True, env=dict(os.environ, **QGIS_ENV), timeout=120)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        return f"QGIS is not installed (Debian: python3-qgis qgis-providers): {last}"
    return None


def build_zip(out: Path) -> Path:
    """``make qgis-plugin``'s zip, built into ``out`` (skips when ``lrelease`` is missing)."""
    if not any(shutil.which(t) for t in ("lrelease", "lrelease-qt5")):
        pytest.skip("Qt's lrelease is not installed (Debian: qttools5-dev-tools)")
    done = subprocess.run([sys.executable, str(PLUGIN_DIR / "build.py"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


def install_zip(archive: Path, config_root: Path) -> Path:
    """Unzip the plugin into a clean profile, as the plugin manager's « install from ZIP »
    does: ``<QGIS_CUSTOM_CONFIG_PATH>/profiles/default/python/plugins``."""
    plugins = config_root / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(plugins)
    return plugins


def run_qgis(spec: dict, config_root: Path, workdir: Path, timeout: float = 180) -> dict:
    """Run ``qgis_runner.py`` with ``spec`` in a headless QGIS using the profile under
    ``config_root``; its JSON report."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec_path, out_path = workdir / "spec.json", workdir / "out.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(config_root), **QGIS_ENV)
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):  # the venv is not QGIS's Python
        env.pop(name, None)
    done = subprocess.run([QGIS_PYTHON, str(RUNNER), str(spec_path), str(out_path)],
                          env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=workdir)
    assert out_path.exists(), f"QGIS exited with {done.returncode}:\n{done.stderr[-3000:]}"
    report = json.loads(out_path.read_text())
    assert not report.get("exception"), report["exception"]
    return report
