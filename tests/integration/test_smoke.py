"""`make smoke` (docs/deploy.md), against the real `make dev` stack as a deployed one: a signed
event in through ingest, read back through the query API; any failure exits non-zero."""

from __future__ import annotations


def smoke(dev_stack, **overrides: str):
    env = dev_stack.env
    values = {
        "INGEST_URL": env["INGEST_URL"],
        "QUERY_URL": env["QUERY_URL"],
        "SOURCE_ID": env["DEMO_SOURCE_ID"],
        "SECRET": env["DEMO_SOURCE_SECRET"],
        "TOKEN": env["DEV_ADMIN_KEY"],
        **overrides,
    }
    return dev_stack.run(["make", "-s", "smoke", *(f"{k}={v}" for k, v in values.items())])


def test_smoke_sends_an_event_and_reads_it_back(dev_stack):
    passed = smoke(dev_stack)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.startswith("ingest: 202 ")
    assert "webhook.list holds the event" in passed.stdout and "make smoke: OK" in passed.stdout


def test_smoke_with_a_session_token_reads_back_too(dev_stack):
    made = dev_stack.run(["make", "-s", "dev-token", f"SUB={dev_stack.env['DEMO_USER_ID']}"])
    passed = smoke(dev_stack, TOKEN=made.stdout.strip())
    assert passed.returncode == 0, passed.stdout + passed.stderr


def test_smoke_fails_on_a_wrong_secret(dev_stack):
    failed = smoke(dev_stack, SECRET="whsec_" + "A" * 43 + "=")
    assert failed.returncode != 0
    assert failed.stdout.startswith("ingest: 401 ") and "FAILED" in failed.stderr


def test_smoke_fails_when_the_query_api_refuses_the_token(dev_stack):
    failed = smoke(dev_stack, TOKEN="inlet_ak_0000000000000000_wrong")  # noqa: S106
    assert failed.returncode != 0
    assert "query: 401 " in failed.stdout and "FAILED" in failed.stderr


def test_smoke_names_what_is_missing(dev_stack):
    failed = dev_stack.run(["make", "-s", "smoke", "QUERY_URL="])
    assert failed.returncode != 0
    assert "set INGEST_URL, QUERY_URL, SOURCE_ID, SECRET, TOKEN" in failed.stderr
