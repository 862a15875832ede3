"""Atomic writes: a file appears under its final name complete, or not at all."""

from __future__ import annotations

import os

import pytest

from bundlekit.errors import WriteFailed
from bundlekit.fsutil import AtomicFile, atomic_write_bytes
from bundlekit.naming import is_bundle_name


def test_commit_renames_into_place(tmp_path):
    with AtomicFile(tmp_path, "site-a-00000001") as out:
        assert not is_bundle_name(os.path.basename(out.temp_path))
        out.file.write(b"complete")
        path = out.commit("site-a-00000001-00000000.bundle")
    assert os.listdir(tmp_path) == ["site-a-00000001-00000000.bundle"]
    assert open(path, "rb").read() == b"complete"


def test_exception_before_commit_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with AtomicFile(tmp_path, "x") as out:
            out.file.write(b"half")
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []


def test_existing_final_name_is_never_replaced(tmp_path):
    (tmp_path / "taken.bundle").write_bytes(b"original")
    out = AtomicFile(tmp_path, "x")
    out.file.write(b"new")
    with pytest.raises(WriteFailed, match="already exists"):
        out.commit("taken.bundle")
    assert os.listdir(tmp_path) == ["taken.bundle"]
    assert (tmp_path / "taken.bundle").read_bytes() == b"original"


def test_unwritable_folder_is_write_failed(tmp_path):
    with pytest.raises(WriteFailed, match="does not exist") as e:
        AtomicFile(tmp_path / "gone", "x")
    assert str(tmp_path / "gone") in str(e.value)


def test_injected_opener_failure_is_write_failed(tmp_path):
    def opener(path):
        raise OSError(30, "Read-only file system")

    with pytest.raises(WriteFailed, match="read-only"):
        AtomicFile(tmp_path, "x", opener=opener)


def test_atomic_write_bytes_replaces_state_files(tmp_path):
    state = tmp_path / "chain.json"
    atomic_write_bytes(state, b"one")
    atomic_write_bytes(state, b"two")
    assert state.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["chain.json"]
