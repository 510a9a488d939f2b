"""Firestore access: one client per process, every RPC counted and bounded by a deadline.

A gRPC interceptor gives every Firestore call a deadline of at most ``RPC_DEADLINE_S`` and stops
all storage work of a request once its budget is spent, so a stalled database answers 503 well
inside Svix's 15 s timeout (docs/clerk-sync.md). The same interceptor counts RPCs for the request
log
line, which is how the benchmarks prove that refused traffic costs no Firestore call.
"""

from __future__ import annotations

import collections
import functools
import re
import threading
import time
from typing import TYPE_CHECKING

from services.common import context
from services.common.config import FirestoreSettings
from services.common.errors import StorageUnavailable

if TYPE_CHECKING:
    from google.cloud import firestore

_RESERVED_ID = re.compile(r"__.*__", re.DOTALL)

RPC_DEADLINE_S = 5.0
REQUEST_STORAGE_BUDGET_S = 10.0
# Task routes (Cloud Tasks waits up to 10 minutes, Cloud Scheduler 3): room for bounded batches,
# and for one large read (a fold chunk over a long history) taking longer than an API's RPC.
TASK_STORAGE_BUDGET_S = 120.0
TASK_RPC_DEADLINE_S = 30.0


def _bounded_timeout(timeout: float | None) -> float:
    """Count one RPC against the current request and cap its deadline to what is left."""
    ctx = context.current()
    limit = RPC_DEADLINE_S if ctx is None or ctx.rpc_deadline_s is None else ctx.rpc_deadline_s
    bounded = limit if timeout is None else min(timeout, limit)
    if ctx is not None:
        ctx.firestore_ops += 1
        if ctx.storage_deadline is not None:
            remaining = ctx.storage_deadline - time.monotonic()
            if remaining <= 0:
                # Not a gRPC error on purpose: the client's retry loop must not swallow it.
                raise StorageUnavailable()
            bounded = min(bounded, remaining)
    return bounded


_lock = threading.Lock()
_client: firestore.Client | None = None


