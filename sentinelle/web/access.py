"""Access control for process execution and jobs: API keys or OIDC bearer tokens, per process.

Off by default (an open service).  ``SENTINELLE_ACCESS_CONFIG`` names a YAML file (example:
``deploy/access.example.yml``; ``${VAR}`` / ``${VAR:-default}`` are read from the environment)::

    realm: Sentinelle
    default: authenticated          # processes not listed: any configured method
    processes:
      spectral-index: open          # anyone, no credentials
      zonal-statistics: [api-key, oidc]
      classification: {methods: [oidc], scopes: [sentinelle:classify]}
      change-detection: {methods: [api-key], keys: [ddtm-35]}   # these keys only (else 403)
    api_keys:                       # stored hashed: sha256 of the key, or read from a secret
      - {id: ddtm-35, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
      - {id: guyane, env: SENTINELLE_KEY_GUYANE}
      - {id: ci, file: /run/secrets/sentinelle-ci-key}
    oidc:
      issuer: https://sso.example.fr/realms/sdi
      audience: sentinelle
      jwks_url: https://sso.example.fr/realms/sdi/protocol/openid-connect/certs  # or discovered
      algorithms: [RS256, ES256]    # asymmetric only: none and HS* are refused

Only ``POST /processes/{id}/execution`` and ``/jobs…`` (list, status, results, ``DELETE``) are
checked; every read-only OGC endpoint (landing page, collections, items, coverages, maps, WMS,
records, ``GET /processes``…) stays open.  Credentials: ``X-API-Key: <key>`` (or
``Authorization: ApiKey <key>``), or ``Authorization: Bearer <JWT>`` verified against the
provider's JWKS (fetched with a timeout, cached, re-fetched for an unknown ``kid`` at most
every 30 s).  Missing or invalid credentials → 401 with ``WWW-Authenticate``; valid ones not
allowed for the process → 403; the identity provider unreachable → 503.

Each job records who submitted it (``key:<id>`` or ``oidc:<issuer>|<sub>``): callers only see
their own jobs (another caller's job is a 404, like a job that does not exist).  Anonymous
callers may follow jobs of open processes (anonymous jobs only) when some process is open.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

LOGGER = logging.getLogger(__name__)

ENV = "SENTINELLE_ACCESS_CONFIG"
API_KEY_HEADER = "X-API-Key"
METHODS = ("api-key", "oidc")
#: signature algorithms a public JWKS can verify; ``none`` and HMAC never are
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
              "EdDSA")
KEY_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MIN_KEY_LENGTH = 16

_EXECUTE = re.compile(r"^/processes/(?P<process>.+)/execution/?$")
_JOBS = re.compile(r"^/jobs(/.*)?$")


class AccessDenied(Exception):
    """A request refused: ``status`` (401, 403 or 503), the user message, the challenge."""

    def __init__(self, status: int, message: str, *, error: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error = error  # RFC 6750 error code for Bearer challenges


# --- configuration -----------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """Who may execute a process: ``methods`` (none: open), and optionally only some API
    keys (``keys``) or tokens carrying some scopes (``scopes``)."""

    methods: tuple[str, ...] = ()
    keys: tuple[str, ...] | None = None
    scopes: tuple[str, ...] = ()

    @property
    def open(self) -> bool:
        return not self.methods

    def summary(self) -> dict:
        return {"methods": list(self.methods), "scopes": list(self.scopes)}


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``id`` is stable and not secret (it is stored with each job)."""

    id: str
    method: str
    name: str
    scopes: frozenset = frozenset()


@dataclass(frozen=True)
class ApiKey:
    id: str
    digest: bytes = field(repr=False)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class ConfigError(ValueError):
    """The access configuration is wrong: the server must not start half-protected."""


def _as_tuple(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.replace(",", " ").split() if v)
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: expected a list of names, got {value!r}")


