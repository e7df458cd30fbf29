"""The long API fuzzing run (issue 10): schemathesis against a real ``sentinelle serve`` process
over the sample data, every operation of the server's own OpenAPI document, all phases — the
document's examples, coverage (boundary and invalid values of every parameter), random
fuzzing, and stateful sequences following the document's links (execute → job status, results,
dismissal) — until the time budget is spent.

Checks: no 5xx, documented status codes, media types and headers, bodies valid against their
schemas, no request past its timeout.  Prints operations, requests, status codes, failures by
kind and duration, and writes them as JSON (``--json``).  ``tests/test_fuzz.py`` is the short
seeded run of the same thing.

    python benchmarks/fuzz.py [DATA] [--minutes 15] [--examples 100] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.conftest import start_server  # noqa: E402
from tests.fuzzing import LIMITS, fuzz, own_data  # noqa: E402

PHASES = ("examples", "coverage", "fuzzing", "stateful")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path,
                        default=Path(os.environ.get("SENTINELLE_DATA", REPO / "data")),
                        help="sample data folder (default $SENTINELLE_DATA or ./data)")
    parser.add_argument("--minutes", type=float, default=15, help="time budget")
    parser.add_argument("--examples", type=int, default=100,
                        help="generated cases per operation and phase")
    parser.add_argument("--seed", type=int, default=None, help="default: a random seed")
    parser.add_argument("--timeout", type=float, default=60, help="request timeout (s)")
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--json", type=Path, default=REPO / "build" / "fuzz-report.json")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)

    with tempfile.TemporaryDirectory(prefix="sentinelle-fuzz-") as tmp:
        workdir = Path(tmp)
        server = start_server(own_data(args.data.resolve(), workdir), workdir, LIMITS)
        started = time.monotonic()
        try:
            report = fuzz(server.url, max_examples=args.examples,
                          phases=tuple(p for p in args.phases.split(",") if p),
                          seed=seed,
                          max_time=int(args.minutes * 60), request_timeout=args.timeout)
        finally:
            server.process.terminate()
            try:
                server.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.process.kill()
            log = args.json.with_name("fuzz-server.log")  # tracebacks of any 5xx
            log.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(server.log, log)
        wall = time.monotonic() - started

    print(report.summary())
    print(f"limits: {', '.join(f'{k}={v}' for k, v in LIMITS.items())}; "
          f"request timeout {args.timeout:.0f} s; seed {seed}; wall time {wall / 60:.1f} min")
    print("failures by kind (distinct):",
          dict(report.by_kind()) or "none", "— occurrences:", dict(report.occurrences) or 0)
    print(f"server log: {log}")
    args.json.write_text(json.dumps({
        "operations": len(report.operations), "requests": report.requests,
        "checks": report.checks, "statuses": dict(sorted(report.statuses.items())),
        "requests_by_phase": dict(report.phases),
        "failures_by_kind": dict(report.by_kind()), "occurrences": dict(report.occurrences),
        "failures": [vars(f) for f in report.failures.values()],
        "seconds": round(report.seconds, 1), "stop_reason": report.stop_reason,
        "phases": args.phases, "examples": args.examples, "seed": seed,
        "limits": LIMITS, "request_timeout": args.timeout,
    }, indent=2, ensure_ascii=False))
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
