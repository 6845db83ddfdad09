"""The converted layout of FaceFormer, CodeTalker and SelfTalk (REFERENCE §5).

    <root>/vertices_npy/<subject>_<sentence>.npy   (T, V*3) float, metres, at the native fps
    <root>/wav/<subject>_<sentence>.wav
    <root>/templates.pkl                            {subject: (V, 3)}

The subject is the file name without its last `_` part. The topology is whatever the templates
hold (V = 5023 for VOCASET, 23370 for BIWI). Subclasses change only the naming, fps and splits.
"""

from functools import cached_property
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from backend import safe_pickle
from backend.audio import load_audio
from backend.errors import BackendError, MeshError
from backend.frame_rate import MESH_FPS
from backend.datasets.clip import Clip, ClipEntry, SpeechMeshDataset, as_frames, sentence_number
from backend.datasets.splits import VOCASET_SPLITS, SplitTable, split_of

VERTICES_DIR = "vertices_npy"
WAV_DIR = "wav"
TEMPLATES_FILE = "templates.pkl"


def read_vertex_file(path: Path, vertex_count: int) -> np.ndarray:
    """A (T, V, 3) float32 sequence from a `.npy` file of shape (T, V*3) or (T, V, 3)."""
    if not path.is_file():
        raise MeshError(f"vertex file not found: {path}")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as error:
        raise MeshError(f"{path}: could not read the vertex array ({error}); expected a .npy "
                        "array of shape (frames, V*3)") from error
    return as_frames(array, vertex_count, path)


def read_templates(path: Path) -> Dict[object, object]:
    """A `templates.pkl` table {subject: (V, 3)}, read through the restricted unpickler."""
    templates = safe_pickle.load(path)
    if not isinstance(templates, dict):
        raise BackendError(f"{path}: holds a {type(templates).__name__}; expected a dict {{subject: (V, 3) array}}")
    return templates


def pick_template(templates: Dict[object, object], subject: str, path: Path) -> np.ndarray:
    """One subject's template as (V, 3) float32, or a clear error naming what was found."""
    if subject not in templates:
        raise BackendError(f"{path}: no template for subject '{subject}'; it has {len(templates)} "
                           f"subject(s): {', '.join(sorted(map(str, templates)))}")
    template = templates[subject]
    array = template if isinstance(template, np.ndarray) else None
    if array is None or array.ndim != 2 or array.shape[1] != 3 or not np.issubdtype(array.dtype, np.number):
        found = f"an array of shape {array.shape}" if array is not None else f"a {type(template).__name__}"
        raise MeshError(f"{path}: template of subject '{subject}' is {found}; expected a (V, 3) array")
    return array.astype(np.float32)


class ConvertedDataset(SpeechMeshDataset):
    """VOCASET in the converted layout: 60 fps, `<subject>_sentenceNN`, VOCASET splits."""
    kind = "converted"
    native_fps = 60.0
    split_table: SplitTable = VOCASET_SPLITS
    naming = "<subject>_<sentence>"

    def __init__(self, root, fps: Optional[float] = MESH_FPS, split: Optional[str] = None,
                 native_fps: Optional[float] = None):
        super().__init__(root, fps, split, native_fps)
        self.unpaired: List[Path] = []

    @staticmethod
    def parse_name(stem: str) -> Optional[Tuple[str, str, Optional[int]]]:
        """(subject, sentence, level) from a file stem, or None if the stem does not fit the naming."""
        subject, separator, sentence = stem.rpartition("_")
        return (subject, sentence, None) if separator and subject and sentence else None

    def split_names(self):
        return tuple(self.split_table)

    def _split_of(self, clip_id: str) -> Optional[str]:
        subject, sentence, _ = self.parse_name(clip_id)
        return split_of(self.split_table, subject, sentence_number(sentence))

    def _discover(self) -> List[str]:
        """Clips with both a vertex file and a wav; files without a partner go to `unpaired`."""
        vertex_dir, wav_dir = self.root / VERTICES_DIR, self.root / WAV_DIR
        for folder in (vertex_dir, wav_dir):
            if not folder.is_dir():
                raise BackendError(f"{folder}: folder not found; a {self.kind} dataset needs "
                                   f"{VERTICES_DIR}/, {WAV_DIR}/ and {TEMPLATES_FILE} under {self.root}")
        vertex_files = {path.stem: path for path in vertex_dir.glob("*.npy")}
        wav_files = {path.stem: path for path in wav_dir.glob("*.wav")}
        paired = sorted(vertex_files.keys() & wav_files.keys())
        self.unpaired = sorted([vertex_files[stem] for stem in vertex_files.keys() - wav_files.keys()]
                               + [wav_files[stem] for stem in wav_files.keys() - vertex_files.keys()])
        if not paired:
            raise BackendError(f"{self.root}: no clip has both {VERTICES_DIR}/<name>.npy and "
                               f"{WAV_DIR}/<name>.wav ({len(vertex_files)} vertex files, "
                               f"{len(wav_files)} wav files)")
        misnamed = [stem for stem in paired if self.parse_name(stem) is None]
        if misnamed:
            raise BackendError(f"{self.root}: {len(misnamed)} file name(s) do not follow the {self.kind} "
                               f"naming {self.naming}, e.g. '{misnamed[0]}'")
        return paired

    @cached_property
    def templates(self) -> Dict[object, object]:
        """The subject templates, read on first use."""
        return read_templates(self.root / TEMPLATES_FILE)

    def subject_templates(self) -> Dict[str, np.ndarray]:
        path = self.root / TEMPLATES_FILE
        if not path.is_file():
            return {}
        return {str(subject): pick_template(self.templates, subject, path) for subject in self.templates}

    def _entry(self, clip_id: str) -> ClipEntry:
        subject, sentence, level = self.parse_name(clip_id)
        return ClipEntry(clip_id, subject, sentence, level, self._split_of(clip_id),
                         self.root / VERTICES_DIR / f"{clip_id}.npy", self.root / WAV_DIR / f"{clip_id}.wav")

    def _read(self, clip_id: str) -> Clip:
        subject, sentence, level = self.parse_name(clip_id)
        template = pick_template(self.templates, subject, self.root / TEMPLATES_FILE)
        vertices = read_vertex_file(self.root / VERTICES_DIR / f"{clip_id}.npy", len(template))
        audio, rate = load_audio(self.root / WAV_DIR / f"{clip_id}.wav")
        return Clip(audio=audio, sample_rate=rate, vertices=vertices, fps=self.native_fps,
                    template=template, subject=subject, sentence=sentence, level=level)