def _parse_rule(value: Any, where: str, configured: tuple[str, ...]) -> Rule:
    keys = None
    scopes: tuple[str, ...] = ()
    if isinstance(value, Mapping):
        unknown = set(value) - {"methods", "keys", "scopes"}
        if unknown:
            raise ConfigError(f"{where}: unknown setting(s) {sorted(unknown)} (use methods, "
                              "keys, scopes)")
        methods = _as_tuple(value.get("methods", "authenticated"), f"{where}.methods")
        if "keys" in value:
            keys = _as_tuple(value["keys"], f"{where}.keys")
        scopes = _as_tuple(value.get("scopes"), f"{where}.scopes")
    else:
        methods = _as_tuple(value, where)
    if methods in (("open",), ()):
        if keys is not None or scopes:
            raise ConfigError(f"{where}: an open process cannot restrict keys or scopes")
        return Rule()
    if methods in (("authenticated",), ("any",)):
        methods = configured
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"{where}: unknown method(s) {unknown}; use open, api-key, oidc or "
                          "authenticated")
    missing = [m for m in methods if m not in configured]
    if missing:
        raise ConfigError(f"{where}: method(s) {missing} used but not configured "
                          "(add api_keys / oidc)")
    if not methods:
        raise ConfigError(f"{where}: no authentication method is configured")
    if keys is not None and "api-key" not in methods:
        raise ConfigError(f"{where}: keys given but api-key is not one of the methods")
    if scopes and "oidc" not in methods:
        raise ConfigError(f"{where}: scopes given but oidc is not one of the methods")
    return Rule(tuple(dict.fromkeys(methods)), keys, scopes)


def _load_key(entry: Any, where: str) -> ApiKey:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
        raise ConfigError(f"{where}: expected {{id: …, sha256|env|file: …}}")
    key_id = entry["id"]
    if not KEY_ID.match(key_id):
        raise ConfigError(f"{where}: key id {key_id!r} must be 1–64 letters, digits, . _ -")
    sources = [s for s in ("sha256", "env", "file") if entry.get(s)]
    if len(sources) != 1:
        raise ConfigError(f"{where} ({key_id}): give exactly one of sha256, env, file")
    source = sources[0]
    if source == "sha256":
        text = str(entry["sha256"]).strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", text):
            raise ConfigError(f"{where} ({key_id}): sha256 must be 64 hexadecimal digits "
                              "(printf %s \"$KEY\" | sha256sum)")
        return ApiKey(key_id, bytes.fromhex(text))
    if source == "env":
        secret = os.environ.get(str(entry["env"]), "")
        origin = f"environment variable {entry['env']}"
    else:
        try:
            secret = Path(str(entry["file"])).read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"{where} ({key_id}): cannot read {entry['file']}: {err}") \
                from err
        origin = f"file {entry['file']}"
    secret = secret.strip()
    if len(secret) < MIN_KEY_LENGTH:
        raise ConfigError(f"{where} ({key_id}): the key from {origin} is missing or shorter "
                          f"than {MIN_KEY_LENGTH} characters")
    return ApiKey(key_id, _digest(secret))


