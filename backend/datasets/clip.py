"""The one interface every dataset reader implements: a lazy list of `Clip`s at a chosen fps.

Readers only say which clips exist (`_discover`), what the index says about a clip (`_entry`: subject,
sentence, level, split, its files), which templates exist (`subject_templates`) and how to read one clip
at its native frame rate (`_read`). This base class does the rest the same way
for every layout: split filtering, validation (shapes, NaN, audio/mesh duration) and frame-rate
conversion, so a model sees identical `Clip`s whatever the source.
"""

from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from backend.audio import check_samples
from backend.errors import AudioError, BackendError, MeshError
from backend.frame_rate import MESH_FPS, resample_frames

Timeline = List[Tuple[float, float, str]]

# Audio and mesh of one clip may differ a little in length (recording trims, frame rounding);
# more than this means the two files do not belong together.
MAX_DURATION_MISMATCH_S = 0.5
MAX_DURATION_MISMATCH_FRACTION = 0.1


@dataclass
class Clip:
    """One speech-mesh pair.

    audio: (S,) float32 mono in [-1, 1] at `sample_rate`.
    vertices: (T, V, 3) float32, metres, at `fps`.
    template: (V, 3) float32, the subject's neutral face.
    level: intensity level if the dataset has levels (MEAD: 1..3), else None.
    timeline: phoneme intervals (start_s, end_s, label) if known, else None.
    """
    audio: np.ndarray
    sample_rate: int
    vertices: np.ndarray
    fps: float
    template: np.ndarray
    subject: str
    sentence: str
    level: Optional[int] = None
    timeline: Optional[Timeline] = None


@dataclass(frozen=True)
class ClipEntry:
    """What a dataset's index says about one clip, without reading it (scoring matches predictions to these).

    vertices_path / wav_path: the clip's own files, or None where the layout keeps clips in shared files
    (raw VOCASET).
    """
    id: str
    subject: str
    sentence: str
    level: Optional[int]
    split: Optional[str]
    vertices_path: Optional[Path]
    wav_path: Optional[Path]


def as_frames(array: np.ndarray, vertex_count: int, source: object) -> np.ndarray:
    """Reshape a (T, V*3) or (T, V, 3) vertex array to (T, V, 3) float32, or raise `MeshError`."""
    array = np.asarray(array)
    if array.ndim == 2 and array.shape[1] == vertex_count * 3:
        array = array.reshape(len(array), vertex_count, 3)
    if array.ndim != 3 or array.shape[1:] != (vertex_count, 3):
        raise MeshError(f"{source}: vertex array has shape {array.shape}; expected (frames, "
                        f"{vertex_count * 3}) or (frames, {vertex_count}, 3) to match the template")
    return array.astype(np.float32)


def sentence_number(sentence: str) -> Optional[int]:
    """The trailing number of a sentence id ('sentence07' -> 7, 'e12' -> 12), None if there is none."""
    digits = len(sentence) - len(sentence.rstrip("0123456789"))
    return int(sentence[-digits:]) if digits else None


