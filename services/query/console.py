"""The console: the static page the query service serves under ``/console/`` (docs/console.md).

The page is plain ES modules and CSS in ``console/`` beside this module, read once at start-up
and answered from memory with an ETag (a revalidation is a 304 that costs nothing). Every answer
carries a Content-Security-Policy that allows only what the page loads: its own files, the
ingest API (sources) and, in production, Clerk's frontend API. Nothing inline runs.

Sign-in: in production Clerk's frontend library with the deployment's publishable key; locally
a development sign-in (``POST /dev/console-session``) that signs a session token with the
development issuer's key. That route exists only when the key is configured and Firestore is
the emulator: a deployed query service never has either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from services.common.config import ConfigError, Env
from services.common.errors import BadRequest, NotFound

FOLDER = Path(__file__).resolve().parent / "console"
_ASSET = re.compile(r"[a-z][a-z0-9-]{0,40}\.(?:js|css|html|svg|png)")
# The page's file kinds, named here rather than read from the machine's mime.types: the same
# answer everywhere, and no 4 ms parse of that file at every cold start.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_PUBLISHABLE_KEY = re.compile(r"pk_(?:test|live)_([A-Za-z0-9+/=_-]{4,200})")
# Clerk's frontend library, from the instance's own frontend API (Clerk's documented URL).
CLERK_JS_PATH = "/npm/@clerk/clerk-js@5/dist/clerk.browser.js"
# Clerk's bot protection (Cloudflare Turnstile), loaded by clerk-js on sign-in.
CLERK_CHALLENGES = "https://challenges.cloudflare.com"
CLERK_IMAGES = "https://img.clerk.com"
MAX_AGE_S = 0  # revalidate every time: a deploy never leaves a stale module in a browser
DEV_TOKEN_TTL_S = 3600
_DEV_USER = re.compile(r"user_[A-Za-z0-9_]{1,64}")
_DEV_ORG = re.compile(r"org_[A-Za-z0-9_]{1,64}")


@dataclass(frozen=True)
class ConsoleSettings:
    """What the page needs from the environment (docs/operations.md "Configuration")."""

    clerk_publishable_key: str | None
    clerk_frontend_api: str | None  # https://clerk.example.com, decoded from the key
    ingest_url: str | None  # where the page reaches the sources API (CORS)
    dev_signing_key_file: str | None  # development sign-in: locally only

    @classmethod
    def from_env(cls, env: Env | None = None) -> ConsoleSettings:
        env = env or Env()
        key = env.optional("CLERK_PUBLISHABLE_KEY")
        ingest = env.optional("INGEST_API_URL")
        if ingest and urlsplit(ingest).scheme not in ("http", "https"):
            raise ConfigError("INGEST_API_URL must be an http(s) URL")
        local = env.optional("FIRESTORE_EMULATOR_HOST") is not None
        dev_key = env.optional("INLET_DEV_SIGNING_KEY") if local else None
        return cls(
            clerk_publishable_key=key,
            clerk_frontend_api=frontend_api(key) if key else None,
            ingest_url=ingest.rstrip("/") if ingest else None,
            dev_signing_key_file=dev_key,
        )

    @property
    def dev_sign_in(self) -> bool:
        return self.dev_signing_key_file is not None


def frontend_api(publishable_key: str) -> str:
    """Clerk's frontend API origin: a publishable key is ``pk_<env>_`` and the base64 of
    ``<host>$``."""
    found = _PUBLISHABLE_KEY.fullmatch(publishable_key)
    try:
        text = base64.b64decode(found[1] + "==", validate=False).decode() if found else ""
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    host = text.removesuffix("$")
    if not text.endswith("$") or not re.fullmatch(r"[a-z0-9.-]{3,253}", host):
        raise ConfigError("CLERK_PUBLISHABLE_KEY must be a Clerk publishable key (pk_live_…)")
    return f"https://{host}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: ConsoleSettings) -> str:
    """Only what the page loads: its own modules and CSS, the ingest API, and Clerk's frontend
    API and bot check when Clerk signs in. No inline script or style, no eval, no framing."""
    scripts, connect, images, frames = ["'self'"], ["'self'"], ["'self'"], []
    if settings.ingest_url:
        connect.append(_origin(settings.ingest_url))
    if settings.clerk_frontend_api:
        scripts += [settings.clerk_frontend_api, CLERK_CHALLENGES]
        connect.append(settings.clerk_frontend_api)
        images.append(CLERK_IMAGES)
        frames.append(CLERK_CHALLENGES)
    directives = {
        "default-src": ["'none'"],
        "script-src": scripts,
        "style-src": ["'self'"],
        "img-src": images,
        "connect-src": connect,
        "frame-src": frames or ["'none'"],
        "worker-src": ["'self'", "blob:"] if settings.clerk_frontend_api else ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load_assets(folder: Path = FOLDER) -> dict[str, Asset]:
    """Every file of the page, by name, read once (the function's source holds them)."""
    assets = {}
    for path in sorted(folder.iterdir()):
        if not _ASSET.fullmatch(path.name):
            continue
        body = path.read_bytes()
        etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
        assets[path.name] = Asset(body, CONTENT_TYPES[path.suffix], etag)
    return assets


def headers(settings: ConsoleSettings, asset: Asset) -> dict[str, str]:
    return {
        "Content-Type": asset.content_type,
        "ETag": asset.etag,
        "Cache-Control": f"no-cache, max-age={MAX_AGE_S}",
        "Content-Security-Policy": content_security_policy(settings),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def asset(assets: dict[str, Asset], name: str) -> Asset:
    found = assets.get(name) if _ASSET.fullmatch(name) else None
    if found is None:
        raise NotFound("no such console file")
    return found


def page_config(settings: ConsoleSettings) -> dict[str, object]:
    """What the page reads at start: how to sign in and where the sources API is."""
    return {
        "ingestUrl": settings.ingest_url,
        "clerkPublishableKey": settings.clerk_publishable_key,
        "clerkScript": (
            settings.clerk_frontend_api + CLERK_JS_PATH if settings.clerk_frontend_api else None
        ),
        "devSignIn": settings.dev_sign_in,
    }


def dev_session(
    settings: ConsoleSettings,
    body: dict[str, object],
    issuer: str,
    authorized_party: str,
) -> dict[str, object]:
    """A development session token for a chosen user (and organization): the claims of the
    development issuer's tokens (``make dev-token``), valid one hour."""
    from services.common.auth import sign_local_token

    if settings.dev_signing_key_file is None:
        raise NotFound("no route for /dev/console-session")
    user, org, role = body.get("userId"), body.get("orgId"), body.get("role", "admin")
    if not isinstance(user, str) or not _DEV_USER.fullmatch(user):
        raise BadRequest(
            "userId must be user_ and 1-64 of A-Z a-z 0-9 _", details={"pointer": "/userId"}
        )
    if org is not None and (not isinstance(org, str) or not _DEV_ORG.fullmatch(org)):
        raise BadRequest(
            "orgId must be org_ and 1-64 of A-Z a-z 0-9 _", details={"pointer": "/orgId"}
        )
    if role not in ("admin", "member"):
        raise BadRequest("role must be admin or member", details={"pointer": "/role"})
    claims: dict[str, object] = {
        "iss": issuer,
        "sub": user,
        "sid": f"sess_dev_{user}",
        "azp": authorized_party,
    }
    if org:
        claims.update(
            {"o": {"id": org, "rol": role}, "org_id": org, "org_role": f"org:{role}", "v": 2}
        )
    key = Path(settings.dev_signing_key_file).read_bytes()
    return {"token": sign_local_token(key, claims, DEV_TOKEN_TTL_S), "expiresIn": DEV_TOKEN_TTL_S}