@dataclass
class Policy:
    """The access configuration, loaded once: rules, keys (hashed), the OIDC verifier."""

    source: str
    realm: str = "Sentinelle"
    default: Rule = Rule()
    processes: dict[str, Rule] = field(default_factory=dict)
    keys: tuple[ApiKey, ...] = ()
    oidc: OidcVerifier | None = None

    @classmethod
    def from_dict(cls, config: Mapping, source: str = "") -> Policy:
        known = {"enabled", "realm", "default", "processes", "api_keys", "oidc"}
        unknown = set(config) - known
        if unknown:
            raise ConfigError(f"unknown setting(s) {sorted(unknown)}; use {sorted(known)}")
        keys = tuple(_load_key(e, f"api_keys[{n}]")
                     for n, e in enumerate(config.get("api_keys") or []))
        ids = [k.id for k in keys]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise ConfigError(f"api_keys: duplicate ids {twice}")
        oidc = OidcVerifier.from_dict(config["oidc"]) if config.get("oidc") else None
        configured = tuple(m for m, on in (("api-key", keys), ("oidc", oidc)) if on)
        default = _parse_rule(config.get("default", "authenticated"), "default", configured)
        processes = {str(pid): _parse_rule(rule, f"processes.{pid}", configured)
                     for pid, rule in (config.get("processes") or {}).items()}
        for pid, rule in [("default", default), *processes.items()]:
            for key_id in rule.keys or ():
                if key_id not in ids:
                    raise ConfigError(f"processes.{pid}.keys: no API key with id {key_id!r}")
        realm = str(config.get("realm") or "Sentinelle").replace('"', "")
        return cls(source, realm, default, processes, keys, oidc)

    # -- decisions ------------------------------------------------------------------------

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(m for m, on in (("api-key", self.keys), ("oidc", self.oidc)) if on)

    def rule(self, process_id: str) -> Rule:
        return self.processes.get(process_id, self.default)

    @property
    def anonymous_jobs(self) -> bool:
        """Anonymous callers may follow (their anonymous) jobs when some process is open."""
        return self.default.open or any(r.open for r in self.processes.values())

    def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        """The caller, ``None`` when no credentials were sent; ``AccessDenied`` (401) when
        the credentials are wrong — wrong credentials are never treated as anonymous."""
        authorization = (headers.get("Authorization") or "").strip()
        scheme, _, value = authorization.partition(" ")
        api_key = headers.get(API_KEY_HEADER)
        if api_key is None and scheme.lower() == "apikey":
            api_key = value
        if api_key is not None:
            return self._check_key(api_key.strip())
        if scheme.lower() == "bearer":
            if self.oidc is None:
                raise AccessDenied(401, _msg(
                    "les jetons Bearer ne sont pas acceptés ici ; utilisez une clé d'API "
                    f"(en-tête {API_KEY_HEADER})",
                    f"Bearer tokens are not accepted here; use an API key ({API_KEY_HEADER} "
                    "header)"), error="invalid_request")
            return self.oidc.verify(value.strip())
        # other schemes (Basic for a proxy's own login…) are not credentials of ours
        return None

    def _check_key(self, presented: str) -> Principal:
        digest = _digest(presented)
        found = None
        for key in self.keys:  # compare with every key: the time does not tell which
            if hmac.compare_digest(digest, key.digest):
                found = key
        if found is None:
            raise AccessDenied(401, _msg("clé d'API invalide", "invalid API key"))
        return Principal(f"key:{found.id}", "api-key", found.id)

    def authorize(self, process_id: str, principal: Principal | None) -> None:
        """Raise ``AccessDenied`` unless ``principal`` may execute ``process_id``."""
        rule = self.rule(process_id)
        if rule.open:
            return
        if principal is None:
            raise AccessDenied(401, _msg(
                f"identification requise pour exécuter « {process_id} » ({_how(rule)})",
                f"authentication required to execute '{process_id}' ({_how(rule, 'en')})"))
        if principal.method not in rule.methods:
            raise AccessDenied(403, _msg(
                f"« {process_id} » n'accepte pas ce type d'identifiant ({_how(rule)})",
                f"'{process_id}' does not accept this kind of credential "
                f"({_how(rule, 'en')})"), error="insufficient_scope")
        if principal.method == "api-key" and rule.keys is not None \
                and principal.name not in rule.keys:
            raise AccessDenied(403, _msg(
                f"la clé « {principal.name} » n'est pas autorisée pour « {process_id} »",
                f"key '{principal.name}' is not allowed to execute '{process_id}'"))
        missing = [s for s in rule.scopes if s not in principal.scopes]
        if principal.method == "oidc" and missing:
            raise AccessDenied(403, _msg(
                f"le jeton n'a pas la portée {' '.join(missing)} requise pour « {process_id} »",
                f"the token lacks the scope {' '.join(missing)} required by '{process_id}'"),
                error="insufficient_scope")

    def challenges(self, error: AccessDenied | None = None) -> list[str]:
        """``WWW-Authenticate`` values (one per method)."""
        out = []
        if self.oidc is not None:
            bearer = f'Bearer realm="{self.realm}"'
            if error is not None and error.error:
                bearer += f', error="{error.error}"'
            out.append(bearer)
        if self.keys:
            out.append(f'ApiKey realm="{self.realm}", header="{API_KEY_HEADER}"')
        return out

    def fingerprint(self) -> str:
        """What the OpenAPI document depends on (not the keys themselves)."""
        summary = {"realm": self.realm, "default": self.default.summary(),
                   "processes": {k: v.summary() for k, v in sorted(self.processes.items())},
                   "methods": list(self.methods),
                   "issuer": self.oidc.issuer if self.oidc else None}
        return hashlib.sha256(json.dumps(summary, sort_keys=True).encode()).hexdigest()


