"""query: queries over stored events, blocks kept fresh (functions-framework target ``query``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import Request, Response

from services.common import admin_keys, auth, context, outbox, source_store, store
from services.common.config import (
    ClerkAuthSettings,
    Env,
    FirestoreSettings,
    TaskSettings,
    load_or_exit,
)
from services.common.errors import BadRequest, Forbidden
from services.common.http import App, json_body, json_response, page_limit, route
from services.query import blocks, catalog, console, queries, refresh, rollup_store, users
from services.query.console import ConsoleSettings
from services.query.users import UsersSettings


@dataclass(frozen=True)
class Settings:
    firestore: FirestoreSettings
    clerk: ClerkAuthSettings
    tasks: TaskSettings
    users: UsersSettings
    console: ConsoleSettings
    cors_origins: tuple[str, ...]

    @classmethod
    def from_env(cls, env: Env | None = None) -> Settings:
        env = env or Env()
        return cls(
            firestore=FirestoreSettings.from_env(env),
            clerk=ClerkAuthSettings.from_env(env),
            tasks=TaskSettings.from_env(env),
            users=UsersSettings.from_env(env),
            console=ConsoleSettings.from_env(env),
            cors_origins=env.list("CORS_ORIGINS"),
        )


settings = load_or_exit("query", Settings.from_env)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _caller(request: Request) -> auth.Caller:
    """A Clerk session (its tenant's sources and blocks) or an admin API key (any source)."""
    return auth.authenticate(request, settings.clerk, admin_keys.verifier())


def run_query(request: Request, source_id: str) -> Response:
    caller = _caller(request)
    source_store.readable(caller, source_id)  # someone else's source: 404 before anything else
    query = catalog.parse(json_body(request))
    result = queries.run(source_id, query, _now(), lambda: _schedule_refresh(source_id))
    return json_response(200, {"type": query.type, "result": result})


def rebuild(request: Request, source_id: str) -> Response:
    """Refold the source's rollups from its retained events (docs/query.md "Rollups", "Rebuild")."""
    caller = _caller(request)
    source_store.readable(caller, source_id)  # someone else's source: 404 before anything else
    if isinstance(caller, auth.Principal) and not caller.may_administer:
        raise Forbidden("only organization admins may rebuild an organization's rollups")
    rollup_store.rebuild(source_id)
    _schedule_refresh(source_id)
    return json_response(202, rollup_store.progress(source_id))


def rebuild_progress(request: Request, source_id: str) -> Response:
    source_store.readable(_caller(request), source_id)
    return json_response(200, rollup_store.progress(source_id))


def _schedule_refresh(source_id: str) -> None:
    """A refresh through the outbox: folds a newly registered field, schedules follow-ups."""
    outbox.schedule_refresh(settings.tasks, source_id, "change")


def put_block(request: Request, block_id: str) -> Response:
    principal = auth.require_session(_caller(request))  # admin keys read blocks, never write
    body = json_body(request)
    shown, created = blocks.put(principal, block_id, body, _now(), _schedule_refresh)
    return json_response(201 if created else 200, shown)


def delete_block(request: Request, block_id: str) -> Response:
    principal = auth.require_session(_caller(request))  # admin keys read blocks, never write
    blocks.delete(principal, block_id)
    return json_response(204)


def get_block(request: Request, block_id: str) -> Response:
    caller = _caller(request)
    return json_response(200, blocks.get(caller, block_id, request.args.get("owner")))


def list_blocks(request: Request) -> Response:
    principal = _caller(request)
    limit = page_limit(request.args.get("limit"), blocks.PAGE_SIZE, blocks.PAGE_SIZE)
    source_id = request.args.get("dataSourceId")
    if source_id is not None and not source_store.is_source_id(source_id):
        raise BadRequest("dataSourceId must be a source id (src_ and 20 hex digits)")
    cursor = request.args.get("cursor")
    etag = None
    if isinstance(principal, auth.Principal) and source_id is None and cursor is None:
        # The console polls this page: an unchanged one is a 304 for two reads (docs/console.md).
        etag = blocks.version(principal)
        if _matches(request, etag):
            return Response(status=304, headers={"ETag": etag, "Cache-Control": "no-cache"})
    items, next_cursor = blocks.list_owned(principal, source_id, cursor, limit)
    headers = {"ETag": etag, "Cache-Control": "no-cache"} if etag else None
    return json_response(200, {"items": items, "nextCursor": next_cursor}, headers)


def _matches(request: Request, etag: str) -> bool:
    """If-None-Match names ``etag`` (weak comparison, RFC 9110 section 13.1.2)."""
    from werkzeug.http import unquote_etag

    return request.if_none_match.contains_weak(unquote_etag(etag)[0])


ASSETS = console.load_assets()


def console_file(request: Request, asset: str = "index.html") -> Response:
    found = console.asset(ASSETS, asset)
    headers = console.headers(settings.console, found)
    if _matches(request, found.etag):
        return Response(status=304, headers=headers)
    return Response(found.body, status=200, headers=headers)


def console_config(request: Request) -> Response:
    headers = {"Cache-Control": "no-cache"}
    return json_response(200, console.page_config(settings.console), headers)


def dev_session(request: Request) -> Response:
    token = console.dev_session(
        settings.console,
        json_body(request),
        settings.clerk.issuer,
        settings.clerk.authorized_parties[0],
    )
    return json_response(200, token, {"Cache-Control": "no-store"})


# Locally only: the development sign-in (module console).
DEV_ROUTES = (
    [route("POST", "/dev/console-session", dev_session)] if settings.console.dev_sign_in else []
)


def run_refresh(request: Request) -> Response:
    auth.verify_task_token(request, settings.tasks)
    source_id, reason = refresh.parse(json_body(request))
    log_fields = context.current().log_fields  # the request's log line says what was refreshed
    log_fields.update(sourceId=source_id, reason=reason)
    outcome = refresh.refresh(settings.tasks, source_id, _now(), reason)
    log_fields["outcome"] = outcome["status"]
    return json_response(200, outcome)


def me(request: Request) -> Response:
    principal = auth.require_session(_caller(request))
    return json_response(200, users.me(principal, settings.users))


def list_users(request: Request) -> Response:
    auth.require_admin_key(_caller(request))
    args = request.args
    return json_response(200, users.list_users(args.get("cursor"), args.get("limit")))


def get_user(request: Request, user_id: str) -> Response:
    auth.require_admin_key(_caller(request))
    return json_response(200, users.get_user(user_id))


app = App(
    "query",
    [
        route("POST", "/v1/sources/{source_id}/query", run_query, browser=True),
        route("POST", "/v1/sources/{source_id}/rebuild", rebuild, browser=True),
        route("GET", "/v1/sources/{source_id}/rebuild", rebuild_progress, browser=True),
        route("GET", "/v1/blocks", list_blocks, browser=True),
        route("GET", "/v1/blocks/{block_id}", get_block, browser=True),
        route("PUT", "/v1/blocks/{block_id}", put_block, browser=True),
        route("DELETE", "/v1/blocks/{block_id}", delete_block, browser=True),
        route("GET", "/v1/me", me, browser=True),
        route("GET", "/console", console_file),
        route("GET", "/console/config.json", console_config),
        *DEV_ROUTES,
        route("GET", "/console/{asset}", console_file),
        route("GET", "/v1/users", list_users),
        route("GET", "/v1/users/{user_id}", get_user),
        route(
            "POST",
            "/tasks/refresh",
            run_refresh,
            storage_budget_s=store.TASK_STORAGE_BUDGET_S,
            rpc_deadline_s=store.TASK_RPC_DEADLINE_S,
        ),
    ],
    project=settings.firestore.project,
    cors_origins=settings.cors_origins,
)


def query(request: Request) -> Response:
    return app(request)
