"""Training clips for the generator families: a corpus split as TrainingClips (front-end features, motion in the
model's basis, lip-gap targets, per-frame weights), with a fixed pool of augmented copies per clip.

Features: backend.speech_frontend through a SpeechFeatureCache (one front-end pass per clip and augmentation for
every run and family; keyed by the samples and the augmentation id), resampled to 30 fps by
`speech_frontend.to_mesh_rate`, the function the backend runs generators with. Augmentation (`config.variants`):
copy 0 is the clean clip; copy v >= 1 follows `training.corpus.augment.plan_for(seed, v, clip index)` (tempo
also time-scales the timeline and the motion; babble comes from the other clips `babble_sources` names). The
cache keys a copy by its clean samples and plan id and augments the audio only on a miss, so a second run
(another family) neither augments nor runs the front end again. A fixed pool, not a fresh draw per epoch: on
2 cores the front end runs once per copy, before training.

Statistics (`fit_statistics`): before the clips are encoded, the feature z-scoring and the motion basis are fitted
on every `stride`-th training clip (clean copies), so whole faces are held only for those; every clip is then
stored as coefficients (K values per frame instead of 15,069).

Loss weights per frame: 1, or `bilabial_weight` inside /p b m/ (the frames whose closure the benchmark checks);
the closure mask: the /p b m/ frames where the target's lips are shut by the benchmark's rule (REFERENCE §8).
"""

from pathlib import Path

import numpy as np
import torch

from backend.audio import resample
from backend.datasets import open_dataset
from backend.errors import BackendError
from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
from backend.frame_rate import MESH_FPS
from backend.generators import SAMPLE_RATE, frame_count
from backend.metrics.phone_checks import CLOSED_ABOVE_REST_M, rest_gap
from backend.rig.timeline import BILABIALS
from backend.speech_feature_cache import SpeechFeatureCache
from backend.speech_frontend import to_mesh_rate
from training.generators.config import GeneratorConfig
from training.generators.families import FAMILY_CLASSES
from training.generators.motion_basis import DataStatistics, fit_statistics
from training.generators.protocol import TrainingClip

FIT_CLIPS = 200             # clips whose whole faces the statistics are fitted on (at most)
CACHE_FOLDER = ".speech_feature_cache"


def default_feature_cache(corpus) -> Path:
    """Beside the corpus, shared by the corpora there (the key holds the samples, so sharing is safe)."""
    return Path(corpus).resolve().parent / CACHE_FOLDER


def training_styles(corpus) -> list:
    """Sorted subject names of the training split: the generator's styles."""
    dataset = open_dataset(corpus, split="train")
    return sorted({dataset.entry(clip_id).subject for clip_id in dataset.clip_ids()})


def bilabial_frames(timeline, frames: int) -> np.ndarray:
    """(frames,) bool: the frames inside a /p b m/ segment of `timeline` (None: no frame)."""
    inside = np.zeros(frames, dtype=bool)
    times = np.arange(frames) / MESH_FPS
    for start, end, label in timeline or []:
        if label.upper().rstrip("012") in BILABIALS:
            inside |= (times >= start) & (times < end)
    return inside


def frame_weights(timeline, frames: int, bilabial_weight: float) -> np.ndarray:
    """(frames,) float32: bilabial_weight on frames inside a /p b m/ segment, 1 elsewhere."""
    return np.where(bilabial_frames(timeline, frames), np.float32(bilabial_weight), np.float32(1.0))


def closure_mask(timeline, target_gap: np.ndarray, template: np.ndarray) -> np.ndarray:
    """(T,) float32 1.0 on the /p b m/ frames where the target's lip gap `target_gap` (metres) is within the
    benchmark's CLOSED_ABOVE_REST_M of the template's rest gap: where the lips must be shut."""
    shut = target_gap <= rest_gap(template) + CLOSED_ABOVE_REST_M
    return (bilabial_frames(timeline, len(target_gap)) & shut).astype(np.float32)


def lip_gap(vertices: np.ndarray) -> np.ndarray:
    """(T, 5023, 3) -> (T,) float32 ||v[3531] - v[3504]|| (metres)."""
    return np.linalg.norm(vertices[:, UPPER_LIP_CENTRE] - vertices[:, LOWER_LIP_CENTRE], axis=-1).astype(np.float32)


