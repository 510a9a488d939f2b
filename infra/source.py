"""The source the three functions are built from: one zip, named after a hash of its content.

What goes in (docs/deploy.md, "Which deploy path"): only the ``services`` package (its Python
modules, and the console's static files the query service serves), a root
``main.py`` that exposes the three targets lazily (``infra/entry.py``), and a
``requirements.txt`` holding the runtime dependencies alone, pinned with hashes from
``requirements.lock``. The object's name carries the zip's SHA-256, so any change to what the
services run uploads a new object and rolls new revisions, and nothing else (docs, tests,
infra) does.

Every module also ships compiled (``__pycache__/*.cpython-311.pyc``) when the bundle is built
by the runtime's Python, 3.11: a cold instance then loads bytecode instead of compiling each
module first (about 25 ms of ingest's 60 ms entry import, docs/performance.md). The files are
checked-hash pycs: Python verifies each against its source's hash, never a timestamp (a zip
keeps none), so a stale one cannot run, and the same source gives the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_gcp as gcp

from infra.config import StackConfig

ROOT = Path(__file__).resolve().parent.parent
# Files besides Python modules that a service reads at run time: the console's page, modules
# and stylesheet (the query service loads them when it starts).
STATIC = ("services/query/console",)
BUILD_DIR = Path(".inlet") / "build"  # under the repository root; ignored by git
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip entries carry no real mtime: same files, same bytes
_VIA_ROOT = "inlet (pyproject.toml)"
RUNTIME_CACHE_TAG = "cpython-311"  # the functions' runtime, python311 (infra/functions.py)


@dataclass(frozen=True)
class SourceBundle:
    content: bytes
    digest: str  # hex SHA-256 of the zip

    @property
    def object_name(self) -> str:
        return f"inlet-source-{self.digest[:32]}.zip"

    def extract(self, where: Path) -> None:
        """Unpack the zip into ``where``, as Cloud Build receives it."""
        zipfile.ZipFile(io.BytesIO(self.content)).extractall(where)


def bundle(root: Path = ROOT) -> SourceBundle:
    """The deterministic zip of everything the services run, built from ``root``."""
    found = list((root / "services").rglob("*.py"))
    for folder in STATIC:
        found += [path for path in (root / folder).rglob("*") if path.is_file()]
    files: dict[str, bytes] = {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(found)
        if "__pycache__" not in path.parts
    }
    files["main.py"] = (root / "infra" / "entry.py").read_bytes()
    if sys.implementation.cache_tag == RUNTIME_CACHE_TAG:
        files.update(bytecode({n: c for n, c in files.items() if n.endswith(".py")}))
    files["requirements.txt"] = runtime_requirements(root).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name])
    content = buffer.getvalue()
    return SourceBundle(content=content, digest=hashlib.sha256(content).hexdigest())


def bytecode(modules: dict[str, bytes]) -> dict[str, bytes]:
    """Each module's checked-hash pyc, at the path the import system looks for it.

    Compiled by a fresh interpreter with a fixed hash seed: marshal's output depends on the
    compiling process (string hashes order a frozenset constant, object reference counts decide
    back-references), so compiling here, in whatever Pulumi or a test has loaded, would give
    other bytes and another object name on every run.
    """
    with tempfile.TemporaryDirectory() as scratch:
        for name, content in modules.items():
            path = Path(scratch) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        subprocess.run(
            [
                sys.executable,
                "-s",
                "-m",
                "compileall",
                "-q",
                "-o",
                "0",
                "-s",
                scratch,
                "--invalidation-mode",
                "checked-hash",
                scratch,
            ],
            env={"PYTHONHASHSEED": "0"},
            check=True,
            capture_output=True,
            timeout=120,
        )
        return {
            path.relative_to(scratch).as_posix(): path.read_bytes()
            for path in sorted(Path(scratch).rglob(f"*.{RUNTIME_CACHE_TAG}.pyc"))
        }


def runtime_requirements(root: Path = ROOT) -> str:
    """The locked, hashed entries of ``requirements.lock`` that the runtime dependencies need.

    The lock also holds the test and deploy tools (the ``dev`` extra); the build needs none of
    them. Starting from ``[project].dependencies``, an entry belongs when any package it is
    "via" belongs, until nothing more joins.
    """
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    wanted = {
        _normal(re.split(r"[\[=<>!~; ]", dep, maxsplit=1)[0]) for dep in project["dependencies"]
    }
    entries = _lock_entries((root / "requirements.lock").read_text())
    runtime = {name for name in wanted if name in entries}
    missing = wanted - runtime
    if missing:
        raise RuntimeError(f"requirements.lock lacks {sorted(missing)}: run `make lock`")
    grown = True
    while grown:
        grown = False
        for name, (_, parents) in entries.items():
            if name not in runtime and parents & runtime:
                runtime.add(name)
                grown = True
    header = "# Runtime dependencies only, generated from requirements.lock by infra/source.py.\n"
    return header + "".join(entries[name][0] for name in sorted(runtime))


def _lock_entries(lock: str) -> dict[str, tuple[str, set[str]]]:
    """Each locked package: its requirement lines (pin and hashes) and what it is needed by."""
    entries: dict[str, tuple[str, set[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", lock):
        first = block.split("\n", 1)[0]
        pinned = re.match(r"([A-Za-z0-9._-]+)(\[[^\]]*\])?==", first)
        if not pinned:
            continue
        lines = block.split("\n")
        requirement = "".join(f"{line}\n" for line in lines if not line.lstrip().startswith("#"))
        parents: set[str] = set()
        for line in lines:
            comment = line.strip().removeprefix("#").strip()
            if comment.startswith("via "):
                comment = comment.removeprefix("via ").strip()
            elif not line.lstrip().startswith("#   "):
                continue
            if comment and comment != "via":
                parents.add(_normal(comment) if comment != _VIA_ROOT else _VIA_ROOT)
        entries[_normal(pinned.group(1))] = (requirement.rstrip("\n ") + "\n", parents)
    return entries


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.split("[")[0].strip()).lower()


def provision(
    cfg: StackConfig, opts: pulumi.ResourceOptions, root: Path = ROOT
) -> tuple[gcp.storage.Bucket, gcp.storage.BucketObject]:
    """The private bucket and the current source object in it."""
    source = bundle(root)
    path = root / BUILD_DIR / source.object_name
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob("inlet-source-*.zip"):
        if stale != path:
            stale.unlink()
    if not path.exists():
        path.write_bytes(source.content)
    bucket = gcp.storage.Bucket(
        "source-bucket",
        project=cfg.project,
        # Bucket names are global: the project id, then this stack's suffix.
        name=f"{cfg.project}-inlet-source-{cfg.suffix}",
        location=cfg.region,
        uniform_bucket_level_access=True,
        public_access_prevention="enforced",
        force_destroy=True,  # holds only build inputs; `pulumi destroy` may empty it
        opts=opts,
    )
    obj = gcp.storage.BucketObject(
        "source-object",
        bucket=bucket.name,
        name=source.object_name,
        source=pulumi.FileAsset(str(path)),
        content_type="application/zip",
        opts=opts,
    )
    return bucket, obj
