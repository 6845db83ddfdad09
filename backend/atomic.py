"""The one atomic file writer: a reader sees the old file or the new one, never half of either.

Every file the project writes goes through here. A write goes to a hidden temporary file in the target's
folder, is flushed and fsynced, gets its final mode, and is renamed over the target (os.replace). So:
- a failed write (disk full, killed, a bug in the writer) leaves the previous file exactly as it was and no
  temporary file behind;
- a new file gets the mode the umask gives (0o666 & ~umask); a replaced file keeps its own mode;
- a target that is a folder, a write-protected file, or one whose folder is missing or read-only is refused
  before anything is written, with a one-line `WriteError`.

    write_json(out / "report.json", report)
    with atomic_path(out / "plot.png") as temporary:    # for writers that want a path
        figure.savefig(temporary)
    with atomic_stream(out / "model.pt") as stream:     # for writers that want a file object
        torch.save(state, stream)
"""

import json
import os
import stat
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from backend.errors import BackendError

_FIXED_ZIP_DATE = (1980, 1, 1, 0, 0, 0)   # .npz members get a fixed date: same arrays, same bytes


class WriteError(BackendError):
    """An output file that cannot be written: a folder, write-protected, missing/read-only folder, disk full."""


def check_writable(path) -> Path:
    """The target as a Path, or a WriteError saying why it cannot be written (nothing is created)."""
    path = Path(path)
    folder = path.parent
    if path.is_dir():
        raise WriteError(f"cannot write {path}: it is a folder; give a file name")
    if path.exists() and not _writable(path):
        raise WriteError(f"cannot write {path}: the file is write-protected (it is left as it is)")
    if not folder.exists():
        raise WriteError(f"cannot write {path}: folder {folder} does not exist")
    if not folder.is_dir():
        raise WriteError(f"cannot write {path}: {folder} is not a folder")
    if not _writable(folder):
        raise WriteError(f"cannot write {path}: folder {folder} is read-only")
    return path


def _writable(path: Path) -> bool:
    """Write permission by the mode bits as well as by access(): root ignores the bits, we do not."""
    return bool(path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)) and os.access(path, os.W_OK)


def _final_mode(path: Path) -> int:
    """The replaced file's own mode, else what open() would give a new file under the current umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX only: Windows cannot open a folder)."""
    if os.name != "posix":
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path` (same suffix, so savefig/soundfile pick the format); on success it
    is fsynced, given its final mode and renamed over `path`; on any error it is removed and `path` is untouched.
    """
    path = check_writable(path)
    try:
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as error:
        raise WriteError(f"cannot write {path}: {error.strerror}") from None
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        handle = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
        os.chmod(temporary, _final_mode(path))
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise WriteError(f"cannot write {path}: {error.strerror or error}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


@contextmanager
def atomic_stream(path, mode: str = "wb", **open_args):
    """Yield an open file (binary by default; "w" with encoding/newline for text) that becomes `path` atomically."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_stream mode must be 'wb' or 'w', not {mode!r}")
    with atomic_path(path) as temporary:
        with open(temporary, mode, **open_args) as stream:
            yield stream
            stream.flush()


def write_bytes(path, data: bytes) -> None:
    with atomic_stream(path) as stream:
        stream.write(data)


def write_text(path, text: str, encoding: str = "utf-8") -> None:
    with atomic_stream(path, "w", encoding=encoding, newline="") as stream:
        stream.write(text)


def write_json(path, value, indent=2, sort_keys: bool = False, ensure_ascii: bool = True) -> None:
    """JSON with a trailing newline."""
    write_text(path, json.dumps(value, indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii) + "\n")


def write_npy(path, array) -> None:
    """One array as .npy (no pickles)."""
    with atomic_stream(path) as stream:
        np.save(stream, np.asarray(array), allow_pickle=False)


def write_npy_blocks(path, shape: tuple, dtype, blocks) -> None:
    """One array of `shape` as .npy, written block by block as `blocks` yields (B, *shape[1:]) arrays in order,
    so the whole array never exists in memory; ValueError if the blocks do not fill `shape` exactly."""
    dtype = np.dtype(dtype)
    with atomic_stream(path) as stream:
        np.lib.format.write_array_header_1_0(stream, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                      "fortran_order": False, "shape": tuple(shape)})
        written = 0
        for block in blocks:
            block = np.ascontiguousarray(block, dtype=dtype)
            if block.shape[1:] != tuple(shape[1:]) or written + len(block) > shape[0]:
                raise ValueError(f"{path}: block of shape {block.shape} does not fit an array of shape {shape} "
                                 f"after {written} rows")
            stream.write(block.data)
            written += len(block)
        if written != shape[0]:
            raise ValueError(f"{path}: blocks gave {written} of the {shape[0]} rows of an array of shape {shape}")


def write_npz(path, **arrays) -> None:
    """Arrays as an uncompressed .npz (np.load reads it) with fixed member dates: same arrays, same bytes."""
    with atomic_stream(path) as stream:
        with zipfile.ZipFile(stream, "w") as archive:
            for name, array in arrays.items():
                with archive.open(zipfile.ZipInfo(f"{name}.npy", date_time=_FIXED_ZIP_DATE), "w") as member:
                    np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)

