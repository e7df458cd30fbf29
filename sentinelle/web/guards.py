"""Request guards: what every request must pass before a route runs, and HTTP errors as text a
client can act on.

pygeoapi and Flask leave some hostile inputs to chance: a 50 MB body is parsed whole, JSON
nested 10,000 levels deep ends in a ``RecursionError`` (500), ``/stac/<collection>/%2e%2e/…``
walks out of the catalog folder (pygeoapi's FileSystem provider concatenates paths), a
``bbox`` of NaNs or with a latitude of 95° silently matches nothing, unknown routes answer an
HTML page.  Each check here answers a 4xx whose message names
the problem and the limit, as OGC API exception JSON (``{"code", "description"}``), or as a WMS
``ServiceExceptionReport`` on ``/wms``.

Limits come from :class:`~sentinelle.settings.Limits` (``SENTINELLE_MAX_BODY_BYTES``,
``SENTINELLE_MAX_JSON_DEPTH``).  Install once with :func:`install`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
from werkzeug.exceptions import HTTPException

from sentinelle.settings import Limits

LOGGER = logging.getLogger(__name__)

UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                  r"[0-9a-fA-F]{12}$")
#: collection and process ids as the configuration writes them
RESOURCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_JOBS = re.compile(r"^/jobs/(?P<id>[^/]+)(?:/results)?/?$")
_COLLECTION = re.compile(r"^/collections/(?P<id>[^/]+)(?P<rest>/.*)?$")
_PROCESS = re.compile(r"^/processes/(?P<id>[^/]+)(?:/execution)?/?$")
_STAC = re.compile(r"^/stac/(?P<dataset>[^/]+)(?P<rest>/.*)?$")
#: OGC API Coverages scaling parameters; the coverages serve native pixels only
SCALING = ("scale-size", "scale-factor", "scale-axes", "width", "height")
CRS84_NAMES = {"http://www.opengis.net/def/crs/OGC/1.3/CRS84", "OGC:CRS84", "CRS84",
               "urn:ogc:def:crs:OGC:1.3:CRS84"}
EPSG4326_NAMES = {"http://www.opengis.net/def/crs/EPSG/0/4326", "EPSG:4326",
                  "urn:ogc:def:crs:EPSG::4326"}


class Refused(Exception):
    """A request refused before its route runs: HTTP status, OGC code, message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# --- responses ---------------------------------------------------------------------------------

def error_response(status: int, code: str, message: str):
    """OGC API exception JSON, or a WMS 1.3.0 exception report on ``/wms``."""
    from flask import Response, request

    if request.path.rstrip("/") == "/wms":
        from sentinelle.ows.wms import EXCEPTION_MIME, exception_report

        return Response(exception_report(message), status=status, mimetype=EXCEPTION_MIME)
    body = json.dumps({"code": code, "type": code, "description": message},
                      ensure_ascii=False)
    return Response(body, status=status, mimetype="application/json")


_HTTP_CODES = {404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge",
               414: "URITooLong"}


def http_error(err: HTTPException):
    """Flask/werkzeug HTTP errors (unknown route, wrong method, body too large) as JSON."""
    from flask import request

    if err.response is not None or err.code is None:  # a route's own abort(Response)
        return err
    if err.code == HTTPStatus.NOT_FOUND:
        message = (f"no resource at {request.path}; the API starts at / (landing page), "
                   "/collections, /processes, /jobs, /wms")
    elif err.code == HTTPStatus.METHOD_NOT_ALLOWED:
        allowed = ", ".join(sorted(getattr(err, "valid_methods", None) or []))
        message = f"method {request.method} is not allowed on {request.path}" + \
            (f"; use {allowed}" if allowed else "")
    elif err.code == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
        message = _body_message(None, Limits.from_env().max_body_bytes)
    else:
        message = err.description or err.name
    code = _HTTP_CODES.get(err.code, "InvalidParameterValue" if err.code < 500
                           else "NoApplicableCode")
    response = error_response(err.code, code, message)
    if err.code == HTTPStatus.METHOD_NOT_ALLOWED and getattr(err, "valid_methods", None):
        response.headers["Allow"] = ", ".join(err.valid_methods)
    return response


