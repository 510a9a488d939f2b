"""clerk-sync: Clerk's webhook endpoint (functions-framework target ``clerk_sync``)."""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass

from flask import Request, Response

from services.clerk_sync import verify
from services.common import clerk_store as sync
from services.common import strict_json
from services.common.clerk_events import MalformedEvent, change_from_event
from services.common.config import ConfigError, Env, FirestoreSettings, load_or_exit
from services.common.errors import BadRequest
from services.common.http import App, json_response, read_body, route

MAX_BODY = 1024 * 1024  # Clerk's payloads are a few KiB; anything near this is not Clerk


@dataclass(frozen=True)
class Settings:
    firestore: FirestoreSettings
    webhook_secret: str

    @classmethod
    def from_env(cls, env: Env | None = None) -> Settings:
        env = env or Env()
        secret = env.str("CLERK_WEBHOOK_SECRET")
        if not _is_webhook_secret(secret):
            raise ConfigError("CLERK_WEBHOOK_SECRET must be whsec_<base64>, as Clerk shows it")
        return cls(FirestoreSettings.from_env(env), secret)


def _is_webhook_secret(secret: str) -> bool:
    """The shape svix accepts, checked at start-up rather than on the first delivery."""
    try:
        return bool(base64.b64decode(secret.removeprefix("whsec_"), validate=True))
    except (binascii.Error, ValueError):
        return False


settings = load_or_exit("clerk-sync", Settings.from_env)


@functools.cache
def _webhook():
    from svix.webhooks import Webhook

    return Webhook(settings.webhook_secret)


def receive(request: Request) -> Response:
    headers = verify.svix_headers(request)
    body = read_body(request, MAX_BODY)
    verify.verify(_webhook(), body, headers)
    svix_id = headers["svix-id"]
    envelope = None
    try:
        envelope = strict_json.parse(body)
        change = change_from_event(envelope)
    except (BadRequest, MalformedEvent) as err:
        event_type = envelope.get("type") if isinstance(envelope, dict) else None
        sync.record_failure(svix_id, str(event_type or "unknown"), type(err).__name__)
        raise BadRequest("payload is not a Clerk event", code="malformed_event") from None
    try:
        outcome = sync.deliver(svix_id, envelope["type"], change, f"clerk:{envelope['type']}")
    except sync.Unstorable:
        sync.record_failure(svix_id, envelope["type"], "Unstorable")
        raise BadRequest("the event's object cannot be stored", code="unstorable") from None
    body = {"status": outcome.status, "reason": outcome.reason or None}
    return json_response(200, {**body, "duplicate": outcome.duplicate})


app = App(
    "clerk-sync",
    [route("POST", "/webhooks/clerk", receive)],
    project=settings.firestore.project,
)


def clerk_sync(request: Request) -> Response:
    return app(request)
