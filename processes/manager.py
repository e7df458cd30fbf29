"""The job manager: synchronous requests in the web process, asynchronous jobs on Dask.

Configured with ``server.manager.name: sentinelle.processes.manager.SentinelleManager``.

**Synchronous** execution (no ``Prefer: respond-async``) runs in the request thread, as before:
pygeoapi 0.21's ``BaseManager._execute_handler_sync`` catches every exception raised by a
processor's ``execute`` and answers HTTP 400 ``InvalidParameterValue`` whatever it was, so
this manager records the error (mapped by :mod:`sentinelle.processes.errors`), marks the job
failed with that code, and re-raises it so that ``api.processes.execute_process`` answers
with the error's own status and message (413, 404…).

**Asynchronous** jobs go to Dask distributed (:mod:`sentinelle.processes.dask_jobs`): the
request only records the job and queues it; ``accepted`` → ``running`` (when a worker starts
it) → ``successful`` / ``failed`` / ``dismissed``, with ``progress`` following the real share
of the work (blocks read by the zonal statistics engine) and a ``message``.  Results are
written by the web process to ``output_dir`` (``<process>-<job>.<ext>``) with their media
type.  ``DELETE /jobs/{id}`` cancels the Dask task and the job reads ``dismissed``; a second
``DELETE`` removes the record.  ``subscriber`` callbacks (``inProgressUri`` when the job
starts, ``successUri`` with the results, ``failedUri`` with the status) are posted from a
background thread.

**Records** live in TinyDB (``connection``, the embedded default) or PostgreSQL
(``jobs_db`` / ``SENTINELLE_JOBS_DB=postgresql://…``; :mod:`sentinelle.processes.jobstore`).
Each job records the server process that runs it (``owner``): when a server starts, jobs left
``accepted``/``running`` by a process that is gone are marked ``failed`` with a message, never
left running forever (other hosts' jobs after ``stale_after`` seconds without news; live
processes refresh their jobs every minute).

Settings (config key under ``server.manager`` / environment variable, default):
``jobs_db`` / ``SENTINELLE_JOBS_DB`` (empty: TinyDB), ``jobs_table`` /
``SENTINELLE_JOBS_TABLE`` (``jobs``), ``dask_scheduler`` / ``DASK_SCHEDULER_ADDRESS``
(empty: a local cluster), ``max_running`` / ``SENTINELLE_JOBS_MAX_RUNNING`` (2, per web
process; more jobs wait ``accepted``), ``timeout`` / ``SENTINELLE_JOBS_TIMEOUT`` (3600 s),
``stale_after`` / ``SENTINELLE_JOBS_STALE_AFTER`` (600 s), ``local_workers`` /
``SENTINELLE_DASK_WORKERS`` (1), ``local_threads`` / ``SENTINELLE_DASK_THREADS`` (2),
``local_processes`` / ``SENTINELLE_DASK_PROCESSES`` (0: workers are threads of the web
process).

``SENTINELLE_RESULTS`` overrides ``output_dir`` (the results folder).

``"response": "document"`` works with binary outputs: pygeoapi wraps the output in
``{"outputs": [...]}`` and then fails to serialise bytes, so bytes become a qualified value
``{"id", "mediaType", "encoding": "base64", "value"}`` first.
"""

from __future__ import annotations

import atexit
import base64
import contextvars
import json
import logging
import mimetypes
import os
import socket
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from pygeoapi.process.base import BaseProcessor, JobResultNotFoundError
from pygeoapi.process.manager.base import BaseManager
from pygeoapi.util import DATETIME_FORMAT, JobStatus, RequestedResponse, Subscriber

from sentinelle.processes.errors import to_process_error
from sentinelle.processes.jobstore import ACTIVE, JobStore, now, open_store

LOGGER = logging.getLogger(__name__)

RAW = RequestedResponse.raw.value
DOCUMENT = RequestedResponse.document.value
HOST = socket.gethostname()
OGC_RESULTS = "http://www.opengis.net/def/rel/ogc/1.0/results"
JSON_TYPES = ("application/json", "application/ld+json")

#: filters of ``GET /jobs`` (status, processID), set by :mod:`.jobs_api` around pygeoapi's
#: list function, which does not pass them to the manager
LIST_FILTER: contextvars.ContextVar[dict] = contextvars.ContextVar(
    "sentinelle_jobs_filter", default={})


def owner_id() -> str:
    return f"{HOST}:{os.getpid()}"


