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


# --- found by API fuzzing (tests/test_fuzz.py, issue 10) ---------------------------------------
# Checked against pygeoapi 0.21.  On an upgrade, tests/test_fuzz.py tells whether each one is
# still needed: it fails when a 5xx or an undocumented answer comes back.

def install(app=None) -> None:
    """Apply the patches below (idempotent); the one on pygeoapi's items view needs the
    Flask ``app``."""
    patch_cql2_text()
    patch_datetime_range()
    if _VERSION >= (0, 22):
        return
    for patch in (patch_format_exception_gzip, patch_error_content_type, patch_records_csv,
                  patch_empty_sortby, patch_map_errors, patch_execute_request,
                  patch_delete_job):
        patch()
    if app is not None:
        patch_items_post_without_type(app)


def patch_datetime_range() -> None:
    """pygeoapi answers 400 "datetime parameter out of range" to a ``datetime`` outside the
    collection's temporal extent.  Sentinelle's extents follow the catalogs
    (:mod:`sentinelle.territories.extents`): a search for 2023 before the first scene is a
    fair question whose answer is empty (records) or a 404 naming the nearest dates
    (coverages, maps), not a client error.  The syntax is still checked by the providers."""
    from pygeoapi.api import coverages, itemtypes, maps

    def make(original):
        def validate_datetime(resource_def, datetime_=None):
            return original({k: v for k, v in resource_def.items() if k != "temporal"},
                            datetime_)
        return validate_datetime

    for module in (itemtypes, coverages, maps):
        _patch(module, "validate_datetime", make)


def patch_cql2_text() -> None:
    """pygeoapi parses ``filter`` on ``/items`` as ECQL only, so CQL2 text's ``S_INTERSECTS``
    and friends were "Bad CQL text" although CQL2 text is declared: parse CQL2 first."""
    from pygeoapi.api import itemtypes

    from sentinelle.providers.cql import parse_text

    if getattr(itemtypes, "parse_ecql_text", None) not in (None, parse_text):
        itemtypes.parse_ecql_text = parse_text


def _patch(module, name: str, make: Callable[[Callable], Callable]) -> None:
    """Wrap ``module.name`` with ``make(original)``, once per ``make`` (several patches may
    wrap the same function)."""
    original = getattr(module, name)
    done = getattr(original, "sentinelle_fixes", ())
    if make.__qualname__ in done:
        return
    patched = functools.wraps(original)(make(original))
    patched.sentinelle_fixes = (*done, make.__qualname__)
    setattr(module, name, patched)


def patch_format_exception_gzip() -> None:
    """pygeoapi 0.21 answers an unknown ``f`` with ``Content-Encoding: gzip`` (when the client
    accepts gzip and ``server.gzip`` is on) but an uncompressed body, which clients fail to
    decode: compress the body that was promised compressed."""
    import gzip

    from pygeoapi import flask_app

    def make(original):
        def execute_from_flask(*args, **kwargs):
            response = original(*args, **kwargs)
            if (response.headers.get("Content-Encoding") == "gzip"
                    and not response.direct_passthrough):
                body = response.get_data()
                if not body.startswith(b"\x1f\x8b"):
                    response.set_data(gzip.compress(body))
            return response
        return execute_from_flask

    _patch(flask_app, "execute_from_flask", make)


def patch_error_content_type() -> None:
    """pygeoapi 0.21's ``get_exception`` keeps the Content-Type of the format asked for, so
    a map or legend error asked as ``f=png`` is a JSON body labelled ``image/png`` (a
    client shows a broken image instead of the message): label JSON bodies as JSON."""
    from pygeoapi.api import API

    def make(original):
        def get_exception(self, status, headers, format_, code, description):
            headers, status, content = original(self, status, headers, format_, code,
                                                description)
            if "json" not in str(headers.get("Content-Type", "")) and format_ != "html":
                headers["Content-Type"] = "application/json"
            return headers, status, content
        return get_exception

    _patch(API, "get_exception", make)


def patch_records_csv() -> None:
    """pygeoapi 0.21 writes CSV with the collection's *feature* provider, so ``f=csv`` on a
    record collection is a 500 (``ProviderTypeError``): answer 400 and say which formats
    exist."""
    from http import HTTPStatus

    from pygeoapi.api import itemtypes

    def make(original):
        def get_collection_items(api, request, dataset):
            if request.format == "csv":
                providers = api.config["resources"].get(dataset, {}).get("providers", [])
                if providers and not any(p.get("type") == "feature" for p in providers):
                    headers = request.get_response_headers(force_type="application/json",
                                                           **api.api_headers)
                    return api.get_exception(
                        HTTPStatus.BAD_REQUEST, headers, "json", "InvalidParameterValue",
                        "f=csv is only offered for feature collections; use f=json, "
                        "f=html or f=jsonld")
            return original(api, request, dataset)
        return get_collection_items

    _patch(itemtypes, "get_collection_items", make)


def patch_empty_sortby() -> None:
    """pygeoapi 0.21 reads ``sortby`` with ``s[0]``: an empty value or an empty item
    (``sortby=``, ``sortby=id,``) is a 500 (``IndexError``): answer 400."""
    from http import HTTPStatus

    from pygeoapi.api import itemtypes

    def make(original):
        def get_collection_items(api, request, dataset):
            sortby = request.params.get("sortby")
            if sortby is not None and not all(s.strip(" +-") for s in sortby.split(",")):
                headers = request.get_response_headers(force_type="application/json",
                                                       **api.api_headers)
                return api.get_exception(
                    HTTPStatus.BAD_REQUEST, headers, "json", "InvalidParameterValue",
                    f"sortby: {sortby!r} has an empty property name; use e.g. "
                    "sortby=-area_m2,id")
            return original(api, request, dataset)
        return get_collection_items

    _patch(itemtypes, "get_collection_items", make)


