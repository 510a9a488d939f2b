"""The development JWT issuer: an RSA key on disk and its JWKS served on loopback (README
"Configuration").

Clerk session tokens for ``make dev`` and the tests, and the OIDC tokens the tasks emulator
cannot attach, are all signed with this key.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.loopback import LoopbackServer, QuietHandler
from services.common.auth import public_jwks, sign_local_token

JWKS_PATH = "/.well-known/jwks.json"
DEV_AUTHORIZED_PARTY = "http://localhost:3000"
TASKS_SERVICE_ACCOUNT = "inlet-tasks@inlet-dev.iam.gserviceaccount.com"
TASKS_AUDIENCE = "inlet-tasks"


def ensure_key(path: Path) -> bytes:
    """The signing key, created once with owner-only permissions."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.touch(mode=0o600)
        path.write_bytes(pem)
    return path.read_bytes()


class Issuer(LoopbackServer):
    """Serves the JWKS of one key; its base URL is the issuer (``iss``)."""

    def __init__(self, key_pem: bytes, port: int = 0) -> None:
        self.key_pem = key_pem
        body = json.dumps(public_jwks(key_pem)).encode()

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] in (JWKS_PATH, "/health"):
                    payload = body if self.path.startswith(JWKS_PATH) else b'{"status":"ok"}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                else:
                    self.send_error(404)

        super().__init__(Handler, port)
        self.jwks_url = self.url + JWKS_PATH

    def task_token(self, audience: str = TASKS_AUDIENCE, email: str = TASKS_SERVICE_ACCOUNT) -> str:
        return task_token(self.key_pem, self.url, audience, email)

    def session_token(
        self, sub: str, org: str | None = None, role: str = "admin", ttl_s: int = 3600, **extra
    ) -> str:
        return session_token(self.key_pem, self.url, sub, org, role, ttl_s, **extra)


def task_token(
    key_pem: bytes,
    issuer: str,
    audience: str = TASKS_AUDIENCE,
    email: str = TASKS_SERVICE_ACCOUNT,
) -> str:
    """An OIDC token shaped like the ones Cloud Tasks and Cloud Scheduler attach."""
    claims = {"iss": issuer, "aud": audience, "sub": email, "email": email}
    return sign_local_token(key_pem, {**claims, "email_verified": True})


def session_token(
    key_pem: bytes,
    issuer: str,
    sub: str,
    org: str | None = None,
    role: str = "admin",
    ttl_s: int = 3600,
    **extra,
) -> str:
    """A token in Clerk's session-token shape (v2 ``o`` claim plus v1 ``org_id``/``org_role``)."""
    claims = {"iss": issuer, "sub": sub, "sid": f"sess_dev_{sub}", "azp": DEV_AUTHORIZED_PARTY}
    if org:
        claims.update(
            {"o": {"id": org, "rol": role}, "org_id": org, "org_role": f"org:{role}", "v": 2}
        )
    claims.update(extra)
    return sign_local_token(key_pem, claims, ttl_s)
