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


class SourceUnavailable(SentinelleError, OSError):
    """A catalog or an asset could not be read (missing file, corrupt COG, upstream down)."""

    http_status = HTTPStatus.BAD_GATEWAY
    ogc_code = "NoApplicableCode"
