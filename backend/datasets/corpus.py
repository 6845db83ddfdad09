"""Our own corpus (built by `training.corpus`): the converted layout plus a manifest.

    <root>/manifest.json                 {"fps": 30, "clips": [{"id", "subject", "sentence",
                                           "level", "split", "timeline": [[start_s, end_s, label], ...]}, ...]}
    <root>/vertices_npy/<id>.npy         (T, V*3) or (T, V, 3) at the manifest's fps
    <root>/wav/<id>.wav
    <root>/templates/<subject>.npz       key `vertices`: (V, 3)

Everything about a clip (subject, sentence, level, split, timeline, fps) comes from the manifest,
not from file names; `level`, `split` and `timeline` may be null. Other keys are ignored.
"""

import json
import zipfile
from functools import cached_property
from typing import Dict, List, Optional

import numpy as np

from backend.audio import load_audio
from backend.errors import BackendError, MeshError
from backend.frame_rate import MESH_FPS
from backend.datasets.clip import Clip, ClipEntry, SpeechMeshDataset, Timeline
from backend.datasets.converted import VERTICES_DIR, WAV_DIR, read_vertex_file

MANIFEST_FILE = "manifest.json"
TEMPLATES_DIR = "templates"
REQUIRED_CLIP_KEYS = ("id", "subject", "sentence")


class CorpusDataset(SpeechMeshDataset):
    """A corpus described by `manifest.json`; its native fps is the manifest's `fps`."""
    kind = "corpus"

    def __init__(self, root, fps: Optional[float] = MESH_FPS, split: Optional[str] = None,
                 native_fps: Optional[float] = None):
        super().__init__(root, fps, split)
        self._stated_fps = native_fps

    @property
    def native_fps(self) -> float:
        return float(self._manifest["fps"])

    @property
    def synthetic(self) -> bool:
        return bool(self._manifest.get("synthetic", False))

    @cached_property
    def _manifest(self) -> dict:
        path = self.root / MANIFEST_FILE
        if not path.is_file():
            raise BackendError(f"{path}: manifest not found; a corpus folder holds {MANIFEST_FILE}, "
                               f"{VERTICES_DIR}/, {WAV_DIR}/ and {TEMPLATES_DIR}/")
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as error:
            raise BackendError(f"{path}: not valid JSON ({error})") from error
        if not isinstance(manifest, dict) or not isinstance(manifest.get("clips"), list):
            raise BackendError(f"{path}: expected an object with a 'clips' list")
        fps = manifest.get("fps")
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0:
            raise BackendError(f"{path}: 'fps' is {fps!r}; expected a positive number")
        for position, entry in enumerate(manifest["clips"]):
            missing = [key for key in REQUIRED_CLIP_KEYS if not isinstance(entry, dict) or key not in entry]
            if missing:
                raise BackendError(f"{path}: clip #{position} lacks {', '.join(missing)}; every clip "
                                   f"needs {', '.join(REQUIRED_CLIP_KEYS)}")
        return manifest

    @cached_property
    def _entries(self) -> Dict[str, dict]:
        return {str(entry["id"]): entry for entry in self._manifest["clips"]}

    def split_names(self):
        return tuple(sorted({entry["split"] for entry in self._entries.values() if entry.get("split")}))

    def _split_of(self, clip_id: str) -> Optional[str]:
        return self._entries[clip_id].get("split")

    def _discover(self) -> List[str]:
        if self._stated_fps is not None and float(self._stated_fps) != self.native_fps:
            raise BackendError(f"{self.root / MANIFEST_FILE} says the clips are at {self.native_fps:g} fps but "
                               f"{float(self._stated_fps):g} fps was given; drop the fps option or fix the manifest")
        if not self._entries:
            raise BackendError(f"{self.root / MANIFEST_FILE}: lists no clips")
        return sorted(self._entries)

    def _template(self, subject: str) -> np.ndarray:
        path = self.root / TEMPLATES_DIR / f"{subject}.npz"
        if not path.is_file():
            raise MeshError(f"template file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as archive:
                if "vertices" not in archive:
                    raise MeshError(f"{path}: no array 'vertices'; it has {', '.join(archive.files) or 'none'}")
                template = archive["vertices"]
        except (ValueError, OSError, zipfile.BadZipFile) as error:
            raise MeshError(f"{path}: could not read the template ({error}); expected an .npz "
                            "with a (V, 3) array 'vertices'") from error
        if template.ndim != 2 or template.shape[1] != 3:
            raise MeshError(f"{path}: 'vertices' has shape {template.shape}; expected (V, 3)")
        return template.astype(np.float32)

    def manifest_entry(self, clip_id: str) -> dict:
        """Everything the manifest says about one clip, including keys this reader does not use (e.g. source)."""
        self._check_known(clip_id)
        return dict(self._entries[clip_id])

    def subject_templates(self) -> Dict[str, np.ndarray]:
        subjects = sorted({str(entry["subject"]) for entry in self._entries.values()})
        return {subject: self._template(subject) for subject in subjects
                if (self.root / TEMPLATES_DIR / f"{subject}.npz").is_file()}

    def _entry(self, clip_id: str) -> ClipEntry:
        entry = self._entries[clip_id]
        level = entry.get("level")
        return ClipEntry(clip_id, str(entry["subject"]), str(entry["sentence"]), None if level is None else int(level),
                         entry.get("split"), self.root / VERTICES_DIR / f"{clip_id}.npy",
                         self.root / WAV_DIR / f"{clip_id}.wav")

    def _timeline(self, clip_id: str) -> Optional[Timeline]:
        raw = self._entries[clip_id].get("timeline")
        if raw is None:
            return None
        try:
            timeline = [(float(start), float(end), str(label)) for start, end, label in raw]
        except (TypeError, ValueError) as error:
            raise BackendError(f"{self.root / MANIFEST_FILE}: timeline of clip '{clip_id}' is not a list "
                               f"of [start_s, end_s, label] ({error})") from error
        backwards = [interval for interval in timeline if interval[1] < interval[0]]
        if backwards:
            raise BackendError(f"{self.root / MANIFEST_FILE}: timeline of clip '{clip_id}' has an interval "
                               f"ending before it starts: {backwards[0]}")
        return timeline

    def _read(self, clip_id: str) -> Clip:
        entry = self._entries[clip_id]
        subject = str(entry["subject"])
        template = self._template(subject)
        vertices = read_vertex_file(self.root / VERTICES_DIR / f"{clip_id}.npy", len(template))
        audio, rate = load_audio(self.root / WAV_DIR / f"{clip_id}.wav")
        level = entry.get("level")
        return Clip(audio=audio, sample_rate=rate, vertices=vertices, fps=self.native_fps,
                    template=template, subject=subject, sentence=str(entry["sentence"]),
                    level=None if level is None else int(level), timeline=self._timeline(clip_id))