class SpeechMeshDataset:
    """A lazy collection of clips: listing reads only an index, `load` reads one clip.

    Subclasses set `kind` and `native_fps` and implement `_discover`, `_entry`, `_read` and, where the
    layout has published splits, `_split_of`. `fps=None` keeps the native frame rate; `native_fps`
    states the recorded rate of a layout that does not store it (VOCASET-style folders at another rate).
    """
    kind = "dataset"
    native_fps: float = float(MESH_FPS)
    synthetic = False   # True only where the dataset says so (our corpus's manifest)

    def __init__(self, root, fps: Optional[float] = MESH_FPS, split: Optional[str] = None,
                 native_fps: Optional[float] = None):
        if fps is not None and not fps > 0:
            raise BackendError(f"target fps must be positive, got {fps}")
        if native_fps is not None:
            if not native_fps > 0:
                raise BackendError(f"dataset fps must be positive, got {native_fps}")
            self.native_fps = float(native_fps)
        self.root = Path(root)
        self.split = split
        self._requested_fps = None if fps is None else float(fps)
        self._ids: Optional[List[str]] = None

    @property
    def fps(self) -> float:
        """The frame rate `load` returns: the requested one, or the native one if none was asked."""
        return self.native_fps if self._requested_fps is None else self._requested_fps

    # --- what a layout provides -------------------------------------------------------------
    def _discover(self) -> List[str]:
        """All clip ids in the layout, sorted (reads file names or an index only)."""
        raise NotImplementedError

    def _read(self, clip_id: str) -> Clip:
        """One clip at the native frame rate, vertices already shaped (T, V, 3)."""
        raise NotImplementedError

    def _entry(self, clip_id: str) -> ClipEntry:
        """The index's description of one clip (no clip data is read)."""
        raise NotImplementedError

    def subject_templates(self) -> Dict[str, np.ndarray]:
        """{subject: (V, 3) float32} for every template the layout holds; {} if it holds none."""
        return {}

    def split_names(self) -> Sequence[str]:
        """The split names `split=` accepts for this layout (empty: no published split)."""
        return ()

    def _split_of(self, clip_id: str) -> Optional[str]:
        """The split a clip belongs to, or None if it is in none."""
        return None

    # --- the interface -----------------------------------------------------------------------
    def clip_ids(self) -> List[str]:
        """Clip ids in this dataset (after the split filter), sorted."""
        if self._ids is None:
            ids = self._discover()
            if self.split is not None:
                if self.split not in self.split_names():
                    known = ", ".join(self.split_names()) or "none (this layout has no published split)"
                    raise BackendError(f"{self.root}: unknown split '{self.split}' for a {self.kind} "
                                       f"dataset; known splits: {known}")
                ids = [clip_id for clip_id in ids if self._split_of(clip_id) == self.split]
            self._ids = ids
        return list(self._ids)

    @cached_property
    def _id_set(self) -> frozenset:
        return frozenset(self.clip_ids())

    def _check_known(self, clip_id: str) -> None:
        if clip_id not in self._id_set:
            where = f" in split '{self.split}'" if self.split else ""
            raise BackendError(f"{self.root}: no clip '{clip_id}'{where} in this {self.kind} dataset")

    def entry(self, clip_id: str) -> ClipEntry:
        """What the index says about one clip (subject, level, split, files), without reading it."""
        self._check_known(clip_id)
        return self._entry(clip_id)

    def load(self, clip_id: str) -> Clip:
        """Read, validate and convert one clip to `self.fps`."""
        self._check_known(clip_id)
        clip = self._read(clip_id)
        audio = _validated_audio(clip, f"{self.root} [{clip_id}]")
        vertices = resample_frames(clip.vertices, clip.fps, self.fps)
        return replace(clip, audio=audio, vertices=vertices, fps=self.fps)

    def __len__(self) -> int:
        return len(self.clip_ids())

    def __iter__(self) -> Iterator[Clip]:
        for clip_id in self.clip_ids():
            yield self.load(clip_id)


def _validated_audio(clip: Clip, source: str) -> np.ndarray:
    """Check a native-rate clip (shapes, NaN, audio, audio/mesh durations); return its float32 audio."""
    vertices, template = clip.vertices, clip.template
    if vertices.ndim != 3 or vertices.shape[2] != 3 or len(vertices) == 0:
        raise MeshError(f"{source}: vertices have shape {vertices.shape}; expected (frames >= 1, V, 3)")
    if template.shape != vertices.shape[1:]:
        raise MeshError(f"{source}: template has shape {template.shape} but the frames have "
                        f"{vertices.shape[1]} vertices; expected a ({vertices.shape[1]}, 3) template")
    if not np.isfinite(vertices).all():
        bad_frames = np.flatnonzero(~np.isfinite(vertices).all(axis=(1, 2)))
        raise MeshError(f"{source}: vertices contain NaN or infinite values in "
                        f"{len(bad_frames)} frame(s), first at frame {bad_frames[0]}")
    if not np.isfinite(template).all():
        raise MeshError(f"{source}: template of subject '{clip.subject}' contains NaN or infinite values")
    try:
        audio = check_samples(clip.audio, clip.sample_rate)
    except AudioError as error:
        raise type(error)(f"{source}: {error}") from error
    audio_seconds = len(audio) / clip.sample_rate
    mesh_seconds = len(vertices) / clip.fps
    tolerance = max(MAX_DURATION_MISMATCH_S, MAX_DURATION_MISMATCH_FRACTION * mesh_seconds)
    if abs(audio_seconds - mesh_seconds) > tolerance:
        raise BackendError(f"{source}: audio lasts {audio_seconds:.2f} s but the mesh sequence lasts "
                           f"{mesh_seconds:.2f} s ({len(vertices)} frames at {clip.fps:g} fps); "
                           f"they must match within {tolerance:.2f} s")
    return audio