# --- checks ------------------------------------------------------------------------------------

def check_path(path: str) -> None:
    """No ``..``/``.`` segment, backslash or NUL byte, however encoded (werkzeug has decoded
    ``%2e%2e`` and ``%2f`` by now): nothing may name a file outside the served folders."""
    if path.startswith("/vendor/"):  # a whitelist of files answers there (sentinelle.web.vendor)
        return
    segments = path.split("/")
    if any(s in ("..", ".") for s in segments) or "\\" in path or "\x00" in path:
        raise Refused(400, "InvalidParameterValue",
                      "the path may not contain '.' or '..' segments, backslashes or NUL "
                      "bytes; name resources by their id")


def _body_message(size: int | None, limit: int) -> str:
    got = f"{size:,} bytes" if size is not None else "larger"
    return (f"the request body is {got} but at most {limit:,} bytes are accepted "
            "(SENTINELLE_MAX_BODY_BYTES); send zones as a served collection "
            "({\"collection\": …, \"filter\": …}) or split the request")


def json_depth(data: bytes) -> int:
    """Deepest nesting of arrays and objects in a JSON text, without parsing it: brackets
    inside strings do not count (quotes preceded by an odd run of backslashes are escaped).
    Vectorised, so an 8 MB body takes milliseconds."""
    codes = np.frombuffer(data, dtype=np.uint8)
    if codes.size == 0:
        return 0
    quote = codes == 0x22  # "
    backslash = codes == 0x5C
    if backslash.any():
        index = np.arange(codes.size, dtype=np.int64)
        last_other = np.maximum.accumulate(np.where(backslash, -1, index))
        run = np.zeros(codes.size, dtype=np.int64)  # backslashes right before each byte
        run[1:] = index[:-1] - last_other[:-1]
        quote &= run % 2 == 0
    inside = np.cumsum(quote, dtype=np.int64) % 2 == 1
    steps = (((codes == 0x5B) | (codes == 0x7B)) & ~inside).astype(np.int32) \
        - (((codes == 0x5D) | (codes == 0x7D)) & ~inside).astype(np.int32)  # [ { minus ] }
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def check_body(request, limits: Limits) -> None:
    """Body size (413) and JSON nesting (400) before anything parses it."""
    size = request.content_length
    if size is not None and size > limits.max_body_bytes:
        raise Refused(413, "PayloadTooLarge", _body_message(size, limits.max_body_bytes))
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    # kept for pygeoapi, which reads it again; werkzeug cuts a chunked body (no length) at
    # MAX_CONTENT_LENGTH silently, and raises its 413 only on the next read
    data = request.get_data(cache=True)
    if size is None and len(data) >= limits.max_body_bytes and request.stream.read(1):
        raise Refused(413, "PayloadTooLarge", _body_message(None, limits.max_body_bytes))
    if "json" in (request.content_type or "") or request.path.endswith("/execution"):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise Refused(400, "InvalidParameterValue",
                          f"the request body is not UTF-8 (byte {err.start}): a JSON body "
                          "must be UTF-8 text (RFC 8259)") from None
    if data.lstrip()[:1] not in (b"{", b"["):
        return
    depth = json_depth(data)
    if depth > limits.max_json_depth:
        raise Refused(400, "InvalidParameterValue",
                      f"the JSON body nests {depth:,} levels deep but at most "
                      f"{limits.max_json_depth} are accepted (SENTINELLE_MAX_JSON_DEPTH)")


def check_ids(path: str) -> None:
    """Job ids are UUIDs; collection and process ids are plain names (404 otherwise)."""
    match = _JOBS.match(path)
    if match and not UUID.match(match.group("id")):
        raise Refused(404, "NoSuchJob",
                      f"no job {_short(match.group('id'))}: job ids are UUIDs such as "
                      "3f2b6c1e-8a4d-11ef-9c1b-0242ac120002 (see /jobs)")
    match = _COLLECTION.match(path)
    if match and not RESOURCE_ID.match(match.group("id")):
        raise Refused(404, "NotFound", f"no collection {_short(match.group('id'))} "
                      "(see /collections)")
    match = _PROCESS.match(path)
    if match and not RESOURCE_ID.match(match.group("id")):
        raise Refused(404, "NotFound", f"no process {_short(match.group('id'))} "
                      "(see /processes)")


