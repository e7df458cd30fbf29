"""Sentinelle's errors as pygeoapi provider errors: one table, installed at the boundary.

Domain code raises :mod:`sentinelle.errors`; pygeoapi shows a client the provider error's
``user_msg`` (else a generic "query error") with the class's HTTP status, so every translation
keeps our message as ``user_msg``.  The first row whose class matches wins (``TooLarge`` is an
``InvalidInput``, so it comes first).

pygeoapi 0.21's ``ProviderNoDataError`` answers **204 No Content**, which cannot carry a
message: "no scene for this datetime" is therefore a 404 (``ProviderItemNotFoundError``) with
the message saying what to change.
"""

from __future__ import annotations

import contextlib
from http import HTTPStatus
from typing import Iterator

from pygeoapi.provider.base import (
    ProviderConnectionError,
    ProviderGenericError,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
    ProviderRequestEntityTooLargeError,
)

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


class ProviderSourceUnavailableError(ProviderConnectionError):
    """A catalog or a COG could not be read: 502, the fault is upstream, not the client's."""

    http_status_code = HTTPStatus.BAD_GATEWAY


class ProviderUpstreamUnavailableError(ProviderSourceUnavailableError):
    """An upstream server (STAC API, COG host) refuses connections: 503."""

    http_status_code = HTTPStatus.SERVICE_UNAVAILABLE


class ProviderUpstreamTimeoutError(ProviderSourceUnavailableError):
    """An upstream server did not answer in time: 504."""

    http_status_code = HTTPStatus.GATEWAY_TIMEOUT


class ProviderStorageFullError(ProviderGenericError):
    """The results disk is full: 507."""

    http_status_code = HTTPStatus.INSUFFICIENT_STORAGE


#: (our class, pygeoapi class), most specific first.
ERROR_TABLE: tuple[tuple[type[SentinelleError], type[ProviderGenericError]], ...] = (
    (TooLarge, ProviderRequestEntityTooLargeError),  # 413
    (InvalidInput, ProviderInvalidQueryError),  # 400
    (NotFound, ProviderItemNotFoundError),  # 404
    (NoData, ProviderItemNotFoundError),  # 404, see the module docstring
    (UpstreamTimeout, ProviderUpstreamTimeoutError),  # 504
    (UpstreamUnavailable, ProviderUpstreamUnavailableError),  # 503
    (SourceUnavailable, ProviderSourceUnavailableError),  # 502 (AssetUnreadable too)
    (StorageFull, ProviderStorageFullError),  # 507
)


def to_provider_error(err: SentinelleError) -> ProviderGenericError:
    """The pygeoapi error for one of ours, with our message for the user (the status of
    the most specific error it was raised from, see :func:`most_specific`)."""
    specific = most_specific(err)
    for ours, theirs in ERROR_TABLE:
        if isinstance(specific, ours):
            return theirs(str(err), user_msg=str(err))
    return ProviderGenericError(str(err), user_msg=str(err))


@contextlib.contextmanager
def provider_errors() -> Iterator[None]:
    """Translate :class:`SentinelleError` raised inside the block (pygeoapi's pass through)."""
    try:
        yield
    except SentinelleError as err:
        raise to_provider_error(err) from err
