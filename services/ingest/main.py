"""ingest: signed partner events and the data-source API (functions-framework target ``ingest``)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Request, Response

from services.common import auth, outbox, source_store, store
from services.common.config import (
    ClerkAuthSettings,
    ConfigError,
    Env,
    FirestoreSettings,
    TaskSettings,
    load_or_exit,
)
from services.common.crypto import Keyring
from services.common.errors import Forbidden
from services.common.http import App, json_body, json_response, page_limit, route
from services.common.source_store import SourceIds
from services.common.source_view import view
from services.ingest import (
    contract_store,
    deliveries,
    maintenance,
    quarantine,
    receive,
    replay,
    sources,
)
from services.ingest.deliveries import DeliveryRing
from services.ingest.keys import KeyCache
from services.ingest.limits import RateLimiter
from services.ingest.quarantine import Quarantine


@dataclass(frozen=True)
class Settings:
    firestore: FirestoreSettings
    clerk: ClerkAuthSettings
    tasks: TaskSettings
    keyring: Keyring
    source_ids: SourceIds
    public_url: str | None
    cors_origins: tuple[str, ...]

    @classmethod
    def from_env(cls, env: Env | None = None) -> Settings:
        env = env or Env()
        keyring = Keyring.parse(env.str("SOURCE_KEK"))
        legacy = env.list("LEGACY_SOURCE_IDS")
        if not all(SourceIds.is_legacy(value) for value in legacy):
            raise ConfigError("LEGACY_SOURCE_IDS entries must look like src_<20 hex>")
        return cls(
            firestore=FirestoreSettings.from_env(env),
            clerk=ClerkAuthSettings.from_env(env),
            tasks=TaskSettings.from_env(env),
            keyring=keyring,
            source_ids=SourceIds.from_keyring(keyring, legacy),
            public_url=env.optional("INGEST_PUBLIC_URL"),
            cors_origins=env.list("CORS_ORIGINS"),
        )


settings = load_or_exit("ingest", Settings.from_env)
keys = KeyCache(settings.keyring, settings.source_ids)
ring = DeliveryRing()
limiter = RateLimiter()
kept = Quarantine(settings.tasks)


def _base_url(request: Request) -> str:
    """``INGEST_PUBLIC_URL``, else this request's own origin as the client saw it (Cloud Run
    terminates TLS in front of the container and says so in ``X-Forwarded-Proto``)."""
    if settings.public_url:
        return settings.public_url
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    return f"{scheme if scheme in ('http', 'https') else 'https'}://{request.host}"


def inbound(request: Request, source_id: str) -> Response:
    stored = receive.receive(request, source_id, keys, ring, limiter, kept)
    # Before answering (Cloud Run throttles the CPU once the response is sent), and for
    # duplicates too: the first attempt may have stored the event and died before this line.
    # Within a window this costs nothing after the first event.
    outbox.schedule_refresh(settings.tasks, source_id, "event")
    status = 200 if stored.duplicate else 202
    return json_response(status, {"id": stored.event_id, "duplicate": stored.duplicate})


def create_source(request: Request) -> Response:
    principal = auth.verify_session(request, settings.clerk)
    record = sources.create(principal, json_body(request), settings.keyring, settings.source_ids)
    return json_response(201, view(record, _base_url(request)))


def list_sources(request: Request) -> Response:
    principal = auth.verify_session(request, settings.clerk)
    limit = page_limit(request.args.get("limit"), sources.PAGE_SIZE, sources.PAGE_SIZE)
    records, cursor = sources.list_owned(principal, request.args.get("cursor"), limit)
    items = [view(record, _base_url(request)) for record in records]
    return json_response(200, {"items": items, "nextCursor": cursor})


def get_source(request: Request, source_id: str) -> Response:
    principal = auth.verify_session(request, settings.clerk)
    record = source_store.owned(principal, source_id).to_dict()
    return json_response(200, view(record, _base_url(request)))


def list_deliveries(request: Request, source_id: str) -> Response:
    principal = auth.verify_session(request, settings.clerk)
    limit = page_limit(request.args.get("limit"), deliveries.DEFAULT_LIMIT, deliveries.MAX_LIMIT)
    after = deliveries.parse_cursor(request.args.get("cursor"))
    source_store.owned(principal, source_id)  # members may read; another tenant's is a 404
    items, cursor = deliveries.list_page(source_id, after, limit)
    return json_response(200, {"items": items, "nextCursor": cursor})


def list_quarantine(request: Request, source_id: str) -> Response:
    principal = auth.verify_session(request, settings.clerk)
    limit = page_limit(request.args.get("limit"), quarantine.DEFAULT_LIMIT, quarantine.MAX_LIMIT)
    after = quarantine.parse_cursor(request.args.get("cursor"))
    source_store.owned(principal, source_id)  # members may read; another tenant's is a 404
    return json_response(200, quarantine.list_page(source_id, after, limit))


def replay_quarantine(request: Request, source_id: str) -> Response:
    principal = auth.verify_session(request, settings.clerk)
    snap = source_store.owned(principal, source_id)  # another tenant's: a 404 before anything
    if not principal.may_administer:
        raise Forbidden("only organization admins may replay an organization's quarantine")
    ids, after = replay.parse(json_body(request))
    answer = replay.replay(snap, ids, after)
    if answer["stored"]:
        outbox.schedule_refresh(settings.tasks, source_id, "event")  # one for the whole call
    return json_response(200, answer)


def rotate_secret(request: Request, source_id: str) -> Response:
    principal = auth.verify_session(request, settings.clerk)
    record = sources.rotate(principal, source_id, json_body(request), settings.keyring)
    keys.forget(source_id)
    return json_response(200, view(record, _base_url(request)))


def change_source(request: Request, source_id: str) -> Response:
    principal = auth.verify_session(request, settings.clerk)
    record = sources.change(principal, source_id, json_body(request))
    keys.forget(source_id)  # a new limit holds at once here, within 30 s on other instances
    return json_response(200, view(record, _base_url(request)))


def delete_source(request: Request, source_id: str) -> Response:
    principal = auth.verify_session(request, settings.clerk)
    sources.delete(principal, source_id)
    # Repeats too: the first attempt may have deleted the source and failed to schedule.
    outbox.schedule_refresh(settings.tasks, source_id, "delete")
    keys.forget(source_id)
    return Response(status=204)


def put_schema(request: Request, source_id: str) -> Response:
    principal = auth.verify_session(request, settings.clerk)
    body = json_body(request, contract_store.MAX_BODY)
    record = contract_store.set_schema(principal, source_id, body)
    keys.forget(source_id)  # in force at once on this instance, within 30 s on the others
    return json_response(200, view(record, _base_url(request)))


def get_schema(request: Request, source_id: str) -> Response:
    principal = auth.verify_session(request, settings.clerk)
    return json_response(200, {"schema": contract_store.get_schema(principal, source_id)})


def delete_schema(request: Request, source_id: str) -> Response:
    principal = auth.verify_session(request, settings.clerk)
    contract_store.delete_schema(principal, source_id)
    keys.forget(source_id)
    return Response(status=204)


def sweep(request: Request) -> Response:
    auth.verify_task_token(request, settings.tasks)
    return json_response(200, maintenance.sweep(settings.tasks))


app = App(
    "ingest",
    [
        route("POST", "/webhooks/inbound/{source_id}", inbound),
        route("POST", "/v1/sources", create_source, browser=True),
        route("GET", "/v1/sources", list_sources, browser=True),
        route("GET", "/v1/sources/{source_id}", get_source, browser=True),
        route("PATCH", "/v1/sources/{source_id}", change_source, browser=True),
        route("DELETE", "/v1/sources/{source_id}", delete_source, browser=True),
        route("POST", "/v1/sources/{source_id}/rotate-secret", rotate_secret, browser=True),
        route("PUT", "/v1/sources/{source_id}/schema", put_schema, browser=True),
        route("GET", "/v1/sources/{source_id}/schema", get_schema, browser=True),
        route("DELETE", "/v1/sources/{source_id}/schema", delete_schema, browser=True),
        route("GET", "/v1/sources/{source_id}/deliveries", list_deliveries, browser=True),
        route("GET", "/v1/sources/{source_id}/quarantine", list_quarantine, browser=True),
        route(
            "POST",
            "/v1/sources/{source_id}/quarantine/replay",
            replay_quarantine,
            browser=True,
        ),
        route(
            "POST",
            "/tasks/sweep",
            sweep,
            storage_budget_s=store.TASK_STORAGE_BUDGET_S,
            rpc_deadline_s=store.TASK_RPC_DEADLINE_S,
        ),
    ],
    project=settings.firestore.project,
    cors_origins=settings.cors_origins,
)


def ingest(request: Request) -> Response:
    return app(request)
