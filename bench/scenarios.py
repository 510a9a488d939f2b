"""The measurements, one method per section of the results file (bench/README.md)."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from bench import load, measure, references
from devstack.processes import ROOT, Process, free_port, spawn
from devstack.stack import PROJECT, QUEUE, LocalStack, Ports

BODY = json.dumps({"type": "order.paid", "amount": 42.5, "currency": "EUR"}).encode()
OVERSIZE = 300 * 1024  # over ingest's 256 KiB cap
HUGE = 30 * 2**20  # what Cloud Run lets through to the container
SOURCE_ID_ALPHABET = "0123456789abcdef"
# What functions-framework imports before any handler runs: the floor of every entry import.
UNAVOIDABLE = ("functions_framework", "flask")


def bench_stack(state: Path) -> LocalStack:
    return LocalStack(ports=Ports.free(), state_dir=state, tasks_max_retries=50, retry_ports=True)


def inlet_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "Inlet-Signature": f"t={timestamp},v1={mac}"}


def group_commit_mean(lines: list[dict]) -> float:
    """Creates per group-commit RPC: the mean of the senders' ``groupCommit`` log fields."""
    sent = [int(line["groupCommit"]) for line in lines if "groupCommit" in line]
    return round(sum(sent) / len(sent), 2) if sent else 0.0


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


