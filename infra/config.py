"""The stack's configuration, read and validated once before any resource is declared.

Every key lives in the ``inlet`` namespace except the provider's ``gcp:project`` and
``gcp:region``; docs/deploy.md lists them all. A missing or malformed value stops the
program with a message naming the key and the command that sets it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import pulumi

from services.common.config import ConfigError as ServiceConfigError
from services.common.crypto import Keyring
from services.query.console import frontend_api

NAMESPACE = "inlet"
DEFAULT_REGION = "us-central1"
DEFAULT_CLERK_API_URL = "https://api.clerk.com"
SUFFIX_MAX = 12  # the longest account id, inlet-clerk-sync-<suffix>, stays within 30 characters
# Firestore keeps a scheduled backup for at most 14 weeks.
BACKUP_RETENTION_MAX_DAYS = 98
DEFAULT_BACKUP_RETENTION_DAYS = 14
# Daily at 03:17 UTC: Svix retries a failed delivery for about three days, so a daily pass
# catches whatever it gave up on (docs/clerk-sync.md "Reconciliation"). Off the hour, like Clerk's
# peaks.
DEFAULT_RECONCILE_SCHEDULE = "17 3 * * *"
RECONCILE_OFF = "off"


class InfraConfigError(pulumi.RunError):
    """A stack config value is missing or malformed; the message names the key."""


@dataclass(frozen=True)
class Scaling:
    """One service's Cloud Run shape (docs/deploy.md: concurrency above 1 needs a full CPU)."""

    min_instances: int
    max_instances: int
    concurrency: int
    memory: str
    cpu: str
    timeout_seconds: int


@dataclass(frozen=True)
class QueueLimits:
    """The refresh queue's dispatch and retry limits (Cloud Tasks' own defaults are unbounded
    in practice: 500/s, 1,000 concurrent, retried for ever)."""

    max_dispatches_per_second: float = 20.0
    max_concurrent_dispatches: int = 10
    max_attempts: int = 20
    min_backoff: str = "5s"
    max_backoff: str = "300s"
    max_doublings: int = 4
    max_retry_duration: str = "86400s"


@dataclass(frozen=True)
class Service:
    """One of the three Cloud Run services: its config key, its name, its entry point."""

    key: str  # inlet:<key> holds its scaling; also the resource-name stem
    name: str  # the service's own name (logs, README)
    target: str  # the functions-framework target the root main.py exposes


CLERK_SYNC = Service("clerkSync", "clerk-sync", "clerk_sync")
INGEST = Service("ingest", "ingest", "ingest")
QUERY = Service("query", "query", "query")
SERVICES = (CLERK_SYNC, INGEST, QUERY)

# Sensible starting points: scale to zero, one CPU so one instance serves 80 requests at once.
# clerk-sync's timeout is Cloud Scheduler's longest attempt (30 minutes), so a reconciliation
# run has its whole budget (infra/scheduled_jobs.py); webhooks still answer within 15 s.
DEFAULT_SCALING = {
    "clerkSync": Scaling(0, 10, 80, "512Mi", "1", 1800),
    "ingest": Scaling(0, 20, 80, "512Mi", "1", 60),
    "query": Scaling(0, 20, 80, "512Mi", "1", 120),
}


@dataclass(frozen=True)
class DataProtection:
    """What guards the Firestore database against a mistaken delete (docs/restore.md)."""

    point_in_time_recovery: bool = True  # 7 days of versions, read at any past minute
    delete_protection: bool = True  # the database cannot be deleted until this is off
    daily_backup_retention_days: int = DEFAULT_BACKUP_RETENTION_DAYS
    weekly_backup_retention_days: int | None = None  # no weekly schedule unless set


@dataclass(frozen=True)
class Database:
    """Which Firestore database the services use, and whether this stack owns it.

    ``existing``: the database is already there (every Firebase or App Engine project has a
    ``(default)``), so the stack never creates it. ``manage_existing``: the stack adopts it and
    sets its protection and backups from config; without it an existing database is only
    looked up, and its settings are left exactly as they are.
    """

    name: str
    location: str
    existing: bool = False
    manage_existing: bool = False

    @property
    def owned(self) -> bool:
        """Whether the stack declares the database's settings (created or adopted)."""
        return not self.existing or self.manage_existing