def _msg(fr: str, en: str) -> str:
    """User text, French first then English."""
    return f"{fr[:1].upper()}{fr[1:]}. / {en[:1].upper()}{en[1:]}."


def _how(rule: Rule, lang: str = "fr") -> str:
    parts = {"api-key": (f"clé d'API dans l'en-tête {API_KEY_HEADER}",
                         f"an API key in the {API_KEY_HEADER} header"),
             "oidc": ("jeton OIDC « Authorization: Bearer … »",
                      "an OIDC token in 'Authorization: Bearer …'")}
    index = 0 if lang == "fr" else 1
    return (" ou " if lang == "fr" else " or ").join(parts[m][index] for m in rule.methods)


# --- OIDC ----------------------------------------------------------------------------------

class OidcVerifier:
    """Checks bearer JWTs with PyJWT against the issuer's JWKS (no JWT code of our own)."""

    def __init__(self, issuer: str, audience: str | None, *, jwks_url: str | None = None,
                 algorithms: tuple[str, ...] = ("RS256", "ES256"), leeway: float = 30,
                 timeout: float = 5, cache_seconds: float = 300, min_refresh: float = 30):
        bad = [a for a in algorithms if a not in ASYMMETRIC]
        if bad or not algorithms:
            raise ConfigError(f"oidc.algorithms: {bad or '(empty)'} not allowed; use "
                              f"asymmetric algorithms only ({', '.join(ASYMMETRIC)})")
        self.issuer = issuer
        self.audience = audience
        self.algorithms = tuple(algorithms)
        self.leeway = float(leeway)
        self.jwks = JwksCache(jwks_url, issuer, timeout=timeout, max_age=cache_seconds,
                              min_refresh=min_refresh)

    @classmethod
    def from_dict(cls, config: Mapping) -> OidcVerifier:
        if not isinstance(config, Mapping) or not config.get("issuer"):
            raise ConfigError("oidc: an issuer is required")
        known = {"issuer", "audience", "jwks_url", "algorithms", "leeway", "timeout",
                 "cache_seconds", "min_refresh"}
        unknown = set(config) - known
        if unknown:
            raise ConfigError(f"oidc: unknown setting(s) {sorted(unknown)}")
        return cls(str(config["issuer"]), config.get("audience") or None,
                   jwks_url=config.get("jwks_url") or None,
                   algorithms=_as_tuple(config.get("algorithms", ["RS256", "ES256"]),
                                        "oidc.algorithms"),
                   leeway=float(config.get("leeway", 30)),
                   timeout=float(config.get("timeout", 5)),
                   cache_seconds=float(config.get("cache_seconds", 300)),
                   min_refresh=float(config.get("min_refresh", 30)))

    def verify(self, token: str) -> Principal:
        import jwt

        def invalid(fr: str, en: str) -> AccessDenied:
            return AccessDenied(401, _msg(f"jeton Bearer refusé : {fr}",
                                          f"Bearer token refused: {en}"),
                                error="invalid_token")

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as err:
            raise invalid("illisible", f"malformed ({err})") from err
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise invalid(f"algorithme « {alg} » non accepté",
                          f"algorithm '{alg}' not accepted (accepted: "
                          f"{', '.join(self.algorithms)})")
        jwk = self.jwks.find(header.get("kid"), alg)
        if jwk is None:
            raise invalid("clé de signature inconnue du fournisseur d'identité",
                          f"signing key {header.get('kid')!r} unknown to the identity provider")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
            required = ["exp", "iss", "sub"] + (["aud"] if self.audience else [])
            claims = jwt.decode(token, key=key, algorithms=list(self.algorithms),
                                audience=self.audience, issuer=self.issuer,
                                leeway=self.leeway, options={"require": required})
        except jwt.ExpiredSignatureError as err:
            raise invalid("expiré", "expired") from err
        except jwt.InvalidAudienceError as err:
            raise invalid("audience incorrecte", f"wrong audience (expected "
                                                  f"{self.audience})") from err
        except jwt.InvalidIssuerError as err:
            raise invalid("émetteur incorrect", f"wrong issuer (expected {self.issuer})") \
                from err
        except jwt.MissingRequiredClaimError as err:
            raise invalid(f"revendication « {err.claim} » manquante",
                          f"claim '{err.claim}' missing") from err
        except (jwt.PyJWTError, ValueError) as err:
            raise invalid("invalide", f"invalid ({err})") from err
        scopes = claims.get("scope", claims.get("scp", ""))
        if isinstance(scopes, str):
            scopes = scopes.split()
        subject = str(claims["sub"])
        return Principal(f"oidc:{claims['iss']}|{subject}", "oidc", subject,
                         frozenset(str(s) for s in scopes or ()))


