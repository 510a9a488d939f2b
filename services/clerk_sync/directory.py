"""What the backfill and the reconciliation list from Clerk's Backend API, and the client they
share (docs/clerk-sync.md: Backfill, Reconciliation)."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.common.clerk_api import DEFAULT_API_URL, ClerkAPI, ClerkAPISettings, RetryPolicy
from services.common.clerk_events import MEMBERSHIPS, ORGANIZATIONS, USERS
from services.common.config import Env, FirestoreSettings

DEFAULT_WORKERS = 8  # objects of one page applied in parallel; each is its own transaction


@dataclass(frozen=True)
class Listing:
    """One Backend API list endpoint and the collection its objects go to."""

    collection: str
    path: str
    count_path: str | None = None  # where the total is, when list pages do not carry it


# The order of the pass (docs/clerk-sync.md): users, then organizations, then memberships.
LISTINGS = (
    Listing(USERS, "/v1/users", count_path="/v1/users/count"),
    Listing(ORGANIZATIONS, "/v1/organizations"),
    Listing(MEMBERSHIPS, "/v1/organization_memberships"),
)


@dataclass(frozen=True)
class Settings:
    """What the backfill reads from the environment, once (docs/operations.md "Configuration")."""

    firestore: FirestoreSettings
    api_url: str
    secret_key: str = field(repr=False)  # never printed

    @classmethod
    def from_env(cls, env: Env | None = None) -> Settings:
        env = env or Env()
        return cls(
            firestore=FirestoreSettings.from_env(env),
            api_url=env.str("CLERK_API_URL", DEFAULT_API_URL).rstrip("/"),
            secret_key=env.str("CLERK_SECRET_KEY"),
        )


def client(settings: Settings, retry: RetryPolicy | None = None) -> ClerkAPI:
    """The Backend API client for a run: listings are ordered by creation time (oldest first),
    so objects created while a run goes on (or between a crash and its resume) land after the
    stored offset instead of shifting the pages not yet read."""
    return ClerkAPI(
        ClerkAPISettings(settings.api_url, settings.secret_key), retry, user_agent="inlet-backfill"
    )
