"""Inlet on Google Cloud in one ``pulumi up`` (docs/deploy.md).

Reads the stack's configuration once, then declares each concern in order: APIs, Firestore,
secrets, the refresh queue, identities, the source and its build repository, the three
functions, their grants, the sweep, the operators' metrics; exports what a user needs next.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Pulumi runs this directory as a script, with the directory itself first on sys.path; the
# program imports its modules as the ``infra`` package (and the shared index list from
# ``services``), so the repository root takes that place instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import pulumi  # noqa: E402

from infra import program  # noqa: E402

for key, value in program.run().items():
    pulumi.export(key, value)
