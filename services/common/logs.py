"""One JSON object per line on stdout, in the shape Cloud Logging understands.

Callers pass only metadata: never a secret, a signature, a token or an event body
(docs/operations.md).
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from typing import Any

_lock = threading.Lock()
# The payload type Cloud Error Reporting groups without a client library:
# https://cloud.google.com/error-reporting/docs/formatting-error-messages
ERROR_EVENT_TYPE = (
    "type.googleapis.com/google.devtools.clouderrorreporting.v1beta1.ReportedErrorEvent"
)


# One encoder for every line (json.dumps with options builds a new one per call).
_encoder = json.JSONEncoder(default=str, separators=(",", ":"))


def log(severity: str, message: str, **fields: Any) -> None:
    entry = {"severity": severity, "message": message, "time": _now(), **fields}
    line = _encoder.encode(entry)
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def report_error(err: BaseException, service: str, **fields: Any) -> None:
    """One ERROR entry that Cloud Error Reporting picks up: the Python traceback as the message
    and ``stack_trace``, typed as a ``ReportedErrorEvent`` for ``service``."""
    trace = stack_trace(err)
    log(
        "ERROR",
        trace,
        **{"@type": ERROR_EVENT_TYPE, "stack_trace": trace, "serviceContext": {"service": service}},
        **fields,
    )


def stack_trace(err: BaseException) -> str:
    """The traceback in Python's own format (as when the source is not at hand): each frame's
    file, line and function, then the exception's type. Not its message nor the source lines: a
    message can quote input (a body, a token) that no log line may hold."""
    frames = [
        f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}\n'
        for frame in traceback.extract_tb(err.__traceback__)
    ]
    kind = type(err)
    name = kind.__qualname__
    if kind.__module__ not in ("builtins", "__main__"):
        name = f"{kind.__module__}.{name}"
    return "Traceback (most recent call last):\n" + "".join(frames) + name


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"
