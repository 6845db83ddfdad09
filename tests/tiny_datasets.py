"""Write tiny synthetic datasets in each real layout (random vertices, tone audio) for the reader tests.

`python2_pickle` writes pickles the way Python 2 wrote VOCASET's: byte strings as BINSTRING opcodes
(text that Python 3 can only decode with latin1) and numpy arrays as `_reconstruct` + BUILD with raw
bytes, so the tests exercise the same code path as the released files.
"""

import json
import pickle
import struct
from pathlib import Path
from typing import Dict, Iterable, Optional

import numpy as np
import soundfile

AUDIO_RATE = 22000


def tone(seconds: float, rate: int = AUDIO_RATE, seed: int = 0) -> np.ndarray:
    """A synthetic voiced-like signal: a 150 Hz tone plus a little noise, float32 in [-0.5, 0.5]."""
    time = np.arange(int(round(seconds * rate))) / rate
    noise = np.random.default_rng(seed).normal(0, 0.02, time.shape)
    return (0.4 * np.sin(2 * np.pi * 150 * time) + noise).clip(-0.5, 0.5).astype(np.float32)


def random_frames(frames: int, vertex_count: int, seed: int = 0) -> np.ndarray:
    """(frames, V, 3) float32 positions of about face size (metres)."""
    return np.random.default_rng(seed).normal(0, 0.05, (frames, vertex_count, 3)).astype(np.float32)


# --- Python-2 style pickles ----------------------------------------------------------------------
def _py2_string(data: bytes) -> bytes:
    if len(data) < 256:
        return pickle.SHORT_BINSTRING + bytes([len(data)]) + data
    return pickle.BINSTRING + struct.pack("<i", len(data)) + data


def _py2_global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _py2_tuple(items: Iterable[bytes]) -> bytes:
    return pickle.MARK + b"".join(items) + pickle.TUPLE


def _py2_value(value) -> bytes:
    if isinstance(value, dict):
        items = b"".join(_py2_value(key) + _py2_value(item) for key, item in value.items())
        return pickle.EMPTY_DICT + (pickle.MARK + items + pickle.SETITEMS if value else b"")
    if isinstance(value, str):
        return _py2_string(value.encode("latin1"))
    if isinstance(value, (bool, np.bool_)):
        return pickle.NEWTRUE if value else pickle.NEWFALSE
    if isinstance(value, (int, np.integer)):
        return pickle.BININT + struct.pack("<i", int(value))
    if isinstance(value, np.ndarray):
        value = np.ascontiguousarray(value)
        dtype_code = value.dtype.str  # e.g. '<i2', '<f8', '|u1'
        dtype = (_py2_global("numpy", "dtype") + _py2_tuple([_py2_string(dtype_code[1:].encode()),
                                                               _py2_value(0), _py2_value(1)])
                 + pickle.REDUCE
                 + _py2_tuple([_py2_value(3), _py2_string(dtype_code[0].encode()), pickle.NONE,
                               pickle.NONE, pickle.NONE, _py2_value(-1), _py2_value(-1), _py2_value(0)])
                 + pickle.BUILD)
        empty = (_py2_global("numpy.core.multiarray", "_reconstruct")
                 + _py2_tuple([_py2_global("numpy", "ndarray"), _py2_tuple([_py2_value(0)]), _py2_string(b"b")])
                 + pickle.REDUCE)
        state = _py2_tuple([_py2_value(1), _py2_tuple(_py2_value(size) for size in value.shape), dtype,
                            pickle.NEWFALSE, _py2_string(value.tobytes())])
        return empty + state + pickle.BUILD
    raise TypeError(f"python2_pickle does not write {type(value).__name__}")


def python2_pickle(value, path: Path) -> None:
    """Write `value` (nested dicts of str/int/ndarray) as Python 2's cPickle protocol 2 would."""
    path.write_bytes(pickle.PROTO + b"\x02" + _py2_value(value) + pickle.STOP)