class ClipLoader:
    """Reads one corpus split into TrainingClips (see the module docstring). `cache`: the feature cache folder."""

    def __init__(self, corpus, split: str, styles: list, config: GeneratorConfig, cache=None):
        self.dataset = open_dataset(corpus, split=split)
        self.ids = self.dataset.clip_ids()
        if not self.ids:
            raise BackendError(f"{corpus}: no clips in split '{split}'")
        self.styles, self.config = styles, config
        self.cache = SpeechFeatureCache(cache or default_feature_cache(corpus))
        self.family = FAMILY_CLASSES[config.family]

    def _clip(self, index: int):
        clip_id = self.ids[index]
        clip = self.dataset.load(clip_id)
        self.family.check_clip(self.config, clip_id, clip)
        return clip_id, clip, resample(clip.audio, clip.sample_rate, SAMPLE_RATE).astype(np.float32)

    def _features(self, audio: np.ndarray, augmentation: str, frames: int) -> np.ndarray:
        return to_mesh_rate(self.cache.features(audio, SAMPLE_RATE, augmentation), frame_count(len(audio)))[:frames]

    def fit_statistics(self) -> DataStatistics:
        """Feature z-scoring and the motion basis from the clean copies of every stride-th clip."""
        stride = max(1, -(-len(self.ids) // FIT_CLIPS))
        features, displacements = [], []
        for index in range(0, len(self.ids), stride):
            _, clip, audio = self._clip(index)
            frames = min(frame_count(len(audio)), len(clip.vertices))
            features.append(self._features(audio, "", frames))
            displacements.append((clip.vertices[:frames] - clip.template[None]).reshape(frames, -1))
        return fit_statistics(features, displacements, self.config.basis_size)

    def clips(self, basis, speech_target=None, target_hears_audio: bool = False) -> list:
        """Every clip and augmented copy as a TrainingClip with coefficients in `basis` (a MotionBasis);
        `speech_target(source, frames)` gives the perceptual loss's target when there is one, from the copy's
        16 kHz audio when `target_hears_audio`, else from its cached front-end features at 50 Hz (T50, 447)."""
        result = []
        for index in range(len(self.ids)):
            clip_id, clip, audio = self._clip(index)
            style = torch.zeros(len(self.styles))
            style[self.styles.index(clip.subject) if clip.subject in self.styles else 0] = 1.0
            template = torch.from_numpy(clip.template.astype(np.float32))
            copies = self._copies(clip, audio, index, speech_target is not None and target_hears_audio)
            for augmentation, features, timeline, vertices, source in copies:
                frames = min(len(features), len(vertices))
                gap = lip_gap(vertices[:frames])
                displacement = torch.from_numpy((vertices[:frames] - clip.template[None]).reshape(frames, -1))
                with torch.no_grad():
                    coefficients = basis.encode(displacement.float())
                result.append(TrainingClip(
                    f"{clip_id}{'@' + augmentation if augmentation else ''}",
                    torch.from_numpy(features[:frames])[None],
                    coefficients, torch.from_numpy(gap),
                    torch.from_numpy(frame_weights(timeline, frames, self.config.bilabial_weight)), template, style,
                    timeline, None if speech_target is None else speech_target(source, frames),
                    torch.from_numpy(closure_mask(timeline, gap, clip.template))))
        return result

    def _copies(self, clip, audio: np.ndarray, index: int, with_audio: bool):
        """[(augmentation id, features (T', 447) at 30 fps, timeline, vertices (T', 5023, 3), source)] of one
        clip: the clean copy, then config.variants - 1 augmented ones; source: the copy's audio when `with_audio`,
        else its front-end features at 50 Hz (T50, 447) as cached."""
        clean = self.cache.features(audio, SAMPLE_RATE, "")
        result = [("", to_mesh_rate(clean, frame_count(len(audio))), clip.timeline, clip.vertices,
                   audio if with_audio else clean)]
        if self.config.variants > 1:
            from training.corpus.augment import (apply_plan, augment_motion, augmented_length, babble_sources,
                                                 plan_for)
            for variant in range(1, self.config.variants):
                plan = plan_for(self.config.seed, variant, index)
                if not plan.id:   # a clean draw: the clean copy is already in
                    continue

                def augmented(samples, plan=plan):
                    babble = None
                    if plan.noise_snr_db is not None and plan.noise_kind == "babble":
                        babble = [self._clip(other)[2] for other in babble_sources(plan, len(self.ids), index)]
                    return apply_plan(samples, plan, babble)
                frames = frame_count(augmented_length(len(audio), plan))
                stacked = self.cache.features(audio, SAMPLE_RATE, plan.id, augment=augmented)
                timeline, vertices = augment_motion(clip.timeline or [], clip.vertices, plan, len(audio))
                result.append((plan.id, to_mesh_rate(stacked, frames), timeline if clip.timeline else None, vertices,
                               augmented(audio) if with_audio else stacked))
        return result
