"""``INLET_KEEP_DATA=1 make dev`` keeps Firestore's data across restarts; by default a restart
starts empty (docs/local-stack.md)."""

from __future__ import annotations

from pathlib import Path

from google.cloud import firestore

from devstack import dev
from devstack.stack import PROJECT, LocalStack, Ports


def started(state_dir: Path, keep_data_dir: Path | None) -> LocalStack:
    stack = LocalStack(
        ports=Ports.free(), state_dir=state_dir, retry_ports=True, keep_data_dir=keep_data_dir
    )
    return stack.start(services=())


def client(stack: LocalStack, monkeypatch) -> firestore.Client:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", stack.firestore_host)
    return firestore.Client(project=PROJECT)


def write_then_restart(tmp_path: Path, monkeypatch, keep_data_dir: Path | None) -> dict | None:
    first = started(tmp_path, keep_data_dir)
    try:
        client(first, monkeypatch).document("users/user_demo").set({"name": "Demo"})
    finally:
        first.stop()
    second = started(tmp_path, keep_data_dir)
    try:
        snapshot = client(second, monkeypatch).document("users/user_demo").get()
        return snapshot.to_dict() if snapshot.exists else None
    finally:
        second.stop()


def test_with_keep_data_a_restart_finds_what_was_written(tmp_path, monkeypatch):
    assert write_then_restart(tmp_path, monkeypatch, tmp_path / "firestore-data") == {
        "name": "Demo"
    }


def test_by_default_a_restart_starts_empty(tmp_path, monkeypatch):
    assert write_then_restart(tmp_path, monkeypatch, None) is None
    assert not (tmp_path / "firestore-data").exists()


def test_make_dev_keeps_data_only_when_asked(monkeypatch):
    monkeypatch.delenv("INLET_KEEP_DATA", raising=False)
    assert dev.keep_data_asked() is False
    monkeypatch.setenv("INLET_KEEP_DATA", "1")
    assert dev.keep_data_asked() is True
