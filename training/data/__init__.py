"""Readers for speech-mesh datasets behind one interface (`Clip`, `SpeechMeshDataset`, `open_dataset`).

Layouts: VOCASET raw, the converted FaceFormer layout, BIWI, MEAD-3D naming, and our own corpus.
numpy/soundfile/backend only; no torch.
"""

from training.data.clip import Clip, SpeechMeshDataset, resample_frames
from training.data.layouts import READERS, detect_kind, open_dataset

__all__ = ["Clip", "SpeechMeshDataset", "resample_frames", "READERS", "detect_kind", "open_dataset"]
