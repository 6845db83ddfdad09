"""The representation's training data: paired clips (speech at 640 x fps Hz with its frames: vertices or mouth
video) from a corpus, and the sampled batches of 5-frame windows (REFERENCE §2: at 30 fps a window pairs 5 frames
with 3200 samples at 19.2 kHz, turned into the (20, 128) fbank of `backend.features`).
"""

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from backend import features
from backend.audio import resample
from backend.errors import BackendError
from backend.frame_rate import MESH_FPS
from backend.datasets import open_dataset


@dataclass
class PairedClip:
    """One clip's speech and frames. speech: (S,) float32 at 640 * fps Hz; frames: (T, 15069) float32
    vertices or (T, S, S) uint8 mouth video; timeline: phone intervals (start_s, end_s, label) or None."""

    clip_id: str
    speech: np.ndarray
    frames: np.ndarray
    fps: float
    subject: str = ""
    sentence: str = ""
    level: Optional[int] = None
    timeline: Optional[list] = None
    template: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def window_count(self) -> int:
        return max(0, len(self.frames) - features.WINDOW_FRAMES + 1)

    def speech_features(self, starts: np.ndarray) -> np.ndarray:
        """(len(starts), 20, 128) normalised fbank of the speech windows paired with frame windows."""
        return features.speech_window_features(features.speech_windows(self.speech, starts))

    def frame_windows(self, starts: np.ndarray) -> np.ndarray:
        """(len(starts), 5, ...) frames starting at each start."""
        return self.frames[np.asarray(starts)[:, None] + np.arange(features.WINDOW_FRAMES)]


def speech_rate(fps: float) -> int:
    """The audio rate at which one frame is 640 samples (19.2 kHz at 30 fps, 16 kHz at 25 fps)."""
    return int(round(features.SAMPLES_PER_FRAME * fps))


def load_corpus_clips(corpus_dir, split: str, limit: Optional[int] = None) -> list[PairedClip]:
    """Clips of one split of a corpus built by `training.corpus`, vertices flattened to (T, 15069)."""
    dataset = open_dataset(corpus_dir, kind="corpus", split=split, fps=MESH_FPS)
    clips = []
    for clip_id in dataset.clip_ids()[:limit]:
        clip = dataset.load(clip_id)
        speech = resample(clip.audio, clip.sample_rate, speech_rate(clip.fps)).astype(np.float32)
        clips.append(PairedClip(clip_id, speech, np.ascontiguousarray(clip.vertices.reshape(len(clip.vertices), -1)),
                                clip.fps, clip.subject, clip.sentence, clip.level, clip.timeline, clip.template))
    return clips


def sample_windows(clips: list[PairedClip], batch_size: int, windows_per_clip: int,
                   rng: np.random.Generator) -> list[tuple[int, np.ndarray]]:
    """(clip index, starts) groups filling one batch: clips drawn in proportion to their window
    count, `windows_per_clip` distinct starts from each (so a batch holds same-clip time offsets
    as negatives as well as other clips)."""
    counts = np.array([clip.window_count for clip in clips], dtype=np.float64)
    usable = counts >= windows_per_clip
    if not usable.any():
        raise BackendError(f"no clip has {windows_per_clip} windows ({windows_per_clip + 4} frames); "
                           f"the longest has {int(counts.max(initial=0))} windows")
    weights = np.where(usable, counts, 0.0) / counts[usable].sum()
    groups = []
    for clip_index in rng.choice(len(clips), size=max(1, batch_size // windows_per_clip), p=weights):
        starts = np.sort(rng.choice(int(counts[clip_index]), size=windows_per_clip, replace=False))
        groups.append((int(clip_index), starts))
    return groups


def gather_batch(clips: list[PairedClip], groups) -> tuple[torch.Tensor, torch.Tensor]:
    """(fbank (B, 20, 128), frames (B, 5, ...) float32) for sampled groups; video scaled to [0, 1]."""
    fbank = np.concatenate([clips[index].speech_features(starts) for index, starts in groups])
    frames = np.concatenate([clips[index].frame_windows(starts) for index, starts in groups])
    frames = frames.astype(np.float32) / 255.0 if frames.dtype == np.uint8 else frames.astype(np.float32)
    return torch.from_numpy(fbank), torch.from_numpy(frames)


def mix_identities(clips: list[PairedClip], groups, windows: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Identity augmentation of mesh windows (B, 5, 15069), group by group: add lambda * (template of
    a random training clip - own template), lambda ~ U(0, 1). Motion is kept while the face shape
    moves between training identities, so the mesh encoder cannot lean on who is speaking."""
    offsets = []
    for index, starts in groups:
        other = clips[rng.integers(len(clips))].template
        shift = rng.uniform() * (other - clips[index].template).reshape(-1)
        offsets.append(np.broadcast_to(shift, (len(starts), features.WINDOW_FRAMES, shift.size)))
    return windows + torch.from_numpy(np.concatenate(offsets).astype(np.float32))
