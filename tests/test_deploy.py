"""Static checks of the deployment files (no container engine, no Kubernetes needed): they
parse, what they reference exists, the app's environment is set, and ports agree between
gunicorn, the Containerfile, compose, nginx and the Kubernetes manifests."""

from __future__ import annotations

import http.server
import importlib.metadata
import json
import os
import re
import runpy
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlparse, urlsplit

import pytest
import requests
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


# --- reverse proxy and access control (issue 10) ------------------------------------------------

def test_access_example_is_a_valid_policy(tmp_path, monkeypatch):
    from sentinelle.web.access import Policy

    config = yaml.safe_load((DEPLOY / "access.example.yml").read_text())
    secret = tmp_path / "key"
    secret.write_text("guyane-" + "x" * 24)
    for entry in config["api_keys"]:
        if "file" in entry:
            entry["file"] = str(secret)
    monkeypatch.setenv("SENTINELLE_KEY_REGION_BRETAGNE", "bretagne-" + "y" * 24)
    config["oidc"]["issuer"] = "https://sso.example.fr/realms/sdi"
    policy = Policy.from_dict(config)
    assert policy.rule("spectral-index").open
    assert policy.rule("change-detection").keys == ("ddtm-35", "region-bretagne")
    assert policy.rule("classification").scopes == ("sentinelle:classify",)
    assert policy.rule("zonal-statistics").methods == ("api-key", "oidc")
    assert policy.oidc.algorithms == ("RS256", "ES256")
    assert "SENTINELLE_ACCESS_CONFIG" in known_variables()
    text = (DEPLOY / "reverse-proxy.md").read_text()
    for topic in ("TLS", "SENTINELLE_URL", "X-Forwarded", "client_max_body_size",
                  "proxy_read_timeout", "limit_req", "Authorization", "oauth2-proxy",
                  "geOrchestra", "dashboard", "SENTINELLE_ACCESS_CONFIG"):
        assert topic in text, topic


def test_nginx_rate_limits_and_passes_credentials(nginx):
    zones = dict(re.findall(r"limit_req_zone \$binary_remote_addr zone=(\w+):\w+ "
                            r"rate=(\d+r/s);", nginx))
    # INSPIRE: view services 20 requests/s, download services 10 requests/s
    assert zones["sentinelle_view"] == "20r/s" and zones["sentinelle_download"] == "10r/s"
    assert "limit_req_status 429;" in nginx
    locations = dict((p.strip(), b) for p, b in re.findall(r"location ([^{]+)\{([^}]*)\}",
                                                           nginx))
    for path, body in locations.items():
        if path != "/vendor/":
            assert "limit_req zone=" in body, f"location {path} is not rate-limited"
    execute = next(b for p, b in locations.items() if "execution" in p)
    assert "zone=sentinelle_execute" in execute and "proxy_cache " not in execute
    assert not re.search(r"proxy_set_header\s+(Authorization|X-API-Key)", nginx, re.I)
    assert "underscores_in_headers" not in nginx
    for header in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"):
        assert f"proxy_set_header {header}" in nginx


class _Echo:
    """An upstream that answers with the headers it received (as JSON)."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def running_nginx(nginx, tmp_path):
    """deploy/nginx.conf in a real nginx (Debian's, when installed) before an echo upstream."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                       else None)
    if binary is None or not Path("/etc/nginx/mime.types").exists():
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    echo = _Echo()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    text = (nginx.replace("server sentinelle:5000;", f"server 127.0.0.1:{echo.port};")
            .replace("listen 80;", f"listen 127.0.0.1:{port};")
            .replace("/var/cache/nginx/sentinelle", str(tmp_path / "cache"))
            .replace("worker_processes auto;", "worker_processes 1;"))
    if os.geteuid() == 0:  # workers would run as nobody, unable to write the tmp folders
        text = "user root;\n" + text
    text = text.replace("http {", f"http {{\n    access_log {tmp_path}/access.log;\n"
                                  f"    client_body_temp_path {tmp_path}/body;\n"
                                  f"    proxy_temp_path {tmp_path}/proxy;", 1)
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    process = subprocess.Popen([binary, "-c", str(conf), "-e", str(tmp_path / "error.log"),
                                "-g", f"daemon off; pid {tmp_path}/nginx.pid;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            requests.get(f"{url}/conformance", timeout=2)
            break
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                echo.close()
                error = (tmp_path / "error.log").read_text() if \
                    (tmp_path / "error.log").exists() else ""
                pytest.fail(f"nginx did not start: {error}")
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)
    echo.close()


def test_nginx_in_front(running_nginx):
    url = running_nginx
    # credentials reach Sentinelle unchanged, with the forwarded headers
    seen = requests.get(f"{url}/jobs", headers={"Authorization": "Bearer abc.def.ghi",
                                                "X-API-Key": "k-123"}, timeout=10).json()
    assert seen["authorization"] == "Bearer abc.def.ghi" and seen["x-api-key"] == "k-123"
    assert seen["x-forwarded-proto"] == "http" and seen["x-forwarded-for"] == "127.0.0.1"
    # maps are cached, jobs are not
    first = requests.get(f"{url}/collections/x/map?bbox=1,2,3,4", timeout=10)
    second = requests.get(f"{url}/collections/x/map?bbox=1,2,3,4", timeout=10)
    assert (first.headers["X-Cache-Status"], second.headers["X-Cache-Status"]) == \
        ("MISS", "HIT")
    assert "X-Cache-Status" not in requests.get(f"{url}/jobs", timeout=10).headers
    # executions: 2 r/s with a burst of 10, then 429
    codes = [requests.post(f"{url}/processes/p/execution", json={}, timeout=10).status_code
             for _ in range(16)]
    assert codes[:11] == [200] * 11 and 429 in codes[11:]
    # a body over client_max_body_size (50m) is refused before reaching Sentinelle
    host, port = urlsplit(url).hostname, urlsplit(url).port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"POST /processes/p/execution HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 60000000\r\n\r\n")
        assert sock.recv(100).split(b" ")[1] == b"413"
