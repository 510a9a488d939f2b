"""Svix signature verification over the raw body, with every library failure mapped to 400/401.

svix raises its own ``WebhookVerificationError`` but also ``ValueError``, ``binascii.Error`` and
``UnicodeDecodeError`` on hostile input; none of them may become a 500 (SPEC section 1).
"""

from __future__ import annotations

import binascii

from flask import Request

from services.common.errors import BadRequest, Unauthorized
from services.common.store import is_document_id

HEADERS = ("svix-id", "svix-timestamp", "svix-signature")


def svix_headers(request: Request) -> dict[str, str]:
    """The three Svix headers, or 400 naming the missing ones."""
    found = {name: request.headers.get(name, "") for name in HEADERS}
    missing = [name for name, value in found.items() if not value]
    if missing:
        raise BadRequest(f"missing header(s): {', '.join(missing)}", code="missing_headers")
    if not is_document_id(found["svix-id"]):
        raise BadRequest("malformed svix-id", code="malformed_headers")
    return found


def verify(webhook, body: bytes, headers: dict[str, str]) -> None:
    """Raises Unauthorized unless one signature matches and the timestamp is within ±5 min."""
    from svix.webhooks import WebhookVerificationError

    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("body is not UTF-8", code="malformed_body") from None
    try:
        webhook.verify(body, headers)
    except (WebhookVerificationError, ValueError, binascii.Error, TypeError, KeyError):
        # UnicodeDecodeError is a ValueError. The message stays generic on purpose.
        raise Unauthorized("invalid signature or timestamp", code="invalid_signature") from None
