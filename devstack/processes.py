"""Start and stop the local stack's processes: emulators and services on loopback ports."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TASKS_VENV = ROOT / ".venv-tasks"

FIRESTORE_INSTALL_HINT = (
    "The Firestore emulator is missing. Install the Google Cloud CLI "
    "(https://cloud.google.com/sdk/docs/install) and then its emulator: "
    "`gcloud components install cloud-firestore-emulator` "
    "(or `apt-get install google-cloud-cli-firestore-emulator`); it needs Java 11+."
)


class StackError(RuntimeError):
    """A local component could not start; the message says which and how to fix it."""


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, which is also
    where every outgoing connection takes its source port: between choosing such a port and a
    server binding it, a client connection can take it ("Address already in use"). Below that
    range no connection is ever given a port on its own.
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)
        if port in _handed_out:  # free now, but another of this process's servers may take it
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as sock:  # a crowded range: let the kernel choose
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path | None = None

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM the whole process group (the emulators fork Java), then SIGKILL."""
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(grace_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(grace_s)

    def kill(self) -> None:
        """SIGKILL the whole process group at once: for a server whose work is over (the bench's
        references and cold starts), where gunicorn's graceful stop takes over two seconds."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def pause(self) -> None:
        os.killpg(self.popen.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.popen.pid, signal.SIGCONT)

    def tail(self, lines: int = 20) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


# Process groups this process started, so a signal handler can reach them all without a lock
# (appending to and iterating a list are single bytecodes): also one not yet in a LocalStack.
SPAWNED_GROUPS: list[int] = []


def signal_spawned(signum: int) -> None:
    """Send ``signum`` to every process group started here; safe inside a signal handler."""
    for group in list(SPAWNED_GROUPS):
        with contextlib.suppress(OSError):
            os.killpg(group, signum)


def spawn(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Process:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    out = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    popen = subprocess.Popen(
        argv,
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    out.close()
    SPAWNED_GROUPS.append(popen.pid)  # start_new_session: its pid is its group's id
    return Process(name, popen, log_path)


def wait_http(process: Process, url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise StackError(f"{process.name} exited early:\n{process.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 - loopback
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    process.stop()
    raise StackError(f"{process.name} did not answer {url} within {timeout_s:.0f} s")


def start_firestore(port: int, log_dir: Path, import_data: Path | None = None) -> Process:
    """The emulator, empty, or loaded from an export (``import_data``, devstack/keep_data.py)."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise StackError(FIRESTORE_INSTALL_HINT)
    host = f"127.0.0.1:{port}"
    argv = [gcloud, "emulators", "firestore", "start", f"--host-port={host}", "--quiet"]
    if import_data is not None:
        argv.append(f"--import-data={import_data}")
    process = spawn("firestore-emulator", argv, dict(os.environ), log_dir)
    try:
        wait_http(process, f"http://{host}/", timeout_s=90)
    except StackError as err:
        raise StackError(f"{err}\n{FIRESTORE_INSTALL_HINT}") from None
    return process


def start_tasks(port: int, queue: str, log_dir: Path, max_retries: int | None = None) -> Process:
    binary = TASKS_VENV / "bin" / "gcloud-tasks-emulator"
    if not binary.exists():
        raise StackError(f"{binary} is missing: run `make .venv-tasks` (make test and dev do)")
    argv = [str(binary), "start", "--port", str(port), "-d", queue]
    if max_retries is not None:
        argv += ["-r", str(max_retries)]
    process = spawn("tasks-emulator", argv, dict(os.environ), log_dir)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise StackError(f"tasks emulator exited early:\n{process.tail()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.2)
    process.stop()
    raise StackError("tasks emulator did not open its port within 30 s")


SERVICES = {
    # name: (package, functions-framework target)
    "clerk-sync": ("clerk_sync", "clerk_sync"),
    "ingest": ("ingest", "ingest"),
    "query": ("query", "query"),
}


def start_service(name: str, port: int, env: dict[str, str], log_dir: Path) -> Process:
    package, target = SERVICES[name]
    argv = [
        str(Path(sys.executable).parent / "functions-framework"),
        f"--source=services/{package}/main.py",
        f"--target={target}",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    process = spawn(name, argv, {**os.environ, **env, "PYTHONPATH": str(ROOT)}, log_dir)
    wait_http(process, f"http://127.0.0.1:{port}/health", timeout_s=60)
    return process


def reset_firestore(host: str, project: str) -> None:
    """Delete every document in the emulator (its own REST endpoint)."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    request = urllib.request.Request(url, method="DELETE")
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - loopback
        pass