def _short(value: str, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def check_stac_path(path: str, config: dict) -> None:
    """``/stac/<collection>/<path>`` must name a file or folder inside the collection's folder,
    symbolic links resolved; a missing file is a 404 (pygeoapi answers 500)."""
    match = _STAC.match(path)
    if not match:
        return
    resource = (config.get("resources") or {}).get(match.group("dataset")) or {}
    provider = next((p for p in resource.get("providers") or [] if p.get("type") == "stac"),
                    None)
    if provider is None or not match.group("rest"):
        return
    root = Path(str(provider["data"])).resolve()
    target = str(provider["data"]) + match.group("rest").rstrip("/")
    file_types = tuple(provider.get("file_types") or ())
    candidates = [target, *(target + ext for ext in file_types)]
    existing = [c for c in candidates if os.path.lexists(c)]
    for candidate in existing:
        real = Path(candidate).resolve()
        if real != root and root not in real.parents:
            raise Refused(404, "NotFound", f"{path} leads outside the catalog folder "
                          "(a symbolic link); it is not served")
    if not existing:
        raise Refused(404, "NotFound", f"no file or folder {match.group('rest')!r} in "
                      f"{match.group('dataset')}; browse /stac/{match.group('dataset')}")


def _floats(text: str, name: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise Refused(400, "InvalidParameterValue",
                      f"{name} values must be numbers, got {_short(text)}") from None
    if not all(math.isfinite(v) for v in values):
        raise Refused(400, "InvalidParameterValue",
                      f"{name} values must be finite numbers, got {_short(text)}")
    return values


def check_items_bbox(args) -> None:
    """``bbox`` of ``/items``: finite; in CRS84 (the default) longitudes within ±180 and
    latitudes within ±90; in EPSG:4326 the same with latitude first (its axis order)."""
    text = args.get("bbox")
    if not text:
        return
    values = _floats(text, "bbox")
    if len(values) not in (4, 6):
        return  # pygeoapi's own message
    minx, miny, maxx, maxy = values[:2] + values[-3:-1] if len(values) == 6 else values
    crs = args.get("bbox-crs") or "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
    if crs in EPSG4326_NAMES:
        (miny, minx, maxy, maxx), order = (minx, miny, maxx, maxy), \
            "EPSG:4326 order: min latitude, min longitude, max latitude, max longitude"
    elif crs in CRS84_NAMES:
        order = "CRS84 order: min longitude, min latitude, max longitude, max latitude"
    else:
        return
    if not (-180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90
            and -90 <= maxy <= 90):
        raise Refused(400, "InvalidParameterValue",
                      f"bbox {text} is out of range: longitudes must lie within [-180, 180] "
                      f"and latitudes within [-90, 90] ({order})")
    if minx > maxx:
        raise Refused(400, "InvalidParameterValue",
                      f"bbox {text} has min longitude > max longitude (a box across the "
                      f"antimeridian), which is not supported; send two boxes ({order})")


def check_items_datetime(args, resource: dict, collection: str) -> None:
    """``datetime`` of ``/items`` entirely outside the collection's temporal extent: say
    which extent (pygeoapi only says "out of range")."""
    import datetime as dt

    from sentinelle.catalog.dates import parse_interval

    temporal = ((resource.get("extents") or {}).get("temporal") or {})
    text = args.get("datetime")
    if not text or not temporal:
        return
    try:
        wanted = parse_interval(text)
    except ValueError:
        return  # malformed: the provider says how to write it

    def moment(value: Any) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, dt.datetime):
            return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        if isinstance(value, dt.date):
            return dt.datetime.combine(value, dt.time.min, tzinfo=dt.timezone.utc)
        return parse_interval(str(value)).start

    begin, end = moment(temporal.get("begin")), moment(temporal.get("end"))
    if (begin is not None and wanted.end is not None and wanted.end < begin) or \
            (end is not None and wanted.start is not None and wanted.start > end):
        extent = f"{begin.isoformat() if begin else '..'}/{end.isoformat() if end else '..'}"
        raise Refused(400, "InvalidParameterValue",
                      f"datetime {_short(text)} is outside the temporal extent of "
                      f"{collection} ({extent.replace('+00:00', 'Z')})")


def _queryables(resource: dict) -> str:
    """The queryable properties of a feature or record collection, as a message ends them."""
    from pygeoapi.plugin import load_plugin

    provider = next((p for p in resource.get("providers") or []
                     if p.get("type") in ("feature", "record")), None)
    try:
        names = sorted(load_plugin("provider", provider).get_fields()) if provider else []
    except Exception:  # the provider's own error will come with the query
        names = []
    return ", ".join([*names, "geometry"])


def check_items_filter(args, resource: dict, collection: str) -> None:
    """``filter`` of ``/items`` must parse (pygeoapi only says "Bad CQL text"): say where it
    fails and what may be queried."""
    text = args.get("filter")
    if text is None:
        return
    from sentinelle.providers.cql import parse_text

    language = args.get("filter-lang") or "cql2-text"
    if language in ("cql-json", "cql2-json"):
        raise Refused(400, "InvalidParameterValue",
                      "filter: CQL2 JSON is read from the body of a POST to "
                      f"/collections/{collection}/items; in the query string send CQL2 text "
                      "(filter-lang=cql2-text), e.g. filter=commune = '35051'")
    try:
        parse_text(text)
    except Exception as err:
        where = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise Refused(400, "InvalidParameterValue",
                      f"filter: not valid CQL2 text ({where[:200]}); queryable "
                      f"properties: {_queryables(resource)}") from None
    if args.get("filter-crs"):
        from pygeoapi.util import get_crs_from_uri

        try:
            get_crs_from_uri(args["filter-crs"])
        except Exception:
            raise Refused(400, "InvalidParameterValue",
                          f"filter-crs {_short(args['filter-crs'])} is not a CRS URI; use e.g. "
                          "http://www.opengis.net/def/crs/EPSG/0/2154") from None


def check_collection_query(path: str, args, config: dict) -> None:
    """Parameters of ``/collections/<id>/…`` that pygeoapi checks badly or not at all."""
    match = _COLLECTION.match(path)
    if not match:
        return
    collection, rest = match.group("id"), (match.group("rest") or "").rstrip("/")
    resource = (config.get("resources") or {}).get(collection)
    if resource is None:
        return
    if rest == "/items":
        check_items_bbox(args)
        check_items_datetime(args, resource, collection)
        check_items_filter(args, resource, collection)
    elif rest == "/coverage":
        given = [name for name in SCALING if name in args]
        if given:
            raise Refused(400, "InvalidParameterValue",
                          f"{', '.join(given)}: coverages are served at their native "
                          "resolution (no scaling); limit the size with bbox or subset, or "
                          f"ask /collections/{collection}/map for a resampled image")


def _config() -> dict:
    from pygeoapi.flask_app import CONFIG

    return CONFIG


def check_request():
    """``before_request``: run every check; a refusal becomes the response."""
    from flask import request

    limits = Limits.from_env()
    try:
        check_path(request.path)
        check_body(request, limits)
        check_ids(request.path)
        if request.method in ("GET", "HEAD"):
            config = _config()
            check_stac_path(request.path, config)
            check_collection_query(request.path, request.args, config)
    except Refused as refusal:
        LOGGER.info("refused %s %s: %s", request.method, request.path, refusal.message)
        return error_response(refusal.status, refusal.code, refusal.message)
    return None


def install(app) -> None:
    """Set the body limit and register the checks and the error pages on ``app``."""
    app.config["MAX_CONTENT_LENGTH"] = Limits.from_env().max_body_bytes
    app.before_request(check_request)
    app.register_error_handler(HTTPException, http_error)


__all__ = ["Refused", "check_request", "error_response", "install", "json_depth"]
