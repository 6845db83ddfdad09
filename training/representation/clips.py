"""The representation's training data: paired clips (speech at 640 x fps Hz with its frames: vertices or mouth
video, and the speech front end's features at the frame rate) from a corpus, and the sampled batches of 5-frame
windows. A window pairs 5 frames with the speech encoder's input for the same span (backend.metrics.plrs): the
front end's 5 rows, or 3200 samples at 19.2 kHz turned into the (20, 128) fbank of `backend.features`.
"""

import hashlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from backend import features
from backend.audio import resample
from backend.errors import BackendError
from backend.frame_rate import MESH_FPS
from backend.datasets import open_dataset
from backend.metrics.plrs import FBANK_INPUT, speech_window_inputs
from backend.speech_frontend import features_at_fps


@dataclass
class PairedClip:
    """One clip's speech and frames. speech: (S,) float32 at 640 * fps Hz; frames: (T, 15069) float32
    vertices or (T, S, S) uint8 mouth video; timeline: phone intervals (start_s, end_s, label) or None;
    frontend: (T, 447) float32 front-end features at fps (row t pairs with frame t) or None."""

    clip_id: str
    speech: np.ndarray
    frames: np.ndarray
    fps: float
    subject: str = ""
    sentence: str = ""
    level: Optional[int] = None
    timeline: Optional[list] = None
    template: Optional[np.ndarray] = field(default=None, repr=False)
    frontend: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def window_count(self) -> int:
        return max(0, len(self.frames) - features.WINDOW_FRAMES + 1)

    def speech_features(self, starts: np.ndarray, kind: str = FBANK_INPUT) -> np.ndarray:
        """The speech encoder input of the windows paired with frame windows at `starts`: (len(starts), 20, 128)
        normalised fbank, or (len(starts), 5, 447) front-end rows (kind FRONTEND_INPUT)."""
        if kind == FBANK_INPUT:
            return speech_window_inputs(kind, self.speech, starts)
        if self.frontend is None:
            raise BackendError(f"clip {self.clip_id} has no front-end features; load it with a feature cache")
        return speech_window_inputs(kind, self.frontend, starts)

    def frame_windows(self, starts: np.ndarray) -> np.ndarray:
        """(len(starts), 5, ...) frames starting at each start."""
        return self.frames[np.asarray(starts)[:, None] + np.arange(features.WINDOW_FRAMES)]


def speech_rate(fps: float) -> int:
    """The audio rate at which one frame is 640 samples (19.2 kHz at 30 fps, 16 kHz at 25 fps)."""
    return int(round(features.SAMPLES_PER_FRAME * fps))


def sentence_half(sentence: str) -> int:
    """0 or 1 from a hash of the sentence id: two halves of a corpus that share no utterance."""
    return hashlib.sha256(sentence.encode("utf-8")).digest()[0] % 2


def load_corpus_clips(corpus_dir, split: str, limit: Optional[int] = None, feature_cache=None,
                      half: Optional[int] = None, max_frames: int = 0, seed: int = 0) -> list[PairedClip]:
    """Clips of one split of a corpus built by `training.corpus`, vertices flattened to (T, 15069).

    feature_cache (a backend.speech_feature_cache.SpeechFeatureCache): also the front-end features at the frame
    rate, computed once per clip's audio and cached. half (0 or 1): only clips of that `sentence_half` of their
    sentence id (a passage's is its own id). max_frames > 0: clips in a `seed`ed random order until that many
    frames are loaded (float32 vertices: 60 kB a frame), else every clip in order."""
    dataset = open_dataset(corpus_dir, kind="corpus", split=split, fps=MESH_FPS)
    clip_ids = [clip_id for clip_id in dataset.clip_ids()
                if half is None or sentence_half(dataset.entry(clip_id).sentence or clip_id) == half]
    if max_frames > 0:
        clip_ids = [clip_ids[index] for index in np.random.default_rng(seed).permutation(len(clip_ids))]
    clips, frames = [], 0
    for clip_id in clip_ids:
        if (limit is not None and len(clips) >= limit) or (max_frames > 0 and frames >= max_frames):
            break
        clip = dataset.load(clip_id)
        frames += len(clip.vertices)
        speech = resample(clip.audio, clip.sample_rate, speech_rate(clip.fps)).astype(np.float32)
        frontend = None
        if feature_cache is not None:
            frontend = features_at_fps(feature_cache.features(clip.audio, clip.sample_rate), len(clip.vertices),
                                       clip.fps)
        clips.append(PairedClip(clip_id, speech, np.ascontiguousarray(clip.vertices.reshape(len(clip.vertices), -1)),
                                clip.fps, clip.subject, clip.sentence, clip.level, clip.timeline, clip.template,
                                frontend))
    return clips


def sample_windows(clips: list[PairedClip], batch_size: int, windows_per_clip: int,
                   rng: np.random.Generator, spacing: int = 0) -> list[tuple[int, np.ndarray]]:
    """(clip index, starts) groups filling one batch: clips drawn in proportion to their window
    count, `windows_per_clip` distinct starts from each (so a batch holds same-clip time offsets
    as negatives as well as other clips). spacing > 0: the starts are a run first + spacing * k, k = 0..n-1
    (with 11 windows 3 frames apart, every window has negatives 3, 6, ... 30 frames away); 0: anywhere."""
    counts = np.array([clip.window_count for clip in clips], dtype=np.float64)
    needed = windows_per_clip if spacing == 0 else (windows_per_clip - 1) * spacing + 1
    usable = counts >= needed
    if not usable.any():
        raise BackendError(f"no clip has {needed} windows ({needed + 4} frames); "
                           f"the longest has {int(counts.max(initial=0))} windows")
    weights = np.where(usable, counts, 0.0) / counts[usable].sum()
    groups = []
    for clip_index in rng.choice(len(clips), size=max(1, batch_size // windows_per_clip), p=weights):
        if spacing == 0:
            starts = np.sort(rng.choice(int(counts[clip_index]), size=windows_per_clip, replace=False))
        else:
            first = rng.integers(int(counts[clip_index]) - needed + 1)
            starts = first + spacing * np.arange(windows_per_clip)
        groups.append((int(clip_index), starts))
    return groups


def gather_batch(clips: list[PairedClip], groups, kind: str = FBANK_INPUT) -> tuple[torch.Tensor, torch.Tensor]:
    """(speech input (B, 20, 128) fbank or (B, 5, 447) front end (`kind`), frames (B, 5, ...) float32) for
    sampled groups; video scaled to [0, 1]."""
    fbank = np.concatenate([clips[index].speech_features(starts, kind) for index, starts in groups])
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