class Bench:
    def __init__(
        self, stack: LocalStack, state: Path, seconds: float, connections: int, quick: bool = False
    ) -> None:
        self.stack = stack
        self.state = state
        self.seconds = seconds
        self.connections = connections
        # --quick: a change's own check in under two minutes: smaller histories, fewer repeats.
        self.quick = quick
        # Each server is warmed up before it is measured; --quick warms for a second.
        self.warm_s = 1.0 if quick else 3.0
        self.repeats = 3 if quick else 7
        self.settled_s = 0.0  # spent waiting for refreshes in flight to end (refreshes_held)
        self.ingest_url = stack.url("ingest")
        self.query_url = stack.url("query")
        self.auth = {"Authorization": f"Bearer {stack.issuer.session_token('user_bench')}"}
        os.environ["FIRESTORE_EMULATOR_HOST"] = stack.firestore_host
        os.environ["GOOGLE_CLOUD_PROJECT"] = PROJECT
        from google.cloud import firestore

        self.db = firestore.Client(project=PROJECT)

    # -- helpers -----------------------------------------------------------------------------

    def source(self, label: str, rate_limit: int | None = None) -> tuple[str, str]:
        """A new source. The throughput sections measure ingest itself, so their sources have
        no rate limit (an unlimited source costs the limiter nothing); ``rate_limit`` measures
        the limiter."""
        for _ in range(5):  # the emulator's first answers can be slow: 503 says retry
            answer = requests.post(
                f"{self.ingest_url}/v1/sources",
                json={"label": label, "retention": 100_000, "rateLimit": rate_limit},
                headers=self.auth,
                timeout=30,
            )
            if answer.status_code != 503:
                break
            time.sleep(1)
        answer.raise_for_status()
        created = answer.json()
        return created["id"], created["secret"]

    def reference(self, target: str, env: dict[str, str] | None = None) -> tuple[str, Process]:
        """Serve one of bench/references.py's functions like the services are served."""
        port = free_port()
        process = spawn(
            f"reference-{target}",
            [
                str(Path(sys.executable).parent / "functions-framework"),
                "--source=bench/references.py",
                f"--target={target}",
                "--host=127.0.0.1",
                f"--port={port}",
            ],
            {**os.environ, **self.stack.service_env(), **(env or {}), "PYTHONPATH": str(ROOT)},
            self.state / "logs",
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(url, timeout=1)
                return url, process
            except requests.RequestException:
                time.sleep(0.1)
        process.stop()
        raise RuntimeError(f"reference {target} did not start")

    def wrk(self, url: str, script: str, seconds: float | None = None) -> load.Result:
        return load.run(url, script, seconds or self.seconds, self.connections)

    def again(self, first: load.Result, url: str, script: str) -> load.Result:
        """A reference measured before Inlet's phase and, in a full run, once more after it:
        both halves counted together. The machine drifts within a minute (the same server
        measured 1,560 and then 2,030 requests/s a few seconds apart), and a reference measured
        on one side only carried that drift into the ratio."""
        if self.quick:
            return first
        return load.combined(first, self.wrk(url, script))

    def service_cpu_ms(self, service: str) -> float:
        """CPU the service's workers have used so far (for CPU per request)."""
        return measure.cpu_ms(measure.worker_pids(self.stack.processes[service].popen.pid))

    def emulator_cpu_ms(self) -> float:
        return measure.cpu_ms(measure.descendants(self.stack.processes["firestore"].popen.pid))

    @functools.cached_property
    def _tasks(self):
        import grpc
        from google.cloud import tasks_v2
        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

        channel = grpc.insecure_channel(self.stack.tasks_host)
        return tasks_v2.CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))

    @contextlib.contextmanager
    def refreshes_held(self):
        """Hold the refresh queue while a ratio is measured, starting once no refresh runs.

        The refreshes ingest schedules run in the query service, on Cloud Run on instances of
        its own. Here they would share the two cores with both sides of a ratio, and on the
        emulator, which has no indexes, each refresh query scans the source's whole event
        collection: about 1 ms of emulator CPU per event ingested. Held, the tasks still queue
        (ingest pays for scheduling them) and run once the phase is over."""
        self._tasks.pause_queue(name=QUEUE)
        try:
            self.settled_s += self.settle()
            yield
        finally:
            self._tasks.resume_queue(name=QUEUE)

    def settle(self) -> float:
        """Wait until the query service and the emulator have been idle for half a second (a
        refresh in flight has finished), at most 5 s in --quick and 20 s otherwise; the seconds
        waited."""
        query = measure.worker_pids(self.stack.processes["query"].popen.pid)
        started = time.monotonic()
        limit = started + (5 if self.quick else 20)
        quiet = 0
        while quiet < 2 and time.monotonic() < limit:
            query_ms, emulator_ms = measure.cpu_ms(query), self.emulator_cpu_ms()
            time.sleep(0.25)
            query_ms = measure.cpu_ms(query) - query_ms
            emulator_ms = self.emulator_cpu_ms() - emulator_ms
            quiet = quiet + 1 if query_ms < 5 and emulator_ms < 15 else 0
        return round(time.monotonic() - started, 2)

    def delete_source(self, source_id: str) -> None:
        """Delete a section's source once measured: refreshes still queued for it find it gone
        and cost next to nothing, instead of folding its events during the next section."""
        answer = requests.delete(
            f"{self.ingest_url}/v1/sources/{source_id}", headers=self.auth, timeout=30
        )
        answer.raise_for_status()

    def log(self, service: str) -> measure.LogWindow:
        return measure.LogWindow(self.stack.processes[service].log_path)

    def threads(self, work, seconds: float) -> int:
        """Run ``work()`` in a loop on ``connections`` threads; the number of calls completed."""
        done = [0] * self.connections
        stop = time.monotonic() + seconds

        def loop(slot: int) -> None:
            while time.monotonic() < stop:
                work(slot)
                done[slot] += 1

        pool = [threading.Thread(target=loop, args=(i,)) for i in range(self.connections)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        return sum(done)

    # -- sections ----------------------------------------------------------------------------

    def ingest(self) -> dict[str, object]:
        """Inlet's receiver against the minimal handler, both with the refresh queue held
        (``refreshes_held``). A full run first measures Inlet with the query service refreshing
        the source on the same cores, reported apart (``*_refreshing``)."""
        source_id, secret = self.source("bench")
        warm_id, warm_secret = self.source("warm-up")
        minimal_url, minimal = self.reference("minimal", {"BENCH_SECRET": secret})
        run = secrets.token_hex(4)
        ours_path = f"/webhooks/inbound/{source_id}"
        warm_path = f"/webhooks/inbound/{warm_id}"
        refreshing = None
        try:
            self.wrk(
                self.ingest_url,
                load.fresh_keys(warm_path, inlet_headers(warm_secret, BODY), BODY, "w" + run),
                self.warm_s,
            )
            if not self.quick:  # refreshes running, on the warm-up source (its keys apart)
                refreshing_emulator = self.emulator_cpu_ms()
                refreshing = self.wrk(
                    self.ingest_url,
                    load.fresh_keys(warm_path, inlet_headers(warm_secret, BODY), BODY, "r" + run),
                )
                refreshing_emulator = self.emulator_cpu_ms() - refreshing_emulator
            with self.refreshes_held():
                self.wrk(
                    minimal_url,
                    load.fresh_keys("/", inlet_headers(secret, BODY), BODY, "w" + run),
                    self.warm_s,
                )
                minimal_pids = measure.worker_pids(minimal.popen.pid)
                minimal_cpu, emulator_cpu = measure.cpu_ms(minimal_pids), self.emulator_cpu_ms()
                reference = self.wrk(
                    minimal_url, load.fresh_keys("/", inlet_headers(secret, BODY), BODY, "m" + run)
                )
                minimal_cpu = measure.cpu_ms(minimal_pids) - minimal_cpu
                minimal_emulator = self.emulator_cpu_ms() - emulator_cpu
                window = self.log("ingest")
                cpu_before, emulator_cpu = self.service_cpu_ms("ingest"), self.emulator_cpu_ms()
                ours = self.wrk(
                    self.ingest_url,
                    load.fresh_keys(ours_path, inlet_headers(secret, BODY), BODY, "i" + run),
                )
                cpu = self.service_cpu_ms("ingest") - cpu_before
                emulator = self.emulator_cpu_ms() - emulator_cpu
                accepted = window.count(ours_path)  # answered requests the log saw
                written = window.firestore_writes()
                rpcs = window.firestore_ops()
                batched = group_commit_mean(window.lines())
        finally:
            minimal.kill()
        direct = self.direct_commits()
        unanswered = self.stored_keys(source_id)
        exact = self.exactly_once(source_id, secret, 500 if self.quick else 2000)
        for measured in (source_id, warm_id):
            self.delete_source(measured)
        while_refreshing = {}
        if refreshing is not None:
            while_refreshing = {
                "events_per_s_refreshing": round(refreshing.per_s, 1),
                "p99_ms_refreshing": refreshing.p99_ms,
                "ratio_vs_minimal_refreshing": round(refreshing.per_s / reference.per_s, 3),
                "emulator_cpu_ms_per_event_refreshing": round(
                    refreshing_emulator / max(refreshing.requests, 1), 3
                ),
            }
        return {
            "events_per_s": round(ours.per_s, 1),
            "p50_ms": ours.p50_ms,
            "p99_ms": ours.p99_ms,
            "minimal_per_s": round(reference.per_s, 1),
            "minimal_p99_ms": reference.p99_ms,
            "direct_per_s": round(direct, 1),
            "ratio_vs_minimal": round(ours.per_s / reference.per_s, 3),
            # Event documents per accepted event; the other writes are per source and second
            # (the refresh marker, the rate-limit lease), not per event: reported apart.
            "writes_per_event": round(written.pop("events", 0) / max(accepted, 1), 3),
            "other_writes": written,
            "rpcs_per_event": round(rpcs / max(accepted, 1), 3),
            "writes_per_group_commit": batched,
            "cpu_ms_per_event": round(cpu / max(accepted, 1), 3),
            "minimal_cpu_ms_per_event": round(minimal_cpu / max(reference.requests, 1), 3),
            "emulator_cpu_ms_per_event": round(emulator / max(accepted, 1), 3),
            "minimal_emulator_cpu_ms_per_event": round(
                minimal_emulator / max(reference.requests, 1), 3
            ),
            "non_2xx": ours.non2xx,
            "socket_errors": ours.socket_errors,
            # wrk stops mid-flight: events it sent but never read the answer of are stored
            "wrk_stored_minus_2xx": len(unanswered) - ours.ok,
            **exact,
            **while_refreshing,
        }

    def rate_limit(self, limit: int = 50, workers: int = 2) -> dict[str, object]:
        """A flood well over a source's limit, spread over ``workers`` ingest instances: what
        was accepted against the limit, in the whole run and in its worst 10 s, and how many
        lease writes the limiter made (each instance's request log names its leases)."""
        from devstack.processes import start_service

        source_id, secret = self.source("rate-limit", rate_limit=limit)
        path = f"/webhooks/inbound/{source_id}"
        extra = []
        urls = [self.ingest_url]
        windows = [self.log("ingest")]
        try:
            for n in range(workers - 1):
                port = free_port()
                logs = self.state / f"logs-ingest-{n + 2}"
                process = start_service("ingest", port, self.stack.service_env(), logs)
                extra.append(process)
                urls.append(f"http://127.0.0.1:{port}")
                windows.append(measure.LogWindow(process.log_path))
            sessions = [requests.Session() for _ in range(self.connections)]

            def send(slot: int) -> None:
                headers = inlet_headers(secret, BODY)
                headers["Idempotency-Key"] = secrets.token_hex(12)
                url = urls[slot % len(urls)] + path
                sessions[slot].post(url, data=BODY, headers=headers, timeout=30)

            started, wall_started = time.monotonic(), time.time()
            sent = self.threads(send, self.seconds)
            seconds = time.monotonic() - started
            # Leases are per calendar second: a 10 s flood touches 11 of them.
            touched = int(time.time()) - int(wall_started) + 1
        finally:
            for process in extra:
                process.stop()
        events = self.db.collection("sources").document(source_id).collection("events")
        times = sorted(
            d.get("receivedAt").timestamp() for d in events.select(["receivedAt"]).stream()
        )
        worst_10s = max(
            (sum(1 for u in times[i:] if u < t + 10) for i, t in enumerate(times)), default=0
        )
        leases = sum(1 for w in windows for line in w.lines() if "rateLease" in line)
        fallbacks = sum(
            1
            for w in windows
            for line in w.lines()
            if str(line.get("rateLease")).startswith("fall")
        )
        return {
            "limit_per_s": limit,
            "workers": workers,
            "seconds": round(seconds, 1),
            "sent": sent,
            "accepted": len(times),
            "accepted_ratio": round(len(times) / (limit * seconds), 3),
            "worst_10s_accepted": worst_10s,
            "worst_10s_bound": int(1.1 * 10 * limit + limit),
            "limiter_writes": leases,
            "calendar_seconds": touched,
            "limiter_writes_per_s": round(leases / touched, 2),
            "lease_fallbacks": fallbacks,
        }

    def stored_keys(self, source_id: str) -> list[str]:
        events = self.db.collection("sources").document(source_id).collection("events")
        return [snap.get("idempotencyKey") for snap in events.select(["idempotencyKey"]).stream()]

    def exactly_once(self, source_id: str, secret: str, events: int = 2000) -> dict[str, int]:
        """Every request answered: 2,000 events on ``connections`` threads, every tenth one a
        repeat of an earlier key. ``sent_2xx`` counts the 202s (stored now); repeats answer 200
        and must store nothing, so Firestore must hold exactly ``sent_2xx`` events."""
        path = f"{self.ingest_url}/webhooks/inbound/{source_id}"
        before = len(self.stored_keys(source_id))
        sent_2xx, repeats = 0, 0
        keys: set[str] = set()
        lock = threading.Lock()
        todo = iter(range(events))

        def send(slot: int) -> None:
            nonlocal sent_2xx, repeats
            with requests.Session() as session:
                for i in todo:
                    key = f"exact-{i - 1 if i % 10 == 9 else i}"
                    headers = {**inlet_headers(secret, BODY), "Idempotency-Key": key}
                    answer = session.post(path, data=BODY, headers=headers, timeout=30)
                    with lock:
                        if answer.status_code == 202:  # stored now
                            sent_2xx += 1
                            keys.add(key)
                        elif answer.status_code == 200:  # a repeat: stored earlier
                            repeats += 1

        pool = [threading.Thread(target=send, args=(i,)) for i in range(self.connections)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        stored = self.stored_keys(source_id)
        exact = [key for key in stored if key.startswith("exact-")]
        return {
            "sent_2xx": sent_2xx,
            "answered_duplicate": repeats,
            "keys_answered_202": len(keys),
            "stored": len(exact),
            "duplicates_stored": len(exact) - len(set(exact)),
            "stored_before": before,
        }

    def direct_commits(self) -> float:
        """The minimal handler's batch from a Python client, no HTTP."""
        source = self.db.collection("sources").document("src_bench_direct")

        def commit(slot: int) -> None:
            event_id = "evt_" + secrets.token_hex(12)
            key = secrets.token_hex(16)
            batch = self.db.batch()
            batch.create(source.collection("idempotency").document(key), {"eventId": event_id})
            batch.create(
                source.collection("events").document(event_id),
                {"receivedAt": dt.datetime.now(dt.UTC), "idempotencyKey": key, "body": BODY},
            )
            batch.commit()

        started = time.monotonic()
        count = self.threads(commit, self.seconds)
        return count / (time.monotonic() - started)

    def refusals(self) -> dict[str, object]:
        source_id, _ = self.source("refusals")
        path = f"/webhooks/inbound/{source_id}"
        bad = {
            **inlet_headers("whsec_" + "A" * 43, BODY),
            "Idempotency-Key": "bench-refusal",
        }
        bare_url, bare = self.reference("bare")
        bare_bad = load.fixed("POST", "/", bad, BODY)
        bare_oversize = load.oversize("/", bad, OVERSIZE)
        try:
            self.wrk(bare_url, bare_bad, self.warm_s)
            self.wrk(self.ingest_url, load.fixed("POST", path, bad, BODY), self.warm_s)
            reference = self.wrk(bare_url, bare_bad)
            window = self.log("ingest")
            cpu_before = self.service_cpu_ms("ingest")
            bad_signature = self.wrk(self.ingest_url, load.fixed("POST", path, bad, BODY))
            refusal_cpu_ms = (self.service_cpu_ms("ingest") - cpu_before) / max(
                window.count(path), 1
            )
            bad_ops = window.firestore_ops()
            # The delivery inspector's ring writes (at most one a second), counted apart from
            # the key reloads this section's goal is about; the inspector section measures them.
            ring_writes = sum(1 for line in window.lines() if "deliveryRing" in line)
            reference = self.again(reference, bare_url, bare_bad)
            reference_oversize = self.wrk(bare_url, bare_oversize)
            oversize = self.wrk(self.ingest_url, load.oversize(path, bad, OVERSIZE))
            reference_oversize = self.again(reference_oversize, bare_url, bare_oversize)
        finally:
            bare.kill()
        window = self.log("ingest")
        random_ids = self.wrk(
            self.ingest_url,
            load.random_paths("/webhooks/inbound/src_", SOURCE_ID_ALPHABET, 20, bad, BODY),
        )
        random_ops = window.firestore_ops()
        return {
            "bad_signature_per_s": round(bad_signature.per_s, 1),
            "oversize_per_s": round(oversize.per_s, 1),
            "bare_per_s": round(reference.per_s, 1),
            "bare_oversize_per_s": round(reference_oversize.per_s, 1),
            # each refusal against the bare endpoint receiving the same request
            "ratio": round(
                min(
                    bad_signature.per_s / reference.per_s,
                    oversize.per_s / reference_oversize.per_s,
                ),
                3,
            ),
            "seconds": round(bad_signature.seconds, 1),
            "firestore_requests": bad_ops,
            "cpu_ms_per_refusal": round(refusal_cpu_ms, 3),
            "ring_writes": ring_writes,
            "random_ids_requests": random_ids.requests,
            "random_ids_firestore_requests": random_ops,
            "oversize_rss_growth_mb": self.oversize_memory(path),
        }

    def inspector(self) -> dict[str, object]:
        """A bad-signature flood on one known source with the delivery inspector's ring on: the
        ring writes and other Firestore RPCs it caused (from ingest's own request log), the
        refusal throughput against the bare endpoint receiving the same request, and what the
        ring's per-request check costs on its own."""
        source_id, _ = self.source("inspector")
        warm_id, _ = self.source("inspector-warm-up")  # warm-up fills another source's ring
        bad = {**inlet_headers("whsec_" + "A" * 43, BODY), "Idempotency-Key": "bench-inspector"}
        path = f"/webhooks/inbound/{source_id}"
        bare_url, bare = self.reference("bare")
        bare_bad = load.fixed("POST", "/", bad, BODY)
        try:
            self.wrk(bare_url, bare_bad, self.warm_s)
            self.wrk(
                self.ingest_url,
                load.fixed("POST", f"/webhooks/inbound/{warm_id}", bad, BODY),
                self.warm_s,
            )
            reference = self.wrk(bare_url, bare_bad)
            window = self.log("ingest")
            flood = self.wrk(self.ingest_url, load.fixed("POST", path, bad, BODY))
            reference = self.again(reference, bare_url, bare_bad)
        finally:
            bare.kill()
        lines = [line for line in window.lines() if line["httpRequest"]["requestUrl"] == path]
        written = [line for line in lines if line.get("deliveryRing") == "written"]
        failed = sum(1 for line in lines if line.get("deliveryRing") == "failed")
        ops = sum(int(line.get("firestoreOps", 0)) for line in lines)
        ring = self.db.collection("sources").document(source_id).collection("delivery_ring")
        newest = requests.get(
            f"{self.ingest_url}/v1/sources/{source_id}/deliveries",
            params={"limit": 1},
            headers=self.auth,
            timeout=30,
        ).json()["items"][0]

        def latency_ms(entries: list[dict]) -> float:
            return median_ms([float(e["httpRequest"]["latency"].rstrip("s")) for e in entries])

        return {
            "seconds": round(flood.seconds, 1),
            "requests": flood.requests,
            "bad_signature_per_s": round(flood.per_s, 1),
            "bare_per_s": round(reference.per_s, 1),
            "ratio": round(flood.per_s / reference.per_s, 3),
            "ring_writes": len(written),
            "ring_write_failures": failed,
            "ring_documents": sum(1 for _ in ring.select([]).stream()),
            "firestore_requests": ops,
            "reload_reads": ops - len(written) - failed,
            "median_ms_with_ring_write": latency_ms(written) if written else None,
            "median_ms_without": latency_ms([e for e in lines if "deliveryRing" not in e]),
            "ring_check_ns": ring_check_ns(),
            "inspector_shows": f"{newest['status']} {newest['code']}",
        }

    def oversize_memory(self, path: str, count: int = 20) -> float:
        """Peak RSS growth of the ingest worker while ``count`` 30 MiB bodies are refused, half
        announced by Content-Length and half chunked."""
        workers = measure.worker_pids(self.stack.processes["ingest"].popen.pid)
        before = max(measure.peak_rss_mb(pid) for pid in workers)
        port = int(self.ingest_url.rsplit(":", 1)[1])
        for i in range(count):
            send_huge(port, path, chunked=bool(i % 2))
        after = max(measure.peak_rss_mb(pid) for pid in workers)
        return round(after - before, 1)

    def put_block(self, block_id: str, source_id: str, params: dict) -> None:
        body = {
            "binding": {
                "dataSourceId": source_id,
                "queryConfig": {"type": "webhook.aggregate", "params": params},
                "projection": {"fields": {"value": {"source": "value"}}},
            },
            "widget": {"template": "metric", "data": {"value": None}},
        }
        answer = requests.put(
            f"{self.query_url}/v1/blocks/{block_id}", json=body, headers=self.auth, timeout=60
        )
        answer.raise_for_status()

    def refresh_until_folded(self, source_id: str) -> int:
        """Run the refresh task (as Cloud Tasks would) until nothing is left to fold."""
        token = self.stack.issuer.task_token()
        for runs in range(1, 1000):
            answer = requests.post(
                f"{self.query_url}/tasks/refresh",
                json={"sourceId": source_id, "reason": "event"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=300,
            )
            if answer.status_code == 503:  # a run out of storage budget: retried, as by Tasks
                continue
            answer.raise_for_status()
            if not answer.json().get("more"):
                return runs
        raise RuntimeError("the refresh never caught up")

    def seed(self, source_id: str, count: int) -> None:
        """``count`` events in ingest's layout, received evenly over the last eight days (so a
        7d window holds most of them), written directly: the HTTP path would take minutes."""
        now = dt.datetime.now(dt.UTC)
        span = dt.timedelta(days=8) - dt.timedelta(minutes=1)
        events = self.db.collection("sources").document(source_id).collection("events")
        batch, pending = self.db.batch(), 0
        for i in range(count):
            at = now - span + span * i / count
            raw = json.dumps({"type": "order.paid", "amount": i % 100}).encode()
            event_id = "evt_" + secrets.token_hex(12)
            batch.set(
                events.document(event_id),
                {
                    "receivedAt": at,
                    "signedAt": at,
                    "idempotencyKey": event_id,
                    "size": len(raw),
                    "body": raw,
                    "keyId": "bench",
                    "scheme": "inlet",
                },
            )
            pending += 1
            if pending == 500:
                batch.commit()
                batch, pending = self.db.batch(), 0
        if pending:
            batch.commit()

    def aggregate(self) -> dict[str, object]:
        """A 7d sum over 1,000, 10,000 and 100,000 events (``--quick``: 1,000 and 2,000):
        latency and Firestore RPCs."""
        params = {"window": "7d", "field": "amount", "op": "sum"}
        found: dict[str, object] = {}
        sizes = ((1000, "1k"), (10_000, "10k"), (100_000, "100k"))
        for count, name in ((1000, "1k"), (2000, "2k")) if self.quick else sizes:
            source_id, _ = self.source(f"aggregate-{name}")
            self.put_block(f"aggregate-{name}", source_id, params)  # rolls the field up
            started = time.monotonic()
            self.seed(source_id, count)
            seeded = time.monotonic()
            runs = self.refresh_until_folded(source_id)
            folded = time.monotonic()
            url = f"{self.query_url}/v1/sources/{source_id}/query"
            body = {"type": "webhook.aggregate", "params": params}
            with requests.Session() as session:
                for _ in range(3):  # warm
                    session.post(url, json=body, headers=self.auth, timeout=60).raise_for_status()
                window = self.log("query")
                cpu_before = self.service_cpu_ms("query")
                samples = []
                for _ in range(15):
                    began = time.perf_counter()
                    answer = session.post(url, json=body, headers=self.auth, timeout=60)
                    samples.append(time.perf_counter() - began)
                    answer.raise_for_status()
                found[f"cpu_ms_{name}"] = round((self.service_cpu_ms("query") - cpu_before) / 15, 2)
            queried = [
                line
                for line in window.lines()
                if line["httpRequest"]["requestUrl"].endswith("/query")
            ]
            found[f"ms_{name}"] = median_ms(samples)
            found[f"ops_{name}"] = max(int(line.get("firestoreOps", 0)) for line in queried)
            # Documents its reads returned (the service's own count, as for the RPCs).
            found[f"docs_read_{name}"] = max(int(line["firestoreReads"]) for line in queried)
            found[f"seed_s_{name}"] = round(seeded - started, 1)
            found[f"fold_s_{name}"] = round(folded - seeded, 1)
            found[f"fold_runs_{name}"] = runs
        largest = "2k" if self.quick else "100k"
        found[f"ratio_{largest}_1k"] = round(found[f"ms_{largest}"] / found["ms_1k"], 3)
        return found

    def coalescing(self, events: int | None = None) -> dict[str, object]:
        """A burst to a source with a bound block: refreshes run, and how soon the block shows
        the last event."""
        events = events or (300 if self.quick else 1000)
        source_id, secret = self.source("coalescing")
        self.put_block("coalescing", source_id, {"window": "1h", "op": "count"})
        url = f"{self.ingest_url}/webhooks/inbound/{source_id}"
        window = self.log("query")
        cpu_before = self.service_cpu_ms("query")
        todo = iter(range(events))
        lock = threading.Lock()
        last = [0.0]

        def send(slot: int) -> None:
            with requests.Session() as session:
                for i in todo:
                    headers = {**inlet_headers(secret, BODY), "Idempotency-Key": f"burst-{i}"}
                    session.post(url, data=BODY, headers=headers, timeout=30).raise_for_status()
                    with lock:
                        last[0] = max(last[0], time.monotonic())

        started = time.monotonic()
        pool = [threading.Thread(target=send, args=(i,)) for i in range(self.connections)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        block = f"{self.query_url}/v1/blocks/coalescing"
        fresh = None
        while time.monotonic() - last[0] < 60:
            shown = requests.get(block, headers=self.auth, timeout=30).json()
            if shown["widget"]["data"].get("value") == events:
                fresh = time.monotonic() - last[0]
                break
            time.sleep(0.05)
        # Follow-ups are counted once every one the burst asked for has run: the settling ones
        # (on a 10 s grid, at most SETTLE + 11 s after the last event) were served; the window
        # ones (a 1h block: an hour later) are still recorded in the outbox, counted there.
        from services.query import rollup_store

        # --quick counts them without waiting: each follow-up is recorded (a marker) when it is
        # scheduled, so served + still recorded is every follow-up asked for so far.
        settled = last[0] + rollup_store.SETTLE.total_seconds() + 15
        if not self.quick:
            time.sleep(max(0.0, settled - time.monotonic()))

        def refresh_lines() -> list[dict]:
            return [
                line
                for line in window.lines()
                if line["httpRequest"]["requestUrl"] == "/tasks/refresh"
                and line.get("sourceId") == source_id
            ]

        # A refresh writes the block before it answers and logs: the block can read fresh a
        # moment before the refresh that made it so has its log line.
        logged = time.monotonic() + 5
        while not any(line.get("reason") == "event" for line in refresh_lines()):
            if time.monotonic() > logged:
                break
            time.sleep(0.05)
        now = dt.datetime.now(dt.UTC)
        served = refresh_lines()
        pending = [
            m
            for m in self.db.collection("refresh_pending").stream()
            if m.get("sourceId") == source_id and (m.get("dueAt") or now) > now
        ]
        followups = [line for line in served if line.get("reason") == "followup"]
        # What one refresh costs the query service: its RPCs and writes from the log, and CPU
        # over the whole section (the block polls included, so an upper bound).
        cpu = self.service_cpu_ms("query") - cpu_before
        writes = [sum((line.get("firestoreWrites") or {}).values()) for line in served]
        return {
            "events": events,
            "burst_s": round(last[0] - started, 1),
            # The burst's own: the block's creation asked for one more ("change") before it.
            "refreshes": sum(1 for line in served if line.get("reason") == "event"),
            "followups": len(followups) + len(pending),
            "followups_pending": len(pending),
            "fresh_after_last_event_s": round(fresh, 2) if fresh is not None else None,
            "rpcs_per_refresh": round(
                sum(int(line.get("firestoreOps", 0)) for line in served) / max(len(served), 1), 1
            ),
            "writes_per_refresh": round(sum(writes) / max(len(served), 1), 1),
            "reads_per_refresh": round(
                sum(int(line.get("firestoreReads", 0)) for line in served) / max(len(served), 1), 1
            ),
            "cpu_ms_per_refresh_at_most": round(cpu / max(len(served), 1), 1),
        }

    def deployed(self) -> Path:
        """The source zip ``pulumi up`` uploads (infra/source.py), unpacked: what a Cloud Run
        instance starts from, its modules' bytecode included. A checkout run here compiles
        every module at every start (this machine sets PYTHONDONTWRITEBYTECODE); no instance
        does."""
        where = self.state / "function-source"
        if not where.exists():
            from infra import source

            source.bundle().extract(where)
        return where

    def imports(self) -> dict[str, object]:
        """Each service's entry import, from the deployed source, against what serving any
        request imports anyway."""
        found = {}
        for service in ("clerk_sync", "ingest", "query"):
            module = f"services.{service}.main"
            if not (ROOT / "services" / service / "main.py").exists():
                continue
            entry = [self.time_import((*UNAVOIDABLE, module)) for _ in range(self.repeats)]
            deps = [self.time_import(UNAVOIDABLE) for _ in range(self.repeats)]
            found[service] = {
                "entry_ms": median_ms(entry),
                "deps_ms": median_ms(deps),
                "ratio": round(statistics.median(entry) / statistics.median(deps), 3),
            }
        return found

    def time_import(self, modules: tuple[str, ...]) -> float:
        code = (
            "import importlib, time\n"
            "started = time.perf_counter()\n"
            f"for name in {list(modules)!r}: importlib.import_module(name)\n"
            "print(time.perf_counter() - started)\n"
        )
        deployed = self.deployed()
        env = {**os.environ, **self.stack.service_env(), "PYTHONPATH": str(deployed)}
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            cwd=deployed,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return float(out.stdout.strip().splitlines()[-1])

    def cold_start(self) -> dict[str, object]:
        source_id, secret = self.source("cold-start")
        path = f"/webhooks/inbound/{source_id}"
        spawns = 3 if self.quick else 5
        ours = [self.first_2xx("ingest", path, secret) for _ in range(spawns)]
        reference = [self.first_2xx("minimal", "/", secret) for _ in range(spawns)]
        return {
            "ingest_first_2xx_ms": median_ms(ours),
            "minimal_first_2xx_ms": median_ms(reference),
            "ratio": round(statistics.median(ours) / statistics.median(reference), 3),
            "spawns": len(ours),
        }

    def first_2xx(self, target: str, path: str, secret: str) -> float:
        """Seconds from spawning a server to the first 2xx of a real signed event."""
        port = free_port()
        if target == "ingest":  # as Cloud Run starts it: the deployed source's root main.py
            where = self.deployed()
            argv = [f"--source={where / 'main.py'}", "--target=ingest"]
        else:
            where = ROOT
            argv = ["--source=bench/references.py", f"--target={target}"]
        env = {
            **os.environ,
            **self.stack.service_env(),
            "BENCH_SECRET": secret,
            "PYTHONPATH": str(where),
        }
        started = time.monotonic()
        process = spawn(
            f"cold-{target}",
            [
                str(Path(sys.executable).parent / "functions-framework"),
                *argv,
                "--host=127.0.0.1",
                f"--port={port}",
            ],
            env,
            self.state / "logs",
        )
        try:
            with requests.Session() as session:
                while time.monotonic() - started < 60:
                    headers = {
                        **inlet_headers(secret, BODY),
                        "Idempotency-Key": secrets.token_hex(8),
                    }
                    try:
                        answer = session.post(
                            f"http://127.0.0.1:{port}{path}", data=BODY, headers=headers, timeout=10
                        )
                        if answer.ok:
                            return time.monotonic() - started
                    except requests.ConnectionError:
                        time.sleep(0.005)
            raise RuntimeError(f"{target} never answered 2xx")
        finally:
            process.kill()

    def clerk_sync(self) -> dict[str, object]:
        from svix.webhooks import Webhook

        signer = Webhook(self.stack.webhook_secret)
        url = self.stack.url("clerk-sync")
        count = int(self.seconds * 1500) + 500

        def deliveries(run: str, n: int) -> list[tuple[dict[str, str], bytes]]:
            now = dt.datetime.now(dt.UTC)
            made = []
            for i in range(n):
                user_id = f"user_{run}{i}"
                body = json.dumps(clerk_user_event(user_id), separators=(",", ":"))
                svix_id = f"msg_{run}{i}"
                made.append(
                    (
                        {
                            "svix-id": svix_id,
                            "svix-timestamp": str(int(now.timestamp())),
                            "svix-signature": signer.sign(svix_id, now, body),
                        },
                        body.encode(),
                    )
                )
            return made

        warm = self.state / "clerk-warm.txt"
        data = self.state / "clerk.txt"
        run = secrets.token_hex(3)
        # The same job behind HTTP, measured first as in the ingest section: Svix verification,
        # one read, one guarded commit, nothing else.
        env = {"BENCH_WEBHOOK_SECRET": self.stack.webhook_secret}
        minimal_url, minimal = self.reference("minimal_clerk", env)
        try:
            mine = "m" + run
            self.wrk(
                minimal_url, load.presigned("/", deliveries("w" + mine, 1500), 2, warm), self.warm_s
            )
            reference = self.wrk(minimal_url, load.presigned("/", deliveries(mine, count), 2, data))
            self.wrk(
                url,
                load.presigned("/webhooks/clerk", deliveries("w" + run, 1500), 2, warm),
                self.warm_s,
            )
            ours = self.wrk(url, load.presigned("/webhooks/clerk", deliveries(run, count), 2, data))
            if not self.quick:  # signing another list is only worth it for the second half
                again = load.presigned("/", deliveries("a" + mine, count), 2, data)
                reference = self.again(reference, minimal_url, again)
        finally:
            minimal.kill()
        if reference.non2xx:
            raise RuntimeError(f"the minimal Clerk handler refused {reference.non2xx} deliveries")

        def upsert(slot: int, counter=[0]) -> None:  # noqa: B006 - a shared counter on purpose
            from google.cloud import firestore

            counter[0] += 1
            user_ref = self.db.collection("bench_users").document(f"u{slot}_{counter[0]}")
            delivery = self.db.collection("bench_deliveries").document(secrets.token_hex(8))

            user, record = references.clerk_documents(
                clerk_user_event(user_ref.id), dt.datetime.now(dt.UTC)
            )

            @firestore.transactional
            def apply(transaction) -> None:
                stored = user_ref.get(transaction=transaction)
                version = stored.get("version.updatedAt") if stored.exists else None
                if version is None or version < user["updatedAt"]:
                    transaction.set(user_ref, user)
                transaction.set(delivery, record)

            apply(self.db.transaction())

        started = time.monotonic()
        direct = self.threads(upsert, self.seconds) / (time.monotonic() - started)
        return {
            "deliveries_per_s": round(ours.per_s, 1),
            "p99_ms": ours.p99_ms,
            "non_2xx": ours.non2xx,
            "minimal_per_s": round(reference.per_s, 1),
            "minimal_p99_ms": reference.p99_ms,
            "minimal_non_2xx": reference.non2xx,
            "ratio": round(ours.per_s / reference.per_s, 3),
            # Context, as ingest's direct commits: no HTTP path reaches a bare client here.
            "direct_txn_per_s": round(direct, 1),
            "ratio_vs_direct": round(ours.per_s / direct, 3),
        }

    def schema(self) -> dict:
        """Step 7b's validators, in process (bench/schema_contracts.py); needs no stack."""
        from bench import schema_contracts

        return schema_contracts.measure()


def ring_check_ns(calls: int = 200_000) -> float:
    """What the ring costs a refusal in a second already recorded: the limiter's lookup, timed
    in this process on the service's own class (no Firestore call is reached)."""
    from services.ingest.deliveries import DeliveryRing
    from services.ingest.signature import SignedRequest

    ring = DeliveryRing()
    signed = SignedRequest("inlet", int(time.time()), "key", ("0" * 64,), {})
    time.sleep(1.01 - time.time() % 1)  # the calls fit well inside one second from its start
    second = int(time.time())
    ring.admit("src_bench", second)  # as if recorded this second: every call takes the fast path
    started = time.perf_counter()
    for _ in range(calls):
        ring.record("src_bench", 401, "invalid_signature", signed, 20, "key_x")
    elapsed = time.perf_counter() - started
    if int(time.time()) != second:  # crossed into a new second: a call wrote; measure again
        return ring_check_ns(calls // 2)
    return round(elapsed / calls * 1e9, 1)


def clerk_user_event(user_id: str) -> dict:
    """A ``user.updated`` event in Clerk's documented shape."""
    email_id = f"idn_{user_id}"
    return {
        "type": "user.updated",
        "object": "event",
        "timestamp": int(time.time() * 1000),
        "data": {
            "id": user_id,
            "object": "user",
            "username": "ada",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "image_url": "https://img.clerk.com/ada.png",
            "primary_email_address_id": email_id,
            "email_addresses": [
                {"id": email_id, "object": "email_address", "email_address": "ada@example.com"}
            ],
            "public_metadata": {"plan": "pro"},
            "private_metadata": {},
            "unsafe_metadata": {},
            "created_at": 1_690_000_000_000,
            "updated_at": 1_700_000_000_000,
        },
    }


def send_huge(port: int, path: str, chunked: bool, size: int = HUGE) -> int:
    """Send a ``size``-byte body as fast as the server takes it; the status, or 0 when the
    server closed the connection before answering."""
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}")
    piece = b"a" * 65536
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            sent = 0
            while sent < size:
                sock.sendall(b"10000\r\n" + piece + b"\r\n" if chunked else piece)
                sent += len(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        try:
            status_line = sock.recv(4096).split(b"\r\n", 1)[0]
            return int(status_line.split()[1]) if status_line else 0
        except (OSError, IndexError, ValueError):
            return 0
