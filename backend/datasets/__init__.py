"""Readers for speech-mesh datasets behind one interface (`Clip`, `SpeechMeshDataset`, `open_dataset`).

Layouts: VOCASET raw, the converted FaceFormer layout, BIWI, MEAD-3D naming, and our own corpus.
numpy/soundfile/backend only (no torch): training, scoring, the corpus tools and the benchmarks all read
datasets through here. Frame-rate conversion is backend.frame_rate.resample_frames.
"""

from backend.datasets.clip import Clip, ClipEntry, SpeechMeshDataset
from backend.datasets.layouts import READERS, detect_kind, open_dataset

__all__ = ["Clip", "ClipEntry", "SpeechMeshDataset", "READERS", "detect_kind", "open_dataset"]
