"""Where the reliability and adversarial figures go: one JSON line per figure in
``BUNDLEKIT_RELIABILITY_RESULTS`` (default ``build/reliability/results.jsonl``),
which ``tests/reliability/report.py`` turns into docs/RELIABILITY.md.

Two writers share it: the ``record`` fixture of tests/reliability (figures a
test measured) and tests/conftest.py, which writes one line per test marked
``attack`` (anywhere in tests/) with its outcome, when the run includes the
reliability suite.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOAK = os.environ.get("BUNDLEKIT_SOAK") == "1"
MODE = "soak" if SOAK else "short"
RESULTS = Path(
    os.environ.get("BUNDLEKIT_RELIABILITY_RESULTS", ROOT / "build" / "reliability" / "results.jsonl")
)
#: The lines written by this process, for the end-of-run summary.
recorded: list[dict] = []


def _start_results() -> None:
    """A new run replaces the figures of the last run of the same mode (so a short
    run in `make test` does not erase the soak figures the report was made from)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if os.environ.get("BUNDLEKIT_RELIABILITY_APPEND") != "1":
        kept = []
        if RESULTS.exists():
            for line in RESULTS.read_text().splitlines():
                try:
                    if json.loads(line).get("mode") != MODE:
                        kept.append(line)
                except ValueError:
                    continue
        RESULTS.write_text("".join(k + "\n" for k in kept))


def write(suite: str, test: str, **figures) -> dict:
    """Append one figure line (the first one of a run replaces the last run's)."""
    if not recorded:
        _start_results()
    line = {
        "suite": suite,
        "test": test,
        "mode": MODE,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        **figures,
    }
    recorded.append(line)
    with RESULTS.open("a") as f:
        f.write(json.dumps(line, sort_keys=True, default=str) + "\n")
    return line
