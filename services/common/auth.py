"""Who is calling: Clerk session tokens or admin API keys for the APIs, OIDC tokens for task
endpoints (SPEC 4).

Session and task tokens are RS256 JWTs checked against a JWKS that is fetched lazily, cached,
and re-fetched when a token names an unknown ``kid`` (key rotation). Admin API keys
(``inlet_ak_…``) are checked by ``admin_keys``; ``authenticate`` tells the two kinds apart.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from flask import Request

from services.common.admin_keys import AdminKeyVerifier, AdminPrincipal, looks_like_admin_key
from services.common.config import ClerkAuthSettings, TaskSettings
from services.common.errors import Forbidden, InletError, Unauthorized

if TYPE_CHECKING:
    import jwt

# PyJWT and its cryptography backend are imported on first use, not at start-up (cold start).

LEEWAY_S = 60
_GOOGLE_ISSUERS = frozenset({"https://accounts.google.com", "accounts.google.com"})


class AuthUnavailable(InletError):
    """The JWKS could not be fetched; the caller should retry."""

    status, code = 503, "auth_unavailable"

    def __init__(self, message: str, **kw) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("Retry-After", "5")


@dataclass(frozen=True)
class Principal:
    """The caller of a Clerk-authenticated API and the tenant it acts for."""

    user_id: str
    org_id: str | None = None
    org_role: str | None = None
    kind: ClassVar[str] = "clerk_session"  # AdminPrincipal.kind is "admin_key"

    @property
    def owner(self) -> str:
        """Resources belong to the active organization when there is one, else to the user."""
        return f"org:{self.org_id}" if self.org_id else f"user:{self.user_id}"

    @property
    def may_administer(self) -> bool:
        """Only org admins create, rotate or delete an org's resources; a user owns their own."""
        return self.org_id is None or self.org_role == "org:admin"


_jwks_lock = threading.Lock()
_jwks_clients: dict[str, jwt.PyJWKClient] = {}


def _jwks(url: str) -> jwt.PyJWKClient:
    import jwt

    with _jwks_lock:
        found = _jwks_clients.get(url)
        if found is None:
            found = jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)
            _jwks_clients[url] = found
        return found


def bearer_token(request: Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token")
    return token.strip()


def _decode(token: str, jwks_url: str, **options: Any) -> dict[str, Any]:
    import jwt

    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != "RS256":
            raise Unauthorized("token must be RS256")
        key = _jwks(jwks_url).get_signing_key(header.get("kid") or "").key
        return jwt.decode(token, key, algorithms=["RS256"], leeway=LEEWAY_S, **options)
    except jwt.PyJWKClientConnectionError:
        raise AuthUnavailable("signing keys could not be fetched, retry later") from None
    except jwt.PyJWTError:
        raise Unauthorized("invalid token") from None


# Who may call an API that takes both: a Clerk session (a user, acting for their tenant) or an
# admin API key (the team's backend, deployment-wide: users, and queries and blocks of any source).
Caller = Principal | AdminPrincipal


def authenticate(
    request: Request, settings: ClerkAuthSettings, admin_keys: AdminKeyVerifier
) -> Caller:
    """The caller behind ``Authorization: Bearer``: an admin key (``inlet_ak_…``) or a Clerk
    session token. No token, a malformed or unknown or revoked key, or a bad token: 401."""
    token = bearer_token(request)
    if looks_like_admin_key(token):
        return admin_keys.verify(token)
    return _session(token, settings)


def require_admin_key(caller: Caller) -> AdminPrincipal:
    """Admin-only routes (``/v1/users``): a valid Clerk session is a 403, not a 401."""
    if not isinstance(caller, AdminPrincipal):
        raise Forbidden("this route takes an admin API key")
    return caller


def require_session(caller: Caller) -> Principal:
    """Routes about the calling user (``/v1/me``): an admin key has no user, so a 403."""
    if not isinstance(caller, Principal):
        raise Forbidden("this route takes a Clerk session token")
    return caller


def verify_session(request: Request, settings: ClerkAuthSettings) -> Principal:
    """A Clerk session token from ``Authorization: Bearer``, verified, as a principal."""
    return _session(bearer_token(request), settings)


def _session(token: str, settings: ClerkAuthSettings) -> Principal:
    claims = _decode(
        token,
        settings.jwks_url,
        issuer=settings.issuer,
        options={"require": ["exp", "sub", "iss"], "verify_aud": False},
    )
    azp = claims.get("azp")
    if azp is not None and azp not in settings.authorized_parties:
        raise Unauthorized("token was issued for another party")
    org = claims.get("o") if isinstance(claims.get("o"), dict) else None
    org_id = (org or {}).get("id") or claims.get("org_id")
    role = (org or {}).get("rol") or claims.get("org_role")
    if role and not str(role).startswith("org:"):
        role = f"org:{role}"  # v2 tokens carry the role without its "org:" prefix
    return Principal(user_id=str(claims["sub"]), org_id=org_id or None, org_role=role)


def verify_task_token(request: Request, settings: TaskSettings) -> dict[str, Any]:
    """An OIDC token from Cloud Tasks or Cloud Scheduler for our audience and identity."""
    claims = _decode(
        bearer_token(request),
        settings.oidc_certs_url,
        audience=settings.audience,
        options={"require": ["exp", "iss", "aud"], "verify_iss": False},
    )
    issuers = _GOOGLE_ISSUERS if settings.oidc_issuer in _GOOGLE_ISSUERS else {settings.oidc_issuer}
    if claims.get("iss") not in issuers:
        raise Unauthorized("invalid token")
    if claims.get("email") != settings.service_account or claims.get("email_verified") is False:
        raise Unauthorized("token is not from the tasks service account")
    return claims


# --- Local development issuer ------------------------------------------------------------------
# The emulators attach no tokens and Clerk is offline, so `make dev` and the tests sign tokens
# with a local RSA key whose JWKS is served on loopback (SPEC section 6).


def key_id(public_jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint: the same key always gets the same ``kid``."""
    canonical = json.dumps(
        {k: public_jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@functools.lru_cache(maxsize=4)
def _signing_key(private_key_pem: bytes) -> tuple[Any, dict[str, Any]]:
    """The loaded key and its public JWK, once per key: loading a PEM checks the RSA key,
    which costs milliseconds, too much for every task a busy instance enqueues."""
    import jwt
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    private = load_pem_private_key(private_key_pem, password=None)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    jwk.update({"kid": key_id(jwk), "use": "sig", "alg": "RS256"})
    return private, jwk


def public_jwks(private_key_pem: bytes) -> dict[str, Any]:
    return {"keys": [dict(_signing_key(private_key_pem)[1])]}


def sign_local_token(private_key_pem: bytes, claims: dict[str, Any], ttl_s: int = 3600) -> str:
    """An RS256 token from the development issuer with ``iat``/``nbf``/``exp`` filled in."""
    import jwt

    private, jwk = _signing_key(private_key_pem)
    now = int(time.time())
    body = {"iat": now, "nbf": now, "exp": now + ttl_s, "jti": uuid.uuid4().hex, **claims}
    return jwt.encode(body, private, algorithm="RS256", headers={"kid": jwk["kid"]})
