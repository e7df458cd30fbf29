"""Access control (issue 10, part 5), as clients see it, against a real server process.

One server with access control on (``SENTINELLE_ACCESS_CONFIG``): ``spectral-index`` open,
``zonal-statistics`` for any key or token (the default), ``change-detection`` for the key
``alice`` only, ``classification`` for OIDC tokens with the scope ``sentinelle:classify``.
The OIDC provider is a real loopback HTTP server serving a JWKS of keys generated here; tokens
are signed with PyJWT.  The policy rules that need no server are checked in-process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import secrets
import threading
import time
import uuid

import jwt
import pytest
import requests
import yaml
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import start_server

pytestmark = pytest.mark.server

ALICE = "alice-" + secrets.token_urlsafe(24)
BOB = "bob-" + secrets.token_urlsafe(24)
AUDIENCE = "sentinelle"
#: one commune, one date: a second of work
QUICK = {"zones": {"collection": "bretagne-parcels", "filter": "commune = '35051'"},
         "datetime": "2024-05-17"}
FINAL = ("successful", "failed", "dismissed")


# --- a loopback OIDC provider ---------------------------------------------------------------

class Provider:
    """Keys and a JWKS served over HTTP; ``fetches`` counts the server's downloads."""

    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.published = [self.jwk(self.rsa.public_key(), "rsa-1", "RS256"),
                          self.jwk(self.ec.public_key(), "ec-1", "ES256")]
        self.fetches = 0
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path != "/jwks":
                    self.send_error(404)
                    return
                provider.fetches += 1
                body = json.dumps({"keys": provider.published}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.issuer = f"{self.base}/realms/sdi"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def jwk(public_key, kid: str, alg: str) -> dict:
        algorithm = jwt.algorithms.RSAAlgorithm if alg.startswith("RS") \
            else jwt.algorithms.ECAlgorithm
        return {**algorithm.to_jwk(public_key, as_dict=True), "kid": kid, "alg": alg,
                "use": "sig"}

    def token(self, *, key=None, kid: str = "rsa-1", alg: str = "RS256", **claims) -> str:
        now = int(time.time())
        payload = {"iss": self.issuer, "aud": AUDIENCE, "sub": "agent-35", "iat": now,
                   "exp": now + 300, **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key or self.rsa, algorithm=alg, headers={"kid": kid})

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(claims: dict) -> str:
    """``alg: none`` — what an attacker sends hoping the server skips the signature."""
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa-1"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


def hs256_with_public_key(provider: Provider, claims: dict) -> str:
    """The classic key-confusion attack: HMAC "signed" with the provider's public key."""
    from cryptography.hazmat.primitives import serialization

    secret = provider.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


# --- the server ---------------------------------------------------------------------------------

def access_config(provider: Provider) -> dict:
    return {
        "realm": "Sentinelle-test",
        "default": "authenticated",
        "processes": {
            "spectral-index": "open",
            "change-detection": {"methods": ["api-key"], "keys": ["alice"]},
            "classification": {"methods": ["oidc"], "scopes": ["sentinelle:classify"]},
        },
        "api_keys": [
            {"id": "alice", "sha256": hashlib.sha256(ALICE.encode()).hexdigest()},
            {"id": "bob", "env": "TEST_ACCESS_BOB_KEY"},
        ],
        "oidc": {"issuer": provider.issuer, "audience": AUDIENCE,
                 "jwks_url": f"{provider.base}/jwks", "algorithms": ["RS256", "ES256"],
                 "leeway": 0, "min_refresh": 1},
    }


@pytest.fixture(scope="module")
def provider():
    p = Provider()
    yield p
    p.close()


@pytest.fixture(scope="module")
def secured(sample_dir, tmp_path_factory, provider):
    workdir = tmp_path_factory.mktemp("access")
    config = workdir / "access.yml"
    config.write_text(yaml.safe_dump(access_config(provider)), encoding="utf-8")
    srv = start_server(sample_dir, workdir, {
        "SENTINELLE_ACCESS_CONFIG": str(config), "TEST_ACCESS_BOB_KEY": BOB,
        # jobs of this server only (the sample folder's job file is shared)
        "SENTINELLE_JOBS_DB": str(workdir / "jobs.tinydb"),
        "SENTINELLE_RESULTS": str(workdir / "results")})
    yield srv
    srv.stop()


def execute(url: str, process: str, inputs: dict, headers: dict | None = None,
            asynchronous: bool = False) -> requests.Response:
    headers = dict(headers or {})
    if asynchronous:
        headers["Prefer"] = "respond-async"
    return requests.post(f"{url}/processes/{process}/execution", json={"inputs": inputs},
                         headers=headers, timeout=120)


def key(value: str) -> dict:
    return {"X-API-Key": value}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def wait_finished(location: str, headers: dict, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = requests.get(location, params={"f": "json"}, headers=headers, timeout=30).json()
        if info["status"] in FINAL:
            return info
        time.sleep(0.2)
    raise AssertionError(f"{location} did not finish: {info}")


def job_ids(url: str, headers: dict) -> set[str]:
    response = requests.get(f"{url}/jobs", params={"f": "json", "limit": 1000},
                            headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return {job["jobID"] for job in response.json()["jobs"]}


# --- API keys -------------------------------------------------------------------------------------

def test_read_only_endpoints_stay_open(secured):
    for path in ("/", "/conformance", "/collections", "/collections/bretagne-communes/items",
                 "/processes", "/processes/zonal-statistics", "/openapi",
                 "/wms?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.3.0"):
        response = requests.get(f"{secured.url}{path}", params={"f": "json"}
                                if "?" not in path else None, timeout=60)
        assert response.status_code == 200, (path, response.status_code, response.text[:200])


def test_anonymous_execution_is_401_with_challenges(secured):
    response = execute(secured.url, "zonal-statistics", QUICK)
    assert response.status_code == 401
    challenges = response.headers["WWW-Authenticate"]
    assert 'Bearer realm="Sentinelle-test"' in challenges
    assert 'ApiKey realm="Sentinelle-test", header="X-API-Key"' in challenges
    body = response.json()
    assert body["code"] == "Unauthorized"
    # French first, then English, saying how to authenticate
    assert body["description"].startswith("Identification requise")
    assert "X-API-Key" in body["description"] and "Bearer" in body["description"]


def test_wrong_key_is_401_even_on_an_open_process(secured):
    for process in ("zonal-statistics", "spectral-index"):
        response = execute(secured.url, process, QUICK, key("not-a-key-" + BOB))
        assert response.status_code == 401, response.text
        assert "Invalid API key" in response.json()["description"]
    response = requests.get(f"{secured.url}/jobs", headers=key("nope"), timeout=30)
    assert response.status_code == 401


def test_valid_keys_execute_and_get_the_same_answer(secured):
    alice = execute(secured.url, "zonal-statistics", QUICK, key(ALICE))
    assert alice.status_code == 200, alice.text
    features = alice.json()["features"]
    assert features and all(f["properties"]["count"] >= 0 for f in features)
    # the same request through "Authorization: ApiKey", by the other key
    bob = execute(secured.url, "zonal-statistics", QUICK, {"Authorization": f"ApiKey {BOB}"})
    assert bob.status_code == 200, bob.text
    assert bob.json()["features"] == features


def test_open_process_needs_no_credentials(secured):
    # a proxy's own Basic login is not a credential of Sentinelle's: anonymous here
    response = execute(secured.url, "spectral-index",
                       {"area": {"collection": "bretagne-communes", "id": "35051"},
                        "datetime": "2024-05-17", "index": "NDVI", "format": "json"},
                       {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="})
    assert response.status_code == 200, response.text
    assert response.json()["index"] == "NDVI"


def test_valid_key_not_allowed_for_a_process_is_403(secured):
    response = execute(secured.url, "change-detection", {}, key(BOB))
    assert response.status_code == 403
    assert "'bob' is not allowed to execute 'change-detection'" in response.json()["description"]
    # alice passes the check (and then the process itself says what is missing)
    response = execute(secured.url, "change-detection", {}, key(ALICE))
    assert response.status_code == 400, response.text
    # classification takes OIDC tokens only
    response = execute(secured.url, "classification", {}, key(ALICE))
    assert response.status_code == 403


def test_jobs_are_visible_only_to_the_key_that_created_them(secured):
    created = execute(secured.url, "zonal-statistics", QUICK, key(ALICE), asynchronous=True)
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    job_id = created.json()["jobID"]
    assert wait_finished(location, key(ALICE))["status"] == "successful"
    assert job_id in job_ids(secured.url, key(ALICE))
    results = requests.get(f"{location}/results", headers=key(ALICE), timeout=30)
    assert results.status_code == 200 and results.json()["features"]

    # bob: as if the job did not exist (404, not 403), and not in his list
    for url in (location, f"{location}/results"):
        response = requests.get(url, headers=key(BOB), timeout=30)
        assert response.status_code == 404, (url, response.status_code)
    assert requests.delete(location, headers=key(BOB), timeout=30).status_code == 404
    assert job_id not in job_ids(secured.url, key(BOB))
    # anonymous callers may list jobs (spectral-index is open) but only anonymous ones
    assert requests.get(location, timeout=30).status_code == 404
    assert job_id not in job_ids(secured.url, {})
    # bob's DELETE did nothing; alice still has her job and can dismiss it
    assert requests.get(location, headers=key(ALICE), timeout=30).status_code == 200
    assert requests.delete(location, headers=key(ALICE), timeout=30).status_code == 200


def test_anonymous_jobs_of_open_processes_stay_reachable(secured):
    created = execute(secured.url, "spectral-index",
                      {"area": {"collection": "bretagne-communes", "id": "35051"},
                       "datetime": "2024-05-17", "index": "NDVI", "format": "json"},
                      asynchronous=True)
    assert created.status_code == 201, created.text
    job_id = created.json()["jobID"]
    assert wait_finished(created.headers["Location"], {})["status"] == "successful"
    assert job_id in job_ids(secured.url, {})
    assert job_id not in job_ids(secured.url, key(ALICE))


# --- OIDC bearer tokens ---------------------------------------------------------------------------

def test_oidc_tokens_signed_by_the_provider_are_accepted(secured, provider):
    for token in (provider.token(), provider.token(key=provider.ec, kid="ec-1", alg="ES256")):
        response = execute(secured.url, "zonal-statistics", QUICK, bearer(token))
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("case", ["expired", "audience", "issuer", "none", "hs256-confusion",
                                  "unknown-key", "no-sub", "garbage"])
def test_bad_tokens_are_401(secured, provider, case):
    now = int(time.time())
    claims = {"iss": provider.issuer, "aud": AUDIENCE, "sub": "agent-35", "exp": now + 300}
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = {
        "expired": lambda: provider.token(exp=now - 60, iat=now - 600),
        "audience": lambda: provider.token(aud="another-service"),
        "issuer": lambda: provider.token(iss="https://evil.example/realms/sdi"),
        "none": lambda: unsigned_token(claims),
        "hs256-confusion": lambda: hs256_with_public_key(provider, claims),
        "unknown-key": lambda: provider.token(key=other, kid="forged"),
        "no-sub": lambda: provider.token(sub=None),
        "garbage": lambda: "not.a.token",
    }[case]()
    expected = {"expired": "expired", "audience": "wrong audience", "issuer": "wrong issuer",
                "none": "algorithm 'none' not accepted",
                "hs256-confusion": "algorithm 'HS256' not accepted",
                "unknown-key": "unknown to the identity provider", "no-sub": "'sub' missing",
                "garbage": "malformed"}[case]
    response = execute(secured.url, "zonal-statistics", QUICK, bearer(token))
    assert response.status_code == 401, response.text
    assert expected in response.json()["description"]
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_forged_token_with_a_published_kid_fails_the_signature(secured, provider):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = execute(secured.url, "zonal-statistics", QUICK,
                       bearer(provider.token(key=other, kid="rsa-1")))
    assert response.status_code == 401 and "invalid" in response.json()["description"]


def test_rotated_provider_key_is_fetched_on_unknown_kid(secured, provider):
    token = provider.token(key=provider.rotated, kid="rsa-2")
    assert execute(secured.url, "zonal-statistics", QUICK,
                   bearer(token)).status_code == 401
    provider.published.append(provider.jwk(provider.rotated.public_key(), "rsa-2", "RS256"))
    time.sleep(1.1)  # min_refresh: 1 s in this configuration
    before = provider.fetches
    assert execute(secured.url, "zonal-statistics", QUICK,
                   bearer(token)).status_code == 200
    assert provider.fetches == before + 1
    # made-up kids do not make the server fetch the JWKS on every request
    before = provider.fetches
    for n in range(5):
        execute(secured.url, "zonal-statistics", QUICK,
                bearer(provider.token(key=provider.rotated, kid=f"made-up-{n}")))
    assert provider.fetches <= before + 1


def test_oidc_scopes_and_job_ownership(secured, provider):
    # classification needs the scope: 403 without, passes the check with it
    response = execute(secured.url, "classification", {}, bearer(provider.token()))
    assert response.status_code == 403
    assert "sentinelle:classify" in response.json()["description"]
    scoped = provider.token(scope="openid sentinelle:classify")
    assert execute(secured.url, "classification", {}, bearer(scoped)).status_code == 400
    # a token's jobs belong to its subject at its issuer, not to every token holder
    created = execute(secured.url, "zonal-statistics", QUICK, bearer(provider.token()),
                      asynchronous=True)
    assert created.status_code == 201, created.text
    job_id = created.json()["jobID"]
    same_subject = bearer(provider.token(key=provider.ec, kid="ec-1", alg="ES256"))
    assert requests.get(created.headers["Location"], headers=same_subject,
                        timeout=30).status_code == 200
    other_subject = bearer(provider.token(sub="agent-973"))
    assert requests.get(created.headers["Location"], headers=other_subject,
                        timeout=30).status_code == 404
    assert job_id not in job_ids(secured.url, key(ALICE))


# --- OpenAPI and clients --------------------------------------------------------------------------

def test_openapi_declares_the_security_schemes(secured, server):
    document = requests.get(f"{secured.url}/openapi", params={"f": "json"}, timeout=60).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key",
                                 "description": schemes["ApiKey"]["description"]}
    assert schemes["Bearer"]["type"] == "http" and schemes["Bearer"]["scheme"] == "bearer"
    paths = document["paths"]
    zonal = paths["/processes/zonal-statistics/execution"]["post"]
    assert zonal["security"] == [{"ApiKey": []}, {"Bearer": []}]
    assert {"401", "403"} <= set(zonal["responses"])
    assert paths["/processes/classification/execution"]["post"]["security"] == \
        [{"Bearer": ["sentinelle:classify"]}]
    assert "security" not in paths["/processes/spectral-index/execution"]["post"]
    # jobs: any credential, or none (anonymous jobs of the open process)
    assert paths["/jobs"]["get"]["security"] == [{"ApiKey": []}, {"Bearer": []}, {}]
    assert "security" in paths["/jobs/{jobId}"]["delete"]
    assert "security" not in paths["/collections"]["get"]
    # with access control off (the default server) nothing is declared
    default = requests.get(f"{server.url}/openapi", params={"f": "json"}, timeout=60).json()
    assert "securitySchemes" not in default.get("components", {})
    assert "security" not in default["paths"]["/processes/zonal-statistics/execution"]["post"]


@pytest.fixture()
def owslib_headers():
    """OWSLib's ogcapi clients update a module-level header dict: restore it afterwards."""
    from owslib import ogcapi

    saved = dict(ogcapi.REQUEST_HEADERS)
    yield
    ogcapi.REQUEST_HEADERS.clear()
    ogcapi.REQUEST_HEADERS.update(saved)


def test_owslib_processes_client_with_an_api_key(secured, owslib_headers):
    from owslib import ogcapi
    from owslib.ogcapi.processes import Processes

    result = Processes(secured.url, headers=key(ALICE)).execute("zonal-statistics", QUICK)
    output = result["outputs"][0]
    assert output["mediaType"] == "application/geo+json"
    assert output["value"]["type"] == "FeatureCollection" and output["value"]["features"]
    ogcapi.REQUEST_HEADERS.pop("X-API-Key", None)
    with pytest.raises(RuntimeError, match="Authentication required"):
        Processes(secured.url).execute("zonal-statistics", QUICK)


# --- the policy itself (no server) ----------------------------------------------------------------

def _policy(tmp_path, config: dict):
    from sentinelle.web import access

    path = tmp_path / f"access-{uuid.uuid4().hex[:6]}.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return access.load_policy(path)


@pytest.mark.parametrize("config, message", [
    ({"default": "apikey", "api_keys": [{"id": "a", "sha256": "0" * 64}]}, "unknown method"),
    ({"default": "oidc", "api_keys": [{"id": "a", "sha256": "0" * 64}]}, "not configured"),
    ({"oidc": {"issuer": "https://sso", "algorithms": ["HS256"]}}, "asymmetric algorithms"),
    ({"oidc": {"issuer": "https://sso", "algorithms": ["none"]}}, "asymmetric algorithms"),
    ({"api_keys": [{"id": "a", "env": "SENTINELLE_TEST_UNSET_KEY"}]}, "missing or shorter"),
    ({"api_keys": [{"id": "a", "sha256": "beef"}]}, "64 hexadecimal digits"),
    ({"api_keys": [{"id": "a", "sha256": "0" * 64}, {"id": "a", "sha256": "1" * 64}]},
     "duplicate ids"),
    ({"api_keys": [{"id": "a", "sha256": "0" * 64}],
      "processes": {"x": {"methods": ["api-key"], "keys": ["b"]}}}, "no API key with id 'b'"),
    ({"default": "open"}, ""),
])
def test_configuration_errors_are_refused_at_start(tmp_path, config, message):
    from sentinelle.web.access import ConfigError

    if not message:  # an all-open policy is valid (and then jobs are open too)
        assert _policy(tmp_path, config).anonymous_jobs
        return
    with pytest.raises(ConfigError, match=message):
        _policy(tmp_path, config)


def test_jobs_need_credentials_when_no_process_is_open(tmp_path, monkeypatch):
    """The Flask hook on a bare app: without open processes, anonymous /jobs is a 401."""
    from flask import Flask

    from sentinelle.web import access

    path = tmp_path / "access.yml"
    path.write_text(yaml.safe_dump({"api_keys": [
        {"id": "alice", "sha256": hashlib.sha256(ALICE.encode()).hexdigest()}]}))
    monkeypatch.setenv(access.ENV, str(path))
    app = Flask(__name__)
    access.install(app)
    app.add_url_rule("/jobs", "jobs", lambda: "ok")
    app.add_url_rule("/collections", "collections", lambda: "ok")
    client = app.test_client()
    anonymous = client.get("/jobs")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == \
        'ApiKey realm="Sentinelle", header="X-API-Key"'
    assert client.get("/jobs", headers=key(ALICE)).status_code == 200
    assert client.get("/collections").status_code == 200
    assert client.options("/jobs").status_code == 200  # CORS preflight


def test_access_is_off_by_default(server):
    response = requests.get(f"{server.url}/jobs", params={"f": "json", "limit": 1}, timeout=30)
    assert response.status_code == 200


def test_openapi_is_regenerated_when_the_access_rules_change(tmp_path, monkeypatch):
    """``ensure_openapi`` compares the config file's time; the access rules live elsewhere,
    so the document carries a stamp of them (``openapi.yml.access``)."""
    from sentinelle.web import access

    document = tmp_path / "openapi.yml"
    document.write_text("openapi: 3.0.2\n")
    monkeypatch.delenv(access.ENV, raising=False)
    assert access.openapi_is_current(document)  # off, as every document written before
    rules = tmp_path / "access.yml"
    keys = [{"id": "alice", "sha256": "0" * 64}]
    rules.write_text(yaml.safe_dump({"api_keys": keys}))
    monkeypatch.setenv(access.ENV, str(rules))
    assert not access.openapi_is_current(document)
    access.record_openapi(document)
    assert access.openapi_is_current(document)
    # another key does not change the document; another rule does
    rules.write_text(yaml.safe_dump({"api_keys": [*keys, {"id": "bob", "sha256": "1" * 64}]}))
    assert access.openapi_is_current(document)
    rules.write_text(yaml.safe_dump({"api_keys": keys, "processes": {"spectral-index": "open"}}))
    assert not access.openapi_is_current(document)
    monkeypatch.delenv(access.ENV)
    assert not access.openapi_is_current(document)  # written with access on, now off
