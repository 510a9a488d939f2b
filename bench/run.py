"""`make bench`: every figure of bench/README.md, each against its reference in the same run.

Starts its own local stack (emulators and services on free loopback ports), measures section by
section, writes ``bench/results/<date>-<machine>.json`` and prints the table the README quotes.
Bounded: each load phase runs for ``--seconds`` (default 10), and the whole run stays well under
ten minutes on two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import measure, scenarios

RESULTS = Path(__file__).resolve().parent / "results"
METHODS = {"import": "imports"}
# Sections measured with the refresh queue held and no refresh running (Bench.refreshes_held):
# the ratios of server against server. Ingest holds it for its own two phases.
HELD = ("refusals", "inspector", "import", "cold_start", "clerk_sync", "schema")
# Coalescing before the aggregates: the tasks emulator dispatches one task at a time, and the
# 100,000-event folds would queue its refreshes behind theirs.
SECTIONS = (
    "ingest",
    "refusals",
    "inspector",
    "coalescing",
    "rate_limit",
    "aggregate",
    "import",
    "cold_start",
    "clerk_sync",
    "schema",
)


def machine() -> dict[str, object]:
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(pages / 2**30),
        "python": platform.python_version(),
        "cpu": cpu,
        "kernel": platform.release(),
    }


def versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("functions-framework", "google-cloud-firestore", "flask", "gunicorn", "svix")
    found = {name: version(name) for name in names}
    found["wrk"] = (
        subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        .stdout.split("\n")[0]
        .strip()
    )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, help="length of each load phase (default 10)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a change's own check: 3 s phases, the 7d aggregate over 1,000 and 2,000 events "
        "only, a 300-event burst, fewer repeats (results file name ends in -quick)",
    )
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--only", nargs="*", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--machine", default=platform.node() or "machine", help="results name")
    args = parser.parse_args()
    if args.seconds is None:
        args.seconds = 3.0 if args.quick else 10.0
    wanted = args.only or SECTIONS
    state = Path(tempfile.mkdtemp(prefix="inlet-bench-"))
    stack = scenarios.bench_stack(state)
    results: dict[str, object] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions(),
        "settings": {"seconds": args.seconds, "connections": args.connections, "threads": 2},
    }
    started = time.monotonic()
    try:
        stack.start()
        bench = scenarios.Bench(stack, state, args.seconds, args.connections, quick=args.quick)
        for section in SECTIONS:
            if section in wanted:
                print(f"-- {section}", file=sys.stderr, flush=True)
                began = time.monotonic()
                held = bench.refreshes_held() if section in HELD else contextlib.nullcontext()
                with held:
                    results[section] = getattr(bench, METHODS.get(section, section))()
                results.setdefault("section_seconds", {})[section] = round(
                    time.monotonic() - began, 1
                )
        results["settled_s"] = round(bench.settled_s, 1)
    finally:
        stack.stop()
    results["total_s"] = results["run_seconds"] = round(time.monotonic() - started, 1)
    results["settings"]["quick"] = args.quick
    RESULTS.mkdir(exist_ok=True)
    name = f"{dt.date.today().isoformat()}-{args.machine}{'-quick' if args.quick else ''}.json"
    if args.only and (RESULTS / name).exists():  # a partial run updates today's sections
        earlier = json.loads((RESULTS / name).read_text())
        results = {**earlier, **{k: v for k, v in results.items() if k in wanted}}
        results["partial_reruns"] = sorted({*earlier.get("partial_reruns", []), *wanted})
    (RESULTS / name).write_text(json.dumps(results, indent=2) + "\n")
    print(measure.table(results))
    print(f"\nwritten: bench/results/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