class JwksCache:
    """The provider's public keys: fetched with a timeout, kept ``max_age`` seconds, fetched
    again for an unknown ``kid`` (key rotation) at most every ``min_refresh`` seconds, so that
    tokens with made-up ``kid``s cannot make the server hammer the provider."""

    #: seconds between two attempts while the provider does not answer
    RETRY = 5.0

    def __init__(self, url: str | None, issuer: str, *, timeout: float, max_age: float,
                 min_refresh: float):
        self.url = url
        self.issuer = issuer
        self.timeout = timeout
        self.max_age = max_age
        self.min_refresh = min_refresh
        self._keys: list[dict] = []
        self._fetched = float("-inf")
        self._attempted = float("-inf")
        self._lock = threading.Lock()

    def _jwks_url(self) -> str:
        if self.url:
            return self.url
        import requests

        discovery = f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"
        document = requests.get(discovery, timeout=self.timeout).json()
        if document.get("issuer") != self.issuer:
            raise ValueError(f"{discovery} names issuer {document.get('issuer')!r}")
        self.url = str(document["jwks_uri"])
        return self.url

    def _refresh(self) -> None:
        import requests

        self._attempted = time.monotonic()
        try:
            response = requests.get(self._jwks_url(), timeout=self.timeout,
                                    headers={"Accept": "application/json"})
            response.raise_for_status()
            keys = response.json()["keys"]
            if not isinstance(keys, list):
                raise ValueError("'keys' is not a list")
        except Exception as err:  # keep the keys we have; say so in the log
            LOGGER.warning("JWKS of %s could not be fetched: %s", self.issuer, err)
            return
        self._keys = [k for k in keys if isinstance(k, dict) and k.get("use", "sig") == "sig"]
        self._fetched = time.monotonic()

    def find(self, kid: str | None, alg: str) -> dict | None:
        """The JWK for a token's ``kid`` and ``alg``; ``None`` if the provider has none;
        ``AccessDenied`` (503) if its keys could never be fetched."""
        with self._lock:
            since = time.monotonic() - self._attempted
            if time.monotonic() - self._fetched > self.max_age and since >= self.RETRY:
                self._refresh()
            key = self._match(kid, alg)
            if key is None and time.monotonic() - self._attempted >= self.min_refresh:
                self._refresh()  # a new kid: the provider may have rotated its keys
                key = self._match(kid, alg)
            if key is None and not self._keys:
                raise AccessDenied(503, _msg(
                    "le fournisseur d'identité est injoignable ; réessayez plus tard",
                    "the identity provider cannot be reached; try again later"))
            return key

    def _match(self, kid: str | None, alg: str) -> dict | None:
        kty = {"R": "RSA", "P": "RSA", "E": "EC"}.get(alg[0], "OKP")
        candidates = [k for k in self._keys
                      if k.get("kty") == kty and k.get("alg", alg) == alg]
        if kid is not None:
            candidates = [k for k in candidates if k.get("kid") == kid]
            return candidates[0] if candidates else None
        return candidates[0] if len(candidates) == 1 else None  # no kid: only if unambiguous


