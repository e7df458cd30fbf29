"""Running one execution: asynchronously with polling when the process allows it, else
synchronously, with progress, messages and cancel reported through plain callables.

Why polling: OGC API – Processes 1.0 has no push; pygeoapi 0.21 answers an asynchronous
execute with ``201`` + ``Location`` and an empty body, so the job URL comes from the header.
Cancel is ``DELETE /jobs/{id}`` (the job reads ``dismissed``), sent as soon as the user
cancels, between two polls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from .client import Canceled, Client, Response, ServerError

FINAL = ("successful", "failed", "dismissed")


@dataclass
class Run:
    """What happened: the final response holding the results, the job URL (asynchronous
    runs), and the statuses seen (for the log)."""

    response: Response
    job_url: str | None = None
    statuses: list[dict] = field(default_factory=list)


def _noop(*_args) -> None:
    return None


def execute(client: Client, process_id: str, inputs: dict, *, outputs: dict | None = None,
            asynchronous: bool = True, progress: Callable[[float, str], None] = _noop,
            canceled: Callable[[], bool] = lambda: False, log: Callable[[str], None] = _noop,
            poll: float = 0.25, max_poll: float = 2.0, timeout: float = 24 * 3600,
            sleep: Callable[[float], None] = time.sleep) -> Run:
    """Execute ``process_id`` and wait for its results.

    ``progress(percent, message)`` follows the job; ``canceled()`` is asked between polls
    and, when true, the job is dismissed and :class:`Canceled` raised; a failed job raises
    :class:`ServerError` with the server's message.
    """
    response = client.execute(process_id, inputs, outputs=outputs, asynchronous=asynchronous)
    job_url = client.job_url(response) if asynchronous else None
    if not asynchronous or response.status != 201 or not job_url:
        # synchronous, or a server that ran it synchronously despite Prefer
        return Run(response, job_url)
    log(f"job: {job_url}")
    run = Run(response, job_url)
    deadline = time.monotonic() + timeout
    last = None
    delay = poll
    while True:
        try:
            if canceled():
                raise Canceled(job_url)
            status = client.status(job_url) or {}
        except Canceled:
            _dismiss(client, job_url, log)
            raise Canceled(job_url) from None
        run.statuses.append(status)
        state = str(status.get("status", "")).lower()
        percent = status.get("progress")
        message = str(status.get("message") or "")
        if (state, percent, message) != last:
            last = (state, percent, message)
            progress(float(percent) if isinstance(percent, (int, float)) else -1,
                     f"{state}: {message}" if message else state)
            delay = poll
        if state == "successful":
            run.response = client.results(job_url)
            return run
        if state == "failed":
            raise ServerError(_failure(client, job_url, message), url=job_url)
        if state == "dismissed":
            raise Canceled(job_url)
        if time.monotonic() > deadline:
            _dismiss(client, job_url, log)
            raise ServerError(f"job still {state} after {timeout:g} s: {job_url}", url=job_url)
        # sleep in short steps so that a cancel is seen within ~0.25 s
        waited = 0.0
        while waited < delay and not canceled():
            sleep(min(0.25, delay - waited))
            waited += 0.25
        delay = min(max_poll, delay * 1.5)


def _dismiss(client: Client, job_url: str, log: Callable[[str], None]) -> None:
    try:
        status = client.dismiss(job_url)
        log(f"job {job_url}: {status.get('status', 'dismissed')}")
    except ServerError as err:  # the job may have ended meanwhile: say so, don't hide it
        log(f"job {job_url}: DELETE failed ({err.message})")


def _failure(client: Client, job_url: str, message: str) -> str:
    """Why a job failed: the results' error (Sentinelle answers with the error itself), else
    the status message."""
    try:
        client.results(job_url)
    except ServerError as err:
        if err.message and not err.message.startswith("HTTP "):
            return err.message
    return message or f"job failed: {job_url}"
