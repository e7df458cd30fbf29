"""A small OGC API – Processes 1.0 client over a pluggable HTTP transport.

Why not OWSLib or requests: the plugin must run inside any QGIS (no extra packages) and, in
QGIS, send its requests through QGIS's network stack (proxy, SSL settings, authentication
manager).  The transport is one method, ``request(method, url, headers, body, timeout)``;
:class:`UrllibTransport` is the standard-library one, the QGIS one lives in
``sentinelle_processes.network``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

JSON = "application/json"


class ServerError(Exception):
    """The server refused or failed a request: ``message`` is the server's own explanation
    (OGC exception ``detail``/``description``/``title``), ``status`` the HTTP code."""

    def __init__(self, message: str, *, status: int | None = None, url: str = ""):
        super().__init__(message)
        self.message = message
        self.status = status
        self.url = url


class Canceled(Exception):
    """The user canceled the run (the job was dismissed on the server)."""


@dataclass
class Response:
    """An HTTP answer: ``status``, ``headers`` (lower-case names), ``body`` bytes."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    url: str = ""

    @property
    def media_type(self) -> str:
        """The ``Content-Type`` without parameters, lower-case (``image/tiff``)."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def json(self):
        return json.loads(self.body.decode("utf-8") or "null")

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class UrllibTransport:
    """HTTP with the standard library (tests, scripts, QGIS-less use)."""

    def request(self, method: str, url: str, headers: dict[str, str] | None = None,
                body: bytes | None = None, timeout: float = 60) -> Response:
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as answer:
                return Response(answer.status, _lower(answer.headers.items()), answer.read(),
                                answer.geturl())
        except urllib.error.HTTPError as err:
            return Response(err.code, _lower(err.headers.items()), err.read(), url)
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ServerError(f"serveur injoignable / server unreachable: {url} ({reason})",
                              url=url) from err


def _lower(items) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in items}


def error_message(response: Response) -> str:
    """The server's explanation of a failed request, for the user (never a stack trace)."""
    text = response.body.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        for key in ("detail", "description", "message", "title", "error"):
            value = doc.get(key)
            if isinstance(value, str) and value.strip():
                code = doc.get("code") or doc.get("type")
                if isinstance(code, str) and code and not code.startswith("http") \
                        and code not in value:
                    return f"{code}: {value.strip()}"
                return value.strip()
    if text and not text.lstrip().startswith("<"):
        return text[:1000]
    return f"HTTP {response.status} ({response.url})"


def check(response: Response) -> Response:
    """``response`` when it succeeded, else :class:`ServerError` with the server's message."""
    if not response.ok:
        raise ServerError(error_message(response), status=response.status, url=response.url)
    return response


class Client:
    """One OGC API – Processes server (``url`` = its landing page).

    ``lang`` (``fr``/``en``) is asked for with ``Accept-Language`` and ``lang=`` so that
    titles, descriptions and defaults come in the user's language where the server has it;
    ``headers`` are added to every request (e.g. an API key).
    """

    def __init__(self, url: str, *, transport=None, lang: str = "fr",
                 headers: dict[str, str] | None = None, timeout: float = 60):
        self.url = url.rstrip("/")
        self.transport = transport or UrllibTransport()
        self.lang = lang
        self.headers = dict(headers or {})
        self.timeout = timeout

    # --- plumbing -------------------------------------------------------------------------
    def absolute(self, path_or_url: str) -> str:
        if "://" in path_or_url:
            return path_or_url
        return f"{self.url}/{path_or_url.lstrip('/')}"

    def request(self, method: str, path_or_url: str, *, params: dict | None = None,
                headers: dict | None = None, body: bytes | None = None,
                timeout: float | None = None) -> Response:
        url = self.absolute(path_or_url)
        if params:
            sep = "&" if "?" in url else "?"
            url = f"{url}{sep}{urllib.parse.urlencode(params)}"
        merged = {"Accept-Language": f"{self.lang},*;q=0.5", **self.headers, **(headers or {})}
        return self.transport.request(method, url, merged, body, timeout or self.timeout)

    def get_json(self, path_or_url: str, **params):
        params = {"f": "json", "lang": self.lang, **params}
        response = check(self.request("GET", path_or_url, params=params,
                                      headers={"Accept": JSON}))
        try:
            return response.json()
        except ValueError as err:
            raise ServerError(f"réponse non JSON / not a JSON answer: {response.url}",
                              status=response.status, url=response.url) from err

    # --- the API --------------------------------------------------------------------------
    def processes(self) -> list[dict]:
        """Process summaries from ``GET /processes``, following ``next`` links."""
        found, url, seen = [], "processes", set()
        params = {"limit": 1000}
        while url and url not in seen:
            seen.add(url)
            doc = self.get_json(url, **params)
            found.extend(doc.get("processes", []))
            url = next((link["href"] for link in doc.get("links", [])
                        if link.get("rel") == "next" and link.get("href")), None)
            params = {}
        return found

    def process(self, process_id: str) -> dict:
        """The full description of one process (inputs, outputs, job control options)."""
        return self.get_json(f"processes/{urllib.parse.quote(process_id)}")

    def collections(self) -> list[dict]:
        """Feature collections (``itemType: feature``) of the server, for served-feature
        inputs; empty when the server has no ``/collections`` (a processes-only server)."""
        try:
            doc = self.get_json("collections")
        except ServerError:
            return []
        return [c for c in doc.get("collections", []) if c.get("id") and (
            c.get("itemType") == "feature" or "itemType" not in c and any(
                link.get("rel") == "items" for link in c.get("links", [])))]

    def execute(self, process_id: str, inputs: dict, *, outputs: dict | None = None,
                asynchronous: bool = False) -> Response:
        """``POST /processes/{id}/execution`` (raw response); ``Prefer: respond-async`` when
        ``asynchronous``.  Errors raise :class:`ServerError` with the server's message."""
        body = {"inputs": inputs}
        if outputs:
            body["outputs"] = outputs
        headers = {"Content-Type": JSON}
        if asynchronous:
            headers["Prefer"] = "respond-async"
        return check(self.request(
            "POST", f"processes/{urllib.parse.quote(process_id)}/execution",
            params={"lang": self.lang}, headers=headers,
            body=json.dumps(body).encode("utf-8"), timeout=max(self.timeout, 600)))

    def job_url(self, response: Response) -> str | None:
        """Where an asynchronous job is followed: the ``Location`` header (pygeoapi 0.21
        answers with an empty body), else the body's ``jobID`` or ``monitor`` link."""
        location = response.headers.get("location")
        if location:
            return self.absolute(location.split("?")[0])
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            for link in doc.get("links", []):
                if link.get("rel") in ("monitor", "status", "self") and link.get("href"):
                    return self.absolute(link["href"].split("?")[0])
            if doc.get("jobID"):
                return self.absolute(f"jobs/{doc['jobID']}")
        return None

    def status(self, job_url: str) -> dict:
        return self.get_json(job_url)

    def results(self, job_url: str) -> Response:
        return check(self.request("GET", f"{job_url}/results", params={"f": "json"},
                                  timeout=max(self.timeout, 600)))

    def dismiss(self, job_url: str) -> dict:
        """``DELETE /jobs/{id}``: stop the job (``dismissed``)."""
        response = check(self.request("DELETE", job_url, params={"f": "json"}))
        try:
            return response.json() or {}
        except ValueError:
            return {}

    def fetch(self, href: str) -> Response:
        """An output given by reference (``href``)."""
        return check(self.request("GET", href))
