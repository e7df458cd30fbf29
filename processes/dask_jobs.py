"""Asynchronous jobs on Dask distributed: the task that runs on a worker, and the runner that
submits, queues, watches and cancels jobs from the web process.

* **Where**: an existing scheduler when ``DASK_SCHEDULER_ADDRESS`` (or the manager's
  ``dask_scheduler``) is set, otherwise a ``LocalCluster`` started on the first asynchronous
  job (``SENTINELLE_DASK_WORKERS`` workers × ``SENTINELLE_DASK_THREADS`` threads, in the web
  process unless ``SENTINELLE_DASK_PROCESSES=1``).  The web process only submits and answers.
* **One job = one Dask task** (key ``sentinelle-job-<id>``) that builds the processor on the
  worker and runs it; the pixels it reads stay in that worker (Dask's threaded scheduler inside
  the task), so jobs spread over workers and a lost worker costs one job attempt, which the
  scheduler re-runs elsewhere (``distributed.scheduler.allowed-failures``; then the job fails
  with a message).
* **Progress**: the task installs a callback (:mod:`sentinelle.processes.progress`) that the
  compute function calls as it works (zonal statistics: after each block); it is sent as a
  Dask event (topic :data:`TOPIC`) that the runner of the submitting process turns into job
  updates.
* **Cancellation**: ``DELETE /jobs/{id}`` cancels the future; the worker marks the running task
  cancelled and the callback sees it at the next block and stops the work
  (:class:`~sentinelle.processes.progress.JobCancelled`).
* **Limit**: at most ``max_running`` jobs of this web process are on the cluster at once; the
  others wait in a queue (status ``accepted``, message with their place).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

LOGGER = logging.getLogger(__name__)

#: Dask event topic of job progress messages
TOPIC = "sentinelle-jobs"
#: environment handed to workers: paths and limits, never credentials (database URLs…)
ENV_PREFIXES = ("SENTINELLE_", "PYGEOAPI_CONFIG", "PYGEOAPI_OPENAPI")
ENV_SECRET = ("_DB", "PASSWORD", "SECRET", "TOKEN", "KEY")
#: minimum seconds between two progress events of one job (the last block always reports)
PROGRESS_INTERVAL = 0.2


def job_key(job_id: str) -> str:
    """The Dask key of a job's task (visible in the dashboard and ``client.processing()``)."""
    return f"sentinelle-job-{job_id}"


def worker_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k.startswith(ENV_PREFIXES) and not any(s in k for s in ENV_SECRET)}


# --- on the worker -------------------------------------------------------------------------

_ENV_LOCK = threading.Lock()


def _task_cancelled(worker, key: str) -> bool:
    state = worker.state.tasks.get(key)
    return state is None or state.state in ("cancelled", "released", "forgotten")


def run_job(job_id: str, processor_conf: dict, data: dict, requested_outputs: Optional[dict],
            requested_response: str, env: dict[str, str]) -> dict:
    """Run one job on a Dask worker; returns ``{"mimetype", "outputs"}``, ``{"error": {...}}``
    or ``{"cancelled": True}`` (errors are values, not exceptions: Dask must not retry them).
    """
    import dask
    from distributed import get_worker
    from pygeoapi.plugin import load_plugin

    from sentinelle.processes import progress as job_progress
    from sentinelle.processes.errors import status_of, to_process_error
    from sentinelle.processes.outputs import DOCUMENT, document_value

    with _ENV_LOCK:
        os.environ.update(env)
    if dask.config.get("scheduler", None) is None:
        # pixels of this job are computed by threads of this worker, not sent back to the
        # cluster (that would block a worker thread waiting for its own sub-tasks)
        dask.config.set({"scheduler": "threads"})
    worker = get_worker()
    key = job_key(job_id)

    def emit(**msg):
        worker.log_event(TOPIC, {"job": job_id, "worker": worker.address, **msg})

    last = [0.0]

    def report(done: int, total: int) -> None:
        if _task_cancelled(worker, key):
            raise job_progress.JobCancelled(job_id)
        now = time.monotonic()
        if done >= total or now - last[0] >= PROGRESS_INTERVAL:
            last[0] = now
            emit(done=int(done), total=int(total))

    emit(state="running")
    try:
        processor = load_plugin("process", processor_conf)
        processor.set_job_id(job_id)
        kwargs = {"outputs": requested_outputs} if processor.supports_outputs else {}
        with job_progress.reporting(report):
            mimetype, outputs = processor.execute(data, **kwargs)
        if requested_response == DOCUMENT:
            mimetype, outputs = document_value(processor, mimetype, outputs)
            outputs = {"outputs": [outputs]}
        return {"mimetype": mimetype, "outputs": outputs}
    except job_progress.JobCancelled:
        return {"cancelled": True}
    except Exception as err:  # the job's failure, reported to the client
        error = to_process_error(err)
        status, code = status_of(error)
        return {"error": {"status": status, "code": code,
                          "message": getattr(error, "message", None) or str(error)}}


