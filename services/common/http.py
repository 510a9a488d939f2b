"""The HTTP edge shared by every service: routing, JSON bodies, errors, CORS, request logs.

Each service's ``main.py`` builds one :class:`App` from its routes; functions-framework calls it
with a Flask request for every path.
"""

from __future__ import annotations

import io
import random
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from flask import Request, Response, current_app, has_app_context
from flask import request as current_request
from werkzeug.exceptions import ClientDisconnected, HTTPException

from services.common import context, json_text, logs, store, strict_json
from services.common.errors import (
    BadRequest,
    InletError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    StorageUnavailable,
)

Handler = Callable[..., Response]
# \Z, not $: "$" also matches before a trailing newline, and echoing one breaks the response.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}\Z")


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # the template, e.g. /v1/sources/{source_id}
    pattern: re.Pattern[str]
    handler: Handler
    browser: bool = False  # answers CORS preflight and carries CORS headers
    storage_budget_s: float = store.REQUEST_STORAGE_BUDGET_S
    rpc_deadline_s: float | None = None  # None: store.RPC_DEADLINE_S


def route(
    method: str,
    path: str,
    handler: Handler,
    *,
    browser: bool = False,
    storage_budget_s: float = store.REQUEST_STORAGE_BUDGET_S,
    rpc_deadline_s: float | None = None,
) -> Route:
    """``path`` uses ``{name}`` placeholders for one path segment each. ``storage_budget_s``
    bounds the route's Firestore work: API routes answer well inside client timeouts, task
    routes (whose callers wait minutes) get a budget fit for bounded batches of work, and may
    allow each RPC longer than ``store.RPC_DEADLINE_S`` with ``rpc_deadline_s``."""
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path)
    pattern = re.compile(f"^{regex}$")
    return Route(method, path, pattern, handler, browser, storage_budget_s, rpc_deadline_s)


def json_response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> Response:
    payload = "" if body is None else json_text.dumps(body)
    return Response(payload, status=status, headers=headers, mimetype="application/json")


def error_response(err: InletError) -> Response:
    body = {"error": {"code": err.code, "message": err.message, **err.details}}
    return json_response(err.status, body, err.headers)


