"""The one error vocabulary: each exception knows its HTTP status and JSON error code."""

from __future__ import annotations


class InletError(Exception):
    """Base of every error a service answers with; rendered as {"error": {"code", "message"}},
    plus any ``details`` (e.g. a schema violation's ``pointer`` and ``keyword``) beside them."""

    status = 500
    code = "internal"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        headers=None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})
        self.details: dict[str, object] = dict(details or {})


class BadRequest(InletError):
    status, code = 400, "bad_request"


class Unauthorized(InletError):
    status, code = 401, "unauthorized"


class Forbidden(InletError):
    status, code = 403, "forbidden"


class NotFound(InletError):
    status, code = 404, "not_found"


class MethodNotAllowed(InletError):
    status, code = 405, "method_not_allowed"


class Conflict(InletError):
    status, code = 409, "conflict"


class Unprocessable(InletError):
    """Well-formed and authentic, but refused as it stands (RFC 9110 422 Unprocessable Content)."""

    status, code = 422, "unprocessable"


class TooManyRequests(InletError):
    """Past a rate limit (RFC 6585); ``Retry-After`` says when to try again."""

    status, code = 429, "rate_limited"


class PayloadTooLarge(InletError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(InletError):
    status, code = 415, "unsupported_media_type"


class StorageUnavailable(InletError):
    """Firestore did not answer in time; callers (Svix, partners, Cloud Tasks) should retry."""

    status, code = 503, "storage_unavailable"

    def __init__(self, message: str = "storage is unavailable, retry later", **kw) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("Retry-After", "5")


class UpstreamUnavailable(InletError):
    """A service Inlet depends on (Clerk's Backend API) failed or throttled; retry later."""

    status, code = 503, "upstream_unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 5, **kw) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("Retry-After", str(retry_after_s))


class NotConfigured(InletError):
    """The deployment lacks the configuration a route needs (RFC 9110 501: the server does not
    support what the request asks); retrying does not help until an operator sets it."""

    status, code = 501, "not_configured"
