"""Test doubles that speak real protocols on loopback: a task target and Clerk's Backend API."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class ReceivedTask:
    path: str
    headers: dict[str, str]
    body: dict


class TaskReceiver:
    """Records every HTTP task the tasks emulator dispatches and answers 200."""

    def __init__(self) -> None:
        self.tasks: list[ReceivedTask] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                with receiver._lock:
                    receiver.tasks.append(
                        ReceivedTask(self.path, dict(self.headers), json.loads(raw or b"{}"))
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> TaskReceiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def clear(self) -> None:
        with self._lock:
            self.tasks.clear()

    def received(self) -> list[ReceivedTask]:
        with self._lock:
            return list(self.tasks)
