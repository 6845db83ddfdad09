"""A disk cache of speech front-end features per clip, so that training computes them once per clip and augmentation.

Key: SHA-256 of the front end's model file digest, the sample rate, the samples' dtype, shape and bytes, and the
augmentation id (training.corpus.augment's `AugmentPlan.id`, e.g. "n15pink_s3"; "" for the clean clip): an
augmented variant is keyed by its clean samples and its plan, and augmented only on a miss (`augment=`). So the
same audio always hits, any changed sample misses, and a new model never serves old features. Value:
`SpeechFeatures.stacked()` (T, 447) stored as float16 `.npy` (half the disk; far finer than the features' own
variation with context), written atomically (backend.atomic), at `<root>/<key[:2]>/<key>.npy`. Reading back
gives float32.
"""

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from backend.atomic import write_npy
from backend.models import file_sha256
from backend.speech_frontend import FEATURE_DIM, SpeechFrontend, load_frontend


_model_digest = lru_cache(maxsize=4)(file_sha256)   # hashed once per model file and process


class SpeechFeatureCache:
    """`features(samples, rate, augmentation)` -> (T, 447) float32, computed by `frontend` on a miss."""

    def __init__(self, root, frontend: SpeechFrontend | None = None):
        self.root = Path(root)
        self.frontend = frontend or load_frontend()
        self.model_digest = _model_digest(Path(self.frontend.model_path).resolve())
        self.hits = 0
        self.misses = 0

    def key(self, samples: np.ndarray, rate: int, augmentation: str = "") -> str:
        samples = np.ascontiguousarray(samples)
        digest = hashlib.sha256()
        for part in (self.model_digest, str(int(rate)), samples.dtype.str, str(samples.shape), augmentation):
            digest.update(part.encode("utf-8") + b"\0")
        digest.update(samples.tobytes())
        return digest.hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def features(self, samples: np.ndarray, rate: int, augmentation: str = "", augment=None) -> np.ndarray:
        """The clip's stacked front-end features (T, 447) float32, from the cache or computed and stored.

        `augment`: a function of the samples (e.g. training.corpus.augment.apply_plan with the plan named by
        `augmentation`) run only on a miss; the features are those of its output, keyed by the clean samples.
        """
        path = self.path(self.key(samples, rate, augmentation))
        if path.is_file():
            stored = np.load(path, allow_pickle=False)
            if stored.ndim == 2 and stored.shape[1] == FEATURE_DIM:
                self.hits += 1
                return stored.astype(np.float32)
        self.misses += 1
        features = self.frontend.features(augment(samples) if augment else samples, rate).stacked()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_npy(path, features.astype(np.float16))
        return features.astype(np.float16).astype(np.float32)
