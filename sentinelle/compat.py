"""Small, dated adjustments to the pygeoapi version that is installed.

Each one says which pygeoapi versions need it; remove it when they are gone.
"""

from __future__ import annotations

import functools
import re
from typing import Callable, Iterable

import pygeoapi

_VERSION = tuple(int(p) for p in re.findall(r"\d+", pygeoapi.__version__)[:2])

#: pygeoapi < 0.22 accepts only the draft names ``cql-text``/``cql-json`` for ``filter-lang``
#: and answers 400 to the standard ``cql2-text``/``cql2-json`` that QGIS and OWSLib send.
_FILTER_LANG = re.compile(rb"(^|&)filter-lang=cql2-(text|json)(?=&|$)")


class FilterLangMiddleware:
    """WSGI middleware mapping ``filter-lang=cql2-*`` to the names pygeoapi 0.21 knows."""

    def __init__(self, app: Callable):
        self.app = app

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        query = environ.get("QUERY_STRING", "")
        if "filter-lang=cql2-" in query:
            raw = query.encode("latin-1")
            environ["QUERY_STRING"] = _FILTER_LANG.sub(rb"\1filter-lang=cql-\2", raw)\
                .decode("latin-1")
        return self.app(environ, start_response)


def needs_filter_lang_mapping() -> bool:
    return _VERSION < (0, 22)


def needs_coverage_bbox_fix() -> bool:
    """pygeoapi 0.21 answers 500 (with code InvalidParameterValue) to a malformed coverage
    ``bbox``; a client error is a 400."""
    return _VERSION < (0, 22)


def patch_coverage_bbox_status() -> None:
    """Turn that 500 into a 400; pygeoapi's message and format are kept."""
    from http import HTTPStatus

    from pygeoapi.api import coverages

    original = coverages.get_collection_coverage
    if getattr(original, "sentinelle_patched", False):
        return

    @functools.wraps(original)
    def get_collection_coverage(api, request, dataset):
        headers, status, content = original(api, request, dataset)
        if status == HTTPStatus.INTERNAL_SERVER_ERROR and "InvalidParameterValue" in str(
                content)[:1000]:
            status = HTTPStatus.BAD_REQUEST
        return headers, status, content

    get_collection_coverage.sentinelle_patched = True
    coverages.get_collection_coverage = get_collection_coverage
