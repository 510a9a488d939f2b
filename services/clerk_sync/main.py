"""clerk-sync: Clerk's webhook endpoint and the scheduled reconciliation (functions-framework
target ``clerk_sync``)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from flask import Request, Response

from services.clerk_sync import delivery, reconcile_task, verify
from services.clerk_sync.reconcile_task import ReconcileSettings
from services.common import auth, context, outbox, store
from services.common.config import ConfigError, Env, FirestoreSettings, TaskSettings, load_or_exit
from services.common.http import App, json_response, read_body, route

MAX_BODY = 1024 * 1024  # Clerk's payloads are a few KiB; anything near this is not Clerk


@dataclass(frozen=True)
class Settings:
    firestore: FirestoreSettings
    webhook_secret: str
    # A user or organization deleted in Clerk deletes its sources; their blocks then need a
    # `delete` refresh (docs/query.md), which clerk-sync schedules like ingest does.
    tasks: TaskSettings
    # The Backend API key (optional) and the run's budget for POST /tasks/reconcile, whose
    # OIDC tokens are checked with `tasks` like the sweep's.
    reconcile: ReconcileSettings

    @classmethod
    def from_env(cls, env: Env | None = None) -> Settings:
        env = env or Env()
        secret = env.str("CLERK_WEBHOOK_SECRET")
        if not _is_webhook_secret(secret):
            raise ConfigError("CLERK_WEBHOOK_SECRET must be whsec_<base64>, as Clerk shows it")
        return cls(
            FirestoreSettings.from_env(env),
            secret,
            TaskSettings.from_env(env),
            ReconcileSettings.from_env(env),
        )


def _is_webhook_secret(secret: str) -> bool:
    """The shape svix accepts, checked at start-up rather than on the first delivery."""
    try:
        return bool(base64.b64decode(secret.removeprefix("whsec_"), validate=True))
    except (binascii.Error, ValueError):
        return False


settings = load_or_exit("clerk-sync", Settings.from_env)
verifier = verify.SvixVerifier(settings.webhook_secret)


def receive(request: Request) -> Response:
    headers = verify.svix_headers(request)
    body = read_body(request, MAX_BODY)
    verifier.verify(body, headers)  # 401 before anything about the body is looked at
    outcome = delivery.deliver(headers["svix-id"], body, on_sources_deleted=_refresh_deleted)
    answer = {"status": outcome.status, "reason": outcome.reason or None}
    return json_response(200, {**answer, "duplicate": outcome.duplicate})


def _refresh_deleted(source_ids: list[str]) -> None:
    for source_id in source_ids:
        outbox.schedule_refresh(settings.tasks, source_id, "delete")


def run_reconcile(request: Request) -> Response:
    auth.verify_task_token(request, settings.tasks)
    report = reconcile_task.run(settings.reconcile, settings.firestore)
    # The request's log line carries the counts (never a key or a personal field).
    context.current().log_fields["reconcile"] = report
    return json_response(200, report)


app = App(
    "clerk-sync",
    [
        route("POST", "/webhooks/clerk", receive),
        route(
            "POST",
            "/tasks/reconcile",
            run_reconcile,
            storage_budget_s=settings.reconcile.budget_s + reconcile_task.FINISHING_S,
            rpc_deadline_s=store.TASK_RPC_DEADLINE_S,
        ),
    ],
    project=settings.firestore.project,
)


def clerk_sync(request: Request) -> Response:
    return app(request)