def _client_class():
    """A Firestore client whose channel carries the interceptor, emulator or not.

    Built on first use: grpc and the Firestore client are the heaviest imports of a service,
    and a cold start should not pay for them before the first request needs them.
    """
    import grpc
    from google.cloud import firestore
    from google.cloud.firestore_v1.services.firestore.transports.grpc import (
        FirestoreGrpcTransport,
    )

    class CallDetails(
        collections.namedtuple(
            "CallDetails",
            ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
        ),
        grpc.ClientCallDetails,
    ):
        pass

    class BoundedCounting(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
        """Counts each RPC, document write and document read against the current request and
        caps its deadline."""

        def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
            return CallDetails(
                details.method,
                _bounded_timeout(details.timeout),
                details.metadata,
                details.credentials,
                getattr(details, "wait_for_ready", None),
                getattr(details, "compression", None),
            )

        def intercept_unary_unary(self, continuation, client_call_details, request):
            writes = getattr(request, "writes", None)  # Commit and BatchWrite
            ctx = context.current()
            if writes and ctx is not None:
                for write in writes:
                    name = write.update.name or write.delete or write.transform.document
                    group = name.rsplit("/", 2)[-2] if name.count("/") >= 2 else "?"
                    ctx.firestore_writes[group] = ctx.firestore_writes.get(group, 0) + 1
            return continuation(self._details(client_call_details), request)

        def intercept_unary_stream(self, continuation, client_call_details, request):
            call = continuation(self._details(client_call_details), request)
            ctx = context.current()
            return call if ctx is None else _CountedStream(call, ctx)

    interceptor = BoundedCounting()
    # google-cloud-firestore has no public hook for a channel interceptor, so the subclasses
    # below override two private methods. Refuse to start if an upgrade removed them, rather
    # than run without deadlines or counters; tests/integration/test_store_interceptor.py
    # checks on real calls that the interceptor is on the channel.
    for hook in ("_emulator_channel", "_firestore_api_helper"):
        if not callable(getattr(firestore.Client, hook, None)):
            raise RuntimeError(f"google-cloud-firestore no longer has Client.{hook}")

    class Transport(FirestoreGrpcTransport):
        @classmethod
        def create_channel(cls, *args, **kwargs):
            return grpc.intercept_channel(super().create_channel(*args, **kwargs), interceptor)

    class Client(firestore.Client):
        def _emulator_channel(self, transport):
            return grpc.intercept_channel(super()._emulator_channel(transport), interceptor)

        def _firestore_api_helper(self, transport, client_class, client_module):
            return super()._firestore_api_helper(Transport, client_class, client_module)

    return Client


_DOCUMENT_FIELDS = ("document", "found")


class _CountedStream:
    """A server stream (RunQuery, BatchGetDocuments, RunAggregationQuery) whose documents are
    counted against the request as they arrive; everything else is the gRPC call's own."""

    def __init__(self, call, ctx: context.RequestContext) -> None:
        self._call = call
        self._ctx = ctx

    def __iter__(self):
        return self

    def __next__(self):
        response = next(self._call)
        raw = type(response).pb(response)  # proto-plus's own protobuf message
        fields = raw.DESCRIPTOR.fields_by_name
        # A query's document (RunQuery) or a get's found one (BatchGetDocuments).
        if any(name in fields and raw.HasField(name) for name in _DOCUMENT_FIELDS):
            self._ctx.firestore_reads += 1
        return response

    def __getattr__(self, name: str):
        return getattr(self._call, name)


def client() -> firestore.Client:
    """The process's Firestore client, created on first use (keeps cold start light)."""
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                settings = FirestoreSettings.from_env()
                _client = _client_class()(project=settings.project, database=settings.database)
    return _client


@functools.cache
def retry():
    """Transient-error retry bounded by the same deadline as one RPC."""
    from google.api_core import retry as api_retry

    return api_retry.Retry(initial=0.05, maximum=1.0, multiplier=2.0, timeout=RPC_DEADLINE_S)


def storage_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "Firestore is unavailable right now" (answered 503)."""
    import grpc
    from google.api_core import exceptions as gexc

    return (
        StorageUnavailable,
        gexc.ServiceUnavailable,
        gexc.DeadlineExceeded,
        gexc.InternalServerError,
        gexc.Aborted,
        gexc.TooManyRequests,
        gexc.GatewayTimeout,
        gexc.Cancelled,
        gexc.Unknown,
        gexc.RetryError,
        grpc.RpcError,
    )


def is_document_id(value: object) -> bool:
    """Whether Firestore accepts this as a document id (else a write fails as a 500).

    https://firebase.google.com/docs/firestore/quotas#collections_documents_and_fields
    """
    return (
        isinstance(value, str)
        and 0 < len(value.encode("utf-8", "surrogatepass")) <= 1500
        and "/" not in value
        and value not in (".", "..")
        and not _RESERVED_ID.fullmatch(value)
    )


MAX_VALUE_DEPTH = 20
_INT64 = range(-(2**63), 2**63)


def is_storable(value: object) -> bool:
    """Whether Firestore accepts this JSON value as a field (maps nest at most 20 deep, arrays
    never directly hold arrays, integers fit 64 bits, map keys are not reserved ``__x__``)."""
    stack: list[tuple[object, int, bool]] = [(value, 0, False)]
    while stack:
        node, level, in_array = stack.pop()
        if isinstance(node, bool) or node is None or isinstance(node, float | str):
            continue
        if isinstance(node, int):
            if node not in _INT64:
                return False
            continue
        if level >= MAX_VALUE_DEPTH:
            return False
        if isinstance(node, list):
            if in_array:
                return False
            stack.extend((child, level + 1, True) for child in node)
        elif isinstance(node, dict):
            if any(not key or _RESERVED_ID.fullmatch(key) for key in node):
                return False
            stack.extend((child, level + 1, False) for child in node.values())
        else:
            return False
    return True
