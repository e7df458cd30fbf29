"""The QGIS transport for :class:`~.ogc.client.Client`: requests go through QGIS's network
stack, so proxies, SSL settings and the authentication manager apply as everywhere in QGIS.

Credentials: ``authcfg`` mode hands the configuration to QGIS (Basic, OAuth2/OIDC where the
QGIS build has it…), which adds them to each request; ``api-key`` mode reads the key from the
password of a configuration of the authentication manager and sends it in a header (QGIS 3.22
has no API-key method of its own)."""

from __future__ import annotations

from qgis.core import QgsApplication, QgsAuthMethodConfig, QgsBlockingNetworkRequest
from qgis.PyQt.QtCore import QByteArray, QUrl
from qgis.PyQt.QtNetwork import QNetworkRequest

from .ogc.client import Canceled, Client, Response, ServerError
from .ogc.connections import Connection


class QgsTransport:
    """``request(method, url, headers, body, timeout)`` with ``QgsBlockingNetworkRequest``
    (safe in processing's worker threads); ``feedback`` lets a cancel abort a request."""

    def __init__(self, authcfg: str = "", feedback=None):
        self.authcfg = authcfg
        self.feedback = feedback

    def request(self, method: str, url: str, headers: dict | None = None,
                body: bytes | None = None, timeout: float = 60) -> Response:
        request = QNetworkRequest(QUrl(url))
        for name, value in (headers or {}).items():
            request.setRawHeader(name.encode("latin-1"), str(value).encode("utf-8"))
        request.setAttribute(QNetworkRequest.CacheLoadControlAttribute,
                             QNetworkRequest.AlwaysNetwork)
        # a cancel aborts waiting requests, but never the DELETE that dismisses the job
        feedback = self.feedback if method != "DELETE" else None
        if feedback is not None and feedback.isCanceled():
            raise Canceled(url)
        blocking = QgsBlockingNetworkRequest()
        if self.authcfg:
            blocking.setAuthCfg(self.authcfg)
        if method == "GET":
            blocking.get(request, True, feedback)
        elif method == "POST":
            blocking.post(request, QByteArray(body or b""), True, feedback)
        elif method == "PUT":
            blocking.put(request, QByteArray(body or b""), feedback)
        elif method == "DELETE":
            blocking.deleteResource(request, feedback)
        elif method == "HEAD":
            blocking.head(request, True, feedback)
        else:
            raise ValueError(f"unsupported HTTP method {method}")
        if feedback is not None and feedback.isCanceled():
            raise Canceled(url)
        reply = blocking.reply()
        status = reply.attribute(QNetworkRequest.HttpStatusCodeAttribute)
        if status is None:
            raise ServerError(f"serveur injoignable / server unreachable: {url} "
                              f"({blocking.errorMessage()})", url=url)
        answer_headers = {bytes(k).decode("latin-1").lower():
                          bytes(reply.rawHeader(k)).decode("utf-8", "replace")
                          for k in reply.rawHeaderList()}
        return Response(int(status), answer_headers, bytes(reply.content()), url)


def api_key(authcfg: str) -> str:
    """The key stored as the password of the authentication configuration ``authcfg``."""
    config = QgsAuthMethodConfig()
    if not QgsApplication.authManager().loadAuthenticationConfig(authcfg, config, True):
        raise ServerError(f"configuration d'authentification introuvable / authentication "
                          f"configuration not found: {authcfg}")
    return config.config("password", "")


def client_for(connection: Connection, lang: str, feedback=None) -> Client:
    """A client for ``connection`` whose requests carry its credentials."""
    headers, authcfg = {}, ""
    if connection.auth == "api-key" and connection.authcfg:
        headers[connection.api_key_header or "X-API-Key"] = api_key(connection.authcfg)
    elif connection.auth == "authcfg":
        authcfg = connection.authcfg
    return Client(connection.url, transport=QgsTransport(authcfg, feedback), lang=lang,
                  headers=headers)
