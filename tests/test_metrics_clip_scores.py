"""Single-clip scores (no ground truth): MTM vs a reference curve, windowed SLCC, audio-mesh offset."""

import numpy as np
import pytest

from backend.errors import MetricError
from backend.metrics.clip_scores import (ENVELOPE_VELOCITY_XCORR, PLRS_SIMILARITY, clip_slcc, estimate_av_offset,
                                         mtm_against_reference)
from backend.metrics.mtm import UnscorableClipError, lip_distance_curve
from synthetic_talking import LoudnessLipEncoders, envelope_audio, speech_like_envelope, talking_sequence

RATE = 16000


def lagging_clip(template, lips, lag, frames=450, seed=11):
    """Audio following an envelope and a mesh whose mouth follows it `lag` frames later."""
    envelope = speech_like_envelope(frames + 40, seed)
    audio = envelope_audio(envelope[20:20 + frames], RATE)
    mesh = talking_sequence(template, lips, envelope[20 - lag:20 - lag + frames])
    return audio, mesh


def test_mtm_against_a_reference_curve_measures_the_lag(flame_and_regions):
    template, regions = flame_and_regions
    _, on_time = lagging_clip(template, regions.lips, 0)
    _, late = lagging_clip(template, regions.lips, 5)
    assert mtm_against_reference(late, lip_distance_curve(on_time)).frames == 5


@pytest.mark.parametrize("lag", [-6, 0, 3, 8])
def test_offset_fallback_finds_the_lag_from_envelope_and_lip_velocity(flame_and_regions, lag):
    template, regions = flame_and_regions
    audio, mesh = lagging_clip(template, regions.lips, lag)
    estimate = estimate_av_offset(audio, RATE, mesh, fps=30)
    assert estimate.method == ENVELOPE_VELOCITY_XCORR
    assert estimate.frames == lag and estimate.ms == pytest.approx(lag * 1000 / 30)
    assert estimate.offsets_frames.tolist() == list(range(-10, 11))


@pytest.mark.parametrize("lag", [-4, 2])
def test_offset_with_encoders_finds_the_lag_from_window_similarity(flame_and_regions, lag):
    template, regions = flame_and_regions
    audio, mesh = lagging_clip(template, regions.lips, lag)
    estimate = estimate_av_offset(audio, RATE, mesh, fps=30, encoders=LoudnessLipEncoders())
    assert estimate.method == PLRS_SIMILARITY and estimate.frames == lag


def test_offset_with_encoders_needs_30_fps(flame_and_regions):
    template, regions = flame_and_regions
    audio, mesh = lagging_clip(template, regions.lips, 0)
    with pytest.raises(MetricError, match="needs a 30 fps mesh; got 25 fps"):
        estimate_av_offset(audio, RATE, mesh, fps=25, encoders=LoudnessLipEncoders())


def test_clip_slcc_correlates_loudness_and_lip_motion_across_one_second_windows(flame_and_regions):
    template, regions = flame_and_regions
    rng = np.random.default_rng(2)
    loudness = np.repeat(rng.uniform(0.2, 1.0, 12), 30)  # 12 one-second stretches of different loudness
    envelope = loudness * speech_like_envelope(360, seed=4)
    envelope[:30] = envelope[-30:] = 0.0
    audio = envelope_audio(loudness * 0.5, RATE)  # speech level per second
    mesh = talking_sequence(template, regions.lips, envelope)
    result = clip_slcc(audio, RATE, mesh, regions.lips, fps=30)
    assert len(result.speech_rms) == 12 and result.window_seconds == 1.0
    assert result.r > 0.6
    silent_mouth = talking_sequence(template, regions.lips, np.zeros(360))
    with pytest.raises(UnscorableClipError, match="same in every window"):
        clip_slcc(audio, RATE, silent_mouth, regions.lips)


def test_clip_slcc_needs_three_windows(flame_and_regions):
    template, regions = flame_and_regions
    audio, mesh = lagging_clip(template, regions.lips, 0, frames=80)
    with pytest.raises(UnscorableClipError, match="at least 3 whole 1-s windows; the clip has 2"):
        clip_slcc(audio, RATE, mesh, regions.lips)


def test_single_clip_scores_reject_bad_audio(flame_and_regions):
    template, regions = flame_and_regions
    _, mesh = lagging_clip(template, regions.lips, 0)
    with pytest.raises(MetricError, match=r"expected non-empty mono audio of shape \(n,\); got shape \(2, 100\)"):
        estimate_av_offset(np.zeros((2, 100)), RATE, mesh)
    with pytest.raises(MetricError, match=r"speech samples: has 1 non-finite"):
        clip_slcc(np.r_[np.zeros(99), np.nan], RATE, mesh, regions.lips)
