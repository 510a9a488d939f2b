"""Clerk's Backend API (https://clerk.com/docs/reference/backend-api): one client for every service.

The backfill and the reconciliation page through the list endpoints with bounded retries (a 429
waits ``Retry-After``; 5xx and network errors back off). Request paths (``/v1/me``'s fallback)
read one object with ``get_user`` and never retry at length: a failure surfaces at once as
:class:`ClerkUnavailable`, carrying Clerk's ``Retry-After`` for the caller's 503.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from services.common.config import Env

if TYPE_CHECKING:  # imported when a client is made: no service pays for it at start-up
    import requests

DEFAULT_API_URL = "https://api.clerk.com"
MAX_LIMIT = 500  # Clerk's largest page
HTTP_TIMEOUT_S = (5.0, 30.0)  # connect, read: for listings
REQUEST_TIMEOUT_S = (2.0, 4.0)  # connect, read: one object on a request path
# Oldest first: objects created while a listing is read land after the pages not yet read.
ORDER_BY = "+created_at"


@dataclass(frozen=True)
class ClerkAPISettings:
    """Where the Backend API is and the key it takes (docs/operations.md "Configuration")."""

    api_url: str
    secret_key: str = field(repr=False)  # never printed

    @classmethod
    def from_env(cls, env: Env | None = None) -> ClerkAPISettings | None:
        """None when ``CLERK_SECRET_KEY`` is not set: callers treat Clerk as not configured."""
        env = env or Env()
        key = env.optional("CLERK_SECRET_KEY")
        if key is None:
            return None
        return cls(env.str("CLERK_API_URL", DEFAULT_API_URL).rstrip("/"), key)


@dataclass(frozen=True)
class RetryPolicy:
    """Tries per request: a 429 waits ``Retry-After``; 5xx and network errors back off."""

    attempts: int = 6
    backoff_s: float = 1.0  # the first wait; doubles each time
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 300.0  # a longer Retry-After is taken as this

    def backoff(self, attempt: int) -> float:
        return min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)


# One try: a request path answers 503 with Retry-After rather than holding its caller.
NO_RETRY = RetryPolicy(attempts=1)


class ClerkAPIError(RuntimeError):
    """Clerk's Backend API refused a request or kept failing after every retry."""

    def __init__(
        self, path: str, status: int | None, detail: str, retry_after: float | None = None
    ) -> None:
        answer = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"GET {path}: {answer} ({detail})")
        self.path = path
        self.status = status
        self.retry_after = retry_after


class ClerkUnavailable(ClerkAPIError):
    """A transient failure (429, 5xx, no answer): try again after ``retry_after`` seconds."""


@dataclass(frozen=True)
class Page:
    items: list[Any]
    total: int | None  # Clerk's total_count, when the response carries it
    end: int = 0  # the offset just past this page (set by ``ClerkAPI.pages``)
    last: bool = False  # nothing follows it (set by ``ClerkAPI.pages``)


def parse_page(path: str, body: Any) -> Page:
    """Clerk lists come in two shapes: ``/v1/users`` is a bare array, the others
    ``{"data": [...], "total_count": N}``."""
    if isinstance(body, list):
        return Page(body, None)
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        total = body.get("total_count")
        return Page(body["data"], total if isinstance(total, int) else None)
    raise ClerkAPIError(path, 200, "not a Clerk list")


