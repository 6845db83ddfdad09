"""Reading a dataset folder (FaceFormer/VOCASET converted layout, REFERENCE §5) and a prediction folder.

Dataset folder:
- `vertices_npy/<clip>.npy` ground truth (T, V*3) or (T, V, 3); `wav/<clip>.wav` its audio;
- `templates.pkl` ({subject: (V, 3)}, read with backend.safe_pickle) or `templates/<subject>.npz`
  (key `vertices`) / `templates/<subject>.npy`; optional (FDD needs them);
- optional `manifest.json` ({"fps": ..., "clips": [{"id", "subject", "level", "split"}, ...]}, as written
  by `python -m training.corpus build`): subject, level, split and fps come from it. Without one, the
  subject is the clip name without its last `_` part, the level comes from MEAD-3D naming
  (`<id>_<emotion>_level_<n>_<clip>`), and the fps is `gt_fps` (default 60, VOCASET).

Prediction folder: `<clip>.npy` or `<clip>_condition_<trainsubject>.npy` (FaceFormer's naming); every file
is scored as its own entry. Ground truth is brought to the prediction fps by taking every n-th frame
when the rates differ by an integer factor n (VOCASET 60 -> 30 fps, as the published evaluations do);
any other mismatch is an error unless resampling (linear interpolation) is asked for.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from backend import safe_pickle
from backend.errors import MetricError
from backend.mesh import load_vertex_sequence
from backend.metrics.slcc import mead_level

VOCASET_FPS = 60.0
CONDITION_MARK = "_condition_"
LENGTH_RATIO_LIMIT = 1.5


@dataclass(frozen=True)
class DatasetClip:
    """One ground-truth clip: id (file stem), subject, level (or None), split (or None), file paths."""

    id: str
    subject: str
    level: Optional[int]
    split: Optional[str]
    vertices_path: Path
    wav_path: Path


@dataclass
class Dataset:
    """A dataset folder: clips by id, ground-truth fps, whether its manifest says it is synthetic."""

    root: Path
    fps: float
    clips: dict[str, DatasetClip]
    synthetic: bool = False
    templates: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class Prediction:
    """One prediction file, the dataset clip it belongs to (None if unknown), and its condition."""

    path: Path
    clip: Optional[DatasetClip]
    condition: Optional[str]


def open_dataset(root, gt_fps: Optional[float] = None, split: Optional[str] = None) -> Dataset:
    """Index a dataset folder; MetricError if it has no clips (after `split`, which needs a manifest)."""
    root = Path(root)
    vertices_dir = root / "vertices_npy"
    if not vertices_dir.is_dir():
        raise MetricError(f"{root}: no vertices_npy/ folder; expected the FaceFormer/VOCASET layout "
                          "(vertices_npy/<clip>.npy, wav/<clip>.wav, templates.pkl or templates/)")
    manifest_path = root / "manifest.json"
    if manifest_path.is_file():
        dataset = _from_manifest(root, manifest_path, gt_fps)
    elif split is not None:
        raise MetricError(f"{root}: --split needs a manifest.json listing each clip's split; the folder has none")
    else:
        clips = {}
        for path in sorted(vertices_dir.glob("*.npy")):
            clip_id = path.stem
            clips[clip_id] = DatasetClip(clip_id, clip_id.rsplit("_", 1)[0], mead_level(clip_id), None, path,
                                         root / "wav" / f"{clip_id}.wav")
        dataset = Dataset(root, float(gt_fps or VOCASET_FPS), clips)
    if split is not None:
        dataset.clips = {key: clip for key, clip in dataset.clips.items() if clip.split == split}
    if not dataset.clips:
        where = f" in split '{split}'" if split is not None else ""
        raise MetricError(f"{root}: no ground-truth clips{where}; expected vertices_npy/<clip>.npy files")
    dataset.templates = load_templates(root)
    return dataset


def _from_manifest(root: Path, manifest_path: Path, gt_fps: Optional[float]) -> Dataset:
    try:
        manifest = json.loads(manifest_path.read_text())
        fps = float(manifest["fps"])
        entries = manifest["clips"]
        clips = {entry["id"]: DatasetClip(entry["id"], entry["subject"], entry.get("level"), entry.get("split"),
                                          root / "vertices_npy" / f"{entry['id']}.npy",
                                          root / "wav" / f"{entry['id']}.wav") for entry in entries}
    except (ValueError, KeyError, TypeError) as error:
        raise MetricError(f"{manifest_path}: not a valid corpus manifest ({type(error).__name__}: {error}); "
                          'expected {"fps": ..., "clips": [{"id": ..., "subject": ..., ...}, ...]}') from None
    if gt_fps is not None and float(gt_fps) != fps:
        raise MetricError(f"{manifest_path} says the ground truth is at {fps:g} fps but {float(gt_fps):g} fps was "
                          "given; drop the fps option or fix the manifest")
    return Dataset(root, fps, clips, synthetic=bool(manifest.get("synthetic", False)))


def load_templates(root: Path) -> dict[str, np.ndarray]:
    """Subject templates {subject: (V, 3) float64} from templates.pkl or templates/; {} if neither exists."""
    pickle_path = root / "templates.pkl"
    if pickle_path.is_file():
        raw = safe_pickle.load(pickle_path)
        if not isinstance(raw, dict):
            raise MetricError(f"{pickle_path}: holds a {type(raw).__name__}; expected a dict subject -> (V, 3) array")
        return {str(subject): _template_array(vertices, f"{pickle_path}[{subject!r}]")
                for subject, vertices in raw.items()}
    templates = {}
    for path in sorted((root / "templates").glob("*.np[yz]")):
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if "vertices" not in archive.files:
                    raise MetricError(f"{path}: has arrays {archive.files}; expected one named 'vertices'")
                templates[path.stem] = _template_array(archive["vertices"], str(path))
        else:
            templates[path.stem] = _template_array(np.load(path, allow_pickle=False), str(path))
    return templates


def _template_array(values, source: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    array = array.reshape(-1, 3) if array.ndim == 1 and array.size % 3 == 0 else array
    if array.ndim != 2 or array.shape[1] != 3 or not np.all(np.isfinite(array)):
        raise MetricError(f"{source}: template has shape {np.shape(values)} (or non-finite values); "
                          "expected finite (V, 3) vertex positions")
    return array


def find_predictions(pred_dir, dataset: Dataset) -> list[Prediction]:
    """Every .npy in `pred_dir`, matched to its dataset clip by name; MetricError if there are none."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise MetricError(f"{pred_dir}: prediction folder not found")
    paths = sorted(pred_dir.glob("*.npy"))
    if not paths:
        raise MetricError(f"{pred_dir}: no predictions; expected <clip>.npy or <clip>{CONDITION_MARK}<subject>.npy files")
    predictions = []
    for path in paths:
        clip_id, mark, condition = path.stem.partition(CONDITION_MARK)
        predictions.append(Prediction(path, dataset.clips.get(clip_id), condition if mark else None))
    return predictions