def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes without reading past the cap."""
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"body is larger than {limit} bytes")
    try:
        body = request.stream.read(limit + 1)
    except ClientDisconnected:
        raise BadRequest("the body ended before its announced length") from None
    if len(body) > limit:
        raise PayloadTooLarge(f"body is larger than {limit} bytes")
    if length is not None and len(body) != length:
        raise BadRequest("the body ended before its announced length")
    return body


def page_limit(value: int | str | None, default: int, maximum: int) -> int:
    """A list's ``limit``: absent is ``default``; else an integer from 1 to ``maximum`` written
    in plain ASCII digits (``int()`` alone would take " 5", "+5" or Arabic-Indic digits)."""
    if value is None:
        return default
    if isinstance(value, str):
        value = int(value) if re.fullmatch(r"[0-9]{1,3}", value) else 0
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise BadRequest(f"limit must be an integer from 1 to {maximum}")
    return value


def json_body(request: Request, limit: int = 64 * 1024) -> dict[str, Any]:
    """A JSON object body for the management APIs; an empty body reads as ``{}``."""
    raw = read_body(request, limit)
    if not raw.strip():
        return {}
    value = strict_json.parse(raw)
    if not isinstance(value, dict):
        raise BadRequest("body must be a JSON object")
    return value


class App:
    """Routes a request, maps errors to JSON, and writes one log line per request."""

    def __init__(
        self,
        service: str,
        routes: Iterable[Route],
        *,
        project: str = "",
        cors_origins: Iterable[str] = (),
    ) -> None:
        self.service = service
        self.project = project
        self.routes = [route("GET", "/health", self._health), *routes]
        self.cors_origins = frozenset(cors_origins)
        if has_app_context():
            # Imported by functions-framework, inside its Flask app: the answers its own routing
            # gives (a path its `<path:path>` rule cannot match, such as one holding a newline;
            # /robots.txt) are JSON errors like ours, and read no body either.
            current_app.register_error_handler(HTTPException, self._framework_error)

    def __call__(self, request: Request) -> Response:
        ctx = context.RequestContext(
            request_id=_request_id(request),
            trace=request.headers.get("X-Cloud-Trace-Context", "").split("/")[0] or None,
        )
        ctx.storage_deadline = ctx.started + store.REQUEST_STORAGE_BUDGET_S
        token = context.activate(ctx)
        response: Response | None = None
        matched: Route | None = None
        error_type: str | None = None  # carried by the request's one log line
        error_code: str | None = None  # the refusal's reason, for the log-based metrics
        try:
            matched, params = self._match(request)
            ctx.storage_deadline = ctx.started + matched.storage_budget_s
            ctx.rpc_deadline_s = matched.rpc_deadline_s
            if request.method == "OPTIONS" and matched.browser:
                response = Response(status=204)
            else:
                response = matched.handler(request, **params)
        except InletError as err:
            error_code = err.code
            response = error_response(err)
        except store.storage_errors() as err:
            error_type = type(err).__name__
            error_code = StorageUnavailable.code
            response = error_response(StorageUnavailable())
        except Exception as err:  # the one place a bug becomes a 500, never a stack trace
            error_type = type(err).__name__
            if _is_credentials_outage(err):
                error_code = StorageUnavailable.code
                response = error_response(StorageUnavailable(CREDENTIALS_UNAVAILABLE))
            else:
                error_code = InletError.code
                response = error_response(InletError("internal error"))
                self._report(request, err, ctx)
        finally:
            context.deactivate(token)
        if matched is not None and matched.browser:
            self._cors(request, response)
        response.headers["X-Request-Id"] = ctx.request_id
        self._log(request, response, ctx, matched, error_type, error_code)
        _end_body(request)
        return response

    def _match(self, request: Request) -> tuple[Route, dict[str, str]]:
        path = request.path.rstrip("/") or "/"
        allowed: set[str] = set()
        for candidate in self.routes:
            found = candidate.pattern.match(path)
            if not found:
                continue
            if candidate.method == request.method or (
                request.method == "OPTIONS" and candidate.browser
            ):
                return candidate, found.groupdict()
            allowed |= {candidate.method, "OPTIONS"} if candidate.browser else {candidate.method}
        if allowed:
            # RFC 9110 section 15.5.6: a 405 lists the methods the resource supports.
            raise MethodNotAllowed(
                f"{request.method} is not allowed on {path}",
                headers={"Allow": ", ".join(sorted(allowed))},
            )
        raise NotFound(f"no route for {path}")

    def _cors(self, request: Request, response: Response) -> None:
        origin = request.headers.get("Origin")
        if not origin or origin not in self.cors_origins:
            return
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = (
                "GET, POST, PUT, PATCH, DELETE, OPTIONS"
            )
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Max-Age"] = "600"

    def _framework_error(self, err: HTTPException) -> Response:
        status = err.code or 500
        code = {404: NotFound.code, 405: MethodNotAllowed.code}.get(status, BadRequest.code)
        response = json_response(status, {"error": {"code": code, "message": err.name}})
        _end_body(current_request)
        return response

    def _health(self, request: Request) -> Response:
        return json_response(200, {"status": "ok", "service": self.service})

    def _report(self, request: Request, err: Exception, ctx: context.RequestContext) -> None:
        """The stack trace of a 500, where an operator sees it: Cloud Error Reporting."""
        logs.report_error(
            err,
            self.service,
            context={"httpRequest": {"method": request.method, "url": request.path}},
            **_ids(ctx, self.project),
        )

    def _log(
        self,
        request: Request,
        response: Response,
        ctx: context.RequestContext,
        matched: Route | None,
        error_type: str | None,
        error_code: str | None,
    ) -> None:
        latency = time.monotonic() - ctx.started
        severity = "ERROR" if response.status_code >= 500 else "INFO"
        logs.log(
            severity,
            f"{request.method} {request.path} {response.status_code}",
            service=self.service,
            # The route's template, not the path: ids in paths would make every source its own
            # metric series (infra/monitoring.py counts requests by service, route and status).
            route=matched.path if matched is not None else "unmatched",
            httpRequest={
                "requestMethod": request.method,
                "requestUrl": request.path,  # never the query string
                "status": response.status_code,
                "latency": f"{latency:.6f}s",
                "userAgent": request.headers.get("User-Agent", "")[:200],
                "remoteIp": request.remote_addr,
                "requestSize": str(request.content_length or 0),
            },
            firestoreOps=ctx.firestore_ops,
            firestoreReads=ctx.firestore_reads,
            firestoreWrites=ctx.firestore_writes,
            **ctx.log_fields,
            **({"errorType": error_type} if error_type else {}),
            **({"errorCode": error_code} if error_code else {}),
            **_ids(ctx, self.project),
        )


CREDENTIALS_UNAVAILABLE = "Google credentials are unavailable, retry later"


def _is_credentials_outage(err: Exception) -> bool:
    """google.auth could not obtain or refresh credentials (the metadata server or the token
    endpoint did not answer): storage is unavailable for now, a 503 to retry, not a bug."""
    from google.auth import exceptions as auth_errors

    return isinstance(
        err,
        (
            auth_errors.TransportError,
            auth_errors.RefreshError,
            auth_errors.DefaultCredentialsError,
        ),
    )


# A refused body announced at most this long is read to its end and dropped, so the client's
# connection stays open for its next request (Go's net/http drains a refused body for the same
# reason). Longer or chunked bodies are never read past the route's cap.
DRAIN_LIMIT = 1024 * 1024


def _end_body(request: Request) -> None:
    """Nothing more is kept from this request's body once it has been answered.

    functions-framework calls ``request.get_data()`` after every non-streamed answer, which would
    read into memory whatever the handler left: a refused 30 MiB body, or any body sent to a route
    that never reads one (docs/operations.md). What is left of a body announced at most
    ``DRAIN_LIMIT`` long is read in one call and dropped, so the connection is kept alive;
    otherwise the stream is emptied, ``get_data()`` reads nothing, and gunicorn discards at most
    64 KiB before it closes the connection instead of keeping it alive. A handler that read its
    body whole loses nothing.

    The drain asks for the whole rest in one read, as ``get_data()`` does: asked for 256 KiB
    at a time while more had arrived, gunicorn's reader sliced and copied the surplus on every
    read. A 300 KiB refusal cost 1.20 ms of CPU that way and costs 1.00 ms in one read (the
    bare endpoint: 0.90), in alternating phases of one run here. It holds at most
    ``DRAIN_LIMIT`` for a moment, as ``get_data()`` would have held the whole body.
    """
    length = request.content_length
    if length is not None and length <= DRAIN_LIMIT:
        try:
            while request.stream.read(DRAIN_LIMIT):
                pass
        except (ClientDisconnected, OSError):
            pass  # the client left: gunicorn closes the connection
    request.stream = io.BytesIO()


def _request_id(request: Request) -> str:
    given = request.headers.get("X-Request-Id", "")
    # Not a secret (a client may send its own): 128 bits from the process's generator, without
    # the system call os.urandom makes, which hands the GIL to another thread on every request.
    return given if _REQUEST_ID.match(given) else f"{random.getrandbits(128):032x}"


def _ids(ctx: context.RequestContext, project: str) -> dict[str, str]:
    ids = {"requestId": ctx.request_id}
    if ctx.trace:
        ids["logging.googleapis.com/trace"] = (
            f"projects/{project}/traces/{ctx.trace}" if project else ctx.trace
        )
    return ids
