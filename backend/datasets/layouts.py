"""`open_dataset`: pick the reader for a folder, by name or by looking at what the folder holds."""

from pathlib import Path
from typing import Dict, Optional, Type

from backend.errors import BackendError
from backend.frame_rate import MESH_FPS
from backend.datasets.biwi import BiwiDataset
from backend.datasets.clip import SpeechMeshDataset
from backend.datasets.converted import TEMPLATES_FILE, VERTICES_DIR, WAV_DIR, ConvertedDataset
from backend.datasets.corpus import CONTROLS_DIR, MANIFEST_FILE, TEMPLATES_DIR, CorpusDataset
from backend.datasets.mead import MeadDataset
from backend.datasets.vocaset import REQUIRED_FILES as VOCASET_FILES, VERTICES_FILE, VocasetRawDataset

READERS: Dict[str, Type[SpeechMeshDataset]] = {
    reader.kind: reader
    for reader in (VocasetRawDataset, ConvertedDataset, BiwiDataset, MeadDataset, CorpusDataset)
}

EXPECTED_LAYOUTS = (
    f"VOCASET raw ({', '.join(VOCASET_FILES)}); "
    f"converted VOCASET, BIWI or MEAD-3D ({VERTICES_DIR}/, {WAV_DIR}/, {TEMPLATES_FILE}); "
    f"our corpus ({MANIFEST_FILE}, {WAV_DIR}/, {TEMPLATES_DIR}/, {CONTROLS_DIR}/ or {VERTICES_DIR}/)"
)


def detect_kind(root: Path) -> str:
    """The layout of `root`: 'vocaset', 'corpus', 'biwi', 'mead' or 'converted'.

    A converted-layout folder is BIWI or MEAD-3D when every vertex file follows that dataset's naming.
    """
    if not root.is_dir():
        raise BackendError(f"dataset folder not found: {root}")
    if (root / VERTICES_FILE).is_file():
        return VocasetRawDataset.kind
    if (root / MANIFEST_FILE).is_file():
        return CorpusDataset.kind
    if (root / VERTICES_DIR).is_dir() or (root / WAV_DIR).is_dir():
        stems = [path.stem for path in (root / VERTICES_DIR).glob("*.npy")]
        for reader in (BiwiDataset, MeadDataset):
            if stems and all(reader.parse_name(stem) for stem in stems):
                return reader.kind
        return ConvertedDataset.kind
    raise BackendError(f"{root}: no known dataset layout found; expected one of: {EXPECTED_LAYOUTS}")


def open_dataset(path, kind: Optional[str] = None, split: Optional[str] = None,
                 fps: Optional[float] = MESH_FPS, native_fps: Optional[float] = None) -> SpeechMeshDataset:
    """A dataset over `path`; `kind` is detected when None; `fps=None` keeps the native rate.

    `native_fps` says at which rate the files were recorded, for layouts that do not store it (default: the
    layout's published rate); a corpus manifest's own fps must agree with it.
    Opening lists the clips (file names or the index); clip data is read only by `load`.
    """
    root = Path(path)
    if kind is None:
        kind = detect_kind(root)
    if kind not in READERS:
        raise BackendError(f"unknown dataset kind '{kind}'; expected one of: {', '.join(READERS)}")
    dataset = READERS[kind](root, fps=fps, split=split, native_fps=native_fps)
    dataset.clip_ids()  # list the clips now, so a wrong folder or split fails here, not mid-training
    return dataset