@dataclass(frozen=True)
class StackConfig:
    project: str
    region: str
    stack: str
    # Secrets, plain only to be validated here; secret_store.py hands them to Secret Manager as
    # secret Outputs, so they never reach the state or a log in the clear (nor this repr).
    clerk_webhook_secret: str = field(repr=False)
    clerk_secret_key: str | None = field(repr=False)
    source_kek: str = field(repr=False)
    clerk_issuer: str
    clerk_jwks_url: str | None
    clerk_authorized_parties: str
    clerk_publishable_key: str | None  # the console's Clerk sign-in (public, not a secret)
    clerk_api_url: str
    cors_origins: str | None
    ingest_public_url: str | None
    database: Database
    protection: DataProtection
    tasks_audience: str
    alert_email: str | None
    queue: QueueLimits
    # cron (UTC) of the Clerk reconciliation job; None: no job (switched off, or no Backend API
    # key to reconcile with)
    reconcile_schedule: str | None = None
    scaling: dict[str, Scaling] = field(default_factory=dict)

    @property
    def suffix(self) -> str:
        """What every project-unique name ends with, so two stacks share a project."""
        return stack_suffix(self.stack)

    def named(self, stem: str) -> str:
        """A project-unique name: ``stem`` and this stack's suffix."""
        return f"{stem}-{self.suffix}"

    def service_name(self, service: Service) -> str:
        """The Cloud Run function (and service) that runs ``service`` in this stack."""
        return self.named(f"inlet-{service.name}")

    @property
    def firestore_database(self) -> str:
        return self.database.name


def stack_suffix(stack: str) -> str:
    """A short, name-safe form of the stack's name: lowercase letters, digits and hyphens.

    A stack name that is already short and safe is used as it is (``prod``, ``staging``);
    any other is cut and given six hex digits of its own hash, so two stacks never share one.
    """
    clean = re.sub(r"[^a-z0-9]+", "-", stack.lower()).strip("-")
    if clean == stack and 0 < len(clean) <= SUFFIX_MAX:
        return clean
    digest = hashlib.sha256(stack.encode()).hexdigest()[:6]
    head = clean[: SUFFIX_MAX - len(digest) - 1].strip("-")
    return f"{head}-{digest}" if head else digest


def load() -> StackConfig:
    """The stack's configuration, from ``pulumi config`` (call once, at the top of the program)."""
    gcp = pulumi.Config("gcp")
    inlet = pulumi.Config(NAMESPACE)
    project = _require(gcp, "project", namespace="gcp")
    region = gcp.get("region") or DEFAULT_REGION
    stack = pulumi.get_stack()

    webhook_secret = _require(inlet, "clerkWebhookSecret", secret=True)
    if not _is_webhook_secret(webhook_secret):
        # clerk-sync refuses to start on anything else; better to stop before deploying.
        raise InfraConfigError(
            "inlet:clerkWebhookSecret must be whsec_<base64>, the signing secret Clerk shows"
        )
    kek = _require(inlet, "sourceKek", secret=True)
    try:
        Keyring.parse(kek)
    except ServiceConfigError as err:
        # The service's own parser, so a KEK that would stop ingest at start-up stops the
        # deploy instead; its message names only the shape, never the value.
        raise InfraConfigError(f"inlet:sourceKek: {err}") from None
    issuer = _require(inlet, "clerkIssuer").rstrip("/")
    if not issuer.startswith("https://"):
        raise InfraConfigError("inlet:clerkIssuer must be an https:// URL")
    parties = _require(inlet, "clerkAuthorizedParties")
    clerk_secret_key = inlet.get("clerkSecretKey") or None
    publishable_key = inlet.get("clerkPublishableKey") or None
    if publishable_key:
        try:
            frontend_api(publishable_key)  # the query service's own check, before deploying
        except ServiceConfigError as err:
            raise InfraConfigError(f"inlet:clerkPublishableKey: {err}") from None

    return StackConfig(
        project=project,
        region=region,
        stack=stack,
        clerk_webhook_secret=webhook_secret,
        clerk_secret_key=clerk_secret_key,
        source_kek=kek,
        clerk_issuer=issuer,
        clerk_jwks_url=inlet.get("clerkJwksUrl") or None,
        clerk_authorized_parties=parties,
        clerk_publishable_key=publishable_key,
        clerk_api_url=inlet.get("clerkApiUrl") or DEFAULT_CLERK_API_URL,
        cors_origins=inlet.get("corsOrigins") or None,
        ingest_public_url=inlet.get("ingestPublicUrl") or None,
        database=_database(inlet, stack, region),
        protection=_protection(inlet),
        tasks_audience=inlet.get("tasksAudience") or f"inlet-tasks-{project}-{stack}",
        alert_email=inlet.get("alertEmail") or None,
        queue=_queue_limits(inlet.get_object("queue") or {}),
        reconcile_schedule=_reconcile_schedule(inlet, has_key=clerk_secret_key is not None),
        scaling={
            name: _scaling(name, inlet.get_object(name) or {}, default)
            for name, default in DEFAULT_SCALING.items()
        },
    )


