"""`make dev` stops on Ctrl-C, however many arrive and whenever (docs/local-stack.md).

Each test runs the real `python -m devstack.dev` on free ports with its own state directory,
sends signals in quick succession, and checks that it exits and leaves no process behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.processes import ROOT, free_port
from tests.dev_stack import PORTS

STARTED_WITHIN_S = 180
STOPPED_WITHIN_S = 60


def start_dev(state_dir: Path) -> subprocess.Popen:
    ports = {name: str(free_port()) for name in PORTS}
    env = {**os.environ, **ports, "INLET_STATE_DIR": str(state_dir)}
    env.pop("FIRESTORE_EMULATOR_HOST", None)
    with open(state_dir / "make-dev.out", "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "devstack.dev"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_until(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (children start sessions of their own)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            left.add(pid)
    return left


def stop_all(dev: subprocess.Popen, pids: set[int]) -> None:
    """What the test leaves behind when the stack did not stop: nothing."""
    for pid in pids | {dev.pid}:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    dev.wait(10)


@pytest.fixture
def dev(tmp_path):
    process = start_dev(tmp_path)
    seen: set[int] = set()
    yield process, tmp_path / "dev.env", seen
    stop_all(process, seen | descendants(process.pid))


def started(process: subprocess.Popen, env_file: Path) -> None:
    """Wait for `.inlet/dev.env`, the sign that the stack is up."""
    up = wait_until(lambda: env_file.exists() or process.poll() is not None, STARTED_WITHIN_S)
    output = (env_file.parent / "make-dev.out").read_text(errors="replace")[-2000:]
    assert up and env_file.exists(), f"make dev did not start:\n{output}"


def signals_stop_the_stack(process: subprocess.Popen, seen: set[int], signals) -> None:
    seen |= descendants(process.pid)
    assert seen, "the stack started no process"
    for signum in signals:
        os.kill(process.pid, signum)
    assert wait_until(lambda: process.poll() is not None, STOPPED_WITHIN_S), "make dev hung"
    assert wait_until(lambda: not alive(seen), 10), f"left running: {alive(seen)}"


@pytest.mark.slow
def test_two_ctrl_c_in_quick_succession_stop_the_stack(dev):
    process, env_file, seen = dev
    started(process, env_file)
    signals_stop_the_stack(process, seen, [signal.SIGINT, signal.SIGINT])
    assert not env_file.exists()


@pytest.mark.slow
def test_a_burst_of_sigterm_and_sigint_forces_the_stack_down(dev):
    process, env_file, seen = dev
    started(process, env_file)
    # A storm: handlers run inside handlers (one that takes a lock can deadlock on itself).
    signals_stop_the_stack(process, seen, [signal.SIGTERM, signal.SIGINT] * 1000)


@pytest.mark.slow
def test_ctrl_c_while_the_stack_starts_stops_what_it_started(dev):
    process, _, seen = dev
    # Wait until the services are being started: both emulators and the first service exist.
    assert wait_until(lambda: len(descendants(process.pid)) >= 3, STARTED_WITHIN_S)
    signals_stop_the_stack(process, seen, [signal.SIGINT, signal.SIGINT])
