"""`make dev`: the whole local stack in the foreground until Ctrl-C or SIGTERM (SPEC 6)."""

from __future__ import annotations

import json
import os
import signal
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
        }
        if "query" in stack.processes:
            values["QUERY_URL"] = stack.url("query")
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
