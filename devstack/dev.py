"""`make dev`: the whole local stack in the foreground until Ctrl-C or SIGTERM (README
"Configuration")."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time

import requests

from devstack import clerk_event, processes
from devstack.dev_env import state_dir
from devstack.processes import ROOT, StackError
from devstack.stack import PROJECT, LocalStack, Ports, new_webhook_secret

# Development state: secrets kept across restarts, dev.env, logs (a test points it elsewhere).
STATE_DIR = state_dir()
ENV_FILE = STATE_DIR / "dev.env"
DEMO_USER_ID = "user_demo"


def persistent_secrets() -> dict[str, str]:
    """The webhook secret and KEK survive restarts, so a tunnelled Clerk keeps working."""
    path = STATE_DIR / "dev-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    import base64
    import secrets

    values = {
        "CLERK_WEBHOOK_SECRET": new_webhook_secret(),
        "SOURCE_KEK": "dev1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    STATE_DIR.mkdir(exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(json.dumps(values))
    return values


def create_demo_source(stack: LocalStack) -> dict:
    """The demo source, owned by the demo user."""
    token = stack.issuer.session_token(DEMO_USER_ID)
    answer = retried(
        lambda: requests.post(
            f"{stack.url('ingest')}/v1/sources",
            json={"label": "Demo source"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    )
    answer.raise_for_status()
    return answer.json()


def store_demo_user(stack: LocalStack) -> None:
    """The demo user, stored as Clerk would store it: a Svix-signed ``user.created`` delivered
    to clerk-sync, so ``GET /v1/me`` with the demo token answers 200 on a fresh stack."""
    answer = retried(
        lambda: clerk_event.send(
            stack.url("clerk-sync"), stack.webhook_secret, "user.created", DEMO_USER_ID
        )
    )
    if not answer.ok:
        raise StackError(f"clerk-sync refused the demo user: {answer.status_code} {answer.text}")


def retried(call, attempts: int = 6) -> requests.Response:
    """A freshly started emulator can miss the 5 s storage deadline on its first writes (a cold
    JVM on a busy machine): a 503 is retried after its ``Retry-After``."""
    for _ in range(attempts):
        answer = call()
        if answer.status_code != 503:
            break
        time.sleep(min(float(answer.headers.get("Retry-After", "1")), 5.0))
    return answer


def create_admin_key(stack: LocalStack) -> str:
    """One admin API key for this run (DEV_ADMIN_KEY), made by the console script users run."""
    env = {**os.environ, "GOOGLE_CLOUD_PROJECT": PROJECT}
    env["FIRESTORE_EMULATOR_HOST"] = stack.firestore_host
    made = subprocess.run(
        [sys.executable, "-m", "services.common.admin_keys_cli", "create", "--name", "make dev"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if made.returncode != 0:
        raise StackError(f"could not create the development admin key: {made.stderr.strip()}")
    return made.stdout.strip()


def clerk_api_env() -> dict[str, str]:
    """CLERK_SECRET_KEY and CLERK_API_URL from make dev's environment, passed to the services
    and the backfill: a real Clerk instance, a loopback one, or none (fallback off)."""
    return {k: os.environ[k] for k in ("CLERK_SECRET_KEY", "CLERK_API_URL") if os.environ.get(k)}


def keep_data_asked() -> bool:
    """``INLET_KEEP_DATA=1``: keep Firestore's data across restarts (devstack/keep_data.py)."""
    return os.environ.get("INLET_KEEP_DATA") == "1"


