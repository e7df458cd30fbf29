"""Fuzz a live server from its own OpenAPI document with schemathesis (its engine, as the
``schemathesis run`` command line does) and sum the run up: operations, requests, status codes,
failures by kind, network errors (a request past its timeout is one) and duration.

Shared by ``tests/test_fuzz.py`` (a short seeded run) and ``benchmarks/fuzz.py`` (the long run).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

#: the checks issue 10 asks for: no 5xx, and every answer as documented (status, media type,
#: headers, body schema)
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance")

#: server limits for fuzzing: small enough that any generated process execution is quick (the
#: document publishes what it can express, ``maxItems`` of zones; the pixel budget bounds the
#: rest)
LIMITS = {"SENTINELLE_MAX_PIXELS": "2000000", "SENTINELLE_MAX_ZONES": "200",
          "SENTINELLE_MAX_DATES": "12"}


def own_data(sample_dir: Path, workdir: Path) -> Path:
    """The sample's catalog and vectors (linked) with a job database and results folder of
    its own: the jobs the fuzzer creates stay out of the other servers' records."""
    data = workdir / "data"
    data.mkdir()
    for name in ("catalog", "vectors", "truth"):
        if (sample_dir / name).exists():
            (data / name).symlink_to(Path(sample_dir, name).resolve())
    return data


@dataclass
class Failure:
    operation: str
    kind: str  # check name, or the network error's type
    title: str
    message: str
    reproduce: str  # a curl command (or the error's code sample)


@dataclass
class FuzzReport:
    operations: set[str] = field(default_factory=set)
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    phases: Counter = field(default_factory=Counter)  # requests per phase
    checks: int = 0
    failures: dict[tuple[str, str, str], Failure] = field(default_factory=dict)
    occurrences: Counter = field(default_factory=Counter)  # failures by kind, all cases
    seconds: float = 0.0
    stop_reason: str = ""

    def by_kind(self) -> Counter:
        """Distinct failures (operation × kind × title) per kind."""
        return Counter(kind for (_, kind, _) in self.failures)

    def summary(self) -> str:
        lines = [f"{len(self.operations)} operations, {self.requests} requests, "
                 f"{self.checks} checks in {self.seconds:.0f} s ({self.stop_reason})",
                 "statuses: " + ", ".join(f"{code}: {n}" for code, n in
                                          sorted(self.statuses.items())),
                 "requests by phase: " + ", ".join(f"{phase}: {n}" for phase, n in
                                                   self.phases.items())]
        if not self.failures:
            lines.append("failures: none")
        for failure in self.failures.values():
            lines.append(f"- {failure.operation} [{failure.kind}] {failure.title}: "
                         f"{failure.message.strip()[:500]}\n  {failure.reproduce[:800]}")
        return "\n".join(lines)


def fuzz_config(url: str, *, max_examples: int, phases: tuple[str, ...],
                seed: int | None = None, max_time: int | None = None,
                request_timeout: float = 60) -> "schemathesis.Config":  # noqa: F821
    """Valid and invalid inputs (``mode: all``), the issue's checks only, a request timeout.

    One worker: with two, Hypothesis parses source (``ast``) in both threads, and CPython
    3.11's ``ast`` is not thread-safe ("SystemError: AST constructor recursion depth
    mismatch", python/cpython#106905): test cases failed at random in the client.

    The other checks stay off on purpose: ``positive_data_acceptance`` would ask a 2xx for
    every schema-valid input, but a bbox with min > max or an empty date range is valid JSON
    Schema and rightly a 400; ``negative_data_rejection`` would ask a 4xx for unknown query
    parameters, which OGC API Features reads as property filters.
    """
    import schemathesis

    data = {
        "base-url": url,
        "request-timeout": request_timeout,
        "workers": 1,
        # no example database: a run is its seed, not the failures of earlier runs
        "generation": {"mode": "all", "max-examples": max_examples, "database": "none"},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        "phases": {name: {"enabled": name in phases}
                   for name in ("examples", "coverage", "fuzzing", "stateful")},
        "suppress-health-check": ["all"],
    }
    if seed is not None:
        data["seed"] = seed
    if max_time:
        data["max-time"] = max_time
    return schemathesis.Config.from_dict(data)


def fuzz(url: str, **options) -> FuzzReport:
    """Run schemathesis against the server at ``url`` (options: see :func:`fuzz_config`)."""
    import schemathesis
    from schemathesis.engine import events, from_schema

    config = fuzz_config(url, **options)
    schema = schemathesis.openapi.from_url(f"{url}/openapi?f=json", config=config, timeout=60)
    report = FuzzReport()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _record(report, event.recorder, str(event.phase.value))
        elif isinstance(event, events.FuzzScenarioFinished):
            _record(report, event.recorder, "fuzzing")
        elif isinstance(event, events.NonFatalError):
            kind = type(event.value).__name__
            report.occurrences[kind] += 1
            message = _describe(event.value)
            key = (event.label, kind, message[:200])
            report.failures.setdefault(key, Failure(event.label, kind, kind, message,
                                                    event.info.code_sample or ""))
        elif isinstance(event, events.FatalError):
            raise event.exception
        elif isinstance(event, events.EngineFinished):
            report.seconds = event.running_time
            report.stop_reason = str(event.stop_reason.value)
    return report


def _describe(error: BaseException) -> str:
    """The error, with the errors it groups (hypothesis' ``FlakyFailure`` says only
    "inconsistent results" and carries the first failure inside)."""
    parts = [f"{type(error).__name__}: {error}"]
    for inner in getattr(error, "exceptions", ()) or ():
        parts.append("  " + _describe(inner).replace("\n", "\n  "))
    return "\n".join(parts)


def _record(report: FuzzReport, recorder, phase: str) -> None:
    label = recorder.label
    if label and phase != "stateful":  # a stateful scenario is a sequence of operations
        report.operations.add(label)
    for interaction in recorder.interactions.values():
        report.requests += 1
        report.phases[phase] += 1
        if interaction.response is not None:
            report.statuses[interaction.response.status_code] += 1
    for case_checks in recorder.checks.values():
        for check in case_checks:
            report.checks += 1
            if check.failure_info is None or str(check.status.value) == "success":
                continue
            failure = check.failure_info.failure
            report.occurrences[check.name] += 1
            key = (failure.operation or label, check.name, failure.title)
            report.failures.setdefault(key, Failure(
                failure.operation or label, check.name, failure.title, failure.message,
                check.failure_info.code_sample))
