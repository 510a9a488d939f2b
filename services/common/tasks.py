"""Cloud Tasks: HTTP tasks to the refresh endpoint, with the identity the target verifies.

Production tasks carry a Google OIDC token minted by Cloud Tasks for ``TASKS_SERVICE_ACCOUNT``.
The local emulator attaches none, so in local mode the task carries a token from the development
issuer instead (docs/operations.md "Configuration", "The two commands").
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

from services.common.auth import sign_local_token
from services.common.config import TaskSettings

_lock = threading.Lock()
_client = None


def client():
    """The process's Cloud Tasks client, created on first use."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                _client = _new_client(TaskSettings.from_env())
    return _client


def _new_client(settings: TaskSettings):
    from google.cloud import tasks_v2

    if settings.emulator_host:
        import grpc
        from google.cloud.tasks_v2.services.cloud_tasks.transports import (
            CloudTasksGrpcTransport,
        )

        channel = grpc.insecure_channel(settings.emulator_host)
        return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
    return tasks_v2.CloudTasksClient()


def build_task(
    settings: TaskSettings,
    task_id: str,
    body: dict[str, object],
    schedule_at: dt.datetime,
) -> dict[str, object]:
    """The HTTP task: production attaches an OIDC token, local mode a development token."""
    from google.protobuf import timestamp_pb2

    headers = {"Content-Type": "application/json"}
    request: dict[str, object] = {
        "http_method": "POST",
        "url": settings.refresh_url,
        "headers": headers,
        "body": json.dumps(body).encode(),
    }
    if settings.emulator_host:
        headers["Authorization"] = "Bearer " + _local_task_token(settings, schedule_at)
    else:
        request["oidc_token"] = {
            "service_account_email": settings.service_account,
            "audience": settings.audience,
        }
    schedule = timestamp_pb2.Timestamp()
    schedule.FromDatetime(schedule_at.astimezone(dt.UTC).replace(tzinfo=None))
    return {
        "name": f"{settings.queue}/tasks/{task_id}",
        "http_request": request,
        "schedule_time": schedule,
    }


def enqueue(
    settings: TaskSettings,
    task_id: str,
    body: dict[str, object],
    schedule_at: dt.datetime,
) -> bool:
    """Create one HTTP task; False when a task of that name already exists (a success too)."""
    from google.api_core import exceptions as gexc

    task = build_task(settings, task_id, body, schedule_at)
    try:
        client().create_task(parent=settings.queue, task=task, timeout=5.0)
    except gexc.AlreadyExists:
        return False
    return True


def _local_task_token(settings: TaskSettings, schedule_at: dt.datetime) -> str:
    assert settings.dev_signing_key_file
    key = Path(settings.dev_signing_key_file).read_bytes()
    ahead = max(0, int((schedule_at - dt.datetime.now(dt.UTC)).total_seconds()))
    claims = {
        "iss": settings.oidc_issuer,
        "aud": settings.audience,
        "sub": settings.service_account,
        "email": settings.service_account,
        "email_verified": True,
    }
    return sign_local_token(key, claims, ttl_s=ahead + 3600)
