"""Domain errors → pygeoapi process errors, in one table.

Processors raise (or let through) :mod:`sentinelle.errors`; :func:`to_process_error` turns
them into a :class:`ProcessorExecuteError` carrying the HTTP status and OGC exception code
pygeoapi answers with.  pygeoapi 0.21's own manager catches every exception raised by
``execute`` and answers 400 ``InvalidParameterValue`` whatever it was; our manager
(:mod:`sentinelle.processes.manager`) lets these statuses through for synchronous
executions.  Either way the message (``user_msg``) is the one the user sees.
"""

from __future__ import annotations

import logging
from http import HTTPStatus

from pygeoapi.process.base import ProcessorExecuteError

from sentinelle.errors import (
    InvalidInput,
    NoData,
    NotFound,
    SentinelleError,
    SourceUnavailable,
    StorageFull,
    TooLarge,
    UpstreamTimeout,
    UpstreamUnavailable,
    most_specific,
)

LOGGER = logging.getLogger(__name__)

#: domain error class → (HTTP status, OGC exception code); the most specific class wins
ERROR_TABLE: dict[type[BaseException], tuple[int, str]] = {
    TooLarge: (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "InvalidParameterValue"),
    InvalidInput: (HTTPStatus.BAD_REQUEST, "InvalidParameterValue"),
    NotFound: (HTTPStatus.NOT_FOUND, "NotFound"),
    NoData: (HTTPStatus.NOT_FOUND, "NoData"),
    UpstreamTimeout: (HTTPStatus.GATEWAY_TIMEOUT, "NoApplicableCode"),
    UpstreamUnavailable: (HTTPStatus.SERVICE_UNAVAILABLE, "NoApplicableCode"),
    SourceUnavailable: (HTTPStatus.BAD_GATEWAY, "NoApplicableCode"),
    StorageFull: (HTTPStatus.INSUFFICIENT_STORAGE, "NoApplicableCode"),
    SentinelleError: (HTTPStatus.INTERNAL_SERVER_ERROR, "NoApplicableCode"),
    # plain validators raise ValueError (STYLE: "validators are plain functions")
    ValueError: (HTTPStatus.BAD_REQUEST, "InvalidParameterValue"),
}

UNEXPECTED = "the process failed unexpectedly; the server log has the details"


class ProcessError(ProcessorExecuteError):
    """A process error with its own status, code and user message."""

    def __init__(self, message: str, *, http_status: int = HTTPStatus.BAD_REQUEST,
                 code: str = "InvalidParameterValue"):
        super().__init__(message, user_msg=message)
        self.http_status_code = int(http_status)
        self.ogc_exception_code = code


def status_of(error: BaseException) -> tuple[int, str]:
    """(HTTP status, OGC code) of an exception, from the table (500 when unknown)."""
    if isinstance(error, ProcessorExecuteError):
        return int(error.http_status_code), error.ogc_exception_code
    for cls in type(most_specific(error)).__mro__:
        if cls in ERROR_TABLE:
            status, code = ERROR_TABLE[cls]
            return int(status), code
    return int(HTTPStatus.INTERNAL_SERVER_ERROR), "NoApplicableCode"


def to_process_error(error: BaseException) -> ProcessorExecuteError:
    """The :class:`ProcessorExecuteError` to raise for ``error`` (unchanged if already one).

    Unknown exceptions keep their details for the log and show a generic message.
    """
    if isinstance(error, ProcessorExecuteError):
        return error
    status, code = status_of(error)
    if status >= 500 and not isinstance(error, SentinelleError):
        LOGGER.error("unexpected error in a process", exc_info=error)
        return ProcessError(UNEXPECTED, http_status=status, code=code)
    return ProcessError(str(error), http_status=status, code=code)