# --- in the web process ----------------------------------------------------------------------

@dataclass
class JobSpec:
    job_id: str
    process_id: str
    processor_conf: dict
    data: dict
    requested_outputs: Optional[dict]
    requested_response: str
    subscriber: Any = None
    env: dict = field(default_factory=worker_environment)


class JobSink:
    """What the runner tells the manager (implemented by the manager)."""

    def job_queued(self, job_id: str, position: int) -> None: ...
    def job_started(self, spec: JobSpec, worker: str, attempt: int) -> None: ...
    def job_progress(self, job_id: str, done: int, total: int) -> None: ...
    def job_finished(self, spec: JobSpec, mimetype: str, outputs: Any) -> None: ...
    def job_failed(self, spec: JobSpec, status: int, code: str, message: str) -> None: ...
    def job_cancelled(self, spec: JobSpec) -> None: ...
    def heartbeat(self, job_ids: list[str]) -> None: ...


class DaskJobRunner:
    """Submits jobs to Dask (at most ``max_running`` at once), watches them, cancels them."""

    def __init__(self, sink: JobSink, *, scheduler_address: str | None = None,
                 max_running: int = 2, timeout: float = 3600.0, local_workers: int = 1,
                 local_threads: int = 2, local_processes: bool = False,
                 heartbeat: float = 60.0):
        self.sink = sink
        self.scheduler_address = scheduler_address or None
        self.max_running = max(1, int(max_running))
        self.timeout = float(timeout)
        self.local = {"n_workers": int(local_workers), "threads_per_worker": int(local_threads),
                      "processes": bool(local_processes)}
        self.heartbeat_interval = heartbeat
        self._client = None
        self._cluster = None
        self._client_lock = threading.Lock()
        self._cond = threading.Condition()
        self._queue: collections.deque[JobSpec] = collections.deque()
        self._running: dict[str, tuple[JobSpec, Any]] = {}
        self._attempts: dict[str, int] = {}
        self._events: "queue.Queue" = None  # noqa: F821 (set in _start)
        self._started = False
        self._closed = False

    # -- the cluster --------------------------------------------------------------------

    @property
    def client(self):
        """The Dask client, connecting (or starting the local cluster) on first use."""
        with self._client_lock:
            if self._client is None:
                from distributed import Client, LocalCluster

                if self.scheduler_address:
                    client = Client(self.scheduler_address, set_as_default=False,
                                    timeout="20s", name="sentinelle")
                else:
                    # in-process workers talk through memory; worker processes on loopback
                    where = {"host": "127.0.0.1"} if self.local["processes"] else {}
                    self._cluster = LocalCluster(dashboard_address=None, **where,
                                                 **self.local)
                    client = Client(self._cluster, set_as_default=False, name="sentinelle")
                client.subscribe_topic(TOPIC, self._on_event)
                self._client = client
                LOGGER.info("jobs run on Dask %s", client.scheduler.address)
            return self._client

    def _start(self) -> None:
        import queue

        with self._cond:
            if self._started:
                return
            self._events = queue.Queue()
            self._started = True
        threading.Thread(target=self._dispatch, name="sentinelle-jobs-dispatch",
                         daemon=True).start()
        threading.Thread(target=self._consume_events, name="sentinelle-jobs-events",
                         daemon=True).start()

    # -- public -------------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> int:
        """Queue a job; returns how many jobs are ahead of it (0: it starts now)."""
        self._start()
        with self._cond:
            self._queue.append(spec)
            ahead = max(0, len(self._queue) - 1 + len(self._running) - self.max_running + 1)
            self._cond.notify_all()
        return ahead

    def owns(self, job_id: str) -> bool:
        with self._cond:
            return job_id in self._running or any(s.job_id == job_id for s in self._queue)

    def active_ids(self) -> list[str]:
        with self._cond:
            return [*self._running, *(s.job_id for s in self._queue)]

    def cancel(self, job_id: str) -> bool:
        """Stop a job: dropped from the queue, or its Dask task cancelled (the worker stops
        at its next progress report) — also another web process's job on a shared
        scheduler, by its key.  ``False`` if it could not be reached."""
        with self._cond:
            for spec in list(self._queue):
                if spec.job_id == job_id:
                    self._queue.remove(spec)
                    return True
            entry = self._running.get(job_id)
        if entry is not None:
            self.client.cancel([entry[1]], force=True)
            return True
        if not self.scheduler_address:  # a local cluster only runs this process's jobs
            return False
        # another web process's job on the shared scheduler: cancel its key there
        from distributed import Future

        try:
            client = self.client
            client.cancel([Future(job_key(job_id), client=client, inform=False)], force=True)
        except Exception:
            LOGGER.exception("could not cancel job %s on the cluster", job_id)
            return False
        return True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        with self._client_lock:
            if self._client is not None:
                try:
                    self._client.close(timeout=5)
                except Exception:  # pragma: no cover - shutting down anyway
                    pass
            if self._cluster is not None:
                try:
                    self._cluster.close(timeout=5)
                except Exception:  # pragma: no cover
                    pass
            self._client = self._cluster = None

    # -- threads ----------------------------------------------------------------------

    def _dispatch(self) -> None:
        last_beat = time.monotonic()
        while True:
            with self._cond:
                while not self._closed and (
                        not self._queue or len(self._running) >= self.max_running):
                    if time.monotonic() - last_beat >= self.heartbeat_interval:
                        break
                    self._cond.wait(timeout=1.0)
                if self._closed:
                    return
                spec = None
                if self._queue and len(self._running) < self.max_running:
                    spec = self._queue.popleft()
                    waiting = list(self._queue)
            if time.monotonic() - last_beat >= self.heartbeat_interval:
                last_beat = time.monotonic()
                self._safe(self.sink.heartbeat, self.active_ids())
            if spec is None:
                continue
            for position, other in enumerate(waiting, start=1):
                self._safe(self.sink.job_queued, other.job_id, position)
            try:
                future = self.client.submit(
                    run_job, spec.job_id, spec.processor_conf, spec.data,
                    spec.requested_outputs, spec.requested_response, spec.env,
                    key=job_key(spec.job_id), pure=False, retries=0)
            except Exception as err:
                LOGGER.exception("could not submit job %s", spec.job_id)
                self._safe(self.sink.job_failed, spec, 503, "NoApplicableCode",
                           f"the Dask cluster could not be reached: {err}")
                continue
            with self._cond:
                self._running[spec.job_id] = (spec, future)
            threading.Thread(target=self._watch, args=(spec, future), daemon=True,
                             name=f"sentinelle-job-{spec.job_id[:8]}").start()

    def _watch(self, spec: JobSpec, future) -> None:
        from distributed.scheduler import KilledWorker

        try:
            try:
                result = future.result(timeout=self.timeout)
            except (TimeoutError, concurrent.futures.TimeoutError):
                future.cancel()
                self.sink.job_failed(spec, 504, "NoApplicableCode",
                                     f"the job did not finish within {self.timeout:.0f} s "
                                     "(SENTINELLE_JOBS_TIMEOUT); it was stopped")
                return
            except (concurrent.futures.CancelledError, asyncio.CancelledError):
                self.sink.job_cancelled(spec)
                return
            except KilledWorker as err:
                self.sink.job_failed(spec, 500, "NoApplicableCode",
                                     "the Dask workers running this job died repeatedly "
                                     f"({err}); the job was given up — retry it, or check "
                                     "the workers' memory")
                return
            except Exception as err:
                LOGGER.exception("job %s failed on the cluster", spec.job_id)
                self.sink.job_failed(spec, 500, "NoApplicableCode",
                                     f"the job failed on the Dask cluster: "
                                     f"{type(err).__name__}: {err}")
                return
            if result.get("cancelled"):
                self.sink.job_cancelled(spec)
            elif "error" in result:
                error = result["error"]
                self.sink.job_failed(spec, error["status"], error["code"], error["message"])
            else:
                self.sink.job_finished(spec, result["mimetype"], result["outputs"])
        except Exception:  # never let a watcher die silently
            LOGGER.exception("recording the end of job %s failed", spec.job_id)
        finally:
            with self._cond:
                self._running.pop(spec.job_id, None)
                self._attempts.pop(spec.job_id, None)
                self._cond.notify_all()
            future.release()

    def _on_event(self, event) -> None:
        """Dask event handler (runs in the client's event loop: hand over, do not block)."""
        if self._events is not None:
            self._events.put(event[1])

    def _consume_events(self) -> None:
        while not self._closed:
            try:
                msg = self._events.get(timeout=1.0)
            except Exception:
                continue
            job_id = msg.get("job") if isinstance(msg, dict) else None
            with self._cond:
                entry = self._running.get(job_id)
            if entry is None:  # another web process's job, or already finished
                continue
            spec = entry[0]
            if msg.get("state") == "running":
                with self._cond:
                    attempt = self._attempts[job_id] = self._attempts.get(job_id, 0) + 1
                self._safe(self.sink.job_started, spec, msg.get("worker"), attempt)
            elif "done" in msg:
                self._safe(self.sink.job_progress, job_id, msg["done"], msg["total"])

    @staticmethod
    def _safe(function: Callable, *args) -> None:
        from sentinelle.processes.jobstore import JobStoreUnavailable

        try:
            function(*args)
        except JobStoreUnavailable as err:  # said once per call, without a traceback
            LOGGER.warning("job bookkeeping skipped (%s): %s",
                           getattr(function, "__name__", ""), err.detail)
        except Exception:
            LOGGER.exception("job bookkeeping failed (%s)", getattr(function, "__name__", ""))


__all__ = ["DaskJobRunner", "JobSink", "JobSpec", "TOPIC", "job_key", "run_job"]