# --- layouts -------------------------------------------------------------------------------------
def write_vocaset_raw(root: Path, clips: Dict[str, Dict[str, int]], vertex_count: int = 5023,
                      seed: int = 0) -> Dict[str, np.ndarray]:
    """VOCASET raw files for {subject: {sentence: frames at 60 fps}}; returns each clip's (T, V, 3).

    Rows of a clip are stored out of order in data_verts.npy (the index maps frame -> row), so a
    reader that assumes contiguous rows fails.
    """
    root.mkdir(parents=True, exist_ok=True)
    sequences, index, audio, templates, blocks = {}, {}, {}, {}, []
    row = 0
    for number, (subject, sentences) in enumerate(clips.items()):
        templates[subject] = random_frames(1, vertex_count, seed + number)[0].astype(np.float64)
        index[subject], audio[subject] = {}, {}
        for sentence, frames in sentences.items():
            sequence = random_frames(frames, vertex_count, seed + row + 1)
            order = np.random.default_rng(row).permutation(frames)  # frame order[k] lives at row+k
            blocks.append(sequence[order])
            index[subject][sentence] = {int(frame): row + position for position, frame in enumerate(order)}
            samples = tone(frames / 60.0, seed=row)
            audio[subject][sentence] = {"audio": np.round(samples * 32767).astype(np.int16),
                                        "sample_rate": AUDIO_RATE}
            sequences[f"{subject}_{sentence}"] = sequence
            row += frames
    np.save(root / "data_verts.npy", np.concatenate(blocks))
    python2_pickle(index, root / "subj_seq_to_idx.pkl")
    python2_pickle(audio, root / "raw_audio_fixed.pkl")
    python2_pickle(templates, root / "templates.pkl")
    return sequences


def write_converted(root: Path, clips: Dict[str, int], fps: float, vertex_count: int,
                    seed: int = 0) -> Dict[str, np.ndarray]:
    """Converted layout for {file stem: frames}: vertices_npy/<stem>.npy as (T, V*3), wav/<stem>.wav,
    templates.pkl keyed by the subject (stem without its last '_' part, or the part before the first
    '_' for MEAD names). Returns each clip's (T, V, 3)."""
    (root / "vertices_npy").mkdir(parents=True, exist_ok=True)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    sequences, templates = {}, {}
    for number, (stem, frames) in enumerate(clips.items()):
        sequence = random_frames(frames, vertex_count, seed + number)
        np.save(root / "vertices_npy" / f"{stem}.npy", sequence.reshape(frames, -1))
        soundfile.write(str(root / "wav" / f"{stem}.wav"), tone(frames / fps, 16000, number), 16000)
        subject = stem.split("_")[0] if "_level_" in stem else stem.rpartition("_")[0]
        templates.setdefault(subject, random_frames(1, vertex_count, 1000 + number)[0])
        sequences[stem] = sequence
    (root / "templates.pkl").write_bytes(pickle.dumps(templates, protocol=2))
    return sequences


def write_corpus(root: Path, entries: Iterable[dict], fps: float = 30.0, vertex_count: int = 20,
                 seed: int = 0, frames: int = 15, extra: Optional[dict] = None) -> Dict[str, np.ndarray]:
    """Our corpus layout: manifest.json with `entries` (id, subject, sentence, level, split, timeline),
    vertices_npy/<id>.npy, wav/<id>.wav, templates/<subject>.npz. Returns each clip's (T, V, 3)."""
    entries = list(entries)
    for folder in ("vertices_npy", "wav", "templates"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    sequences = {}
    for number, entry in enumerate(entries):
        sequence = random_frames(frames, vertex_count, seed + number)
        np.save(root / "vertices_npy" / f"{entry['id']}.npy", sequence.reshape(frames, -1))
        soundfile.write(str(root / "wav" / f"{entry['id']}.wav"), tone(frames / fps, 16000, number), 16000)
        template_path = root / "templates" / f"{entry['subject']}.npz"
        if not template_path.exists():
            np.savez(template_path, vertices=random_frames(1, vertex_count, 2000 + number)[0])
        sequences[entry["id"]] = sequence
    manifest = {"fps": fps, "clips": entries, **(extra or {})}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return sequences