# --- loading -------------------------------------------------------------------------------

_CACHE: dict[tuple, Policy | None] = {}
_CACHE_LOCK = threading.Lock()


def load_policy(path: str | os.PathLike | None = None) -> Policy | None:
    """The policy of ``path`` (default ``$SENTINELLE_ACCESS_CONFIG``); ``None`` when access
    control is off (no file named, or ``enabled: false``).  Loaded once per file version."""
    path = path if path is not None else os.environ.get(ENV)
    if not path:
        return None
    file = Path(path)
    try:
        stat = file.stat()
    except OSError as err:
        raise ConfigError(f"{ENV}={path}: {err}") from err
    cache_key = (str(file.resolve()), stat.st_mtime_ns, stat.st_size)
    with _CACHE_LOCK:
        if cache_key in _CACHE:
            return _CACHE[cache_key]
        from pygeoapi.util import yaml_load

        try:
            with file.open(encoding="utf-8") as handle:
                config = yaml_load(handle) or {}
            if not isinstance(config, Mapping):
                raise ConfigError("expected a mapping at the top level")
            enabled = config.get("enabled", True)
            policy = Policy.from_dict(config, str(file)) if enabled else None
        except ConfigError as err:
            raise ConfigError(f"access configuration {file}: {err}") from err
        except (OSError, ValueError) as err:
            raise ConfigError(f"access configuration {file}: {err}") from err
        _CACHE.clear()
        _CACHE[cache_key] = policy
        return policy


# --- the Flask hook --------------------------------------------------------------------------

def protected(method: str, path: str) -> tuple[str, str | None] | None:
    """``("execute", process_id)``, ``("jobs", None)`` or ``None`` (an open endpoint)."""
    if method == "OPTIONS":  # CORS preflight
        return None
    match = _EXECUTE.match(path)
    if match and method == "POST":
        return "execute", match.group("process")
    if _JOBS.match(path):
        return "jobs", None
    return None


