"""The functions' root entry module: shipped as ``main.py`` at the root of the source zip.

Google's Python buildpack loads ``main.py`` and asks it for one target (``clerk_sync``,
``ingest`` or ``query``). Each service configures itself at import, from variables only its
own deployment has, so this module imports nothing until a target is asked for, and then only
that target's service (a module ``__getattr__``, PEP 562).
"""

from __future__ import annotations

import importlib
from typing import Any

TARGETS = {
    "clerk_sync": "services.clerk_sync.main",
    "ingest": "services.ingest.main",
    "query": "services.query.main",
}


def __getattr__(name: str) -> Any:
    module = TARGETS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(TARGETS)
