"""One exception hierarchy for the whole code base.

Domain code raises these; the adapters (pygeoapi providers and processes, the WMS, the CLI)
translate them once, through a table, into their own protocol's errors.  Each leaf also
subclasses the matching builtin so plain ``except ValueError`` keeps working, and each
message says how to fix the problem.
"""

from __future__ import annotations

from http import HTTPStatus


class SentinelleError(Exception):
    """Base class: ``http_status`` and ``ogc_code`` say how a web adapter should answer."""

    http_status: int = HTTPStatus.INTERNAL_SERVER_ERROR
    ogc_code: str = "NoApplicableCode"


class InvalidInput(SentinelleError, ValueError):
    """A parameter is malformed or out of range (bbox, datetime, CRS, band, filter...)."""

    http_status = HTTPStatus.BAD_REQUEST
    ogc_code = "InvalidParameterValue"


class TooLarge(InvalidInput):
    """A request exceeds a configured limit (pixels, dates, zones, features)."""

    http_status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE


class NotFound(SentinelleError, LookupError):
    """A collection, item, asset or scene does not exist."""

    http_status = HTTPStatus.NOT_FOUND
    ogc_code = "NotFound"


class NoData(SentinelleError, LookupError):
    """The request is valid but no (clear) data covers it."""

    http_status = HTTPStatus.NOT_FOUND
    ogc_code = "NoData"


class OutsideArea(NoData):
    """The request (a map's bbox) lies entirely outside the area the layer serves: 404,
    naming the area's extent, rather than an empty image that looks like a failure."""


class SourceUnavailable(SentinelleError, OSError):
    """A catalog or an asset could not be read (missing file, corrupt COG, upstream down)."""

    http_status = HTTPStatus.BAD_GATEWAY
    ogc_code = "NoApplicableCode"


class AssetUnreadable(SourceUnavailable):
    """One file of a scene is missing, truncated or not a GeoTIFF (a fault of the data, not of
    the request): 502, naming the file and the scene so that an operator can replace it."""

    def __init__(self, message: str, *, href: str | None = None, scene: str | None = None,
                 band: str | None = None):
        super().__init__(message)
        self.href, self.scene, self.band = href, scene, band


class UpstreamUnavailable(SourceUnavailable):
    """An upstream server (STAC API, COG host) refuses connections: 503, try again later."""

    http_status = HTTPStatus.SERVICE_UNAVAILABLE


class UpstreamTimeout(SourceUnavailable):
    """An upstream server did not answer within the configured timeout: 504."""

    http_status = HTTPStatus.GATEWAY_TIMEOUT


class StorageFull(SentinelleError, OSError):
    """The results folder has no space left (or the quota is reached): 507."""

    http_status = HTTPStatus.INSUFFICIENT_STORAGE


def most_specific(err: BaseException) -> BaseException:
    """``err``, or the more specific Sentinelle error it was raised from: an adapter that
    re-raises ``SourceUnavailable("…") from UpstreamTimeout(…)`` must still answer 504."""
    best, current, seen = err, err.__cause__, 0
    while current is not None and seen < 10:
        if isinstance(current, type(best)) and type(current) is not type(best):
            best = current
        current, seen = current.__cause__, seen + 1
    return best