def load_ground_truth(dataset: Dataset, clip: DatasetClip, target_fps: float, resample: bool = False) -> np.ndarray:
    """The clip's (T, V, 3) ground truth at `target_fps` (see module docstring for the fps rules)."""
    vertices = load_vertex_sequence(clip.vertices_path, num_vertices=None)
    return convert_fps(vertices, dataset.fps, target_fps, resample, source=str(clip.vertices_path))


def convert_fps(vertices: np.ndarray, fps: float, target_fps: float, resample: bool, source: str) -> np.ndarray:
    """(T, V, 3) at `fps` -> at `target_fps`: identity, integer-factor decimation, or (if asked) linear resampling."""
    if fps == target_fps:
        return vertices
    factor = fps / target_fps
    if factor == round(factor) and factor > 1:
        return vertices[::int(round(factor))]
    if not resample:
        raise MetricError(f"{source}: ground truth is at {fps:g} fps but predictions are at {target_fps:g} fps; "
                          "frame rates must match (or differ by an integer factor); ask for resampling to "
                          "interpolate")
    duration = (len(vertices) - 1) / fps
    times = np.arange(int(np.floor(duration * target_fps)) + 1) / target_fps
    positions = times * fps
    lower = np.minimum(np.floor(positions).astype(np.int64), len(vertices) - 1)
    upper = np.minimum(lower + 1, len(vertices) - 1)
    weight = (positions - lower)[:, None, None]
    return (1 - weight) * vertices[lower] + weight * vertices[upper]


def check_comparable_lengths(pred_frames: int, gt_frames: int, source: str, against: str = "the ground truth") -> None:
    """MetricError when lengths differ by more than LENGTH_RATIO_LIMIT: a sign of mismatched frame rates.
    `against` names what the prediction is compared with (the ground truth, or the audio when there is none)."""
    ratio = max(pred_frames, gt_frames) / max(min(pred_frames, gt_frames), 1)
    if ratio > LENGTH_RATIO_LIMIT:
        raise MetricError(f"{source}: prediction has {pred_frames} frames but {against} has {gt_frames} "
                          f"at the same fps ({ratio:.2f}x); the frame rates probably do not match "
                          "(check the fps options)")
