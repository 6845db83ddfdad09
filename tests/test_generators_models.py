"""The generator models (training/generators): local biased attention, frame counts, key-frame masks,
KMTalk's composed key embedding, ONNX export parity and the exported graph through backend.generators."""

import json
import math

import numpy as np
import pytest
import torch

from backend.generators import frame_count, load_generator
from training.checkpoints import save_checkpoint
from training.generators.config import generator_preset
from training.generators.export import export_generator, speech_like_audio
from training.generators.families import build_generator
from training.generators.audio_encoder import BiasedSelfAttention, alibi_slopes, frames_of, periodic_positional_encoding
from training.generators.kmtalk import timeline_key_mask, uniform_key_mask




pytestmark = pytest.mark.training


def masked_full_attention(attention, tokens, block, period, causal):
    """Reference: full attention with the ALiBi-like bias, restricted to neighbouring blocks."""
    batch, frames, width = tokens.shape
    heads = attention.heads
    queries, keys, values = attention.project_in(tokens).reshape(batch, frames, 3, heads, -1).permute(2, 0, 3, 1, 4)
    index = torch.arange(frames)
    offset = index[:, None] - index[None]
    bias = -alibi_slopes(heads)[:, None, None] * torch.div(offset.abs(), period, rounding_mode="floor").float()
    allowed = ((index[None] // block) - (index[:, None] // block)).abs() <= 1
    if causal:
        allowed &= offset >= 0
    bias = bias.masked_fill(~allowed[None], float("-inf"))
    scores = queries @ keys.transpose(-1, -2) / math.sqrt(width // heads) + bias[None]
    mixed = torch.softmax(scores, -1) @ values
    return attention.project_out(mixed.transpose(1, 2).reshape(batch, frames, width))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("frames", [1, 7, 8, 21, 40])
def test_local_attention_matches_masked_full_attention(causal, frames):
    torch.manual_seed(frames)
    attention = BiasedSelfAttention(16, 2, period=5, causal=causal, block=8)
    tokens = torch.randn(2, frames, 16)
    expected = masked_full_attention(attention, tokens, 8, 5, causal)
    torch.testing.assert_close(attention(tokens), expected, atol=1e-6, rtol=1e-5)


def test_causal_attention_ignores_the_future():
    torch.manual_seed(0)
    attention = BiasedSelfAttention(16, 2, period=5, causal=True, block=8)
    tokens = torch.randn(1, 20, 16)
    changed = tokens.clone()
    changed[:, 12:] += 1.0
    torch.testing.assert_close(attention(tokens)[:, :12], attention(changed)[:, :12])


def test_periodic_positional_encoding_repeats_with_the_period():
    encoding = periodic_positional_encoding(60, 8, 25)
    torch.testing.assert_close(encoding[:25], encoding[25:50])
    assert not torch.allclose(encoding[0], encoding[1])


@pytest.mark.parametrize("samples", [3200, 16000, 16266, 16267, 40001])
def test_model_frame_count_is_the_backend_rule(samples):
    assert frames_of(torch.zeros(1, samples)) == frame_count(samples)
    model = build_generator(generator_preset("tiny"), 2)
    out = model(torch.zeros(1, samples), torch.zeros(1, 5023, 3), torch.eye(2)[:1])
    assert out.vertices.shape == (1, frame_count(samples), 5023, 3)


def test_key_masks():
    timeline = [(0.0, 0.1, "W"), (0.1, 0.2, "IH"), (0.2, 0.5, "L")]
    mask = timeline_key_mask(timeline, 16)
    assert torch.nonzero(mask).flatten().tolist() == [0, 3, 6, 15]   # 0.5 s -> frame 15
    assert torch.nonzero(uniform_key_mask(10, 3)).flatten().tolist() == [0, 3, 6, 9]


def test_kmtalk_composed_key_embedding_equals_embedding_the_displacements():
    torch.manual_seed(0)
    model = build_generator(generator_preset("tiny", family="kmtalk"), 3)
    for parameter in model.head.parameters():
        torch.nn.init.normal_(parameter, std=0.01)
    hidden = torch.randn(1, 9, 16)
    composed = model.embedded_key_motion(hidden) + model.key_embedding.bias
    direct = model.key_embedding(model.head(hidden).flatten(2))
    torch.testing.assert_close(composed, direct, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("overrides", [{}, {"family": "kmtalk"},
                                       {"family": "kmtalk", "kmtalk": {"backbone": "faceformer", "key_frames": "uniform",
                                                                       "audio_guidance": False}}])
def test_export_parity_and_backend_run(tmp_path, overrides):
    """Random (non-zero) weights, so the parity check compares real motion, not the template."""
    config = generator_preset("tiny", **overrides)
    torch.manual_seed(1)
    model = build_generator(config, 2)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.004)   # motion stays under the backend's 0.10 m check
    checkpoint = tmp_path / "checkpoint.pt"
    save_checkpoint(checkpoint, {"model": model.state_dict(), "step": 0, "config": json.dumps(config.to_dict()),
                                 "styles": json.dumps(["A", "B"]), "data": json.dumps({
                                     "folder": "random", "manifest": False, "synthetic": True, "preset": None,
                                     "seed": None, "train_clips": 0})})
    folder, error = export_generator(checkpoint, tmp_path / "exported", description="test export")
    assert error <= 1e-4
    generator = load_generator(folder)
    assert generator.info.family == config.family and generator.styles == ("A", "B")
    audio = speech_like_audio(2.05, 3)[0]
    template = np.random.default_rng(0).normal(scale=0.05, size=(5023, 3)).astype(np.float32)
    vertices = generator.animate(audio, 16000, template, style="B")
    with torch.no_grad():
        expected = model.eval()(torch.from_numpy(audio)[None], torch.from_numpy(template)[None],
                                torch.tensor([[0.0, 1.0]])).vertices[0].numpy()
    assert vertices.shape == (frame_count(audio.size), 5023, 3)
    assert np.max(np.abs(vertices - expected)) <= 1e-4
    assert np.max(np.abs(vertices - template)) > 1e-3   # the motion is not trivially the template


def test_boundary_peaks_are_local_maxima():
    from training.generators.kmtalk import boundary_peaks
    logits = torch.tensor([[0.0, 2.0, 1.0, 1.0, 3.0, 3.0, -1.0, 0.5]])
    assert torch.nonzero(boundary_peaks(logits)[0]).flatten().tolist() == [1, 4, 7]
