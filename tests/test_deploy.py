"""Static checks of the deployment files (no container engine, no Kubernetes needed): they
parse, what they reference exists, the app's environment is set, and ports agree between
gunicorn, the Containerfile, compose, nginx and the Kubernetes manifests."""

from __future__ import annotations

import importlib.metadata
import os
import re
import runpy
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from tests.conftest import REPO

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
#: what the web application needs from its environment in production
APP_ENV = {"SENTINELLE_DATA", "SENTINELLE_URL", "SENTINELLE_JOBS_DB", "DASK_SCHEDULER_ADDRESS",
           "PORT", "SENTINELLE_HOST"}
#: what a Dask worker needs: the same data paths and configuration as the web process
WORKER_ENV = {"SENTINELLE_DATA", "PYGEOAPI_CONFIG"}


def known_variables() -> set[str]:
    """Environment variables the code or the config read (to catch typos in deploy files)."""
    names = set()
    files = [REPO / "pygeoapi-config.yml", *DEPLOY.glob("*.py")]
    for folder in ("sentinelle", "processes", "catalog", "analysis", "providers"):
        files += (REPO / folder).rglob("*.py")
    for path in files:
        names |= set(re.findall(r"\b((?:SENTINELLE|PYGEOAPI|DASK)_[A-Z0-9_]+|PORT)\b",
                                path.read_text(encoding="utf-8")))
    return names


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict]:
    """Kubernetes objects by ``Kind/name``."""
    objects = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_all(path):
            if doc.get("kind") and doc.get("kind") != "Kustomization":
                objects[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return objects


@pytest.fixture(scope="module")
def nginx() -> str:
    return (DEPLOY / "nginx.conf").read_text()


def gunicorn_port(env_port: str) -> int:
    old = os.environ.get("PORT")
    os.environ["PORT"] = env_port
    try:
        settings = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    finally:
        if old is None:
            os.environ.pop("PORT")
        else:
            os.environ["PORT"] = old
    return int(settings["bind"].rsplit(":", 1)[1])


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# --- the image -------------------------------------------------------------------------------

def test_containerfile_copies_what_exists_and_runs_gunicorn():
    text = (DEPLOY / "Containerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "npm ci" in text
    stages = re.findall(r"^FROM \S+ AS (\S+)", text, re.M)
    for line in re.findall(r"^COPY (.+)$", text, re.M):
        parts = line.split()
        if parts[0].startswith("--from="):
            assert parts[0].split("=", 1)[1] in stages
            continue
        for source in parts[:-1]:
            assert (REPO / source).exists(), f"Containerfile copies a missing {source}"
    assert 'CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py"]' in text
    port = re.search(r"\bPORT=(\d+)", text).group(1)
    assert port in re.search(r"^EXPOSE (.+)$", text, re.M).group(1).split()
    assert gunicorn_port(port) == int(port)
    env = dict(re.findall(r"\b([A-Z][A-Z0-9_]+)=(\S+)", text))
    assert env["PYGEOAPI_CONFIG"] == "/app/pygeoapi-config.yml"
    assert (REPO / "pygeoapi-config.yml").exists()


def test_commands_exist():
    """``dask scheduler``/``dask worker`` and gunicorn, as the deploy files call them."""
    commands = {ep.name for ep in importlib.metadata.entry_points(group="dask_cli")}
    assert {"scheduler", "worker"} <= commands
    scripts = {ep.name for ep in importlib.metadata.entry_points(group="console_scripts")}
    assert "dask" in scripts and "sentinelle" in scripts
    settings = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    module, _, call = settings["wsgi_app"].partition(":")
    assert (REPO / module.replace(".", "/")).with_suffix(".py").exists() and call
    assert (REPO / "processes" / "manager.py").exists()
    config = yaml.safe_load((REPO / "pygeoapi-config.yml").read_text())
    manager = config["server"]["manager"]["name"]
    assert manager == "sentinelle.processes.manager.SentinelleManager"


# --- compose ---------------------------------------------------------------------------------

def test_compose_services(compose):
    services = compose["services"]
    assert {"sentinelle", "dask-scheduler", "dask-worker", "postgres", "nginx"} <= set(services)
    build = services["sentinelle"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == \
        (DEPLOY / "Containerfile").resolve()
    assert services["dask-worker"]["deploy"]["replicas"] == 2
    assert services["dask-scheduler"]["command"][:2] == ["dask", "scheduler"]
    assert services["dask-worker"]["command"][:2] == ["dask", "worker"]
    assert services["sentinelle"]["command"] == ["gunicorn", "-c", "deploy/gunicorn.conf.py"]
    for volume in services["nginx"]["volumes"]:
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (DEPLOY / source).exists()


def test_compose_environment_and_ports(compose, nginx):
    services = compose["services"]
    web = services["sentinelle"]["environment"]
    assert APP_ENV <= set(web), APP_ENV - set(web)
    unknown = set(web) - known_variables()
    assert not unknown, f"variables the app does not read: {unknown}"
    # web port: gunicorn ↔ compose ↔ nginx upstream
    port = int(web["PORT"])
    assert gunicorn_port(web["PORT"]) == port
    assert str(port) in [str(p) for p in services["sentinelle"]["expose"]]
    assert re.search(rf"server sentinelle:{port};", nginx)
    # nginx listens where compose publishes it
    listen = re.search(r"listen (\d+);", nginx).group(1)
    assert any(str(p).endswith(f":{listen}") for p in services["nginx"]["ports"])
    # the scheduler address points at the scheduler service and its port
    scheduler = urlparse(web["DASK_SCHEDULER_ADDRESS"])
    command = services["dask-scheduler"]["command"]
    assert scheduler.hostname == "dask-scheduler"
    assert str(scheduler.port) == command[command.index("--port") + 1]
    worker = services["dask-worker"]["command"]
    assert web["DASK_SCHEDULER_ADDRESS"] in worker
    # the job database is the postgres service, with its user and database
    db = urlparse(web["SENTINELLE_JOBS_DB"].replace("${POSTGRES_PASSWORD:-sentinelle}", "x"))
    postgres = services["postgres"]["environment"]
    assert (db.hostname, db.port) == ("postgres", 5432)
    assert db.username == postgres["POSTGRES_USER"] and db.path == f"/{postgres['POSTGRES_DB']}"
    # workers see the same data and configuration, at the same paths
    workers = services["dask-worker"]["environment"]
    assert WORKER_ENV <= set(workers)
    assert workers["SENTINELLE_DATA"] == web["SENTINELLE_DATA"]
    data_mount = {v.split(":")[1] for v in services["sentinelle"]["volumes"]}
    assert data_mount == {v.split(":")[1] for v in services["dask-worker"]["volumes"]}
    assert web["SENTINELLE_DATA"] in data_mount


def test_nginx_caches_maps_and_tiles_only(nginx):
    assert "proxy_cache_path" in nginx
    cached = re.findall(r"location ([^{]+)\{([^}]*)\}", nginx)
    by_path = {path.strip(): body for path, body in cached}
    maps = next(body for path, body in by_path.items() if "map|tiles" in path)
    assert "proxy_cache sentinelle;" in maps
    assert "proxy_cache " not in by_path["/"]
    timeout = int(re.search(r"proxy_read_timeout (\d+)s", nginx).group(1))
    assert timeout >= runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))["timeout"]
    assert (K8S / "nginx.conf").read_text() == nginx, "deploy/k8s/nginx.conf is a copy"


# --- Kubernetes ------------------------------------------------------------------------------

def test_kustomization_lists_existing_files():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).exists(), resource
    for generator in kustomization.get("configMapGenerator", []):
        for entry in generator["files"]:
            assert (K8S / entry.split("=")[-1]).exists(), entry


