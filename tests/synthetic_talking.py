"""Synthetic-but-plausible talking sequences for the metric and CLI tests (SYNTHETIC data, no real recordings).

A FLAME template (read in place from ../shared) whose lower-lip vertices move down with a speech-like
envelope: syllable bumps 4-9 frames wide, 7-16 frames apart, with pauses, silent at both ends. The
matching audio is noise shaped by the same envelope; LoudnessLipEncoders is a numpy PLRS encoder pair
under which such speech and lips agree.
"""

import numpy as np

from backend import features
from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE

SILENT_FRAMES = 30
OPENING_METRES = 0.008


def speech_like_envelope(num_frames: int, seed: int = 0) -> np.ndarray:
    """(num_frames,) in [0, 1]: raised-cosine syllables with pauses; zero for SILENT_FRAMES at each end."""
    rng = np.random.default_rng(seed)
    envelope = np.zeros(num_frames)
    frame = SILENT_FRAMES
    while frame < num_frames - SILENT_FRAMES - 10:
        width = int(rng.integers(4, 10))
        bump = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(width + 1) / width)
        envelope[frame:frame + width + 1] = np.maximum(envelope[frame:frame + width + 1],
                                                      rng.uniform(0.3, 1.0) * bump)
        frame += int(rng.integers(7, 17)) + (int(rng.integers(10, 25)) if rng.random() < 0.15 else 0)
    return envelope


def lower_lip_vertices(template: np.ndarray, lips: np.ndarray) -> np.ndarray:
    """Lip vertices below the mouth's midline (including the lower-lip centre)."""
    mid = 0.5 * (template[UPPER_LIP_CENTRE, 1] + template[LOWER_LIP_CENTRE, 1])
    unique = np.unique(lips)
    return unique[template[unique, 1] < mid]


def talking_sequence(template: np.ndarray, lips: np.ndarray, envelope: np.ndarray) -> np.ndarray:
    """(T, V, 3) float64: the template with the lower lip lowered by envelope * OPENING_METRES."""
    sequence = np.repeat(template[None].astype(np.float64), len(envelope), axis=0)
    sequence[:, lower_lip_vertices(template, lips), 1] -= OPENING_METRES * envelope[:, None]
    return sequence


def envelope_audio(envelope: np.ndarray, rate: int = 16000, fps: float = 30.0, seed: int = 1) -> np.ndarray:
    """Float32 noise at `rate` whose loudness follows the per-frame envelope (plus a quiet floor)."""
    rng = np.random.default_rng(seed)
    samples = int(len(envelope) * rate / fps)
    loudness = np.interp(np.arange(samples) * fps / rate, np.arange(len(envelope)), envelope)
    return (0.5 * (loudness + 0.01) * rng.uniform(-1, 1, samples)).astype(np.float32)


class LoudnessLipEncoders:
    """Speech -> centred per-frame loudness over the window; mesh -> centred per-frame lip opening."""

    def __init__(self):
        self.speech_batches, self.mesh_batches = [], []

    def embed_speech(self, fbank):
        self.speech_batches.append(fbank)
        loudness = fbank.mean(axis=2).reshape(len(fbank), features.WINDOW_FRAMES, -1).mean(axis=2)
        return loudness - loudness.mean(axis=1, keepdims=True)

    def embed_mesh(self, vertices):
        self.mesh_batches.append(vertices)
        opening = np.linalg.norm(vertices[:, :, UPPER_LIP_CENTRE] - vertices[:, :, LOWER_LIP_CENTRE], axis=2)
        return opening - opening.mean(axis=1, keepdims=True)
