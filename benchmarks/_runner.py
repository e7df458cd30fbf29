"""Shared harness of the benchmark scripts: each method runs in its own child process (so its
peak memory is its own), several times; the fastest run and the highest peak are kept.

A script defines ``METHODS`` (name → function of the data folder returning a dict with
``seconds``) and calls :func:`main` with a ``report(best, peak)`` function.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Callable, Mapping

Result = dict
Methods = Mapping[str, Callable[[Path], Result]]


def run_children(script: str, methods: Methods, folder: Path,
                 repeat: int) -> tuple[dict[str, Result], dict[str, float]]:
    """Best (fastest) result and peak RSS (MB) per method over ``repeat`` rounds."""
    best: dict[str, Result] = {}
    peak: dict[str, float] = {}
    for _ in range(repeat):
        for method in methods:
            out = subprocess.run([sys.executable, script, str(folder), "--child", method],
                                 check=True, capture_output=True, text=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            peak[method] = max(peak.get(method, 0.0), result["max_rss_mb"])
            if method not in best or result["seconds"] < best[method]["seconds"]:
                best[method] = result
    return best, peak


def main(doc: str, script: str, methods: Methods,
         report: Callable[[dict[str, Result], dict[str, float]], None]) -> None:
    """Command line: ``script FOLDER [--repeat N]``; ``--child NAME`` runs one method."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("catalog_dir", type=Path)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", choices=sorted(methods))
    args = parser.parse_args()
    if args.child:
        result = methods[args.child](args.catalog_dir)
        result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    report(*run_children(script, methods, args.catalog_dir, args.repeat))
