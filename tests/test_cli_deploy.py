"""The command line and the deployment files, as an operator uses them."""

from __future__ import annotations

import importlib
import runpy
import subprocess
import sys

import yaml

from tests.conftest import REPO


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sentinelle.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=env)


def test_cli_lists_its_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("sample-data", "serve", "openapi"):
        assert command in result.stdout


def test_sample_data_refuses_to_overwrite_without_force(sample_dir):
    result = run_cli("sample-data", str(sample_dir))
    assert result.returncode == 0
    assert "already holds a sample catalog" in result.stdout


def test_sample_data_rejects_a_bad_tile_size(tmp_path):
    result = run_cli("sample-data", str(tmp_path / "x"), "--tile-size", "12")
    assert result.returncode == 2 and "tile-size" in result.stderr


def test_openapi_document_is_generated(tmp_path, sample_dir):
    import os

    out = tmp_path / "openapi.yml"
    env = dict(os.environ, SENTINELLE_DATA=str(sample_dir))
    env.pop("PYGEOAPI_OPENAPI", None)
    result = run_cli("openapi", "--output", str(out), env=env)
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(out.read_text())
    assert "/collections/bretagne-parcels/items" in document["paths"]
    assert "/collections/sentinel-2-l2a/items" in document["paths"]


def test_gunicorn_config_points_at_the_app():
    settings = runpy.run_path(str(REPO / "deploy" / "gunicorn.conf.py"))
    module, call = settings["wsgi_app"].split(":")
    assert call == "create_app()"
    assert callable(getattr(importlib.import_module(module), "create_app"))
    assert settings["worker_class"] == "gthread" and settings["timeout"] >= 60
