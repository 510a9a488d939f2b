"""One JSON object per line on stdout, in the shape Cloud Logging understands.

Callers pass only metadata: never a secret, a signature, a token or an event body (SPEC section 4).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

_lock = threading.Lock()


def log(severity: str, message: str, **fields: Any) -> None:
    entry = {"severity": severity, "message": message, "time": _now(), **fields}
    line = json.dumps(entry, default=str, separators=(",", ":"))
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"
