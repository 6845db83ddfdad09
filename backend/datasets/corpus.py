"""Our own corpus (built by `training.corpus`): a manifest, the audio, and the motion in one of two stores.

    <root>/manifest.json                 {"fps": 30, "store": "controls" | "vertices" (default),
                                          "clips": [{"id", "subject", "sentence", "level", "split",
                                                     "timeline": [[start_s, end_s, label], ...]}, ...]}
    <root>/wav/<id>.wav                  (PCM16 or any format soundfile reads)
    <root>/templates/<subject>.npz       key `vertices`: (V, 3) float32

  store "vertices" (corpus v1, and hand-made corpora):
    <root>/vertices_npy/<id>.npy         (T, V*3) or (T, V, 3) at the manifest's fps
  store "controls" (corpus v2: ~200x smaller):
    <root>/controls_npy/<id>.npy         (T, 7) float16: the articulatory rig's controls (backend.rig)
    <root>/rig/faces.npy                 (9976, 3) FLAME triangles
    <root>/rig/masks.npz                 the FLAME region masks the rig was built with
  The vertices are decoded on read: FlameRig(template of the subject, faces, masks).animate(controls), so
  the folder is self-contained (no FLAME path needed) and decoding gives back exactly what was built.

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
from backend.flame import FlameRegions
from backend.rig.flame_rig import CONTROLS, FlameRig

MANIFEST_FILE = "manifest.json"
TEMPLATES_DIR = "templates"
CONTROLS_DIR = "controls_npy"
RIG_DIR = "rig"
RIG_FACES_FILE = "faces.npy"
RIG_MASKS_FILE = "masks.npz"
VERTEX_STORE, CONTROL_STORE = "vertices", "controls"
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
        if manifest.get("store", VERTEX_STORE) not in (VERTEX_STORE, CONTROL_STORE):
            raise BackendError(f"{path}: 'store' is {manifest.get('store')!r}; expected '{VERTEX_STORE}' or "
                               f"'{CONTROL_STORE}' (a corpus from a newer builder? rebuild it with this one)")
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

    @property
    def store(self) -> str:
        """How the motion is kept: VERTEX_STORE (vertices_npy/) or CONTROL_STORE (controls_npy/, decoded)."""
        return self._manifest.get("store", VERTEX_STORE)

    def _motion_path(self, clip_id: str):
        folder = CONTROLS_DIR if self.store == CONTROL_STORE else VERTICES_DIR
        return self.root / folder / f"{clip_id}.npy"

    def _entry(self, clip_id: str) -> ClipEntry:
        entry = self._entries[clip_id]
        level = entry.get("level")
        return ClipEntry(clip_id, str(entry["subject"]), str(entry["sentence"]), None if level is None else int(level),
                         entry.get("split"), self._motion_path(clip_id), self.root / WAV_DIR / f"{clip_id}.wav")

    def controls(self, clip_id: str) -> np.ndarray:
        """(T, 7) float32 rig controls of a clip at the native fps (CONTROL_STORE only): for training on the
        rig's own parameters, and what `load` decodes into vertices."""
        self._check_known(clip_id)
        if self.store != CONTROL_STORE:
            raise BackendError(f"{self.root}: this corpus stores vertices, not rig controls; rebuild it with "
                               "`python -m training.corpus build` for the compact store")
        path = self._motion_path(clip_id)
        if not path.is_file():
            raise MeshError(f"control file not found: {path}")
        try:
            controls = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise MeshError(f"{path}: could not read the controls ({error}); expected a .npy (T, "
                            f"{len(CONTROLS)}) array") from error
        if controls.ndim != 2 or controls.shape[1] != len(CONTROLS) or len(controls) == 0:
            raise MeshError(f"{path}: controls have shape {controls.shape}; expected (frames >= 1, {len(CONTROLS)})")
        return controls.astype(np.float32)

    def faces(self) -> np.ndarray:
        """(F, 3) int64 FLAME triangles stored with the corpus (CONTROL_STORE only)."""
        return self._rig_parts[0]

    def rig(self, subject: str) -> FlameRig:
        """The subject's articulatory rig, built from the corpus's own files (cached)."""
        if subject not in self._rigs:
            self._rigs[subject] = FlameRig(self._template(subject), self._rig_parts[0], self._rig_parts[1])
        return self._rigs[subject]

    @cached_property
    def _rigs(self) -> Dict[str, FlameRig]:
        return {}

    @cached_property
    def _rig_parts(self):
        """(faces (F, 3) int64, masks {name: indices}) stored beside the clips."""
        faces_path = self.root / RIG_DIR / RIG_FACES_FILE
        if not faces_path.is_file():
            raise MeshError(f"{faces_path}: not found; a corpus with store '{CONTROL_STORE}' keeps the rig's "
                            f"{RIG_DIR}/{RIG_FACES_FILE} and {RIG_DIR}/{RIG_MASKS_FILE} (rebuild the corpus)")
        try:
            faces = np.load(faces_path, allow_pickle=False)
        except (ValueError, OSError) as error:
            raise MeshError(f"{faces_path}: could not read the triangles ({error})") from error
        if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
            raise MeshError(f"{faces_path}: triangles have shape {faces.shape} ({faces.dtype}); expected (F, 3) ints")
        return faces.astype(np.int64), FlameRegions.load(self.root / RIG_DIR / RIG_MASKS_FILE).masks

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
        if self.store == CONTROL_STORE:
            vertices = self.rig(subject).animate(self.controls(clip_id)).astype(np.float32)
        else:
            vertices = read_vertex_file(self._motion_path(clip_id), len(template))
        audio, rate = load_audio(self.root / WAV_DIR / f"{clip_id}.wav")
        level = entry.get("level")
        return Clip(audio=audio, sample_rate=rate, vertices=vertices, fps=self.native_fps,
                    template=template, subject=subject, sentence=str(entry["sentence"]),
                    level=None if level is None else int(level), timeline=self._timeline(clip_id))
