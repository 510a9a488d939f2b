"""The functions' source: what the zip holds, what names it, and that its entry module serves
each target in a fresh interpreter with only that service's environment (docs/deploy.md)."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from infra import entry, functions, source
from infra.config import SERVICES
from tests.infra import harness

ROOT = harness.ROOT


def copy_of_repository(tmp_path: Path) -> Path:
    """What the bundle reads, copied so a test can change it."""
    root = tmp_path / "repo"
    shutil.copytree(
        ROOT / "services", root / "services", ignore=shutil.ignore_patterns("__pycache__")
    )
    (root / "infra").mkdir()
    shutil.copy(ROOT / "infra" / "entry.py", root / "infra" / "entry.py")
    for name in ("pyproject.toml", "requirements.lock", "README.md"):
        shutil.copy(ROOT / name, root / name)
    return root


def names_in(bundle: source.SourceBundle) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()


def test_the_object_name_carries_the_content_hash_and_is_stable(tmp_path):
    root = copy_of_repository(tmp_path)
    first = source.bundle(root)
    assert re.fullmatch(r"inlet-source-[0-9a-f]{32}\.zip", first.object_name)
    # Rebuilding, touching files, or changing what the services do not run changes nothing.
    os.utime(root / "services" / "ingest" / "main.py", (1, 1))
    (root / "README.md").write_text("changed\n")
    (root / "services" / "ingest" / "__pycache__").mkdir()
    (root / "services" / "ingest" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"x")
    assert source.bundle(root).object_name == first.object_name


@pytest.mark.parametrize(
    "changed",
    [
        "services/common/clerk_store.py",
        "services/ingest/receive.py",
        "services/common/http.py",
        "infra/entry.py",
        "requirements.lock",
    ],
)
def test_the_object_name_changes_when_anything_the_services_run_changes(tmp_path, changed):
    root = copy_of_repository(tmp_path)
    before = source.bundle(root).object_name
    path = root / changed
    if changed == "requirements.lock":
        # A new pin of a runtime dependency (the lock's text for it, not a real resolution).
        text = path.read_text()
        path.write_text(text.replace("tqdm==4.70.1", "tqdm==4.70.2", 1))
    else:
        path.write_text(path.read_text() + "\n# a change\n")
    assert source.bundle(root).object_name != before


def test_a_new_service_file_changes_the_object_name(tmp_path):
    root = copy_of_repository(tmp_path)
    before = source.bundle(root).object_name
    (root / "services" / "ingest" / "extra.py").write_text('"""new"""\n')
    assert source.bundle(root).object_name != before


def test_the_declared_object_is_the_current_bundle():
    deployment = harness.deploy()
    (obj,) = deployment.of_type("gcp:storage/bucketObject:BucketObject")
    bundle = source.bundle()
    assert obj.inputs["name"] == bundle.object_name
    uploaded = Path(obj.inputs["source"].path)
    assert uploaded.read_bytes() == bundle.content


def test_the_zip_holds_only_the_services_the_entry_module_and_runtime_requirements():
    names = names_in(source.bundle())
    assert "main.py" in names and "requirements.txt" in names
    others = set(names) - {"main.py", "requirements.txt"}
    static = {n for n in others if n.startswith("services/query/console/")}
    compiled = {n for n in others if "/__pycache__/" in n or n.startswith("__pycache__/")}
    modules = others - static - compiled
    assert modules and all(n.startswith("services/") and n.endswith(".py") for n in modules)
    # The console's page, modules and stylesheet, which the query service loads at start.
    console = ROOT / "services" / "query" / "console"
    assert (
        static == {p.relative_to(ROOT).as_posix() for p in console.rglob("*") if p.is_file()}
        and "services/query/console/index.html" in static
    )
    assert not any(n.startswith(("tests/", "devstack/", "infra/")) for n in names)
    # Bytecode: one pyc per module when built by the runtime's Python, nothing else.
    if sys.implementation.cache_tag == source.RUNTIME_CACHE_TAG:
        assert compiled == {pyc_of(n) for n in modules | {"main.py"}}
    else:
        assert not compiled
    archive = zipfile.ZipFile(io.BytesIO(source.bundle().content))
    assert archive.read("main.py") == (ROOT / "infra" / "entry.py").read_bytes()


def pyc_of(module: str) -> str:
    path = Path(module)
    return (path.parent / "__pycache__" / f"{path.stem}.{source.RUNTIME_CACHE_TAG}.pyc").as_posix()


def test_the_bytecode_is_for_the_functions_runtime():
    version = functions.RUNTIME.removeprefix("python")  # python311: 311
    assert source.RUNTIME_CACHE_TAG.split("-") == ["cpython", version]


@pytest.mark.skipif(
    sys.implementation.cache_tag != source.RUNTIME_CACHE_TAG, reason="built by another Python"
)
def test_each_pyc_is_checked_against_its_own_source_and_nothing_else():
    archive = zipfile.ZipFile(io.BytesIO(source.bundle().content))
    names = set(archive.namelist())
    for name in [n for n in names if n.endswith(".py")]:
        pyc = archive.read(pyc_of(name))
        # PEP 552: the magic number, flags 0b11 (hash-based, checked), the source's hash.
        assert pyc[:4] == importlib.util.MAGIC_NUMBER
        assert int.from_bytes(pyc[4:8], "little") == 0b11
        assert pyc[8:16] == importlib.util.source_hash(archive.read(name))


def test_a_bundle_without_the_runtimes_python_ships_no_bytecode(tmp_path, monkeypatch):
    root = copy_of_repository(tmp_path)
    monkeypatch.setattr(source, "RUNTIME_CACHE_TAG", "cpython-399")
    assert not [n for n in names_in(source.bundle(root)) if "__pycache__" in n]


def locked(requirements: str) -> dict[str, str]:
    return {
        source._normal(m.group(1)): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9._-]+)==([^ \\\n]+)", requirements, re.M)
    }


def test_runtime_requirements_are_the_runtime_closure_of_the_lock_with_hashes():
    requirements = source.runtime_requirements()
    pins = locked(requirements)
    lock = locked((ROOT / "requirements.lock").read_text())
    # Every runtime pin is the lock's, and hashed (pip then checks every download).
    assert all(lock[name] == version for name, version in pins.items())
    entries = [e for e in re.split(r"\n(?=[A-Za-z0-9])", requirements) if "==" in e]
    assert len(entries) == len(pins) and all("--hash=sha256:" in e for e in entries)
    # The services' own dependencies are there; the test and deploy tools are not.
    for name in ("functions-framework", "google-cloud-firestore", "svix", "pyjwt", "cryptography"):
        assert name in pins
    for name in ("pytest", "ruff", "hypothesis", "pulumi", "pulumi-gcp", "pulumi-random"):
        assert name not in pins
    # Closed: what each runtime package requires (as installed here) is pinned too.
    environment = {"extra": ""}
    for name in pins:
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            if requirement.marker and not requirement.marker.evaluate(environment):
                continue
            assert source._normal(requirement.name) in pins, f"{name} needs {requirement.name}"


# --- The root entry module, in a fresh interpreter ------------------------------------------------

PROBE = """
import importlib.util, json, os, sys
import functions_framework
app = functions_framework.create_app(target=sys.argv[1], source="main.py")
answer = app.test_client().get("/health")
import services
print(json.dumps({
    "status": answer.status_code,
    "body": answer.get_json(),
    "mains": sorted(m for m in sys.modules if m.startswith("services.") and m.endswith(".main")),
    "services": services.__file__,
    "uncompiled": sorted(n for n, m in sys.modules.items() if n.startswith("services") and not (
        os.path.exists(m.__spec__.cached)
        and open(m.__spec__.cached, "rb").read()[8:16]
        == importlib.util.source_hash(open(m.__file__, "rb").read())
    )),
}))
"""


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("function-source")
    source.bundle().extract(where)
    return where


@pytest.fixture(scope="module")
def declared() -> harness.Deployment:
    return harness.deploy()


def service_environment(deployment: harness.Deployment, key: str) -> dict[str, str]:
    """What Cloud Run would give the container: the declared plain variables, and each secret
    reference resolved to the value its version holds."""
    (function,) = [
        r for r in deployment.of_type("gcp:cloudfunctionsv2/function:Function") if r.name == key
    ]
    service = function.inputs["serviceConfig"]
    values = {
        r.inputs["secret"]: r.inputs["secretData"]["value"]
        for r in deployment.of_type("gcp:secretmanager/secretVersion:SecretVersion")
    }
    secrets = {
        ref["key"]: values[f"projects/{harness.PROJECT}/secrets/{ref['secret']}"]
        for ref in service.get("secretEnvironmentVariables", [])
    }
    return {**service["environmentVariables"], **secrets}


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.target)
def test_the_entry_module_serves_each_target_alone_in_a_fresh_interpreter(
    unpacked, declared, service
):
    if not (ROOT / "services" / service.target / "main.py").exists():
        pytest.skip(f"services/{service.target} is not in this tree yet")
    environment = {
        **service_environment(declared, service.key),
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(unpacked),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(
        # -P: like the buildpack's server, the source directory is not put first on sys.path;
        # functions-framework adds it when it loads main.py.
        [sys.executable, "-P", "-c", PROBE, service.target],
        cwd=unpacked,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 200
    assert result["body"]["status"] == "ok"
    assert result["mains"] == [entry.TARGETS[service.target]]  # no other service imported
    assert Path(result["services"]).is_relative_to(unpacked)  # the zip's copy, not the repo's
    if sys.implementation.cache_tag == source.RUNTIME_CACHE_TAG:
        # Every module had the zip's bytecode for its own source (PYTHONDONTWRITEBYTECODE:
        # no pyc here was written by this run), so none was compiled.
        assert result["uncompiled"] == []


def test_the_entry_module_names_exactly_the_deployed_targets():
    assert set(entry.TARGETS) == {s.target for s in SERVICES}
    assert all(module == f"services.{t}.main" for t, module in entry.TARGETS.items())


def test_no_program_module_shadows_the_standard_library_or_the_services_package():
    # Pulumi puts infra/ first on sys.path: an infra/queue.py would replace the stdlib's queue
    # for grpc, an infra/services.py the services package the program reads indexes from.
    names = {p.stem for p in (ROOT / "infra").glob("*.py")} - {"__init__", "__main__"}
    assert names and not names & (set(sys.stdlib_module_names) | {"services", "pulumi"})
