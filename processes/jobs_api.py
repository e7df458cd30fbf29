"""OGC API – Processes job endpoints where pygeoapi 0.21 falls short, as wrappers of its API
functions (installed once by :func:`install`, from ``sentinelle.web.app.create_app``).

* ``POST /processes/{id}/execution`` with ``Prefer: respond-async``: pygeoapi answers 201 with
  a ``Location`` but a ``null`` body (``{}`` with ``response: document``); the body becomes the
  job's ``statusInfo`` (``jobID``, ``status``, ``type``, ``progress``, times, links).
* ``GET /jobs`` (JSON): pygeoapi ignores the ``status``/``processID`` filters and pagination
  counts; here they filter in the job store (``?status=running``, ``?status=failed,dismissed``,
  repeated parameters too) and every job is a ``statusInfo`` with its links.
  ``GET /jobs/{id}`` (JSON) is the same ``statusInfo``.  HTML pages stay pygeoapi's.
* ``GET /jobs/{id}/results``: a dismissed job is a 404 ``NoSuchJob`` (pygeoapi: a 500), a
  failed job answers with the error it failed with (status and message), not a generic 400;
  JSON results are JSON unless HTML is asked for (pygeoapi: HTML without ``?f=json``, which
  OWSLib does not send).

* ``subscriber`` URLs are checked before anything runs (:mod:`.callbacks`): a URL that is
  not allowed (internal address, scheme, host outside the allow-list) is a 400 naming it.
* The job database down (:class:`~.jobstore.JobStoreUnavailable`): every job endpoint
  answers 503 with the reason and ``Retry-After`` (pygeoapi: a 500 or a hang).

Only active when the configured manager is :class:`~.manager.SentinelleManager`.
"""

from __future__ import annotations

import functools
import json
from http import HTTPStatus

from pygeoapi.process.base import JobNotFoundError
from pygeoapi.util import JobStatus, to_json

from sentinelle.processes.callbacks import check_subscriber
from sentinelle.processes.jobstore import JobStoreUnavailable
from sentinelle.processes.manager import (
    LIST_FILTER,
    UNRECORDED,
    SentinelleManager,
    status_info,
)

STATUSES = tuple(s.value for s in JobStatus)


def _ours(api) -> bool:
    return isinstance(getattr(api, "manager", None), SentinelleManager)


def _headers(api, request) -> dict:
    from pygeoapi.api import SYSTEM_LOCALE

    return request.get_response_headers(SYSTEM_LOCALE, **api.api_headers)


def _values(params, name: str) -> list[str]:
    raw = params.getlist(name) if hasattr(params, "getlist") else [params.get(name)]
    return [v.strip() for value in raw if value for v in value.split(",") if v.strip()]


def _is_html(request) -> bool:
    return request.format == "html"


def _store_guard(wrapper):
    """Answer 503 + ``Retry-After`` when the job database cannot be reached."""
    @functools.wraps(wrapper)
    def guarded(original, api, request, *args):
        try:
            return wrapper(original, api, request, *args)
        except JobStoreUnavailable as err:
            error = err
        # answered outside the except block: pygeoapi would log a traceback per request
        headers = _headers(api, request)
        headers["Retry-After"] = str(error.retry_after)
        return api.get_exception(HTTPStatus.SERVICE_UNAVAILABLE, headers, request.format,
                                 "NoApplicableCode", str(error))
    return guarded


def _subscriber(request):
    """The ``subscriber`` member of an execute request (``None`` if the body is not JSON:
    pygeoapi reports that itself)."""
    data = request.data or b""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if b"subscriber" not in data:  # large inline zones: parse them once, in pygeoapi
        return None
    try:
        body = json.loads(data)
    except (ValueError, TypeError):
        return None
    return body.get("subscriber") if isinstance(body, dict) else None


@_store_guard
def execute_process(original, api, request, process_id):
    if _ours(api):
        try:
            check_subscriber(_subscriber(request))
        except ValueError as err:
            return api.get_exception(HTTPStatus.BAD_REQUEST, _headers(api, request),
                                     request.format, "InvalidParameterValue", str(err))
    headers, status, content = original(api, request, process_id)
    if headers.pop(UNRECORDED, None):  # ran without a record: no job to point at
        headers.pop("Location", None)
    if status != HTTPStatus.CREATED or not _ours(api) or "Location" not in headers:
        return headers, status, content
    job_id = headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    try:
        job = api.manager.get_job(job_id)
    except JobNotFoundError:
        return headers, status, content
    headers["Content-Type"] = "application/json"
    return headers, status, to_json(status_info(job, api.base_url), api.pretty_print)


