"""VOCASET as released (REFERENCE §5): one big vertex array plus three pickles.

    data_verts.npy         (rows, 5023, 3) float, 60 fps; memory-mapped, only a clip's rows are read
    raw_audio_fixed.pkl    {subject: {sentence: {'audio': int16 (S,), 'sample_rate': 22000}}}
    templates.pkl          {subject: (5023, 3)}
    subj_seq_to_idx.pkl    {subject: {sentence: {frame: row of data_verts}}}

Pickles are Python-2 files read with latin1 through `backend.safe_pickle` (never plain pickle).
Clip ids are `<subject>_<sentence>`, the names the converted layout uses for the same clips.
"""

from functools import cached_property
from typing import Dict, List, Optional, Tuple

import numpy as np

from backend import safe_pickle
from backend.audio import from_int16
from backend.errors import AudioError, BackendError, MeshError
from backend.datasets.clip import Clip, ClipEntry, SpeechMeshDataset, as_frames, sentence_number
from backend.datasets.converted import TEMPLATES_FILE, pick_template, read_templates
from backend.datasets.splits import VOCASET_SPLITS, split_of

VERTICES_FILE = "data_verts.npy"
AUDIO_FILE = "raw_audio_fixed.pkl"
INDEX_FILE = "subj_seq_to_idx.pkl"
REQUIRED_FILES = (VERTICES_FILE, AUDIO_FILE, TEMPLATES_FILE, INDEX_FILE)


def _nested_dict(value: object, source, what: str) -> dict:
    if not isinstance(value, dict):
        raise BackendError(f"{source}: {what} is a {type(value).__name__}; expected a dict")
    return value


class VocasetRawDataset(SpeechMeshDataset):
    """VOCASET raw release at 60 fps; `load` reads one clip's rows from the memory-mapped array."""
    kind = "vocaset"
    native_fps = 60.0

    def split_names(self):
        return tuple(VOCASET_SPLITS)

    def _split_of(self, clip_id: str) -> Optional[str]:
        subject, sentence = self._names[clip_id]
        return split_of(VOCASET_SPLITS, subject, sentence_number(sentence))

    @cached_property
    def _index(self) -> Dict[str, Dict[str, dict]]:
        path = self.root / INDEX_FILE
        return _nested_dict(safe_pickle.load(path), path, "the index")

    @cached_property
    def _names(self) -> Dict[str, Tuple[str, str]]:
        """clip id -> (subject, sentence), from the index."""
        path = self.root / INDEX_FILE
        names = {}
        for subject, sentences in self._index.items():
            for sentence in _nested_dict(sentences, path, f"entry '{subject}'"):
                names[f"{subject}_{sentence}"] = (str(subject), str(sentence))
        return names

    def _discover(self) -> List[str]:
        missing = [name for name in REQUIRED_FILES if not (self.root / name).is_file()]
        if missing:
            raise BackendError(f"{self.root}: missing {', '.join(missing)}; a raw VOCASET folder "
                               f"holds {', '.join(REQUIRED_FILES)}")
        if not self._names:
            raise BackendError(f"{self.root / INDEX_FILE}: lists no clips")
        return sorted(self._names)

    @cached_property
    def _vertices(self) -> np.ndarray:
        path = self.root / VERTICES_FILE
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as error:
            raise MeshError(f"{path}: could not read the vertex array ({error}); expected a .npy "
                            "array of shape (rows, V, 3)") from error
        if array.ndim != 3 or array.shape[2] != 3:
            raise MeshError(f"{path}: vertex array has shape {array.shape}; expected (rows, V, 3)")
        return array

    @cached_property
    def _audio(self) -> dict:
        path = self.root / AUDIO_FILE
        return _nested_dict(safe_pickle.load(path), path, "the audio table")

    @cached_property
    def _templates(self) -> dict:
        return read_templates(self.root / TEMPLATES_FILE)

    def _rows(self, subject: str, sentence: str) -> np.ndarray:
        path = self.root / INDEX_FILE
        frames = _nested_dict(self._index[subject][sentence], path, f"entry '{subject}/{sentence}'")
        if not frames:
            raise MeshError(f"{path}: clip '{subject}_{sentence}' has no frames")
        rows = np.array([frames[frame] for frame in sorted(frames)], dtype=np.int64)
        row_count = len(self._vertices)
        outside = rows[(rows < 0) | (rows >= row_count)]
        if outside.size:
            raise MeshError(f"{path}: clip '{subject}_{sentence}' points at row {outside[0]} but "
                            f"{self.root / VERTICES_FILE} has {row_count} rows")
        return rows

    def _read_audio(self, subject: str, sentence: str) -> Tuple[np.ndarray, int]:
        path = self.root / AUDIO_FILE
        sentences = self._audio.get(subject)
        entry = sentences.get(sentence) if isinstance(sentences, dict) else None
        if not isinstance(entry, dict) or "audio" not in entry or "sample_rate" not in entry:
            raise AudioError(f"{path}: no entry {{'audio', 'sample_rate'}} for clip '{subject}_{sentence}'")
        samples = np.asarray(entry["audio"])
        return (from_int16(samples) if samples.dtype == np.int16 else samples), int(entry["sample_rate"])

    def subject_templates(self) -> Dict[str, np.ndarray]:
        path = self.root / TEMPLATES_FILE
        return {str(subject): pick_template(self._templates, subject, path) for subject in self._templates}

    def _entry(self, clip_id: str) -> ClipEntry:
        subject, sentence = self._names[clip_id]
        return ClipEntry(clip_id, subject, sentence, None, self._split_of(clip_id), None, None)

    def _read(self, clip_id: str) -> Clip:
        subject, sentence = self._names[clip_id]
        template = pick_template(self._templates, subject, self.root / TEMPLATES_FILE)
        vertices = as_frames(self._vertices[self._rows(subject, sentence)], len(template),
                             self.root / VERTICES_FILE)
        audio, rate = self._read_audio(subject, sentence)
        return Clip(audio=audio, sample_rate=rate, vertices=vertices, fps=self.native_fps,
                    template=template, subject=subject, sentence=sentence)