class ClerkAPI:
    """The Backend API's read endpoints over one HTTP session, with bounded retries."""

    def __init__(
        self,
        settings: ClerkAPISettings,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        timeout: tuple[float, float] = HTTP_TIMEOUT_S,
        user_agent: str = "inlet",
    ) -> None:
        self._base = settings.api_url
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._timeout = timeout
        if session is None:
            import requests

            session = requests.Session()
        self._session = session
        self._session.headers.update(
            {
                "Authorization": f"Bearer {settings.secret_key}",
                "Accept": "application/json",
                "User-Agent": user_agent,
            }
        )

    def close(self) -> None:
        self._session.close()

    def page(self, path: str, *, limit: int, offset: int) -> Page:
        params = {"limit": limit, "offset": offset, "order_by": ORDER_BY}
        return parse_page(path, self._get(path, params))

    def pages(self, path: str, *, limit: int, offset: int = 0, overlap: int = 0) -> Iterator[Page]:
        """Pages oldest first from ``offset``, each starting ``overlap`` objects before the
        previous one ended (so deletions between two reads shift nothing past the next page).
        A short page is the last; so is reaching Clerk's total, which saves one empty request."""
        overlap = max(0, min(overlap, limit - 1))
        while True:
            page = self.page(path, limit=limit, offset=offset)
            end = offset + len(page.items)
            last = len(page.items) < limit or (page.total is not None and end >= page.total)
            yield Page(page.items, page.total, end, last)
            if last:
                return
            offset = end - overlap

    def count(self, path: str) -> int | None:
        total = self._get(path, {})
        total = total.get("total_count") if isinstance(total, dict) else None
        return total if isinstance(total, int) else None

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        """``GET /v1/users/{id}``: the user, or None when Clerk answers 404."""
        return self._get_object(f"/v1/users/{quote(user_id, safe='')}")

    def get_organization(self, org_id: str) -> dict[str, Any] | None:
        """``GET /v1/organizations/{id}``: the organization, or None when Clerk answers 404."""
        return self._get_object(f"/v1/organizations/{quote(org_id, safe='')}")

    def user_memberships(self, user_id: str) -> list[dict[str, Any]] | None:
        """Every membership of one user (``GET /v1/users/{id}/organization_memberships``);
        None when the user is gone (404). Clerk has no GET for one membership by id."""
        path = f"/v1/users/{quote(user_id, safe='')}/organization_memberships"
        found: list[dict[str, Any]] = []
        while True:
            body = self._get(path, {"limit": MAX_LIMIT, "offset": len(found)}, missing_ok=True)
            if body is None:
                return None
            page = parse_page(path, body)
            found.extend(item for item in page.items if isinstance(item, dict))
            if len(page.items) < MAX_LIMIT:
                return found

    def _get_object(self, path: str) -> dict[str, Any] | None:
        body = self._get(path, {}, missing_ok=True)
        if body is not None and not isinstance(body, dict):
            raise ClerkAPIError(path, 200, "not a Clerk object")
        return body

    def _get(self, path: str, params: dict[str, Any], missing_ok: bool = False) -> Any:
        import requests

        attempt = 0
        while True:
            attempt += 1
            last = attempt >= self._retry.attempts
            try:
                response = self._session.get(
                    self._base + path, params=params, timeout=self._timeout
                )
            except (requests.ConnectionError, requests.Timeout) as err:
                if last:
                    raise ClerkUnavailable(path, None, type(err).__name__) from None
                self._sleep(self._retry.backoff(attempt))
                continue
            status = response.status_code
            if status == 429 or status >= 500:
                wait = _retry_after(response) if status in (429, 503) else None
                if last:
                    raise ClerkUnavailable(path, status, _detail(response), wait)
                if wait is None:
                    wait = self._retry.backoff(attempt)
                self._sleep(min(wait, self._retry.max_retry_after_s))
                continue
            if status == 404 and missing_ok:
                return None
            if status == 401:
                raise ClerkAPIError(path, status, "Clerk refused CLERK_SECRET_KEY")
            if status != 200:
                raise ClerkAPIError(path, status, _detail(response))
            try:
                return response.json()
            except ValueError:
                raise ClerkAPIError(path, status, "response is not JSON") from None


def _retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds: delta-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def _detail(response: requests.Response) -> str:
    """Clerk's own error code and message (``{"errors": [{code, message}]}``), else the reason."""
    try:
        first = response.json()["errors"][0]
        return f"{first.get('code')}: {first.get('message')}"
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return response.reason or "error"