def _deny(policy: Policy, error: AccessDenied):
    from flask import Response

    code = {401: "Unauthorized", 403: "Forbidden"}.get(error.status, "NoApplicableCode")
    body = json.dumps({"type": code, "code": code, "description": error.message},
                      ensure_ascii=False)
    response = Response(body, status=error.status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    if error.status == 401:
        for challenge in policy.challenges(error):
            response.headers.add("WWW-Authenticate", challenge)
    elif error.status == 503:
        response.headers["Retry-After"] = "30"
    return response


def check_request():
    """``before_request``: refuse, or set the caller as the job scope of the request."""
    from flask import current_app, g, request

    from sentinelle.processes.jobstore import ANY
    from sentinelle.processes.manager import JOB_SCOPE

    policy = current_app.extensions.get("sentinelle_access")
    target = protected(request.method, request.path) if policy is not None else None
    scope: Any = ANY if policy is None else None
    if target is not None:
        kind, process_id = target
        try:
            principal = policy.authenticate(request.headers)
            if kind == "execute":
                policy.authorize(process_id, principal)
            elif principal is None and not policy.anonymous_jobs:
                raise AccessDenied(401, _msg(
                    "identification requise pour consulter les traitements",
                    "authentication required to see jobs"))
        except AccessDenied as err:
            LOGGER.info("access refused (%s) to %s %s: %s", err.status, request.method,
                        request.path, err.message)
            return _deny(policy, err)
        scope = principal.id if principal is not None else None
    g.sentinelle_job_scope = JOB_SCOPE.set(scope)
    return None


def _reset_scope(_exc=None):
    from flask import g

    from sentinelle.processes.manager import JOB_SCOPE

    token = g.pop("sentinelle_job_scope", None)
    if token is not None:
        try:
            JOB_SCOPE.reset(token)
        except ValueError:  # set in another context: nothing to undo here
            pass


def install(app) -> Policy | None:
    """Register the check on ``app`` (always: it also resets each request's job scope);
    fails at start-up, with the reason, when the configuration is wrong.  The policy is the
    one read now: edit the file (or rotate a key's secret), then restart."""
    policy = load_policy()
    app.extensions["sentinelle_access"] = policy
    app.before_request(check_request)
    app.teardown_request(_reset_scope)
    if policy is not None:
        LOGGER.warning("access control on (%s): methods %s, default %s", policy.source,
                       ", ".join(policy.methods), ", ".join(policy.default.methods) or "open")
    return policy


# --- OpenAPI ---------------------------------------------------------------------------------

SCHEMES = {"api-key": "ApiKey", "oidc": "Bearer"}


def declare_security(document: dict) -> dict:
    """Declare the security schemes and which operations need them (nothing when off)."""
    policy = load_policy()
    if policy is None:
        return document
    schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
    if policy.keys:
        schemes["ApiKey"] = {"type": "apiKey", "in": "header", "name": API_KEY_HEADER,
                             "description": "Clé d'API / API key (Sentinelle access control)"}
    if policy.oidc is not None:
        schemes["Bearer"] = {
            "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": f"OIDC access token issued by {policy.oidc.issuer}"
                           + (f" for audience {policy.oidc.audience}"
                              if policy.oidc.audience else "")}
    # the exception schema sentinelle.web.openapi declares, else our own
    exception = ({"$ref": "#/components/schemas/exception"}
                 if "exception" in document["components"].get("schemas", {}) else _EXCEPTION)
    denied = {
        "401": {"description": "Identification requise ou invalide / missing or invalid "
                               "credentials",
                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                "content": {"application/json": {"schema": exception}}},
        "403": {"description": "Identifiant valide mais non autorisé / valid credentials, "
                               "not allowed",
                "content": {"application/json": {"schema": exception}}},
    }
    for path, item in (document.get("paths") or {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            target = protected(method.upper(), path.replace("{jobId}", "x"))
            if target is None:
                continue
            kind, process_id = target
            if kind == "execute":
                rule = policy.rule(process_id)
                if rule.open:
                    continue
                requirements = [{SCHEMES[m]: list(rule.scopes) if m == "oidc" else []}
                                for m in rule.methods]
            else:
                requirements = [{SCHEMES[m]: []} for m in policy.methods]
                if policy.anonymous_jobs:
                    requirements.append({})
            operation["security"] = requirements
            responses = operation.setdefault("responses", {})
            for status, response in denied.items():
                responses.setdefault(status, response)
    return document


_EXCEPTION = {"type": "object", "required": ["code", "description"],
              "properties": {"type": {"type": "string"}, "code": {"type": "string"},
                             "description": {"type": "string"}}}


def openapi_stamp() -> str:
    """A value that changes whenever the document's security declarations must change."""
    policy = load_policy()
    return "off" if policy is None else policy.fingerprint()


def openapi_is_current(openapi_path: Path) -> bool:
    stamp = openapi_path.with_name(openapi_path.name + ".access")
    try:
        return stamp.read_text(encoding="utf-8").strip() == openapi_stamp()
    except OSError:
        return openapi_stamp() == "off"


def record_openapi(openapi_path: Path) -> None:
    stamp = openapi_path.with_name(openapi_path.name + ".access")
    stamp.write_text(openapi_stamp() + "\n", encoding="utf-8")


__all__ = ["API_KEY_HEADER", "AccessDenied", "ConfigError", "ENV", "OidcVerifier", "Policy",
           "Principal", "Rule", "check_request", "declare_security", "install", "load_policy",
           "openapi_is_current", "openapi_stamp", "protected", "record_openapi"]
