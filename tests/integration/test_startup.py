"""Configuration is validated once at start: a missing variable stops the service, by name."""

from __future__ import annotations

import pytest

from devstack.processes import StackError, free_port, start_service


@pytest.mark.parametrize(
    ("service", "missing"),
    [
        ("clerk-sync", "CLERK_WEBHOOK_SECRET"),
        ("ingest", "SOURCE_KEK"),
        ("ingest", "TASKS_QUEUE"),
        ("ingest", "CLERK_AUTHORIZED_PARTIES"),
    ],
)
def test_a_missing_variable_stops_the_service_with_its_name(stack, tmp_path, service, missing):
    env = {**stack.service_env(), missing: ""}
    with pytest.raises(StackError) as failure:
        start_service(service, free_port(), env, tmp_path)
    assert f"{service}: configuration error: {missing} is required" in str(failure.value)
    assert "Traceback" not in str(failure.value)


def test_a_malformed_webhook_secret_stops_clerk_sync_at_start(stack, tmp_path):
    env = {**stack.service_env(), "CLERK_WEBHOOK_SECRET": "whsec_!!!"}
    with pytest.raises(StackError) as failure:
        start_service("clerk-sync", free_port(), env, tmp_path)
    assert "CLERK_WEBHOOK_SECRET must be whsec_<base64>" in str(failure.value)


def test_a_malformed_clerk_api_url_stops_clerk_sync_without_showing_the_key(stack, tmp_path):
    key = "sk_test_startup_0123456789"
    env = {**stack.service_env(), "CLERK_SECRET_KEY": key, "CLERK_API_URL": "api.clerk.com"}
    with pytest.raises(StackError) as failure:
        start_service("clerk-sync", free_port(), env, tmp_path)
    assert "CLERK_API_URL must be an http(s) URL" in str(failure.value)
    assert key not in str(failure.value)
