"""The refresh task's shape in production and in local mode (docs/ingest.md, "query", "The two
commands")."""

from __future__ import annotations

import datetime as dt
import json

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.cloud import tasks_v2

from services.common.auth import public_jwks
from services.common.config import TaskSettings
from services.common.outbox import task_id
from services.common.tasks import build_task

QUEUE = "projects/p/locations/europe-west1/queues/inlet-refresh-1a2b"


def settings(**overrides) -> TaskSettings:
    values = {
        "queue": QUEUE,
        "refresh_url": "https://query-xyz.a.run.app/tasks/refresh",
        "service_account": "inlet-tasks@p.iam.gserviceaccount.com",
        "audience": "inlet-tasks",
        "emulator_host": None,
        "oidc_issuer": "https://accounts.google.com",
        "oidc_certs_url": "https://www.googleapis.com/oauth2/v3/certs",
        "dev_signing_key_file": None,
        **overrides,
    }
    return TaskSettings(**values)


def test_production_tasks_carry_an_oidc_token_for_the_configured_identity():
    at = dt.datetime(2026, 1, 1, 12, 0, 1, tzinfo=dt.UTC)
    task = tasks_v2.Task(build_task(settings(), "abc-src_1-event-5", {"sourceId": "src_1"}, at))
    assert task.name == f"{QUEUE}/tasks/abc-src_1-event-5"
    assert task.http_request.url == "https://query-xyz.a.run.app/tasks/refresh"
    assert task.http_request.http_method == tasks_v2.HttpMethod.POST
    assert (
        task.http_request.oidc_token.service_account_email
        == "inlet-tasks@p.iam.gserviceaccount.com"
    )
    assert task.http_request.oidc_token.audience == "inlet-tasks"
    assert "Authorization" not in task.http_request.headers
    assert json.loads(task.http_request.body) == {"sourceId": "src_1"}
    assert task.schedule_time == at


def test_local_tasks_carry_a_development_token_valid_past_the_schedule(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "key.pem").write_bytes(pem)
    local = settings(
        emulator_host="127.0.0.1:1",
        oidc_issuer="http://127.0.0.1:9",
        dev_signing_key_file=str(tmp_path / "key.pem"),
    )
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    task = tasks_v2.Task(build_task(local, "t", {"sourceId": "s"}, later))
    assert not task.http_request.oidc_token.service_account_email
    token = task.http_request.headers["Authorization"].removeprefix("Bearer ")
    jwk = public_jwks(pem)["keys"][0]
    assert jwt.get_unverified_header(token)["kid"] == jwk["kid"]
    claims = jwt.decode(
        token,
        key.public_key(),
        algorithms=["RS256"],
        audience="inlet-tasks",
        issuer="http://127.0.0.1:9",
    )
    assert claims["email"] == local.service_account and claims["email_verified"] is True
    assert claims["exp"] > later.timestamp()


def test_task_names_are_deterministic_per_window_and_spread_by_a_hash_prefix():
    first = task_id("src_1", "event", 100)
    assert first == task_id("src_1", "event", 100)
    assert first != task_id("src_1", "event", 101) != task_id("src_2", "event", 100)
    assert first.endswith("-src_1-event-100") and len(first.split("-")[0]) == 8
    assert task_id("src_1", "event", 100, "-s7") != first
