"""A refused or unread body costs a service no more than its cap, on every route
(docs/operations.md).

functions-framework reads whatever a handler left of a request after a non-streamed answer. These
tests stream a 30 MiB chunked body at every route openapi.yaml lists (and at a path no route
serves), and count what the service took off the wire before it stopped reading: the client's
socket accepts bytes only while the server reads them, give or take the kernel's buffers.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text())
METHODS = ("get", "put", "post", "delete", "patch")
OFFERED = 30 * 1024 * 1024
CHUNK = 64 * 1024
# The largest cap of any route (clerk-sync's 1 MiB) plus what loopback buffers hold (measured:
# 128-576 KiB): far under the 30 MiB offered, which is what a service that drains the body takes.
ACCEPTED_AT_MOST = 4 * 1024 * 1024
MIB = 1024 * 1024


def operations() -> list[tuple[str, str, str]]:
    """(service, method, path) for every operation in openapi.yaml, and one unknown path each."""
    found = []
    for path, item in SPEC["paths"].items():
        for method in METHODS:
            if method in item:
                for service in item[method].get("tags", []):
                    found.append((service, method.upper(), path))
    services = sorted({service for service, _, _ in found})
    unknown = [(service, "POST", "/no/such/route") for service in services]
    # A path functions-framework's own routing cannot match (it holds a newline).
    unroutable = [(service, "POST", "/v1/%0A") for service in services]
    return found + unknown + unroutable


def offer_body(base_url: str, method: str, path: str) -> tuple[int, bytes]:
    """Stream a 30 MiB chunked body; the bytes the server accepted, and the start of its answer."""
    url = urlsplit(base_url)
    target = path.replace("{sourceId}", "src_body_limit")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHUNK)
        sock.settimeout(10)
        sock.connect((url.hostname, url.port))
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(head.encode())
        frame = f"{CHUNK:x}\r\n".encode() + b"7" * CHUNK + b"\r\n"
        accepted = 0
        try:
            while accepted < OFFERED:
                sock.sendall(frame)
                accepted += CHUNK
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the server stopped reading: what it took is counted
        try:
            answer = sock.recv(64)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    return accepted, answer


def peak_rss(stack, service: str) -> int:
    """The service worker's peak resident memory (bytes), from /proc."""
    master = stack.processes[service].popen.pid
    workers = [
        int(stat.parent.name)
        for stat in Path("/proc").glob("[0-9]*/stat")
        if _parent(stat) == master
    ]
    total = 0
    for pid in workers or [master]:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total = max(total, int(line.split()[1]) * 1024)
    return total


def _parent(stat: Path) -> int | None:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


@pytest.mark.parametrize(("service", "method", "path"), operations())
def test_a_30_mib_body_costs_no_more_than_the_cap(stack, service, method, path):
    if service not in stack.processes:
        pytest.skip(f"{service} is not part of this tree")
    before = peak_rss(stack, service)
    accepted, answer = offer_body(stack.url(service), method, path)
    assert accepted <= ACCEPTED_AT_MOST, f"{service} read {accepted / MIB:.1f} MiB"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 "), answer
    # Not a bound on the instance (other work may grow it), but a drained body would be 30 MiB.
    assert peak_rss(stack, service) - before < 16 * MIB


def refuse_twice(base_url: str, path: str, size: int) -> tuple[bytes, bytes]:
    """Two requests on one connection, each announcing ``size`` bytes of body (sent whole for
    the first); the start of each answer, b"" when the connection was closed."""
    url = urlsplit(base_url)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode()
    answers = []
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        for _ in range(2):
            # The server may stop reading (a body past what it drains): its answer is still read.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
                sock.sendall(head + b"7" * size)
            try:
                answers.append(_answer(sock))
            except (ConnectionResetError, TimeoutError):
                answers.append(b"")
    return answers[0], answers[1]


def _answer(sock: socket.socket) -> bytes:
    """One whole HTTP answer (headers and Content-Length body), or b"" once closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(rest) < length:
        rest += sock.recv(4096)
    return head


def test_a_refused_body_of_up_to_1_mib_keeps_the_connection_open(stack):
    # Twice the ingest cap, announced: refused (413), then read and dropped, so the partner's
    # next request on the same connection is answered.
    first, second = refuse_twice(stack.url("ingest"), "/webhooks/inbound/src_x", 512 * 1024)
    assert first.startswith(b"HTTP/1.1 413") and second.startswith(b"HTTP/1.1 413")


def test_a_refused_body_over_1_mib_closes_the_connection(stack):
    over = 1024 * 1024 + 256 * 1024  # past what is drained (services/common/http.py)
    first, second = refuse_twice(stack.url("ingest"), "/webhooks/inbound/src_x", over)
    assert first.startswith(b"HTTP/1.1 413")
    assert b"connection: close" in first.lower() or second == b""