def write_env_file(values: dict[str, str]) -> None:
    """Plain KEY=VALUE lines, written atomically (readers never see half a file)."""
    path = STATE_DIR / "dev.env"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def main() -> int:
    ports = Ports.dev_defaults()
    saved = persistent_secrets()
    stack = LocalStack(
        ports=ports,
        state_dir=STATE_DIR,
        # The emulator retries a refused task forever; a bounded number keeps a broken
        # refresh from spinning (Cloud Tasks' own retry limits come from the queue config).
        tasks_max_retries=20,
        webhook_secret=saved["CLERK_WEBHOOK_SECRET"],
        source_kek=saved["SOURCE_KEK"],
        extra_env=clerk_api_env(),
        keep_data_dir=STATE_DIR / "firestore-data" if keep_data_asked() else None,
    )
    (STATE_DIR / "dev.env").unlink(missing_ok=True)
    interrupts = Interrupts()
    interrupts.install()
    try:
        print("Starting the Inlet local stack…", flush=True)
        stack.start()
        values = {
            "FIRESTORE_EMULATOR_HOST": stack.firestore_host,
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "TASKS_EMULATOR_HOST": stack.tasks_host,
            "CLERK_ISSUER": stack.issuer.url,
            "CLERK_SYNC_URL": stack.url("clerk-sync"),
            "CLERK_WEBHOOK_SECRET": stack.webhook_secret,
            "DEV_ADMIN_KEY": create_admin_key(stack),
        }
        if "query" in stack.processes:
            values["QUERY_URL"] = stack.url("query")
            values["CONSOLE_URL"] = stack.console_url()
        if "clerk-sync" in stack.processes:
            store_demo_user(stack)
        if "ingest" in stack.processes:
            demo = create_demo_source(stack)
            values.update(
                {
                    "INGEST_URL": stack.url("ingest"),
                    "DEMO_SOURCE_ID": demo["id"],
                    "DEMO_SOURCE_SECRET": demo["secret"],
                    "DEMO_USER_ID": DEMO_USER_ID,
                }
            )
        write_env_file(values)
        print("\nInlet is up. Written to .inlet/dev.env:\n")
        for key, value in values.items():
            print(f"  {key}={value}")
        inbound = f"Demo source receiver: {demo['url']}\n" if "ingest" in stack.processes else ""
        console = ""
        if "query" in stack.processes:
            console = f"Console (development sign-in as {DEMO_USER_ID}): {stack.console_url()}\n"
        print(
            "\nClerk webhook endpoint: "
            f"{stack.url('clerk-sync')}/webhooks/clerk\n{inbound}"
            f"{console}"
            f"A session token (one hour): make -s dev-token SUB={DEMO_USER_ID} [ORG=org_y] "
            "[ROLE=admin|member]\n"
            "A Clerk event, signed: make clerk-event TYPE=user.created SUB=user_x\n"
            "Another admin API key: make -s admin-key [NAME=n]\n"
            "Send a demo event: make send-event [BODY='{\"amount\": 3}']\n"
            f"Logs: {STATE_DIR / 'logs'}/\nCtrl-C stops everything.",
            flush=True,
        )
        while not interrupts.wait(1.0):
            exited = [n for n, p in stack.processes.items() if p.popen.poll() is not None]
            if exited:
                print(f"{exited[0]} exited:\n{stack.processes[exited[0]].tail()}", file=sys.stderr)
                break
    except StackError as err:
        print(f"make dev: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass  # the first Ctrl-C or SIGTERM while starting (Interrupts)
    finally:
        interrupts.stopping = True
        print("Stopping…", flush=True)
        stack.stop()
        processes.signal_spawned(signal.SIGKILL)  # anything started but not yet in the stack
        (STATE_DIR / "dev.env").unlink(missing_ok=True)
    return 0


class Interrupts:
    """Ctrl-C and SIGTERM, counted by a handler that takes no lock.

    A Python handler runs between two bytecodes of the main thread, possibly inside another
    handler: one that took a lock (``threading.Event.set`` does) could wait forever on a lock its
    own thread holds. This one only counts, writes a byte to a pipe and sends signals:
    - the first stops the stack: it wakes the main loop, or interrupts the start-up;
    - a second, while stopping, sends SIGTERM to every process group at once;
    - a third forces it: SIGKILL to every process group, and exit.
    """

    def __init__(self) -> None:
        self.count = 0
        self.stopping = False
        self.started = False  # the main loop runs: the pipe wakes it, no need to interrupt
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def install(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def wait(self, timeout_s: float) -> bool:
        """Whether a stop was asked for, waiting at most ``timeout_s`` for one."""
        self.started = True
        if not self.count:
            select.select([self._read], [], [], timeout_s)
        return self.count > 0

    def _on_signal(self, signum, frame) -> None:
        self.count += 1
        with contextlib.suppress(OSError):
            os.write(self._write, b"\0")
        if self.count >= 3:
            processes.signal_spawned(signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.unlink(ENV_FILE)
            os._exit(128 + signum)
        if self.count == 2:
            processes.signal_spawned(signal.SIGTERM)
        elif not self.started and not self.stopping:
            self.stopping = True
            raise KeyboardInterrupt  # abandon the start-up; `finally` stops what it started


if __name__ == "__main__":
    sys.exit(main())
