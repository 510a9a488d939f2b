"""Test doubles that speak real protocols on loopback (Clerk's Backend API), and log readers."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import requests

from devstack.loopback import LoopbackServer, QuietHandler


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

    @classmethod
    def directory(cls, secret_key: str, users: int) -> FakeClerkAPI:
        """A started instance holding ``users`` users (``user_1``…), three organizations and
        four memberships (``user_1``…``user_4``), each created in that order."""
        from tests import clerk

        return cls(
            secret_key,
            [
                clerk.user(f"user_{n}", 100 + n, email=f"u{n}@example.com")
                for n in range(1, users + 1)
            ],
            [clerk.organization(f"org_{n}", 100 + n, name=f"Org{n}") for n in range(1, 4)],
            [
                clerk.membership(f"orgmem_{n}", f"org_{1 + n % 3}", f"user_{n}", 100 + n)
                for n in range(1, 5)
            ],
        ).start()

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


class CuttableProxy:
    """A loopback TCP proxy in front of a gRPC server that can lose answers.

    ``swallow_answers()`` keeps forwarding what the client sends but drops what the server
    answers, as a network does when a reply is lost after the server acted; ``cut()`` then
    resets every connection, so the client sees the call fail (UNAVAILABLE) and retries on a
    fresh connection, which is forwarded normally again.
    """

    def __init__(self, upstream: str) -> None:
        import socket

        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        self._open: list = []
        self._swallowing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def swallow_answers(self) -> None:
        with self._lock:
            self._swallowing = True

    def cut(self) -> None:
        import socket

        with self._lock:
            self._swallowing = False
            conns, self._open = self._open, []
        for conn in conns:
            with contextlib.suppress(OSError):
                # An abortive close (RST), as a dropped network path looks to the client;
                # shutdown first, which also wakes the pump blocked reading this socket.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()

    def close(self) -> None:
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self._upstream)
            with self._lock:
                self._open += [client, server]
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source, target, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    drop = answers and self._swallowing
                if not drop:
                    target.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (source, target):
                with contextlib.suppress(OSError):
                    conn.close()


def wait_for(predicate, timeout_s: float = 15.0):
    """Poll ``predicate`` until it returns something truthy; its last answer otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    return predicate()


def refreshes(stack, source_id: str, reason: str | None = None, status: int = 200) -> list[dict]:
    """The query service's log lines for the refresh tasks it served for one source: how the
    tests observe that Cloud Tasks delivered (the line names the source and the reason)."""
    path = stack.processes["query"].log_path
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("{") or source_id not in line:
            continue
        entry = json.loads(line)
        request = entry.get("httpRequest") or {}
        if request.get("requestUrl") != "/tasks/refresh" or entry.get("sourceId") != source_id:
            continue
        if request.get("status") == status and reason in (None, entry.get("reason")):
            found.append(entry)
    return found


def store_events(db, source_id: str, events) -> list[str]:
    """Events written as ingest writes them, with chosen receive times: how tests build a
    history spread over days without waiting for it. ``events`` holds (receivedAt, body)."""
    import secrets

    collection = db.collection("sources").document(source_id).collection("events")
    ids = []
    batch, pending = db.batch(), 0
    for at, body in events:
        event_id = "evt_" + secrets.token_hex(12)
        raw = json.dumps(body).encode()
        record = {
            "receivedAt": at,
            "signedAt": at,
            "idempotencyKey": event_id,
            "bodySha256": hashlib.sha256(raw).digest(),
            "size": len(raw),
            "body": raw,
            "keyId": "key_test",
            "scheme": "inlet",
        }
        batch.set(collection.document(event_id), record)
        ids.append(event_id)
        pending += 1
        if pending == 400:
            batch.commit()
            batch, pending = db.batch(), 0
    if pending:
        batch.commit()
    return ids


def run_refresh(stack, source_id: str, reason: str = "event", **kw) -> requests.Response:
    """POST /tasks/refresh as Cloud Tasks would, with the task OIDC token."""
    return requests.post(
        f"{stack.url('query')}/tasks/refresh",
        json={"sourceId": source_id, "reason": reason},
        headers={"Authorization": f"Bearer {stack.issuer.task_token()}"},
        timeout=kw.pop("timeout", 120),
        **kw,
    )


def rollup_state(db, source_id: str) -> dict:
    """The source's stored rollup state (module query.rollup_store)."""
    ref = db.collection("sources").document(source_id).collection("rollup_state")
    snap = ref.document("state").get()
    return snap.to_dict() if snap.exists else {}


def rollup_buckets(db, source_id: str, key: str = "_all", granularity: str | None = None) -> list:
    """The stored buckets of one rolled-up field (by its key: ``_all`` or a path's key)."""
    tag = rollup_state(db, source_id)["fields"][key]["tag"]
    buckets = db.collection("sources").document(source_id).collection("rollups").stream()
    return [b.to_dict() for b in buckets if b.get("f") == tag and granularity in (None, b.get("g"))]


def age_event(db, source_id: str, event_id: str, by: dt.timedelta) -> None:
    """Move a stored event's receive time back, as if it had arrived ``by`` earlier."""
    ref = db.collection("sources").document(source_id).collection("events").document(event_id)
    ref.update({"receivedAt": ref.get().get("receivedAt") - by})


def legacy_key_record(
    db, source_id: str, key: str, event_id: str, body: bytes | None, expires: dt.datetime
) -> None:
    """An idempotency key stored the way Inlet did before one-write events (its own document
    in ``idempotency``, named by the key's SHA-256); ``body=None`` for those from before body
    digests were kept."""
    record: dict = {"eventId": event_id, "expireAt": expires}
    if body is not None:
        record["bodySha256"] = hashlib.sha256(body).digest()
    keys = db.collection("sources").document(source_id).collection("idempotency")
    keys.document(hashlib.sha256(key.encode()).hexdigest()).set(record)
