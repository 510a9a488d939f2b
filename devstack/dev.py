"""`make dev`: the whole local stack in the foreground until Ctrl-C or SIGTERM (SPEC 6)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import requests

from devstack.processes import ROOT, StackError
from devstack.stack import PROJECT, LocalStack, Ports, new_webhook_secret

STATE_DIR = ROOT / ".inlet"
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
    token = stack.issuer.session_token(DEMO_USER_ID)
    answer = requests.post(
        f"{stack.url('ingest')}/v1/sources",
        json={"label": "Demo source"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )
    answer.raise_for_status()
    return answer.json()


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


def write_env_file(values: dict[str, str]) -> None:
    """Plain KEY=VALUE lines, written atomically (readers never see half a file)."""
    path = STATE_DIR / "dev.env"
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def main() -> int:
    ports = Ports.dev_defaults()
    query_port = int(os.environ.get("QUERY_PORT", 8083))
    saved = persistent_secrets()
    stack = LocalStack(
        ports=ports,
        state_dir=STATE_DIR,
        refresh_url=f"http://127.0.0.1:{query_port}/tasks/refresh",
        # Until the query service exists nobody answers its URL; bound the emulator's retries.
        tasks_max_retries=3,
        webhook_secret=saved["CLERK_WEBHOOK_SECRET"],
        source_kek=saved["SOURCE_KEK"],
        extra_env=clerk_api_env(),
    )
    (STATE_DIR / "dev.env").unlink(missing_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
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
        print(
            "\nClerk webhook endpoint: "
            f"{stack.url('clerk-sync')}/webhooks/clerk\n{inbound}"
            "A session token: make -s dev-token SUB=user_x [ORG=org_y]\n"
            "Another admin API key: make -s admin-key [NAME=n]\n"
            "Send a demo event: make send-event\n"
            f"Logs: {STATE_DIR / 'logs'}/\nCtrl-C stops everything.",
            flush=True,
        )
        while not stop.wait(1):
            for name, process in stack.processes.items():
                if process.popen.poll() is not None:
                    print(f"{name} exited:\n{process.tail()}", file=sys.stderr)
                    stop.set()
    except StackError as err:
        print(f"make dev: {err}", file=sys.stderr)
        return 1
    finally:
        print("Stopping…", flush=True)
        stack.stop()
        (STATE_DIR / "dev.env").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
