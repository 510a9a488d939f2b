"""Reading `.inlet/dev.env`, the file `make dev` writes (docs/local-stack.md).

The state directory is `INLET_STATE_DIR` when set (as for `make dev` itself), else `.inlet`
at the repository's root, so the helpers always read the stack that `make dev` started.
"""

from __future__ import annotations

import os
from pathlib import Path

from devstack.processes import ROOT


def state_dir() -> Path:
    return Path(os.environ.get("INLET_STATE_DIR") or ROOT / ".inlet")


def read_dev_env() -> dict[str, str]:
    path = state_dir() / "dev.env"
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values
