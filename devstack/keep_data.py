"""``INLET_KEEP_DATA=1 make dev``: the emulator's data kept across restarts, so a demo survives.

Without it the Firestore emulator holds everything in memory and a restart starts empty. With
it, the stack asks the emulator to export the services' database when it stops (the emulator's
own export endpoint, the one the Firebase CLI calls) and starts the next emulator with
``--import-data`` pointing at that export. The gcloud wrapper's ``--export-on-exit`` flag is
not used: the emulator shipped with Cloud SDK 528 logs "Failed during export" or writes
nothing when it is stopped by a signal, which is how the stack stops it.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path

CURRENT = "current"  # the export the next start imports; replaced whole by each stop


def saved_export(root: Path) -> Path | None:
    """The metadata file of the last export under ``root``, which ``--import-data`` takes."""
    found = sorted((root / CURRENT).glob("*/*.overall_export_metadata"))
    return found[-1] if found else None


def save(host: str, project: str, root: Path, database: str = "(default)") -> Path:
    """Export ``database`` from the running emulator at ``host`` into ``root``.

    The export goes to a fresh directory first and replaces the previous one only once it is
    complete, so a failed export never loses the last good one.
    """
    root.mkdir(parents=True, exist_ok=True)
    staging = root / "exporting"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    request = urllib.request.Request(
        f"http://{host}/emulator/v1/projects/{project}:export",
        data=json.dumps(
            {
                "database": f"projects/{project}/databases/{database}",
                "export_directory": str(staging.resolve()),
            }
        ).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60):  # noqa: S310 - loopback
        pass
    current = root / CURRENT
    previous = root / "previous"
    shutil.rmtree(previous, ignore_errors=True)
    if current.exists():
        current.rename(previous)
    staging.rename(current)
    shutil.rmtree(previous, ignore_errors=True)
    return current