def document_value(processor: BaseProcessor, mimetype: str, outputs: Any) -> tuple[str, Any]:
    """Bytes as an OGC qualified value for ``response: document`` (JSON media types embedded
    as JSON, others base64); anything else unchanged."""
    if not isinstance(outputs, bytes):
        return mimetype, outputs
    output_id = next(iter(processor.metadata.get("outputs", {})), "result")
    if "json" in mimetype.split(";")[0]:  # GeoJSON as bytes: embed it as JSON, not base64
        return "application/json", {"id": output_id, "mediaType": mimetype,
                                    "value": json.loads(outputs)}
    return "application/json", {
        "id": output_id, "mediaType": mimetype, "encoding": "base64",
        "value": base64.b64encode(outputs).decode("ascii"),
    }


def status_info(job: dict, base_url: str | None = None) -> dict:
    """The OGC API Processes ``statusInfo`` of a job record (links when ``base_url``)."""
    info = {
        "type": job.get("type") or "process",
        "processID": job.get("process_id"),
        "jobID": job["identifier"],
        "status": job["status"],
        "message": job.get("message"),
        "progress": int(job.get("progress") or 0),
        "created": job.get("created"),
        "started": job.get("started"),
        "finished": job.get("finished"),
        "updated": job.get("updated"),
    }
    if base_url:
        url = f"{base_url.rstrip('/')}/jobs/{job['identifier']}"
        links = [
            {"href": f"{url}?f=json", "rel": "self", "type": "application/json",
             "title": "Job status as JSON"},
            {"href": f"{url}?f=html", "rel": "alternate", "type": "text/html",
             "title": "Job status as HTML"},
            {"href": f"{base_url.rstrip('/')}/jobs?f=json", "rel": "up",
             "type": "application/json", "title": "Job list"},
        ]
        if job["status"] == JobStatus.successful.value:
            links.append({"href": f"{url}/results", "rel": OGC_RESULTS,
                          "type": job.get("mimetype") or "application/json",
                          "title": "Job results"})
        info["links"] = links
    return info


def _setting(manager_def: dict, key: str, env: str, default: Any) -> Any:
    value = manager_def.get(key)
    if value is None or value == "":
        value = os.environ.get(env)
    return default if value is None or value == "" else value