def _database(inlet: pulumi.Config, stack: str, region: str) -> Database:
    """A database of Inlet's own per stack by default (``inlet-<suffix>``), or the one named."""
    name = inlet.get("firestoreDatabase") or f"inlet-{stack_suffix(stack)}"
    if name != "(default)" and not re.fullmatch(r"[a-z][a-z0-9-]{2,61}[a-z0-9]", name):
        raise InfraConfigError(
            "inlet:firestoreDatabase must be (default) or 4-63 lowercase letters, digits and "
            "hyphens, starting with a letter"
        )
    existing = _bool(inlet, "firestoreExisting", False)
    manage = _bool(inlet, "firestoreManageExisting", False)
    if manage and not existing:
        raise InfraConfigError(
            "inlet:firestoreManageExisting applies only with inlet:firestoreExisting true"
        )
    return Database(
        name=name,
        location=inlet.get("firestoreLocation") or region,
        existing=existing,
        manage_existing=manage,
    )


def _reconcile_schedule(inlet: pulumi.Config, *, has_key: bool) -> str | None:
    """Daily by default; ``off`` turns the job off. Reconciling reads Clerk's Backend API, so
    without ``inlet:clerkSecretKey`` there is no job (it would fail every day), and a schedule
    set without the key is refused rather than ignored."""
    raw = (inlet.get("reconcileSchedule") or "").strip()
    if raw.lower() == RECONCILE_OFF:
        return None
    if not raw:
        return DEFAULT_RECONCILE_SCHEDULE if has_key else None
    if not has_key:
        raise InfraConfigError(
            "inlet:reconcileSchedule needs inlet:clerkSecretKey (the reconciliation reads "
            "Clerk's Backend API): pulumi config set --secret inlet:clerkSecretKey <sk_...>, "
            f"or set inlet:reconcileSchedule {RECONCILE_OFF}"
        )
    if len(raw.split()) != 5:
        raise InfraConfigError(
            "inlet:reconcileSchedule must be a cron schedule of five fields (UTC), e.g. "
            f"'{DEFAULT_RECONCILE_SCHEDULE}', or {RECONCILE_OFF}"
        )
    return raw


def _protection(inlet: pulumi.Config) -> DataProtection:
    daily = _retention(inlet, "backupRetentionDays", DEFAULT_BACKUP_RETENTION_DAYS)
    weekly = _retention(inlet, "weeklyBackupRetentionDays", None)
    return DataProtection(
        point_in_time_recovery=_bool(inlet, "pointInTimeRecovery", True),
        delete_protection=_bool(inlet, "deleteProtection", True),
        daily_backup_retention_days=daily if daily is not None else DEFAULT_BACKUP_RETENTION_DAYS,
        weekly_backup_retention_days=weekly,
    )


