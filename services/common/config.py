"""Configuration from the environment, read once at start-up (docs/operations.md
"Configuration")."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class ConfigError(RuntimeError):
    """A required variable is missing or malformed; the message names it."""


def load_or_exit(service: str, factory: Callable[[], T]) -> T:
    """Build a service's settings at start-up, or stop it with one line naming the problem."""
    try:
        return factory()
    except ConfigError as err:
        print(f"{service}: configuration error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


class Env:
    """Typed, validated reads from one environment mapping."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def str(self, name: str, default: str | None = None) -> str:
        value = self._environ.get(name, "").strip()
        if value:
            return value
        if default is None:
            raise ConfigError(f"{name} is required but not set")
        return default

    def optional(self, name: str) -> str | None:
        return self._environ.get(name, "").strip() or None

    def list(self, name: str) -> tuple[str, ...]:
        raw = self._environ.get(name, "")
        return tuple(part.strip() for part in raw.split(",") if part.strip())

    def int(self, name: str, default: int) -> int:
        raw = self._environ.get(name, "").strip()
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class FirestoreSettings:
    project: str
    database: str
    emulator_host: str | None

    @classmethod
    def from_env(cls, env: Env | None = None) -> FirestoreSettings:
        env = env or Env()
        return cls(
            project=env.str("GOOGLE_CLOUD_PROJECT"),
            database=env.str("FIRESTORE_DATABASE", "(default)"),
            emulator_host=env.optional("FIRESTORE_EMULATOR_HOST"),
        )


@dataclass(frozen=True)
class ClerkAuthSettings:
    """How Clerk session tokens are verified (docs/operations.md)."""

    issuer: str
    jwks_url: str
    authorized_parties: tuple[str, ...]

    @classmethod
    def from_env(cls, env: Env | None = None) -> ClerkAuthSettings:
        env = env or Env()
        issuer = env.str("CLERK_ISSUER").rstrip("/")
        parties = env.list("CLERK_AUTHORIZED_PARTIES")
        if not parties:
            # Browser tokens carry the page's origin in ``azp``; without a list, any site's
            # token would pass (docs/operations.md).
            raise ConfigError("CLERK_AUTHORIZED_PARTIES is required but not set")
        return cls(
            issuer=issuer,
            jwks_url=env.str("CLERK_JWKS_URL", f"{issuer}/.well-known/jwks.json"),
            authorized_parties=parties,
        )


GOOGLE_OIDC_ISSUER = "https://accounts.google.com"
GOOGLE_OIDC_CERTS_URL = "https://www.googleapis.com/oauth2/v3/certs"


@dataclass(frozen=True)
class TaskSettings:
    """Where refresh tasks go and which identity they carry (docs/ingest.md, "query",
    "Configuration")."""

    queue: str
    refresh_url: str
    service_account: str
    audience: str
    emulator_host: str | None
    oidc_issuer: str
    oidc_certs_url: str
    # Local mode only: the development issuer's key signs task tokens, since the emulator
    # attaches none (docs/local-stack.md).
    dev_signing_key_file: str | None

    @classmethod
    def from_env(cls, env: Env | None = None) -> TaskSettings:
        env = env or Env()
        emulator = env.optional("TASKS_EMULATOR_HOST")
        settings = cls(
            queue=env.str("TASKS_QUEUE"),
            refresh_url=env.str("REFRESH_URL"),
            service_account=env.str("TASKS_SERVICE_ACCOUNT"),
            audience=env.str("TASKS_AUDIENCE"),
            emulator_host=emulator,
            oidc_issuer=env.str("OIDC_ISSUER", GOOGLE_OIDC_ISSUER),
            oidc_certs_url=env.str("OIDC_CERTS_URL", GOOGLE_OIDC_CERTS_URL),
            dev_signing_key_file=env.optional("INLET_DEV_SIGNING_KEY"),
        )
        if emulator and not settings.dev_signing_key_file:
            raise ConfigError("INLET_DEV_SIGNING_KEY is required with TASKS_EMULATOR_HOST")
        parts = settings.queue.split("/")
        if (
            len(parts) != 6
            or parts[0::2] != ["projects", "locations", "queues"]
            or not all(parts[1::2])
        ):
            raise ConfigError("TASKS_QUEUE must look like projects/P/locations/L/queues/Q")
        return settings
