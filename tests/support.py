"""Test doubles that speak real protocols on loopback: a task target and Clerk's Backend API."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import requests

from devstack.loopback import LoopbackServer, QuietHandler


@dataclass
class ReceivedTask:
    path: str
    headers: dict[str, str]
    body: dict
    arrived: float = field(default_factory=time.time)


class TaskReceiver(LoopbackServer):
    """Records every HTTP task the tasks emulator dispatches and answers 200."""

    def __init__(self) -> None:
        self.tasks: list[ReceivedTask] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                with receiver._lock:
                    receiver.tasks.append(
                        ReceivedTask(self.path, dict(self.headers), json.loads(raw or b"{}"))
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler)

    def clear(self) -> None:
        with self._lock:
            self.tasks.clear()

    def received(self) -> list[ReceivedTask]:
        with self._lock:
            return list(self.tasks)


@dataclass(frozen=True)
class ClerkRequest:
    path: str
    limit: int | None
    offset: int | None
    status: int


class FakeClerkAPI(LoopbackServer):
    """Clerk's Backend API read endpoints, as documented (https://clerk.com/docs/reference/backend-api).

    ``GET /v1/users`` answers a bare array and ``/v1/users/count`` ``{object, total_count}``;
    ``/v1/organizations`` and ``/v1/organization_memberships`` answer ``{data, total_count}``.
    ``limit`` (1-500, default 10) and ``offset`` page, ``order_by=+created_at`` keeps the list
    order (objects are kept oldest first); a wrong bearer key is a 401 and a bad parameter a 422,
    both in Clerk's ``{"errors": [...]}`` shape. ``GET /v1/users/{id}`` and
    ``/v1/organizations/{id}`` answer the object or 404 ``resource_not_found``;
    ``/v1/users/{id}/organization_memberships`` lists one user's memberships.
    A test can ask for one 429 with ``Retry-After`` at a page or an object (``offset=None``),
    make one fail with 500 until ``recover()``, hold object reads until ``release()``, and change
    the lists before a page is answered (``before_page``) to delete or create objects mid-run.
    """

    def __init__(self, secret_key: str, users=(), organizations=(), memberships=()) -> None:
        self.secret_key = secret_key
        self.lists: dict[str, list[dict]] = {
            "/v1/users": list(users),
            "/v1/organizations": list(organizations),
            "/v1/organization_memberships": list(memberships),
        }
        self.requests: list[ClerkRequest] = []
        self._throttled: dict[tuple[str, int], int] = {}  # (path, offset) -> Retry-After
        self._failing: set[tuple[str, int | None]] = set()
        self._lock = threading.Lock()
        self._held = threading.Event()
        self._held.set()
        self.before_page: Callable[[str, int], None] | None = None
        self.arrived: list[str] = []  # object reads as they arrive, before any hold
        api = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                status, body, headers = api._answer(self.path, self.headers.get("Authorization"))
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(raw)

        super().__init__(Handler)

    def throttle_once(self, path: str, offset: int | None = None, retry_after: int = 1) -> None:
        """The next request for this page (or object) answers 429 with ``Retry-After``."""
        with self._lock:
            self._throttled[(path, offset)] = retry_after

    def fail(self, path: str, offset: int | None = None) -> None:
        """Every request for this page (or object) answers 500 until ``recover()``."""
        with self._lock:
            self._failing.add((path, offset))

    def hold(self) -> None:
        """Object reads (``GET /v1/users/{id}``...) wait until ``release()``."""
        self._held.clear()

    def release(self) -> None:
        self._held.set()

    def remove(self, path: str, object_id: str) -> None:
        """Delete an object in Clerk: later pages and reads no longer find it."""
        with self._lock:
            self.lists[path] = [o for o in self.lists[path] if o["id"] != object_id]

    def add(self, path: str, obj: dict) -> None:
        """Create an object in Clerk: the newest, so it sorts last by creation time."""
        with self._lock:
            self.lists[path].append(obj)

    def recover(self) -> None:
        with self._lock:
            self._failing.clear()

    def seen(self) -> list[ClerkRequest]:
        with self._lock:
            return list(self.requests)

    def paths(self, status: int | None = None) -> list[str]:
        """Every path requested (answered with ``status``, when given), in order."""
        return [r.path for r in self.seen() if status is None or r.status == status]

    def offsets(self, path: str, status: int = 200) -> list[int | None]:
        """The offsets of the pages of ``path`` answered with ``status``, in order."""
        return [r.offset for r in self.seen() if r.path == path and r.status == status]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def _answer(self, target: str, authorization: str | None) -> tuple[int, object, dict]:
        url = urlsplit(target)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        status, body, headers = self._route(url.path, query, authorization)
        with self._lock:
            self.requests.append(
                ClerkRequest(url.path, _int(query.get("limit")), _int(query.get("offset")), status)
            )
        return status, body, headers

    def _route(self, path: str, query: dict, authorization: str | None):
        if authorization != f"Bearer {self.secret_key}":
            return 401, _clerk_error("authentication_invalid", "Invalid authentication"), {}
        if path == "/v1/users/count":
            return 200, {"object": "total_count", "total_count": len(self.lists["/v1/users"])}, {}
        if path not in self.lists:
            return self._object(path)
        limit, offset = _int(query.get("limit", "10")), _int(query.get("offset", "0"))
        if limit is None or not 1 <= limit <= 500 or offset is None or offset < 0:
            return 422, _clerk_error("form_param_value_invalid", "limit or offset invalid"), {}
        if self.before_page is not None:
            self.before_page(path, offset)
        with self._lock:
            retry_after = self._throttled.pop((path, offset), None)
            failing = (path, offset) in self._failing
        if retry_after is not None:
            error = _clerk_error("too_many_requests", "Too many requests")
            return 429, error, {"Retry-After": str(retry_after)}
        if failing:
            return 500, _clerk_error("internal_clerk_error", "Something went wrong"), {}
        items = self.lists[path][offset : offset + limit]
        if path == "/v1/users":
            return 200, items, {}
        return 200, {"data": items, "total_count": len(self.lists[path])}, {}

    def _object(self, path: str):
        """One object: a user, an organization, or one user's memberships; else 404."""
        with self._lock:
            self.arrived.append(path)
        self._held.wait(30)
        parts = path.strip("/").split("/")
        with self._lock:
            retry_after = self._throttled.pop((path, None), None)
            failing = (path, None) in self._failing
            users = {u["id"]: u for u in self.lists["/v1/users"]}
            orgs = {o["id"]: o for o in self.lists["/v1/organizations"]}
            memberships = list(self.lists["/v1/organization_memberships"])
        if retry_after is not None:
            error = _clerk_error("too_many_requests", "Too many requests")
            return 429, error, {"Retry-After": str(retry_after)}
        if failing:
            return 500, _clerk_error("internal_clerk_error", "Something went wrong"), {}
        found = None
        if len(parts) == 3 and parts[1] == "users":
            found = users.get(parts[2])
        elif len(parts) == 3 and parts[1] == "organizations":
            found = orgs.get(parts[2])
        elif (
            parts[1:2] == ["users"]
            and parts[3:] == ["organization_memberships"]
            and (parts[2] in users)
        ):
            mine = [m for m in memberships if m["public_user_data"]["user_id"] == parts[2]]
            found = {"data": mine, "total_count": len(mine)}
        if found is None:
            return 404, _clerk_error("resource_not_found", "not found"), {}
        return 200, found, {}


def _clerk_error(code: str, message: str) -> dict:
    return {"errors": [{"code": code, "message": message, "long_message": message}]}


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def request_log(stack, service: str, request_id: str) -> dict:
    """The one structured log line a service wrote for a request."""
    lines = stack.processes[service].log_path.read_text().splitlines()
    for line in reversed(lines):
        if request_id in line and line.startswith("{"):
            entry = json.loads(line)
            if entry.get("requestId") == request_id and "httpRequest" in entry:
                return entry
    raise AssertionError(f"no log line for request {request_id}")


def sweep(stack) -> dict:
    """Run ingest's minute sweep as Cloud Scheduler would, with its OIDC token."""
    answer = requests.post(
        f"{stack.url('ingest')}/tasks/sweep",
        headers={"Authorization": f"Bearer {stack.issuer.task_token()}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()