def _retention(inlet: pulumi.Config, key: str, default: int | None) -> int | None:
    raw = (inlet.get(key) or "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= BACKUP_RETENTION_MAX_DAYS:
        raise InfraConfigError(
            f"inlet:{key} must be a number of days from 1 to {BACKUP_RETENTION_MAX_DAYS} "
            "(Firestore keeps a scheduled backup for at most 14 weeks)"
        )
    return int(raw)


def _bool(inlet: pulumi.Config, key: str, default: bool) -> bool:
    raw = (inlet.get(key) or "").strip().lower()
    if not raw:
        return default
    if raw not in ("true", "false"):
        raise InfraConfigError(f"inlet:{key} must be true or false")
    return raw == "true"


def _is_webhook_secret(secret: str) -> bool:
    """The shape clerk-sync checks at start-up (svix's ``whsec_`` + base64)."""
    if not secret.startswith("whsec_"):
        return False
    try:
        return bool(base64.b64decode(secret.removeprefix("whsec_"), validate=True))
    except (binascii.Error, ValueError):
        return False


def _require(
    config: pulumi.Config, key: str, *, secret: bool = False, namespace: str = NAMESPACE
) -> str:
    value = (config.get(key) or "").strip()
    if not value:
        flag = "--secret " if secret else ""
        raise InfraConfigError(
            f"{namespace}:{key} is required: pulumi config set {flag}{namespace}:{key} <value>"
        )
    return value


def _scaling(name: str, given: dict[str, Any], default: Scaling) -> Scaling:
    _refuse_unknown(name, given, Scaling)
    scaling = Scaling(
        min_instances=_int(name, given, "minInstances", default.min_instances, low=0),
        max_instances=_int(name, given, "maxInstances", default.max_instances, low=1),
        concurrency=_int(name, given, "concurrency", default.concurrency, low=1, high=1000),
        memory=str(given.get("memory", default.memory)),
        cpu=str(given.get("cpu", default.cpu)),
        timeout_seconds=_int(name, given, "timeoutSeconds", default.timeout_seconds, low=1),
    )
    if scaling.min_instances > scaling.max_instances:
        raise InfraConfigError(f"inlet:{name}.minInstances must not exceed maxInstances")
    try:
        cpu = float(scaling.cpu)
    except ValueError:
        raise InfraConfigError(f"inlet:{name}.cpu must be a number of CPUs, e.g. 1") from None
    if scaling.concurrency > 1 and cpu < 1:
        # Cloud Run refuses concurrency above 1 on a fractional CPU; say so before deploying.
        raise InfraConfigError(f"inlet:{name}.cpu must be at least 1 when concurrency is above 1")
    return scaling


def _queue_limits(given: dict[str, Any]) -> QueueLimits:
    _refuse_unknown("queue", given, QueueLimits)
    default = QueueLimits()
    try:
        rate = float(given.get("maxDispatchesPerSecond", default.max_dispatches_per_second))
    except (TypeError, ValueError):
        rate = 0.0
    if not 0 < rate <= 500:
        raise InfraConfigError("inlet:queue.maxDispatchesPerSecond must be a number in (0, 500]")
    return QueueLimits(
        max_dispatches_per_second=rate,
        max_concurrent_dispatches=_int(
            "queue", given, "maxConcurrentDispatches", default.max_concurrent_dispatches, low=1
        ),
        max_attempts=_int("queue", given, "maxAttempts", default.max_attempts, low=1),
        min_backoff=str(given.get("minBackoff", default.min_backoff)),
        max_backoff=str(given.get("maxBackoff", default.max_backoff)),
        max_doublings=_int("queue", given, "maxDoublings", default.max_doublings, low=0),
        max_retry_duration=str(given.get("maxRetryDuration", default.max_retry_duration)),
    )


def _int(
    name: str, given: dict[str, Any], key: str, default: int, *, low: int, high: int | None = None
) -> int:
    value = given.get(key, default)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)  # `pulumi config set --path` stores numbers as strings
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise InfraConfigError(f"inlet:{name}.{key} must be an integer >= {low}")
    if high is not None and value > high:
        raise InfraConfigError(f"inlet:{name}.{key} must be at most {high}")
    return value


def _refuse_unknown(name: str, given: dict[str, Any], shape: type) -> None:
    """A misspelt key would otherwise be ignored silently and the default deployed."""
    known = {_camel(f) for f in shape.__dataclass_fields__}
    unknown = sorted(set(given) - known)
    if unknown:
        raise InfraConfigError(f"inlet:{name} has unknown keys {unknown}; known: {sorted(known)}")


def _camel(snake: str) -> str:
    head, *rest = snake.split("_")
    return head + "".join(part.title() for part in rest)
