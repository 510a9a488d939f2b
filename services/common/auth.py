"""Who is calling: Clerk session tokens or admin API keys for the APIs, OIDC tokens for task
endpoints (docs/operations.md).

Session and task tokens are RS256 JWTs checked against a JWKS that is fetched lazily, kept at
most four minutes, and fetched again at once when a token names an unknown ``kid`` (key
rotation). Admin API keys (``inlet_ak_…``) are checked by ``admin_keys``; ``authenticate``
tells the two kinds apart.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from flask import Request

from services.common.admin_keys import AdminKeyVerifier, AdminPrincipal, looks_like_admin_key
from services.common.config import ClerkAuthSettings, TaskSettings
from services.common.errors import Forbidden, InletError, Unauthorized

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


MAX_KEY_AGE_S = 240.0  # a kid withdrawn from the JWKS stops verifying within five minutes
UNKNOWN_KID_COOLDOWN_S = 1.0  # unknown kids refetch the set at most once a second
FETCH_TIMEOUT_S = 5.0
MAX_JWKS_BYTES = 1 << 20


class SigningKeys:
    """The keys of one JWKS URL by ``kid``, kept at most ``MAX_KEY_AGE_S`` (docs/operations.md).

    - A key set older than that is fetched again before use, so a withdrawn ``kid`` stops
      verifying within five minutes (PyJWT's key cache keeps a key forever).
    - A ``kid`` the set does not hold fetches the set at once; a burst of unknown ``kid``s shares
      one fetch a second: a request that arrives within the cooldown waits for the next fetch
      rather than being refused (PyJWT's cooldown refuses a new key for 30 s). A request whose
      ``kid`` is absent from a set fetched after it arrived is refused without another fetch.
    - A set that cannot be fetched is a 503 (``AuthUnavailable``); failed fetches are retried at
      most once a second, so a JWKS outage does not queue every request behind a timeout.
    The clock and sleep are injectable so tests can age the set without waiting.
    """

    def __init__(
        self,
        url: str,
        *,
        max_age_s: float = MAX_KEY_AGE_S,
        cooldown_s: float = UNKNOWN_KID_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url
        self._max_age_s = max_age_s
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._sleep = sleep
        self._keys: dict[str, Any] = {}
        self._fetched_at = -math.inf  # when the fetch of the current set started
        self._failed_at = -math.inf
        self._lock = threading.Lock()  # one fetch at a time

    def key(self, kid: str) -> Any:
        """The verification key for ``kid``; ``Unauthorized`` if the JWKS has none."""
        arrived = self._clock()
        keys, fetched_at = self._keys, self._fetched_at
        if kid in keys and arrived - fetched_at < self._max_age_s:
            return keys[kid]
        with self._lock:
            now = self._clock()
            fresh = now - self._fetched_at < self._max_age_s
            if fresh and kid in self._keys:
                return self._keys[kid]  # fetched while this request waited for the lock
            if fresh and self._fetched_at >= arrived:
                raise Unauthorized("invalid token")  # a set fetched since it arrived lacks it
            if now - self._failed_at < self._cooldown_s:
                raise AuthUnavailable("signing keys could not be fetched, retry later")
            if fresh:  # an unknown kid: at most one fetch per cooldown
                self._sleep(max(0.0, self._fetched_at + self._cooldown_s - now))
            self._fetch()
            if kid in self._keys:
                return self._keys[kid]
        raise Unauthorized("invalid token")

    def _fetch(self) -> None:
        import urllib.request

        import jwt

        started = self._clock()
        try:
            with urllib.request.urlopen(self.url, timeout=FETCH_TIMEOUT_S) as answer:  # noqa: S310
                document = json.loads(answer.read(MAX_JWKS_BYTES))
            found = jwt.PyJWKSet.from_dict(document)
        except (OSError, ValueError, jwt.PyJWTError):
            self._failed_at = self._clock()
            raise AuthUnavailable("signing keys could not be fetched, retry later") from None
        self._keys = {k.key_id: k.key for k in found.keys if k.key_id}
        self._fetched_at = started


_jwks_lock = threading.Lock()
_jwks_sets: dict[str, SigningKeys] = {}


def signing_keys(url: str) -> SigningKeys:
    """The process's key cache for one JWKS URL (Clerk's, or Google's for task tokens)."""
    with _jwks_lock:
        found = _jwks_sets.get(url)
        if found is None:
            found = _jwks_sets[url] = SigningKeys(url)
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
        kid = header.get("kid")
        if header.get("alg") != "RS256":
            raise Unauthorized("token must be RS256")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("invalid token")
        key = signing_keys(jwks_url).key(kid)
        return jwt.decode(token, key, algorithms=["RS256"], leeway=LEEWAY_S, **options)
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
# with a local RSA key whose JWKS is served on loopback (docs/operations.md "Configuration").


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
