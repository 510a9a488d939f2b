"""A cold start pays only for what serving needs: each service's entry module leaves the
libraries only some requests use (jsonschema and RE2 for schema contracts, requests for
Clerk's Backend API, tqdm for the CLI) unimported until a request needs them, and the
machine's mime.types unread. Measured by
``make bench`` (``import``); this keeps the imports from creeping back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.unit.test_openapi import IMPORT_ENV, SERVICES

# Loaded on first use: a source with a schema, a Clerk fallback or reconciliation, the CLI.
LAZY = {
    "clerk-sync": ("jsonschema", "re2", "requests", "tqdm"),
    "ingest": ("jsonschema", "re2", "requests", "tqdm"),
    "query": ("re2", "requests", "tqdm"),
}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_entry_module_leaves_request_only_libraries_unimported(service):
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({SERVICES[service]!r})\n"
        f"loaded = [m for m in {list(LAZY[service])!r} if m in sys.modules]\n"
        # The machine's mime.types is parsed on first guess (4 ms): nothing at start needs it.
        "if getattr(sys.modules.get('mimetypes'), 'inited', False): loaded.append('mime.types')\n"
        "print(json.dumps(loaded))\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TASKS_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "INLET_DEV_SIGNING_KEY")
    }
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, **IMPORT_ENV},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
