"""`make dev`'s local user and `make clerk-event` (docs/local-stack.md), against the real `make dev`
program, through the Makefile as a newcomer runs it."""

from __future__ import annotations

import pytest
import requests


def token(dev_stack, sub: str) -> str:
    made = dev_stack.run(["make", "-s", "dev-token", f"SUB={sub}"])
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def me(dev_stack, sub: str) -> requests.Response:
    headers = {"Authorization": f"Bearer {token(dev_stack, sub)}"}
    return requests.get(f"{dev_stack.env['QUERY_URL']}/v1/me", headers=headers, timeout=30)


def clerk_event(dev_stack, *args: str):
    return dev_stack.run(["make", "-s", "clerk-event", *args])


def test_make_dev_stores_the_demo_user_through_a_signed_clerk_webhook(dev_stack):
    answer = me(dev_stack, dev_stack.env["DEMO_USER_ID"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == "user_demo"
    assert answer.json()["email"] == "demo@example.com"
    listed = requests.get(
        f"{dev_stack.env['QUERY_URL']}/v1/users",
        headers={"Authorization": f"Bearer {dev_stack.env['DEV_ADMIN_KEY']}"},
        timeout=30,
    )
    assert "user_demo" in [u["id"] for u in listed.json()["items"]]


def test_a_user_no_webhook_stored_is_a_404_that_says_why(dev_stack):
    answer = me(dev_stack, "user_never_sent")
    assert answer.status_code == 404
    message = answer.json()["error"]["message"]
    assert "no Clerk webhook" in message and "CLERK_SECRET_KEY is unset" in message


def test_make_clerk_event_sends_each_clerk_event_signed(dev_stack):
    sent = clerk_event(dev_stack, "TYPE=user.created", "SUB=user_grace")
    assert sent.returncode == 0 and sent.stdout.startswith("200 "), sent.stdout + sent.stderr
    assert '"processed"' in sent.stdout
    assert me(dev_stack, "user_grace").json()["email"] == "grace@example.com"

    renamed = clerk_event(
        dev_stack, "TYPE=user.updated", "SUB=user_grace", """DATA={"first_name": "Grace"}"""
    )
    assert renamed.returncode == 0, renamed.stdout + renamed.stderr
    assert me(dev_stack, "user_grace").json()["firstName"] == "Grace"

    for event_type in ("organization.created", "organization.updated"):
        org = clerk_event(dev_stack, f"TYPE={event_type}", "SUB=user_grace", "ORG=org_acme")
        assert org.returncode == 0 and '"processed"' in org.stdout, org.stdout + org.stderr
    joined = clerk_event(
        dev_stack,
        "TYPE=organizationMembership.created",
        "SUB=user_grace",
        "ORG=org_acme",
        "ROLE=member",
    )
    assert joined.returncode == 0, joined.stdout + joined.stderr
    memberships = me(dev_stack, "user_grace").json()["memberships"]
    assert [(m["orgId"], m["role"]) for m in memberships] == [("org_acme", "org:member")]

    promoted = clerk_event(
        dev_stack, "TYPE=organizationMembership.updated", "SUB=user_grace", "ORG=org_acme"
    )
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert me(dev_stack, "user_grace").json()["memberships"][0]["role"] == "org:admin"

    for event_type in ("organizationMembership.deleted", "organization.deleted"):
        gone = clerk_event(dev_stack, f"TYPE={event_type}", "SUB=user_grace", "ORG=org_acme")
        assert gone.returncode == 0, gone.stdout + gone.stderr
    assert me(dev_stack, "user_grace").json()["memberships"] == []

    deleted = clerk_event(dev_stack, "TYPE=user.deleted", "SUB=user_grace")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    after = me(dev_stack, "user_grace")
    assert after.status_code == 404 and "deleted in Clerk" in after.json()["error"]["message"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["TYPE=organization.created"], "needs ORG"),
        (["TYPE=session.created"], "invalid choice"),
        (["TYPE=user.updated", "DATA=[1]"], "JSON object"),
    ],
)
def test_make_clerk_event_refuses_what_it_cannot_send_and_says_why(dev_stack, args, says):
    refused = clerk_event(dev_stack, *args)
    assert refused.returncode != 0 and says in refused.stderr, refused.stderr


def test_make_clerk_event_fails_loudly_when_clerk_sync_refuses(dev_stack, tmp_path):
    """A wrong webhook secret: clerk-sync answers 401, and the command exits non-zero."""
    state = tmp_path / "state"
    state.mkdir()
    values = {**dev_stack.env, "CLERK_WEBHOOK_SECRET": "whsec_" + "A" * 43 + "="}
    (state / "dev.env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    refused = dev_stack.run(
        ["make", "-s", "clerk-event", "TYPE=user.created", "SUB=user_x"],
        INLET_STATE_DIR=str(state),
    )
    assert refused.returncode != 0 and refused.stdout.startswith("401 "), refused.stdout
