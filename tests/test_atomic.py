"""backend.atomic: the one writer. Old file or new file, never half; umask honoured; bad targets refused."""

import errno
import json
import os

import numpy as np
import pytest

from backend import atomic
from backend.atomic import (WriteError, atomic_path, atomic_stream, write_bytes, write_json, write_npy, write_npz,
                            write_text)


@pytest.fixture
def umask_027():
    previous = os.umask(0o027)
    yield
    os.umask(previous)


def leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_each_helper_writes_what_it_was_given(tmp_path):
    write_bytes(tmp_path / "a.bin", b"\x00\x01")
    write_text(tmp_path / "a.txt", "hé\nline\n")
    write_json(tmp_path / "a.json", {"b": [1, 2]})
    write_npy(tmp_path / "a.npy", np.arange(6, dtype=np.float32).reshape(2, 3))
    write_npz(tmp_path / "a.npz", vertices=np.ones((4, 3), np.float32), faces=np.zeros((2, 3), np.int64))
    with atomic_stream(tmp_path / "a.csv", "w", newline="") as stream:
        stream.write("x,y\n")
    with atomic_path(tmp_path / "a.dat") as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".dat" and temporary.name.startswith(".a.dat.")
        temporary.write_bytes(b"by path")
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "hé\nline\n"
    assert json.loads((tmp_path / "a.json").read_text()) == {"b": [1, 2]}
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.arange(6).reshape(2, 3))
    with np.load(tmp_path / "a.npz") as archive:
        assert sorted(archive.files) == ["faces", "vertices"] and archive["vertices"].shape == (4, 3)
    assert (tmp_path / "a.csv").read_text() == "x,y\n"
    assert (tmp_path / "a.dat").read_bytes() == b"by path"
    assert leftovers(tmp_path, {"a.bin", "a.txt", "a.json", "a.npy", "a.npz", "a.csv", "a.dat"}) == []


def test_npz_is_byte_reproducible(tmp_path):
    vertices = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    write_npz(tmp_path / "one.npz", vertices=vertices)
    write_npz(tmp_path / "two.npz", vertices=vertices)
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()


def test_new_file_gets_the_umask_mode(tmp_path, umask_027):
    write_npy(tmp_path / "new.npy", np.zeros(3))
    assert (tmp_path / "new.npy").stat().st_mode & 0o777 == 0o640


def test_replaced_file_keeps_its_mode(tmp_path, umask_027):
    target = tmp_path / "shared.json"
    target.write_text("{}")
    target.chmod(0o664)
    write_json(target, [1])
    assert target.stat().st_mode & 0o777 == 0o664 and json.loads(target.read_text()) == [1]


def test_a_folder_as_target_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(WriteError, match="it is a folder") as caught:
        write_text(tmp_path / "out", "x")
    assert "\n" not in str(caught.value)
    assert leftovers(tmp_path, {"out"}) == [] and list((tmp_path / "out").iterdir()) == []


def test_a_write_protected_file_is_refused_and_kept(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("precious")
    target.chmod(0o444)
    with pytest.raises(WriteError, match="write-protected"):
        write_text(target, "new")
    assert target.read_text() == "precious" and leftovers(tmp_path, {"results.json"}) == []


def test_a_missing_folder_is_refused(tmp_path):
    with pytest.raises(WriteError, match="does not exist"):
        write_bytes(tmp_path / "nowhere" / "a.bin", b"")
    assert not (tmp_path / "nowhere").exists()


def test_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(WriteError, match="read-only"):
            write_bytes(folder / "a.bin", b"")
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


def test_disk_full_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "scores.json"
    write_json(target, {"plrs": 0.4})
    real_fsync = os.fsync

    def full_disk(handle):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(atomic.os, "fsync", full_disk)
    with pytest.raises(WriteError, match="No space left on device") as caught:
        write_json(target, {"plrs": 0.9})
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    assert "\n" not in str(caught.value)
    assert json.loads(target.read_text()) == {"plrs": 0.4}
    assert leftovers(tmp_path, {"scores.json"}) == []


def test_a_failing_writer_keeps_the_previous_file(tmp_path):
    target = tmp_path / "model.bin"
    write_bytes(target, b"old")
    with pytest.raises(RuntimeError, match="writer broke"):
        with atomic_stream(target) as stream:
            stream.write(b"half")
            raise RuntimeError("writer broke")
    assert target.read_bytes() == b"old" and leftovers(tmp_path, {"model.bin"}) == []