@_store_guard
def get_jobs(original, api, request, job_id=None):
    if not _ours(api):
        return original(api, request, job_id)
    statuses = _values(request.params, "status")
    process_ids = _values(request.params, "processID")
    headers = _headers(api, request)
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        return api.get_exception(HTTPStatus.BAD_REQUEST, headers, request.format,
                                 "InvalidParameterValue",
                                 f"status: unknown value(s) {', '.join(unknown)}; use "
                                 f"{', '.join(STATUSES)}")
    if _is_html(request):
        token = LIST_FILTER.set({"status": statuses or None,
                                 "processID": process_ids or None})
        try:
            return original(api, request, job_id)
        finally:
            LIST_FILTER.reset(token)
    if job_id is not None:
        try:
            job = api.manager.get_job(job_id)
        except JobNotFoundError:
            return api.get_exception(HTTPStatus.NOT_FOUND, headers, request.format,
                                     "NoSuchJob", f"no job {job_id}")
        return headers, HTTPStatus.OK, to_json(status_info(job, api.base_url),
                                               api.pretty_print)
    limits = api.config["server"].get("limits", {})
    try:
        limit = int(request.params.get("limit") or limits.get("default_items", 50))
        offset = int(request.params.get("offset") or 0)
        if limit < 1 or offset < 0:
            raise ValueError
    except ValueError:
        return api.get_exception(HTTPStatus.BAD_REQUEST, headers, request.format,
                                 "InvalidParameterValue",
                                 "limit must be a positive integer and offset ≥ 0")
    limit = min(limit, int(limits.get("max_items", 1000)))
    jobs, matched = api.manager.list_jobs(status=statuses or None,
                                          process_ids=process_ids or None,
                                          limit=limit, offset=offset)
    url = f"{api.base_url}/jobs"
    query = "".join(f"&{k}={','.join(v)}" for k, v in
                    (("status", statuses), ("processID", process_ids)) if v)
    links = [
        {"href": f"{url}?f=json{query}", "rel": "self", "type": "application/json",
         "title": "Jobs list as JSON"},
        {"href": f"{url}?f=html{query}", "rel": "alternate", "type": "text/html",
         "title": "Jobs list as HTML"},
    ]
    if offset + limit < matched:
        links.append({"href": f"{url}?f=json{query}&limit={limit}&offset={offset + limit}",
                      "rel": "next", "type": "application/json", "title": "Next jobs"})
    if offset > 0:
        links.append({"href": f"{url}?f=json{query}&limit={limit}&offset="
                              f"{max(0, offset - limit)}",
                      "rel": "prev", "type": "application/json", "title": "Previous jobs"})
    body = {"jobs": [status_info(job, api.base_url) for job in jobs],
            "numberMatched": matched, "numberReturned": len(jobs), "links": links}
    return headers, HTTPStatus.OK, to_json(body, api.pretty_print)


@_store_guard
def get_job_result(original, api, request, job_id):
    if not _ours(api):
        return original(api, request, job_id)
    try:
        job = api.manager.get_job(job_id)
    except JobNotFoundError:
        return original(api, request, job_id)
    headers = _headers(api, request)
    if job["status"] == JobStatus.dismissed.value:
        return api.get_exception(HTTPStatus.NOT_FOUND, headers, request.format, "NoSuchJob",
                                 f"job {job_id} was dismissed: it has no results")
    if job["status"] == JobStatus.failed.value:
        code, _, message = (job.get("message") or "NoApplicableCode: job failed") \
            .partition(": ")
        return api.get_exception(int(job.get("http_status") or HTTPStatus.BAD_REQUEST),
                                 headers, request.format, code, message or code)
    if (job["status"] == JobStatus.successful.value and not _is_html(request)
            and (job.get("mimetype") or "application/json") == "application/json"):
        # pygeoapi renders JSON results as HTML unless ?f=json, even for Accept: */*
        try:
            _, output = api.manager.get_job_result(job_id)
        except Exception:
            return original(api, request, job_id)
        headers["Content-Type"] = "application/json"
        return headers, HTTPStatus.OK, to_json(output, api.pretty_print)
    return original(api, request, job_id)


@_store_guard
def delete_job(original, api, request, job_id):
    return original(api, request, job_id)


def install() -> None:
    """Wrap pygeoapi's job API functions (idempotent)."""
    from pygeoapi.api import processes

    for name, wrapper in (("execute_process", execute_process), ("get_jobs", get_jobs),
                          ("get_job_result", get_job_result), ("delete_job", delete_job)):
        original = getattr(processes, name)
        if getattr(original, "sentinelle_patched", False):
            continue
        patched = functools.wraps(original)(functools.partial(wrapper, original))
        patched.sentinelle_patched = True
        setattr(processes, name, patched)


__all__ = ["install"]
