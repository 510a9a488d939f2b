"""`make dev`'s own program, started for tests that use the stack as a newcomer does: from a
checkout, through `.inlet/dev.env` and the Makefile's helpers.

The checkout is a scratch directory of symbolic links to this repository's files with its own
`.inlet/` (the stack's state directory), so the README's `. .inlet/dev.env` and `make …`
commands run there as written, and a developer's own `.inlet/` is never touched.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.processes import ROOT, free_port

STARTED_WITHIN_S = 240
STOPPED_WITHIN_S = 60
PORTS = (
    "CLERK_SYNC_PORT",
    "INGEST_PORT",
    "QUERY_PORT",
    "FIRESTORE_PORT",
    "TASKS_PORT",
    "ISSUER_PORT",
)
# Variables a newcomer's shell does not have: the README's commands must define what they use.
_STACK_VARIABLES = (
    "FIRESTORE_EMULATOR_HOST",
    "GOOGLE_CLOUD_PROJECT",
    "INLET_STATE_DIR",
    "INGEST_URL",
    "QUERY_URL",
    "CLERK_SYNC_URL",
    "TOKEN",
)


class DevStack:
    """`python -m devstack.dev` (what `make dev` runs) on free ports, in its own checkout."""

    def __init__(self, scratch: Path) -> None:
        self.checkout = scratch / "checkout"
        self.state = self.checkout / ".inlet"
        self.process: subprocess.Popen | None = None
        self.env: dict[str, str] = {}

    def start(self) -> DevStack:
        self.checkout.mkdir(parents=True)
        for entry in ROOT.iterdir():
            if entry.name not in (".inlet", ".git"):
                (self.checkout / entry.name).symlink_to(entry)
        self.state.mkdir()
        env = {**self.shell_env(), **{name: str(free_port()) for name in PORTS}}
        env["INLET_STATE_DIR"] = str(self.state)
        with open(self.checkout / "make-dev.out", "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "devstack.dev"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        env_file = self.state / "dev.env"
        deadline = time.monotonic() + STARTED_WITHIN_S
        while not env_file.exists() and self.process.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        if not env_file.exists():
            self.stop()
            raise RuntimeError(f"make dev did not start:\n{self.output()[-3000:]}")
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            self.env[key] = value
        return self

    def output(self) -> str:
        return (self.checkout / "make-dev.out").read_text(errors="replace")

    def shell_env(self) -> dict[str, str]:
        """A newcomer's environment: nothing of the stack's until they load `.inlet/dev.env`."""
        env = {k: v for k, v in os.environ.items() if k not in _STACK_VARIABLES}
        env.pop("MAKEFLAGS", None)
        env.pop("MAKELEVEL", None)
        return env

    def run(self, command: list[str], timeout_s: float = 120, **env: str):
        """A command in the checkout, as a newcomer types it (``make …``, ``bash …``)."""
        return subprocess.run(
            command,
            cwd=self.checkout,
            env={**self.shell_env(), **env},
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def stop(self) -> None:
        """Ctrl-C, as a developer stops it; SIGKILL to its process group if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(STOPPED_WITHIN_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
