"""The whole local stack in one object, shared by `make dev` and the test suite."""

from __future__ import annotations

import base64
import os
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from devstack import issuer as dev_issuer
from devstack import keep_data
from devstack.processes import (
    ROOT,
    SERVICES,
    Process,
    StackError,
    free_port,
    reset_firestore,
    start_firestore,
    start_service,
    start_tasks,
)

PROJECT = "inlet-dev"
QUEUE = f"projects/{PROJECT}/locations/us-central1/queues/inlet-refresh"


def new_webhook_secret() -> str:
    """A secret in Svix's ``whsec_<base64 of 24..64 bytes>`` shape."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass
class Ports:
    firestore: int
    tasks: int
    issuer: int
    clerk_sync: int
    ingest: int
    query: int

    @classmethod
    def free(cls) -> Ports:
        return cls(*(free_port() for _ in range(6)))

    @classmethod
    def dev_defaults(cls) -> Ports:
        env = os.environ
        return cls(
            firestore=int(env.get("FIRESTORE_PORT", 8085)),
            tasks=int(env.get("TASKS_PORT", 8123)),
            issuer=int(env.get("ISSUER_PORT", 8089)),
            clerk_sync=int(env.get("CLERK_SYNC_PORT", 8081)),
            ingest=int(env.get("INGEST_PORT", 8082)),
            query=int(env.get("QUERY_PORT", 8083)),
        )


@dataclass
class LocalStack:
    """Emulators, the development issuer and every service, wired together by environment."""

    ports: Ports
    state_dir: Path
    # Where refresh tasks go; by default the stack's own query service.
    refresh_url: str | None = None
    tasks_max_retries: int | None = None
    # Free ports can be taken between picking and binding (the Firestore emulator also opens a
    # random WebSocket port): with this set, a component that finds its port taken gets another.
    retry_ports: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    # INLET_KEEP_DATA: Firestore's data is exported here on stop and imported on start;
    # None (the default) keeps it in memory only.
    keep_data_dir: Path | None = None
    processes: dict[str, Process] = field(default_factory=dict)
    issuer: dev_issuer.Issuer | None = None
    webhook_secret: str = field(default_factory=new_webhook_secret)
    source_kek: str = field(
        default_factory=lambda: "k1:" + base64.b64encode(secrets.token_bytes(32)).decode()
    )

    @property
    def firestore_host(self) -> str:
        return f"127.0.0.1:{self.ports.firestore}"

    @property
    def tasks_host(self) -> str:
        return f"127.0.0.1:{self.ports.tasks}"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{getattr(self.ports, service.replace('-', '_'))}"

    def console_url(self) -> str:
        return f"{self.url('query')}/console/"

    def key_path(self) -> Path:
        return self.state_dir / "dev-signing-key.pem"

    def service_env(self) -> dict[str, str]:
        assert self.issuer is not None
        return {
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "FIRESTORE_EMULATOR_HOST": self.firestore_host,
            "CLERK_WEBHOOK_SECRET": self.webhook_secret,
            "CLERK_ISSUER": self.issuer.url,
            "CLERK_JWKS_URL": self.issuer.jwks_url,
            "CLERK_AUTHORIZED_PARTIES": dev_issuer.DEV_AUTHORIZED_PARTY,
            "SOURCE_KEK": self.source_kek,
            "TASKS_QUEUE": QUEUE,
            "TASKS_EMULATOR_HOST": self.tasks_host,
            "REFRESH_URL": self.refresh_url or f"{self.url('query')}/tasks/refresh",
            "TASKS_SERVICE_ACCOUNT": dev_issuer.TASKS_SERVICE_ACCOUNT,
            "TASKS_AUDIENCE": dev_issuer.TASKS_AUDIENCE,
            "OIDC_ISSUER": self.issuer.url,
            "OIDC_CERTS_URL": self.issuer.jwks_url,
            "INLET_DEV_SIGNING_KEY": str(self.key_path()),
            # The console, served by the query service, calls the ingest API across origins.
            "CORS_ORIGINS": f"{dev_issuer.DEV_AUTHORIZED_PARTY},{self.url('query')}",
            "INGEST_API_URL": self.url("ingest"),
            # CLERK_SECRET_KEY and CLERK_API_URL only when given (extra_env): without a key,
            # /v1/me's Clerk fallback is off.
            **self.extra_env,
        }

    def start(self, services: tuple[str, ...] | None = None) -> LocalStack:
        """Start everything; ``services`` defaults to every service that exists in the tree."""
        services = available_services() if services is None else services
        logs = self.state_dir / "logs"
        try:
            self.issuer = dev_issuer.Issuer(
                dev_issuer.ensure_key(self.key_path()), self.ports.issuer
            ).start()
            self.processes["firestore"] = self._with_port_retry(
                "firestore",
                lambda: start_firestore(
                    self.ports.firestore,
                    logs,
                    keep_data.saved_export(self.keep_data_dir) if self.keep_data_dir else None,
                ),
            )
            self.processes["tasks"] = start_tasks(
                self.ports.tasks, QUEUE, logs, self.tasks_max_retries
            )
            for name in services:
                self.start_service(name)
        except BaseException:
            self.stop()
            raise
        return self

    def _with_port_retry(self, component: str, start):
        for attempt in range(3):
            try:
                return start()
            except StackError as err:
                if not self.retry_ports or attempt == 2 or "already in use" not in str(err):
                    raise
                setattr(self.ports, component, free_port())
        raise AssertionError("unreachable")

    def start_service(self, name: str) -> Process:
        port = getattr(self.ports, name.replace("-", "_"))
        process = start_service(name, port, self.service_env(), self.state_dir / "logs")
        self.processes[name] = process
        return process

    def stop(self) -> None:
        self._save_data()
        for process in reversed(list(self.processes.values())):
            process.stop()
        self.processes.clear()
        if self.issuer is not None:
            self.issuer.stop()
            self.issuer = None

    def _save_data(self) -> None:
        """Export Firestore before the emulator stops, when asked to keep data."""
        firestore = self.processes.get("firestore")
        if self.keep_data_dir is None or firestore is None or firestore.popen.poll() is not None:
            return
        try:
            keep_data.save(self.firestore_host, PROJECT, self.keep_data_dir)
        except OSError as err:  # the last good export stays; say why this one is missing
            print(f"Firestore data not saved: {err}", file=sys.stderr, flush=True)

    def reset_firestore(self) -> None:
        reset_firestore(self.firestore_host, PROJECT)


def available_services() -> tuple[str, ...]:
    return tuple(
        name
        for name, (package, _) in SERVICES.items()
        if (ROOT / "services" / package / "main.py").exists()
    )


__all__ = ["PROJECT", "QUEUE", "ROOT", "LocalStack", "Ports"]