def _as_bool(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _age(stamp: str | None) -> float:
    if not stamp:
        return float("inf")
    try:
        then = datetime.strptime(stamp, DATETIME_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return float("inf")
    return (datetime.now(timezone.utc) - then).total_seconds()


_MANAGERS: "weakref.WeakSet[SentinelleManager]" = weakref.WeakSet()


@atexit.register
def _shutdown_all() -> None:  # pragma: no cover - process exit
    for manager in list(_MANAGERS):
        manager.shutdown()


class SentinelleManager(BaseManager):
    """Jobs on Dask, records in TinyDB or PostgreSQL, error statuses kept for sync requests."""

    def __init__(self, manager_def: dict):
        super().__init__(manager_def)
        self.is_async = True
        self.supports_subscribing = True
        if os.environ.get("SENTINELLE_RESULTS"):
            self.output_dir = Path(os.environ["SENTINELLE_RESULTS"])
        self.jobs_db = _setting(manager_def, "jobs_db", "SENTINELLE_JOBS_DB", None)
        self.jobs_table = _setting(manager_def, "jobs_table", "SENTINELLE_JOBS_TABLE", "jobs")
        self.scheduler_address = _setting(manager_def, "dask_scheduler",
                                          "DASK_SCHEDULER_ADDRESS", None)
        self.max_running = int(_setting(manager_def, "max_running",
                                        "SENTINELLE_JOBS_MAX_RUNNING", 2))
        self.timeout = float(_setting(manager_def, "timeout", "SENTINELLE_JOBS_TIMEOUT", 3600))
        self.stale_after = float(_setting(manager_def, "stale_after",
                                          "SENTINELLE_JOBS_STALE_AFTER", 600))
        self.local_cluster = {
            "local_workers": int(_setting(manager_def, "local_workers",
                                          "SENTINELLE_DASK_WORKERS", 1)),
            "local_threads": int(_setting(manager_def, "local_threads",
                                          "SENTINELLE_DASK_THREADS", 2)),
            "local_processes": _as_bool(_setting(manager_def, "local_processes",
                                                 "SENTINELLE_DASK_PROCESSES", "0")),
        }
        self._store: JobStore | None = None
        self._runner = None
        self._lock = threading.RLock()
        self._progress: dict[str, int] = {}
        self._notifier: ThreadPoolExecutor | None = None
        _MANAGERS.add(self)

    # --- plumbing (lazy: pygeoapi builds managers for the OpenAPI document too) ----------

    @property
    def store(self) -> JobStore:
        with self._lock:
            if self._store is None:
                store = open_store(self.jobs_db or self.connection, table=self.jobs_table)
                self._store = store
                self.sweep()
            return self._store

    @property
    def runner(self):
        with self._lock:
            if self._runner is None:
                from sentinelle.processes.dask_jobs import DaskJobRunner

                self._runner = DaskJobRunner(self, scheduler_address=self.scheduler_address,
                                             max_running=self.max_running,
                                             timeout=self.timeout, **self.local_cluster)
            return self._runner

    def shutdown(self) -> None:
        """Mark this process's unfinished jobs failed and close the Dask client."""
        runner = self._runner
        if runner is None:
            return
        for job_id in runner.active_ids():
            try:
                self.store.update(job_id, self._failure(
                    503, "NoApplicableCode", "the server stopped before the job finished; "
                    "submit it again"), only_if_status=ACTIVE)
            except Exception:  # pragma: no cover - best effort at exit
                pass
        runner.close()
        self._runner = None

    def sweep(self) -> int:
        """Mark failed the unfinished jobs whose server process is gone; returns how many."""
        store = self._store
        if store is None:
            return 0
        owned = set(self._runner.active_ids()) if self._runner is not None else set()
        jobs, _ = store.list(status=ACTIVE)
        count = 0
        for job in jobs:
            if job["identifier"] in owned:
                continue
            reason = self._orphan_reason(job)
            if reason and store.update(job["identifier"], self._failure(
                    503, "NoApplicableCode", reason), only_if_status=ACTIVE):
                count += 1
                LOGGER.warning("job %s marked failed: %s", job["identifier"], reason)
        return count

    def _orphan_reason(self, job: dict) -> str | None:
        owner = job.get("owner") or ""
        host, _, pid = owner.rpartition(":")
        restart = ("it was interrupted when the server restarted or stopped; submit it again")
        if not owner or not pid.isdigit():
            return f"the job has no running server process ({restart})"
        if host == HOST:
            if int(pid) == os.getpid() or not _pid_alive(int(pid)):
                return f"the server process running the job ({owner}) is gone: {restart}"
            return None
        if _age(job.get("updated")) > self.stale_after:
            return (f"no news from the server process running the job ({owner}) for more "
                    f"than {self.stale_after:.0f} s: {restart}")
        return None

    @staticmethod
    def _failure(http_status: int, code: str, message: str) -> dict:
        stamp = now()
        return {"status": JobStatus.failed.value, "message": f"{code}: {message}",
                "http_status": int(http_status), "finished": stamp, "updated": stamp,
                "location": None}

    # --- records (pygeoapi's manager interface) ------------------------------------------

    def get_jobs(self, status: JobStatus = None, limit: Optional[int] = None,
                 offset: Optional[int] = None) -> dict:
        filters = LIST_FILTER.get()
        statuses = [status.value] if status is not None else filters.get("status")
        jobs, matched = self.store.list(status=statuses, process_ids=filters.get("processID"),
                                        limit=limit, offset=offset or 0)
        for job in jobs:  # pygeoapi's HTML list sorts on "started"
            job["started"] = job["started"] or job["created"]
        return {"jobs": jobs, "numberMatched": matched}

    def list_jobs(self, *, status=None, process_ids=None, limit=None, offset=0):
        return self.store.list(status=status, process_ids=process_ids, limit=limit,
                               offset=offset)

    def add_job(self, job_metadata: dict) -> str:
        job = dict(job_metadata, owner=owner_id(), started=None, progress=0,
                   message="Job accepted", http_status=None)
        self.store.add(job)
        return job["identifier"]

    def update_job(self, job_id: str, update_dict: dict) -> bool:
        return self.store.update(job_id, update_dict)

    def get_job(self, job_id: str) -> dict:
        return self.store.get(job_id)

    def get_job_result(self, job_id: str):
        job = self.get_job(job_id)
        if job["status"] != JobStatus.successful.value:
            return (None,)
        location, mimetype = job.get("location"), job.get("mimetype")
        if not location:
            raise JobResultNotFoundError()
        try:
            path = Path(location)
            if mimetype in (None, *JSON_TYPES):
                with path.open("r", encoding="utf-8") as handle:
                    return mimetype, json.load(handle)
            return mimetype, path.read_bytes()
        except (TypeError, FileNotFoundError, json.JSONDecodeError) as err:
            raise JobResultNotFoundError() from err

    def delete_job(self, job_id: str) -> bool:
        """Dismiss: stop a queued/running job, or delete a finished job's results; a second
        ``DELETE`` of a dismissed job removes its record."""
        job = self.get_job(job_id)  # JobNotFoundError → 404
        status = job["status"]
        stamp = now()
        dismissed = {"status": JobStatus.dismissed.value, "updated": stamp, "finished": stamp,
                     "location": None}
        if status in ACTIVE:
            # record first, then cancel: the runner's own "cancelled" report must find the
            # job dismissed already (else a racing second look would delete the record)
            recorded = self.store.update(job_id, dict(
                dismissed, message="Job dismissed: its computation was cancelled"),
                only_if_status=ACTIVE)
            if self._runner is not None or self.scheduler_address:
                self.runner.cancel(job_id)
            if recorded:
                return True
            job = self.get_job(job_id)  # it finished meanwhile: dismiss its results
            status = job["status"]
            if status == JobStatus.dismissed.value:
                return True
        if status == JobStatus.dismissed.value:
            return self.store.delete(job_id)
        self._remove_result(job.get("location"))
        return self.store.update(job_id, dict(
            dismissed, message="Job dismissed: its results were deleted"))

    def _remove_result(self, location: str | None) -> None:
        if location and self.output_dir is not None:
            try:
                Path(location).unlink()
            except FileNotFoundError:
                pass

    # --- synchronous execution ---------------------------------------------------------------

    def _run(self, p: BaseProcessor, job_id: str, data_dict: dict,
             requested_outputs: Optional[dict], subscriber: Optional[Subscriber],
             requested_response: Optional[str], *, raise_errors: bool):
        errors = []
        execute = p.execute

        def recording_execute(data, *args, **kwargs):
            try:
                mimetype, outputs = execute(data, *args, **kwargs)
            except Exception as err:
                errors.append(to_process_error(err))
                raise errors[-1] from err
            if requested_response == DOCUMENT:
                return document_value(p, mimetype, outputs)
            return mimetype, outputs

        stamp = now()
        self.update_job(job_id, {"status": JobStatus.running.value, "started": stamp,
                                 "updated": stamp, "message": "Running", "progress": 1})
        p.execute = recording_execute  # the processor is built for this request only
        try:
            mimetype, outputs, status = super()._execute_handler_sync(
                p, job_id, data_dict, requested_outputs, subscriber, requested_response)
        finally:
            p.execute = execute
        if status == JobStatus.failed and errors:
            error = errors[-1]
            self.update_job(job_id, {"message": f"{error.ogc_exception_code}: {error.message}",
                                     "http_status": int(error.http_status_code)})
            outputs = {"type": error.ogc_exception_code, "code": error.ogc_exception_code,
                       "description": error.message}
            if raise_errors:
                raise error
        return mimetype, outputs, status

    def _execute_handler_sync(self, p, job_id, data_dict, requested_outputs=None,
                              subscriber=None, requested_response=RAW):
        return self._run(p, job_id, data_dict, requested_outputs, subscriber,
                         requested_response, raise_errors=True)

    # --- asynchronous execution ------------------------------------------------------------

    def _execute_handler_async(self, p, job_id, data_dict, requested_outputs=None,
                               subscriber=None, requested_response=RAW):
        from sentinelle.processes.dask_jobs import JobSpec

        job = self.get_job(job_id)
        process_id = job["process_id"]
        spec = JobSpec(job_id, process_id, dict(self.processes[process_id]["processor"]),
                       data_dict, requested_outputs, requested_response or RAW, subscriber)
        ahead = self.runner.submit(spec)
        if ahead:
            self.job_queued(job_id, ahead)
        # pygeoapi 0.21 answers this body as is (it would be null): a statusInfo
        return "application/json", status_info(self.get_job(job_id)), JobStatus.accepted

    # --- what the Dask runner reports (JobSink) ----------------------------------------------

    def job_queued(self, job_id: str, position: int) -> None:
        self.store.update(job_id, {
            "message": f"Queued: {position} job(s) ahead (at most {self.max_running} run at "
                       "once)", "updated": now()}, only_if_status=("accepted",))

    def job_started(self, spec, worker: str, attempt: int) -> None:
        stamp = now()
        fields = {"status": JobStatus.running.value, "updated": stamp}
        if attempt <= 1:
            fields.update(started=stamp, progress=max(1, self._progress.get(spec.job_id, 0)),
                          message=f"Running on Dask worker {worker}")
            self._progress[spec.job_id] = fields["progress"]
        else:
            fields["message"] = (f"Restarted on Dask worker {worker} after a worker was lost "
                                 f"(attempt {attempt})")
        if self.store.update(spec.job_id, fields, only_if_status=ACTIVE) and attempt <= 1:
            self._notify(spec.subscriber, "in_progress_uri", spec.job_id)

    def job_progress(self, job_id: str, done: int, total: int) -> None:
        share = done / total if total else 1.0
        value = 1 + int(94 * min(max(share, 0.0), 1.0))  # 1–95; 100 once stored
        if value <= self._progress.get(job_id, 0):
            return
        self._progress[job_id] = value
        self.store.update(job_id, {"progress": value, "updated": now(),
                                   "message": f"Processing: {done}/{total} blocks done"},
                          only_if_status=(JobStatus.running.value,))

    def job_finished(self, spec, mimetype: str, outputs: Any) -> None:
        self._progress.pop(spec.job_id, None)
        location = None
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            extension = mimetypes.guess_extension(mimetype.split(";")[0].strip()) or ""
            if "geo+json" in mimetype:
                extension = ".geojson"
            location = self.output_dir / f"{spec.process_id}-{spec.job_id}{extension}"
            if isinstance(outputs, bytes):
                location.write_bytes(outputs)
            elif isinstance(outputs, str):
                location.write_text(outputs, encoding="utf-8")
            else:
                location.write_text(json.dumps(outputs, sort_keys=True), encoding="utf-8")
        stamp = now()
        done = self.store.update(spec.job_id, {
            "status": JobStatus.successful.value, "progress": 100, "message": "Job complete",
            "finished": stamp, "updated": stamp, "mimetype": mimetype,
            "location": None if location is None else str(location)}, only_if_status=ACTIVE)
        if not done:  # dismissed meanwhile
            self._remove_result(None if location is None else str(location))
            return
        self._notify(spec.subscriber, "success_uri", spec.job_id, (mimetype, outputs))

    def job_failed(self, spec, status: int, code: str, message: str) -> None:
        self._progress.pop(spec.job_id, None)
        if self.store.update(spec.job_id, self._failure(status, code, message),
                             only_if_status=ACTIVE):
            self._notify(spec.subscriber, "failed_uri", spec.job_id)

    def job_cancelled(self, spec) -> None:
        self._progress.pop(spec.job_id, None)
        stamp = now()
        self.store.update(spec.job_id, {
            "status": JobStatus.dismissed.value, "finished": stamp, "updated": stamp,
            "message": "Job dismissed: its computation was cancelled"}, only_if_status=ACTIVE)

    def heartbeat(self, job_ids: list[str]) -> None:
        stamp = now()
        for job_id in job_ids:
            self.store.update(job_id, {"updated": stamp}, only_if_status=ACTIVE)
        self.sweep()

    # --- subscriber callbacks --------------------------------------------------------------

    def _notify(self, subscriber: Subscriber | None, which: str, job_id: str,
                result: tuple[str, Any] | None = None) -> None:
        uri = getattr(subscriber, which, None) if subscriber else None
        if not uri:
            return
        with self._lock:
            if self._notifier is None:
                self._notifier = ThreadPoolExecutor(2, thread_name_prefix="sentinelle-notify")
        self._notifier.submit(self._post, uri, job_id, result)

    def _post(self, uri: str, job_id: str, result: tuple[str, Any] | None) -> None:
        import requests

        try:
            base = os.environ.get("SENTINELLE_URL")
            if result is None:
                response = requests.post(uri, json=status_info(self.get_job(job_id), base),
                                         timeout=10)
            else:
                mimetype, outputs = result
                if isinstance(outputs, (bytes, str)):
                    response = requests.post(uri, data=outputs, timeout=30,
                                             headers={"Content-Type": mimetype})
                else:
                    response = requests.post(uri, json=outputs, timeout=30)
            LOGGER.info("callback %s for job %s: HTTP %s", uri, job_id, response.status_code)
        except Exception as err:
            LOGGER.warning("callback %s for job %s failed: %s", uri, job_id, err)

    def __repr__(self):
        return f"<SentinelleManager> {self.jobs_db and 'postgresql' or self.connection}"


__all__ = ["DOCUMENT", "LIST_FILTER", "RAW", "SentinelleManager", "document_value",
           "status_info"]
