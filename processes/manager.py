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

**Access control** (:mod:`sentinelle.web.access`): each job records its ``principal`` (who
submitted it); while a request runs, :data:`JOB_SCOPE` holds the caller's principal and every
read (``GET /jobs``, ``/jobs/{id}``, results, ``DELETE``) only sees that principal's jobs —
another caller's job is "not found".  Outside requests (Dask bookkeeping, the restart sweep)
and with access control off, the scope is :data:`~.jobstore.ANY`.

**Job database down** (:class:`~.jobstore.JobStoreUnavailable`): asynchronous executions and
job reads fail with 503; synchronous executions still run, their record kept in memory for
the request (the answer has no ``Location`` then); the end of a job that finishes meanwhile is
recorded when the database is back.

**Callbacks** (``subscriber``) only go to URLs :mod:`.callbacks` allows (checked when the job is
submitted and again before each call), with timeouts and without following redirects.

``"response": "document"`` works with binary outputs: pygeoapi wraps the output in
``{"outputs": [...]}`` and then fails to serialise bytes, so bytes become a qualified value
``{"id", "mediaType", "encoding": "base64", "value"}`` first.
"""

from __future__ import annotations

import atexit
import contextvars
import json
import logging
import mimetypes
import os
import socket
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from pygeoapi.process.base import BaseProcessor, JobResultNotFoundError
from pygeoapi.process.manager.base import BaseManager
from pygeoapi.util import (
    DATETIME_FORMAT,
    JobStatus,
    ProcessExecutionMode,
    RequestedProcessExecutionMode,
    Subscriber,
)

from sentinelle.encode import FULL, check_room, storage_full, write_result
from sentinelle.processes.errors import status_of, to_process_error
from sentinelle.processes.jobstore import (
    ACTIVE,
    ANY,
    JobStore,
    JobStoreUnavailable,
    now,
    open_store,
)
from sentinelle.processes.outputs import DOCUMENT, JSON_TYPES, RAW, document_value

LOGGER = logging.getLogger(__name__)

HOST = socket.gethostname()
OGC_RESULTS = "http://www.opengis.net/def/rel/ogc/1.0/results"

#: filters of ``GET /jobs`` (status, processID), set by :mod:`.jobs_api` around pygeoapi's
#: list function, which does not pass them to the manager
LIST_FILTER: contextvars.ContextVar[dict] = contextvars.ContextVar(
    "sentinelle_jobs_filter", default={})

#: the principal whose jobs the current request may see and creates (set by
#: :mod:`sentinelle.web.access` for each request; ``ANY``: access control off or no request)
JOB_SCOPE: contextvars.ContextVar[Any] = contextvars.ContextVar("sentinelle_job_scope",
                                                                default=ANY)

#: response header by which the manager tells :mod:`.jobs_api` that a synchronous execution
#: could not be recorded (the job database was down): its ``Location`` leads nowhere
UNRECORDED = "X-Sentinelle-Unrecorded"

#: state of the synchronous execution running in this context (``None``: not one)
_SYNC: contextvars.ContextVar[dict | None] = contextvars.ContextVar("sentinelle_sync_job",
                                                                   default=None)
#: seconds between two attempts at recording the end of a job while the database is down
DEFERRED_RETRY = 2.0


def owner_id() -> str:
    return f"{HOST}:{os.getpid()}"


def _size(outputs: Any) -> int:
    """Bytes pygeoapi will write for a synchronous result (its JSON is indented by 4)."""
    if isinstance(outputs, bytes):
        return len(outputs)
    if isinstance(outputs, str):
        return len(outputs.encode("utf-8"))
    return len(json.dumps(outputs, sort_keys=True, indent=4, default=str).encode("utf-8"))


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
        self._born = now()  # jobs of our pid created since are ours (see _orphan_reason)
        if os.environ.get("SENTINELLE_RESULTS"):
            self.output_dir = Path(os.environ["SENTINELLE_RESULTS"])
        if self.output_dir is not None:  # pygeoapi writes synchronous results there too
            try:
                self.output_dir.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                LOGGER.warning("results folder %s cannot be created: %s", self.output_dir, err)
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
        self._deferred: list[tuple[str, dict, Any, float]] = []
        self._deferred_thread: threading.Thread | None = None
        self._swept = False
        _MANAGERS.add(self)

    # --- plumbing (lazy: pygeoapi builds managers for the OpenAPI document too) ----------

    @property
    def store(self) -> JobStore:
        with self._lock:
            if self._store is None:
                self._store = open_store(self.jobs_db or self.connection,
                                         table=self.jobs_table)
            if not self._swept:
                self._swept = True
                try:
                    self.sweep()
                except JobStoreUnavailable as err:  # swept again at the next heartbeat
                    self._swept = False
                    LOGGER.warning("job database unavailable at start: %s", err.detail)
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
            # our own pid: ours (queued, being submitted, synchronous) unless a former process
            # with the same pid left it before we started (containers: pid 1)
            mine = int(pid) == os.getpid() and _age(job.get("created")) < _age(self._born)
            if not mine and (int(pid) == os.getpid() or not _pid_alive(int(pid))):
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
                                        limit=limit, offset=offset or 0,
                                        principal=JOB_SCOPE.get())
        for job in jobs:  # pygeoapi's HTML list sorts on "started"
            job["started"] = job["started"] or job["created"]
        return {"jobs": jobs, "numberMatched": matched}

    def list_jobs(self, *, status=None, process_ids=None, limit=None, offset=0):
        return self.store.list(status=status, process_ids=process_ids, limit=limit,
                               offset=offset, principal=JOB_SCOPE.get())

    def add_job(self, job_metadata: dict) -> str:
        scope = JOB_SCOPE.get()
        job = dict(job_metadata, owner=owner_id(), started=None, progress=0,
                   message="Job accepted", http_status=None,
                   principal=None if scope is ANY else scope)
        sync = _SYNC.get()
        if sync is not None:
            sync["job_id"] = job["identifier"]
        try:
            self.store.add(job)
        except JobStoreUnavailable as err:
            if sync is None:
                raise
            # a synchronous execution answers by itself: run it without a record
            LOGGER.warning("job %s runs unrecorded: %s", job["identifier"], err.detail)
            sync["detached"] = job
        return job["identifier"]

    def _detached(self, job_id: str) -> dict | None:
        sync = _SYNC.get()
        job = sync.get("detached") if sync else None
        return job if job is not None and job["identifier"] == job_id else None

    def update_job(self, job_id: str, update_dict: dict) -> bool:
        detached = self._detached(job_id)
        if detached is not None:
            detached.update(update_dict)
            return True
        try:
            return self.store.update(job_id, update_dict)
        except JobStoreUnavailable as err:
            if _SYNC.get() is None:
                raise
            # the synchronous answer matters more than its record
            LOGGER.warning("job %s: update not recorded: %s", job_id, err.detail)
            return False

    def get_job(self, job_id: str) -> dict:
        detached = self._detached(job_id)
        if detached is not None:
            return dict(detached)
        return self.store.get(job_id, principal=JOB_SCOPE.get())

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

    # --- execution ---------------------------------------------------------------------------

    def _runs_async(self, process_id: str, execution_mode) -> bool:
        """What pygeoapi's ``execute_process`` will choose (its rule, repeated here)."""
        if execution_mode != RequestedProcessExecutionMode.respond_async or not self.is_async:
            return False
        options = self.get_processor(process_id).metadata.get("jobControlOptions", [])
        return ProcessExecutionMode.async_execute.value in options

    def execute_process(self, process_id, data_dict, execution_mode=None,
                        requested_outputs=None, subscriber=None, requested_response=RAW):
        sync = None if self._runs_async(process_id, execution_mode) else {}
        token = _SYNC.set(sync)
        try:
            result = super().execute_process(
                process_id, data_dict, execution_mode=execution_mode,
                requested_outputs=requested_outputs, subscriber=subscriber,
                requested_response=requested_response)
        finally:
            _SYNC.reset(token)
        if sync and sync.get("detached") is not None:
            job_id, mimetype, outputs, status, headers = result
            result = job_id, mimetype, outputs, status, {**(headers or {}), UNRECORDED: "1"}
        return result

    # --- synchronous execution ---------------------------------------------------------------

    def _run(self, p: BaseProcessor, job_id: str, data_dict: dict,
             requested_outputs: Optional[dict], subscriber: Optional[Subscriber],
             requested_response: Optional[str], *, raise_errors: bool):
        errors = []
        execute = p.execute

        def recording_execute(data, *args, **kwargs):
            try:
                mimetype, outputs = execute(data, *args, **kwargs)
                if requested_response == DOCUMENT:
                    mimetype, outputs = document_value(p, mimetype, outputs)
                if self.output_dir is not None:  # pygeoapi stores sync results too: room?
                    check_room(self.output_dir, _size(outputs))
            except Exception as err:
                errors.append(to_process_error(err))
                raise errors[-1] from err
            sync = _SYNC.get()
            if sync is not None:
                sync["mimetype"] = mimetype
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
        if status == JobStatus.failed and not errors and self.output_dir is not None:
            # the disk filled up while pygeoapi wrote the result: no half file, a 507
            (self.output_dir / f"{p.metadata['id']}-{job_id}").unlink(missing_ok=True)
            if any(f"[Errno {n}]" in str(outputs) for n in FULL):
                errors.append(to_process_error(storage_full(self.output_dir)))
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
            extension = mimetypes.guess_extension(mimetype.split(";")[0].strip()) or ""
            if "geo+json" in mimetype:
                extension = ".geojson"
            location = self.output_dir / f"{spec.process_id}-{spec.job_id}{extension}"
            payload = outputs if isinstance(outputs, (bytes, str)) else \
                json.dumps(outputs, sort_keys=True)
            try:  # a full disk fails the job with a 507, leaving no half file behind
                self.output_dir.mkdir(parents=True, exist_ok=True)
                write_result(location, payload)
            except OSError as err:
                error = to_process_error(err)
                self.job_failed(spec, *status_of(error), error.message)
                return
        stamp = now()
        path = None if location is None else str(location)

        def recorded(done: bool) -> None:
            if not done:  # dismissed meanwhile
                self._remove_result(path)
                return
            self._notify(spec.subscriber, "success_uri", spec.job_id, (mimetype, outputs))

        self._record_end(spec.job_id, {
            "status": JobStatus.successful.value, "progress": 100, "message": "Job complete",
            "finished": stamp, "updated": stamp, "mimetype": mimetype, "location": path},
            recorded)

    def job_failed(self, spec, status: int, code: str, message: str) -> None:
        self._progress.pop(spec.job_id, None)

        def recorded(done: bool) -> None:
            if done:
                self._notify(spec.subscriber, "failed_uri", spec.job_id)

        self._record_end(spec.job_id, self._failure(status, code, message), recorded)

    def job_cancelled(self, spec) -> None:
        self._progress.pop(spec.job_id, None)
        stamp = now()
        self._record_end(spec.job_id, {
            "status": JobStatus.dismissed.value, "finished": stamp, "updated": stamp,
            "message": "Job dismissed: its computation was cancelled"}, None)

    def _record_end(self, job_id: str, fields: dict, then) -> None:
        """Record how a job ended (only if still active), then call ``then(done)``; while the
        database is down, keep trying every :data:`DEFERRED_RETRY` seconds (for at most
        ``stale_after``)."""
        try:
            done = self.store.update(job_id, fields, only_if_status=ACTIVE)
        except JobStoreUnavailable as err:
            LOGGER.warning("job %s ended; recorded when the database is back (%s)", job_id,
                           err.detail)
            with self._lock:
                self._deferred.append((job_id, fields, then, time.monotonic()))
                if self._deferred_thread is None or not self._deferred_thread.is_alive():
                    self._deferred_thread = threading.Thread(
                        target=self._flush_deferred, daemon=True,
                        name="sentinelle-jobs-deferred")
                    self._deferred_thread.start()
            return
        if then is not None:
            then(done)

    def _flush_deferred(self) -> None:
        while True:
            time.sleep(DEFERRED_RETRY)
            with self._lock:
                pending, self._deferred = self._deferred, []
                if not pending:
                    self._deferred_thread = None
                    return
            for n, (job_id, fields, then, since) in enumerate(pending):
                try:
                    done = self.store.update(job_id, fields, only_if_status=ACTIVE)
                except JobStoreUnavailable:
                    keep = pending[n:]
                    if time.monotonic() - since >= self.stale_after:
                        LOGGER.error("job %s: its end could not be recorded within %.0f s",
                                     job_id, self.stale_after)
                        keep = pending[n + 1:]
                    with self._lock:
                        self._deferred[:0] = keep
                    break
                except Exception:  # pragma: no cover - keep the others going
                    LOGGER.exception("recording the end of job %s failed", job_id)
                    continue
                if then is not None:
                    try:
                        then(done)
                    except Exception:  # pragma: no cover
                        LOGGER.exception("after recording job %s", job_id)

    def heartbeat(self, job_ids: list[str]) -> None:
        stamp = now()
        for job_id in job_ids:
            self.store.update(job_id, {"updated": stamp}, only_if_status=ACTIVE)
        self.sweep()
        self._swept = True

    # --- subscriber callbacks --------------------------------------------------------------

    def _notify(self, subscriber: Subscriber | None, which: str, job_id: str | None,
                result: tuple[str, Any] | None = None, status: dict | None = None) -> None:
        uri = getattr(subscriber, which, None) if subscriber else None
        if not uri:
            return
        with self._lock:
            if self._notifier is None:
                self._notifier = ThreadPoolExecutor(2, thread_name_prefix="sentinelle-notify")
        self._notifier.submit(self._post, uri, job_id, result, status)

    # pygeoapi's synchronous handler posts from the request thread, without a timeout and
    # without checking the URL: the same checked background calls as asynchronous jobs
    def _sync_status(self) -> tuple[str | None, None, dict | None]:
        job_id = (_SYNC.get() or {}).get("job_id")
        try:
            info = status_info(self.get_job(job_id), os.environ.get("SENTINELLE_URL"))
        except Exception:
            info = {"jobID": job_id}
        return job_id, None, info

    def _send_in_progress_notification(self, subscriber):
        self._notify(subscriber, "in_progress_uri", *self._sync_status())

    def _send_success_notification(self, subscriber, outputs):
        sync = _SYNC.get() or {}
        mimetype = sync.get("mimetype") or ("application/octet-stream"
                                            if isinstance(outputs, bytes) else
                                            "application/json")
        self._notify(subscriber, "success_uri", sync.get("job_id"), (mimetype, outputs))

    def _send_failed_notification(self, subscriber):
        self._notify(subscriber, "failed_uri", *self._sync_status())

    def _post(self, uri: str, job_id: str | None, result: tuple[str, Any] | None,
              status: dict | None = None) -> None:
        import requests

        from sentinelle.processes.callbacks import check_url

        try:
            check_url(uri)  # again: the name may resolve elsewhere by now
        except ValueError as err:
            LOGGER.warning("callback %s for job %s refused: %s", uri, job_id, err)
            return
        try:
            base = os.environ.get("SENTINELLE_URL")
            if result is None:
                if status is None:
                    status = status_info(self.store.get(job_id), base)
                response = requests.post(uri, json=status, timeout=10, allow_redirects=False)
            else:
                mimetype, outputs = result
                if isinstance(outputs, (bytes, str)):
                    response = requests.post(uri, data=outputs, timeout=30,
                                             headers={"Content-Type": mimetype},
                                             allow_redirects=False)
                else:
                    response = requests.post(uri, json=outputs, timeout=30,
                                             allow_redirects=False)
            LOGGER.info("callback %s for job %s: HTTP %s", uri, job_id, response.status_code)
        except Exception as err:
            LOGGER.warning("callback %s for job %s failed: %s", uri, job_id, err)

    def __repr__(self):
        return f"<SentinelleManager> {self.jobs_db and 'postgresql' or self.connection}"


__all__ = ["JOB_SCOPE", "LIST_FILTER", "UNRECORDED", "SentinelleManager", "status_info"]