def patch_map_errors() -> None:
    """pygeoapi 0.21's map API (1) writes its JSON errors with a second ``Content-type``
    header beside ``Content-Type`` (clients read ``image/png, application/json``), and
    (2) lets the ``CRSError`` of a ``bbox-crs`` that is not a CRS URI through as a 500
    (its own OpenAPI document declares an EPSG integer, which always fails)."""
    from http import HTTPStatus

    from pygeoapi.api import maps
    from pyproj.exceptions import CRSError

    def make(original):
        def get_collection_map(api, request, dataset, style=None):
            try:
                headers, status, content = original(api, request, dataset, style)
            except CRSError as err:
                headers = request.get_response_headers(force_type="application/json",
                                                       **api.api_headers)
                return api.get_exception(
                    HTTPStatus.BAD_REQUEST, headers, "json", "InvalidParameterValue",
                    f"bbox-crs: {err}; send a CRS URI such as "
                    "http://www.opengis.net/def/crs/EPSG/0/3857")
            if "Content-type" in headers:
                headers["Content-Type"] = headers.pop("Content-type")
            return headers, status, content
        return get_collection_map

    _patch(maps, "get_collection_map", make)


def execute_request_problem(body: bytes | str | None) -> str | None:
    """What is wrong with the envelope of an execute request (``None``: nothing pygeoapi
    0.21 would trip on; it reports missing or non-JSON bodies itself)."""
    import json

    try:
        data = json.loads(body) if body else None
    except (ValueError, TypeError):
        return None
    if data is None and not body:
        return None
    if not isinstance(data, dict):
        return ('the execute request must be a JSON object such as {"inputs": {...}}, '
                f"not {type(data).__name__ if data is not None else 'null'}")
    for key in ("inputs", "outputs"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            return f"{key} must be an object (name → value), not {type(data[key]).__name__}"
    if data.get("response", "raw") not in ("raw", "document"):
        return "response must be 'raw' or 'document'"
    subscriber = data.get("subscriber")
    if subscriber is not None and not (isinstance(subscriber, dict) and all(
            isinstance(subscriber.get(k), (str, type(None)))
            for k in ("successUri", "inProgressUri", "failedUri"))):
        return "subscriber must be an object whose successUri, inProgressUri and " \
               "failedUri are URLs"
    return None


def patch_execute_request() -> None:
    """pygeoapi 0.21 reads the execute request with ``dict`` methods: a JSON array or
    string as body, ``inputs`` or ``subscriber`` of the wrong type are 500s
    (``AttributeError``/``TypeError``): answer 400 saying what is expected."""
    from http import HTTPStatus

    from pygeoapi.api import processes

    def make(original):
        def execute_process(api, request, process_id):
            problem = (execute_request_problem(request.data)
                       if process_id in api.manager.processes else None)
            if problem:
                headers = request.get_response_headers(force_type="application/json",
                                                       **api.api_headers)
                return api.get_exception(HTTPStatus.BAD_REQUEST, headers, "json",
                                         "InvalidParameterValue", problem)
            return original(api, request, process_id)
        return execute_process

    _patch(processes, "execute_process", make)


def patch_delete_job() -> None:
    """pygeoapi 0.21's ``DELETE /jobs/{id}`` answers its JSON with no headers at all (so
    Flask labels it ``text/html``) and without the ``type`` that makes it an OGC API
    Processes ``statusInfo``: label it JSON and complete it."""
    import json

    from pygeoapi.api import processes

    def make(original):
        def delete_job(api, request, job_id):
            headers, status, content = original(api, request, job_id)
            if not headers:
                headers = request.get_response_headers(force_type="application/json",
                                                       **api.api_headers)
                try:
                    body = json.loads(content)
                except (TypeError, ValueError):
                    return headers, status, content
                if isinstance(body, dict) and "jobID" in body:
                    body.setdefault("type", "process")
                    content = json.dumps(body)
            return headers, status, content
        return delete_job

    _patch(processes, "delete_job", make)


def patch_items_post_without_type(app) -> None:
    """pygeoapi 0.21's items view returns nothing for a ``POST`` without a Content-Type
    (neither a new feature nor a CQL2 JSON search), which Flask turns into a 500: answer
    415 and say which bodies the route takes."""
    import json

    from flask import Response

    endpoint = "pygeoapi.collection_items"
    view = app.view_functions.get(endpoint)
    if view is None or "patch_items_post_without_type" in getattr(view, "sentinelle_fixes",
                                                                    ()):
        return

    @functools.wraps(view)
    def collection_items(*args, **kwargs):
        response = view(*args, **kwargs)
        if response is None:
            message = ("POST /items takes a GeoJSON feature (Content-Type: "
                       "application/geo+json, editable collections only) or a CQL2 JSON "
                       "filter to search with (Content-Type: application/json)")
            return Response(json.dumps({"code": "InvalidParameterValue",
                                        "type": "InvalidParameterValue",
                                        "description": message}),
                            status=415, mimetype="application/json")
        return response

    collection_items.sentinelle_fixes = (*getattr(view, "sentinelle_fixes", ()),
                                         "patch_items_post_without_type")
    app.view_functions[endpoint] = collection_items
