"""Single-clip scores for when no ground-truth mesh exists (the Blender add-on's lip-sync panel).

Each is a per-clip variant of a dataset metric and says how it differs:
- `mtm_against_reference`: MTM with a caller-supplied reference lip-distance curve (another animation,
  or a curve timed from phonemes) in the ground truth's place. Same steps as MTM; only as good as the
  reference's timing.
- `clip_slcc`: windowed SLCC inside one clip. Dataset SLCC correlates per-clip intensities across clips
  after z-normalising per speaker; this one cuts one clip into non-overlapping windows (1 s by default),
  takes speech RMS (int16 scale) and lip intensity (RMS of per-frame mean lip displacement) per window,
  and returns Pearson r across windows: "does the mouth move more when the voice is louder, over time".
  No z-normalisation (one speaker, one clip; Pearson r is scale-free anyway).
- `clip_plrs` (from plrs.py): identical to the dataset metric's per-clip score.
- `estimate_av_offset`: the audio-mesh offset in ms (searched over -10..+10 frames) that maximises
  speech-mesh similarity. With encoders, similarity = mean PLRS cosine of mesh windows against speech
  windows shifted by the offset. Without encoders, the fallback `envelope_velocity_xcorr`: Pearson r
  between the rate of change of the speech RMS envelope (per mesh frame) and the lip-opening velocity
  (rate of change of the smoothed lip distance), the mesh shifted by the offset. Sign: a positive offset
  means the mesh lags the audio (the mouth moves that long after the sound).
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.ndimage import gaussian_filter1d

from backend import features
from backend.audio import to_int16
from backend.errors import MetricError
from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
from backend.frame_rate import MESH_FPS
from backend.metrics import inputs
from backend.metrics.mtm import ClipMTM, UnscorableClipError, lip_distance_curve, mtm_from_curves
from backend.metrics.plrs import (DEFAULT_BATCH_SIZE, SpeechMeshEncoders, check_reads, cosine_similarities,
                                  mesh_window_inputs, speech_input_of, speech_track, speech_window_inputs)
from backend.metrics.slcc import lip_motion_per_frame

MAX_OFFSET_FRAMES = 10
MIN_WINDOWS = 3
PLRS_SIMILARITY = "plrs_similarity"
ENVELOPE_VELOCITY_XCORR = "envelope_velocity_xcorr"


def mtm_against_reference(pred_vertices, reference_curve, fps: float = MESH_FPS, upper: int = UPPER_LIP_CENTRE,
                          lower: int = LOWER_LIP_CENTRE) -> ClipMTM:
    """MTM of a (T, V, 3) animation against a raw (T',) reference lip-distance curve at the same fps."""
    return mtm_from_curves(reference_curve, lip_distance_curve(pred_vertices, upper, lower), fps)


def _mono_samples(samples, rate) -> tuple[np.ndarray, int]:
    values = np.asarray(samples, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise MetricError(f"speech samples: expected non-empty mono audio of shape (n,); got shape {values.shape}")
    inputs.finite(values, "speech samples")
    if int(rate) <= 0:
        raise MetricError(f"sample rate must be a positive integer; got {rate!r}")
    return values, int(rate)


@dataclass(frozen=True)
class ClipSLCC:
    """Windowed SLCC of one clip: r across windows, and the (W,) per-window intensities behind it."""

    r: float
    speech_rms: np.ndarray
    lip_intensity: np.ndarray
    window_seconds: float


def clip_slcc(samples, rate: int, vertices, lip_indices, fps: float = MESH_FPS,
              window_seconds: float = 1.0) -> ClipSLCC:
    """Per-clip windowed SLCC (see module docstring). samples: float mono in [-1, 1] at `rate` Hz;
    vertices (T, V, 3) at `fps`. Only whole windows covered by both audio and mesh count."""
    samples, rate = _mono_samples(samples, rate)
    fps = inputs.check_fps(fps)
    motion = lip_motion_per_frame(vertices, lip_indices)  # motion[t - 1] belongs to frame t
    frames_per_window = int(round(window_seconds * fps))
    if frames_per_window < 2:
        raise MetricError(f"window_seconds={window_seconds} gives {frames_per_window} frame(s) per window at "
                          f"{fps:g} fps; expected at least 2")
    audio_frames = int(len(samples) * fps / rate)
    windows = min(len(motion) + 1, audio_frames) // frames_per_window
    if windows < MIN_WINDOWS:
        raise UnscorableClipError(f"clip SLCC needs at least {MIN_WINDOWS} whole {window_seconds:g}-s windows; "
                                  f"the clip has {windows} (clip skipped)")
    int16 = to_int16(samples)
    speech_rms, lip_level = np.empty(windows), np.empty(windows)
    for window in range(windows):
        first, last = window * frames_per_window, (window + 1) * frames_per_window
        chunk = int16[int(first * rate / fps):int(last * rate / fps)].astype(np.float64)   # no take-sized copy
        speech_rms[window] = np.sqrt(np.mean(chunk ** 2))
        lip_level[window] = np.sqrt(np.mean(motion[max(first - 1, 0):last - 1] ** 2))
    if speech_rms.std() == 0 or lip_level.std() == 0:
        raise UnscorableClipError("clip SLCC: speech loudness or lip motion is the same in every window, so "
                                  "there is no correlation to measure (clip skipped)")
    r = float(np.corrcoef(speech_rms, lip_level)[0, 1])
    return ClipSLCC(r=r, speech_rms=speech_rms, lip_intensity=lip_level, window_seconds=window_seconds)


@dataclass(frozen=True)
class OffsetEstimate:
    """Best audio-mesh offset. offsets_frames (K,) and similarities (K,) are the whole search curve."""

    frames: int
    fps: float
    method: str
    offsets_frames: np.ndarray
    similarities: np.ndarray

    @property
    def ms(self) -> float:
        return self.frames * 1000.0 / self.fps


def estimate_av_offset(samples, rate: int, vertices, fps: float = MESH_FPS,
                       encoders: Optional[SpeechMeshEncoders] = None, max_offset_frames: int = MAX_OFFSET_FRAMES,
                       batch_size: int = DEFAULT_BATCH_SIZE, upper: int = UPPER_LIP_CENTRE,
                       lower: int = LOWER_LIP_CENTRE, vertex_ids=None, frontend_features=None) -> OffsetEstimate:
    """The offset in [-max_offset_frames, +max_offset_frames] maximising speech-mesh similarity.

    With `encoders` the mesh must be at 30 fps (the PLRS windowing); ties go to the smallest |offset|.
    `upper`/`lower` are columns of `vertices`; vertex_ids and frontend_features as in plrs.clip_plrs.
    """
    samples, rate = _mono_samples(samples, rate)
    fps = inputs.check_fps(fps)
    sequence = inputs.vertex_sequence(vertices)
    offsets = np.arange(-int(max_offset_frames), int(max_offset_frames) + 1)
    if encoders is None:
        method = ENVELOPE_VELOCITY_XCORR
        similarities = _envelope_velocity_xcorr(samples, rate, lip_distance_curve(sequence, upper, lower), fps,
                                                offsets)
    else:
        if fps != MESH_FPS:
            raise MetricError(f"offset search with encoders needs a {MESH_FPS} fps mesh; got {fps:g} fps")
        method = PLRS_SIMILARITY
        inputs.finite(sequence, "vertices")
        similarities = _plrs_offset_similarities(encoders, samples, rate, sequence, offsets, batch_size,
                                                 check_reads(encoders, vertex_ids), frontend_features)
    order = np.lexsort((np.abs(offsets), -similarities))
    return OffsetEstimate(frames=int(offsets[order[0]]), fps=fps, method=method, offsets_frames=offsets,
                          similarities=similarities)


def _plrs_offset_similarities(encoders, samples, rate, sequence, offsets, batch_size, vertex_ids,
                              frontend_features) -> np.ndarray:
    """Mean cosine of non-overlapping mesh windows at m against speech windows at m - offset."""
    kind = speech_input_of(encoders)
    speech_frames = int(len(samples) * features.PLRS_AUDIO_RATE / rate) // features.SAMPLES_PER_FRAME
    track = speech_track(kind, samples, rate, speech_frames, frontend_features)
    mesh_starts = features.window_starts(len(sequence))
    speech_starts = features.window_starts(speech_frames, stride=1)
    if len(mesh_starts) < MIN_WINDOWS or len(speech_starts) == 0:
        raise UnscorableClipError(f"offset search needs at least {MIN_WINDOWS} five-frame windows of mesh and "
                                  f"audio; the clip has {len(sequence)} mesh frames (clip skipped)")
    mesh_embeddings = _batched(encoders.embed_mesh, lambda starts: mesh_window_inputs(sequence, starts, vertex_ids),
                               mesh_starts, batch_size)
    speech_embeddings = _batched(encoders.embed_speech, lambda starts: speech_window_inputs(kind, track, starts),
                                 speech_starts, batch_size)
    similarities = np.full(len(offsets), -np.inf)
    for position, offset in enumerate(offsets):
        paired_speech = mesh_starts - offset
        valid = (paired_speech >= 0) & (paired_speech < len(speech_starts))
        if valid.sum() >= MIN_WINDOWS:
            similarities[position] = cosine_similarities(speech_embeddings[paired_speech[valid]],
                                                         mesh_embeddings[valid]).mean()
    return similarities


def _batched(embed, make_batch, starts: np.ndarray, batch_size: int) -> np.ndarray:
    if int(batch_size) < 1:
        raise MetricError(f"batch_size must be a positive integer; got {batch_size!r}")
    return np.concatenate([embed(make_batch(starts[begin:begin + int(batch_size)]))
                           for begin in range(0, len(starts), int(batch_size))])


def speech_envelope(samples: np.ndarray, rate: int, fps: float) -> np.ndarray:
    """(F,) RMS of the samples within half a frame of each mesh frame's time t / fps (F whole frames)."""
    frames = int(len(samples) * fps / rate)
    edges = np.maximum(((np.arange(frames + 1) - 0.5) * rate / fps).round(), 0).astype(np.int64)
    squared_sums = np.add.reduceat(samples[:edges[-1]] ** 2, edges[:-1]) if frames else np.zeros(0)
    return np.sqrt(squared_sums / np.maximum(np.diff(edges), 1))


def _envelope_velocity_xcorr(samples, rate, lip_curve, fps, offsets) -> np.ndarray:
    """Pearson r of d/dt speech envelope (frame t) and d/dt smoothed lip distance (frame t + offset)."""
    envelope_rate = np.diff(gaussian_filter1d(speech_envelope(samples, rate, fps), 1.0))
    lip_velocity = np.diff(gaussian_filter1d(lip_curve, 1.0))
    length = min(len(envelope_rate), len(lip_velocity))
    if length - np.abs(offsets).max() < 3 * MIN_WINDOWS:
        raise UnscorableClipError(f"offset search needs more than {np.abs(offsets).max() + 3 * MIN_WINDOWS} frames "
                                  f"of audio and mesh; the clip has {length + 1} (clip skipped)")
    similarities = np.full(len(offsets), -np.inf)
    for position, offset in enumerate(offsets):
        speech_part = envelope_rate[max(0, -offset):length - max(0, offset)]
        lip_part = lip_velocity[max(0, offset):length - max(0, -offset)]
        if speech_part.std() > 0 and lip_part.std() > 0:
            similarities[position] = np.corrcoef(speech_part, lip_part)[0, 1]
    return similarities
