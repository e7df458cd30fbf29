"""How a running job tells its manager how far it is, and learns that it was dismissed.

Processes stay ignorant of jobs: a compute function takes an optional
``progress(done, total)`` callback (e.g. :func:`sentinelle.analysis.zonal.zonal_stats`
calls it after every block it reads), and the processor passes :func:`current` to it — the
callback the job manager installed for the job running in this thread, or ``None`` (a
synchronous request: no reporting, no overhead).

The manager installs one with :func:`reporting`; its callback may raise :class:`JobCancelled`
to stop the work at the next block when the job was dismissed (``DELETE /jobs/{id}``).
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator

ProgressCallback = Callable[[int, int], None]

_CURRENT: contextvars.ContextVar[ProgressCallback | None] = contextvars.ContextVar(
    "sentinelle_job_progress", default=None)


class JobCancelled(BaseException):
    """Raised from a progress callback: the job was dismissed, stop working.

    A ``BaseException`` (like ``KeyboardInterrupt``), so that processors' ``except Exception``
    error mapping lets it through to the job runner instead of reporting a failure."""


def current() -> ProgressCallback | None:
    """The progress callback of the job running in this thread (``None`` outside jobs)."""
    return _CURRENT.get()


@contextlib.contextmanager
def reporting(callback: ProgressCallback | None) -> Iterator[None]:
    """Install ``callback`` as :func:`current` for the duration of the block."""
    token = _CURRENT.set(callback)
    try:
        yield
    finally:
        _CURRENT.reset(token)


__all__ = ["JobCancelled", "ProgressCallback", "current", "reporting"]