def test_k8s_dask_cluster_and_web(k8s, nginx):
    cluster = k8s["DaskCluster/sentinelle"]
    assert cluster["apiVersion"] == "kubernetes.dask.org/v1"
    assert cluster["spec"]["worker"]["replicas"] == 2
    scheduler = cluster["spec"]["scheduler"]["spec"]["containers"][0]
    comm = next(p for p in cluster["spec"]["scheduler"]["service"]["ports"]
                if p["name"] == "tcp-comm")
    assert str(comm["port"]) == scheduler["args"][scheduler["args"].index("--port") + 1]
    worker = cluster["spec"]["worker"]["spec"]["containers"][0]
    assert worker["args"][:2] == ["dask", "worker"]
    assert WORKER_ENV <= set(env_of(worker))

    web = k8s["Deployment/sentinelle"]["spec"]["template"]["spec"]["containers"][0]
    env = env_of(web)
    assert APP_ENV <= set(env), APP_ENV - set(env)
    assert not set(env) - known_variables()
    address = urlparse(env["DASK_SCHEDULER_ADDRESS"])
    # the operator names the scheduler Service <cluster>-scheduler
    assert (address.hostname, address.port) == (f"{cluster['metadata']['name']}-scheduler",
                                                 comm["port"])
    port = int(env["PORT"])
    assert gunicorn_port(env["PORT"]) == port
    assert web["ports"][0]["containerPort"] == port
    service = k8s["Service/sentinelle"]["spec"]["ports"][0]
    assert service["port"] == port and re.search(rf"server sentinelle:{port};", nginx)
    nginx_container = k8s["Deployment/nginx"]["spec"]["template"]["spec"]["containers"][0]
    listen = int(re.search(r"listen (\d+);", nginx).group(1))
    assert nginx_container["ports"][0]["containerPort"] == listen
    assert env_of(worker)["SENTINELLE_DATA"] == env["SENTINELLE_DATA"]
    mounts = {m["mountPath"] for m in web["volumeMounts"]}
    assert {m["mountPath"] for m in worker["volumeMounts"]} == mounts
    assert "PersistentVolumeClaim/sentinelle-data" in k8s
    postgres = k8s["Service/postgres"]["spec"]["ports"][0]
    assert postgres["port"] == 5432


def test_readme_sizes_both_regions():
    text = (DEPLOY / "README.md").read_text()
    assert "## Sizing" in text and "Brittany" in text and "French Guiana" in text
    for name in ("SENTINELLE_JOBS_DB", "DASK_SCHEDULER_ADDRESS", "SENTINELLE_JOBS_MAX_RUNNING"):
        assert name in text
