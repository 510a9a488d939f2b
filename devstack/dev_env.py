"""Reading `.inlet/dev.env`, the file `make dev` writes (README "Configuration")."""

from __future__ import annotations

from devstack.processes import ROOT

DEV_ENV = ROOT / ".inlet" / "dev.env"


def read_dev_env() -> dict[str, str]:
    if not DEV_ENV.exists():
        return {}
    values = {}
    for line in DEV_ENV.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key and not key.startswith("#"):
            values[key.strip()] = value.strip()
    return values
