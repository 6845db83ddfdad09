"""The generator models (training/generators): local biased attention, one output frame per feature frame,
key-frame masks from the front end's phone spikes, the motion basis (fit, vertex MSE, lip gap), ONNX export
parity and the exported v2 graph through backend.generators."""

import json
import math

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
from backend.generators import frame_count, load_generator, speech_features
from backend.models import default_models_dir
from backend.onnx_session import open_session
from backend.speech_frontend import BLANK_TOKEN, FEATURE_DIM
from training.checkpoints import save_checkpoint
from training.generators.config import generator_preset
from training.generators.export import PARITY_TOLERANCE, export_generator, speech_like_audio, store_weights_float16
from training.generators.families import build_generator
from training.generators.audio_encoder import BiasedSelfAttention, alibi_slopes, periodic_positional_encoding
from training.generators.kmtalk import local_peaks, phone_key_mask, uniform_key_mask
from training.generators.motion_basis import MotionBasis, fit_statistics




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


@pytest.mark.parametrize("family", ["faceformer", "kmtalk", "selftalk", "codetalker"])
@pytest.mark.parametrize("frames", [1, 7, 65])
def test_every_family_gives_one_frame_per_feature_frame(family, frames):
    model = build_generator(generator_preset("tiny", family=family), 2)
    vertices = model.animate(torch.randn(1, frames, FEATURE_DIM), torch.zeros(1, 5023, 3), torch.eye(2)[:1])
    assert vertices.shape == (1, frames, 5023, 3)


def test_key_masks():
    assert torch.nonzero(uniform_key_mask(10, 3)).flatten().tolist() == [0, 3, 6, 9]
    peaks = local_peaks(torch.tensor([[0.0, 2.0, 1.0, 1.0, 3.0, 3.0, -1.0, 0.5]]))
    assert torch.nonzero(peaks[0]).flatten().tolist() == [1, 4, 7]
    features = torch.zeros(1, 8, FEATURE_DIM)
    blank = torch.tensor([0.9, 0.2, 0.6, 0.95, 0.3, 0.1, 0.4, 0.7])   # p(blank): spikes at 1 and 5; 6 is no peak
    features[0, :, BLANK_TOKEN] = blank.log()
    assert torch.nonzero(phone_key_mask(features)[0]).flatten().tolist() == [1, 5]


def test_phone_key_frames_of_real_speech_follow_its_phones(speech_dir):
    """On a real Kathleen take the front end's phone spikes give roughly one key frame per labelled phone."""
    from backend.audio import load_audio
    from backend.rig.timeline import SILENCE, read_lab
    take = sorted(speech_dir.glob("*.phones.lab"))[0]
    audio, _ = load_audio(take.with_name(take.name.replace(".phones.lab", ".flac")), 16000)
    phones = [label for _, _, label in read_lab(take) if label != SILENCE]
    keys = int(phone_key_mask(torch.from_numpy(speech_features(audio))[None]).sum())
    assert 0.5 * len(phones) <= keys <= 1.3 * len(phones)


def test_motion_basis_spans_the_fitted_motion_and_its_losses_are_vertex_losses():
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(3, 15069)) * 1e-3
    displacements = [rng.normal(size=(40, 3)) @ directions for _ in range(3)]
    features = [rng.normal(size=(40, FEATURE_DIM)).astype(np.float32) for _ in range(3)]
    statistics = fit_statistics(features, displacements, 5)
    basis = MotionBasis(5)
    basis.set(statistics.motion_mean, statistics.components, statistics.explained)
    assert statistics.explained[:3].sum() > 0.999 and statistics.feature_std.shape == (FEATURE_DIM,)
    target = torch.from_numpy(displacements[1]).float()
    coefficients = basis.encode(target)
    decoded = basis.displacements(coefficients[None])[0].reshape(40, -1)
    torch.testing.assert_close(decoded, target, atol=1e-6, rtol=1e-3)
    other = coefficients + torch.randn(coefficients.shape, generator=torch.Generator().manual_seed(0)) * 0.1
    direct = ((basis.displacements(other[None]) - basis.displacements(coefficients[None])) ** 2).mean() * 1e6
    torch.testing.assert_close(basis.vertex_mse(other, coefficients, torch.ones(40)), direct, rtol=1e-3, atol=1e-9)
    template = torch.from_numpy(rng.normal(scale=0.05, size=(5023, 3))).float()
    vertices = basis.vertices(other[None], template[None])[0]
    gap = torch.linalg.vector_norm(vertices[:, UPPER_LIP_CENTRE] - vertices[:, LOWER_LIP_CENTRE], dim=-1)
    torch.testing.assert_close(basis.lip_gap(other[None], template[None])[0], gap, rtol=1e-4, atol=1e-7)


def random_basis(model, size: int, seed: int = 0) -> None:
    """A random orthogonal motion basis of a few mm per unit coefficient (what a fit would store)."""
    rng = np.random.default_rng(seed)
    directions, _ = np.linalg.qr(rng.normal(size=(15069, size)))
    components = (directions.T * 0.02).astype(np.float32)
    model.motion_basis.set(np.zeros(15069, np.float32), components, np.full(size, 1.0 / size))


@pytest.mark.parametrize("overrides", [{}, {"family": "kmtalk"},
                                       {"family": "kmtalk", "kmtalk": {"backbone": "faceformer", "key_frames": "uniform",
                                                                       "audio_guidance": False}}])
def test_export_parity_and_backend_run(tmp_path, overrides):
    """Random (non-zero) weights and basis, so the parity check compares real motion, not the template."""
    config = generator_preset("tiny", **overrides)
    torch.manual_seed(1)
    model = build_generator(config, 2)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.05)
    random_basis(model, config.basis_size)
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
    assert generator.info.input == "speech_features"
    vertices = generator.animate(audio, 16000, template, style="B")
    with torch.no_grad():
        expected = model.eval().animate(torch.from_numpy(speech_features(audio))[None],
                                        torch.from_numpy(template)[None], torch.tensor([[0.0, 1.0]]))[0].numpy()
    assert vertices.shape == (frame_count(audio.size), 5023, 3)
    assert np.max(np.abs(vertices - expected)) <= 1e-4
    assert np.max(np.abs(vertices - template)) > 1e-4   # the motion is not trivially the template


def test_training_clips_carry_an_augmentation_pool_that_is_cached_and_time_scaled(ci_corpus, tmp_path):
    from training.generators.clips import ClipLoader, training_styles
    config = generator_preset("tiny", variants=3)
    styles = training_styles(ci_corpus)
    loader = ClipLoader(ci_corpus, "val", styles, config, cache=tmp_path / "cache")   # the smallest split
    model = build_generator(config, len(styles))
    model.set_statistics(loader.fit_statistics())
    clips = loader.clips(model.motion_basis)
    clean = {clip.clip_id: clip for clip in clips if "@" not in clip.clip_id}
    copies = [clip for clip in clips if "@" in clip.clip_id]
    assert len(clean) == len(loader.ids) and len(copies) > len(loader.ids) // 2
    for clip in clips:
        assert clip.features.shape == (1, clip.frames, FEATURE_DIM) and len(clip.lip_gap) == len(clip.weights) == clip.frames
    assert any(clip.frames != clean[clip.clip_id.split("@")[0]].frames for clip in copies)   # tempo copies
    assert all(float(clip.weights.max()) == config.bilabial_weight for clip in clean.values() if clip.timeline
               and any(label in ("P", "B", "M") for _, _, label in clip.timeline))
    again = ClipLoader(ci_corpus, "val", styles, config, cache=tmp_path / "cache")
    assert [clip.frames for clip in again.clips(model.motion_basis)] == [clip.frames for clip in clips]
    assert again.cache.misses == 0   # a second run (another family) neither augments nor runs the front end


def test_float16_storage_halves_the_weights_keeps_code_choices_float32_and_stays_close(tmp_path):
    """A graph with a code choice (ArgMin over a MatMul) beside a plain MatMul: only the plain weight becomes
    float16 (the choice's inputs and the small bias stay float32), the file shrinks and the output barely moves."""
    rng = np.random.default_rng(0)
    plain, choice = rng.normal(size=(64, 64)).astype(np.float32), rng.normal(size=(64, 32)).astype(np.float32)
    bias = rng.normal(size=64).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "plain"], ["h"]), helper.make_node("Add", ["h", "bias"], ["y"]),
             helper.make_node("MatMul", ["x", "choice"], ["scores"]),
             helper.make_node("ArgMin", ["scores"], ["code"], axis=-1, keepdims=0)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 64]),
                               helper.make_tensor_value_info("code", TensorProto.INT64, [5])],
                              [numpy_helper.from_array(plain, "plain"), numpy_helper.from_array(choice, "choice"),
                               numpy_helper.from_array(bias, "bias")])
    path = tmp_path / "graph.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    x = rng.normal(size=(5, 64)).astype(np.float32)
    before, size = open_session(path).run(None, {"x": x}), path.stat().st_size
    store_weights_float16(path)
    stored = {weight.name: weight.data_type for weight in onnx.load(str(path)).graph.initializer}
    assert stored == {"plain.float16": TensorProto.FLOAT16, "choice": TensorProto.FLOAT, "bias": TensorProto.FLOAT}
    after = open_session(path).run(None, {"x": x})
    assert path.stat().st_size < 0.8 * size
    assert np.array_equal(after[1], before[1])
    assert 0 < np.max(np.abs(after[0] - before[0])) <= 1e-3 * np.max(np.abs(before[0]))


def test_shipped_generators_store_float16_weights_within_the_export_tolerance():
    """Every shipped graph holds its large weights as float16 (scripts/store_generators_float16.py or the export)
    and records how far that moved it from the float32 graph."""
    folders = sorted(path.parent for path in default_models_dir("generators").glob("*/generator.onnx"))
    assert folders
    for folder in folders:
        kinds = {weight.data_type for weight in onnx.load(str(folder / "generator.onnx")).graph.initializer}
        assert TensorProto.FLOAT16 in kinds, folder.name
        recorded = json.loads((folder / "model.json").read_text(encoding="utf-8"))["float16_weights_max_abs_m"]
        assert 0 < recorded <= PARITY_TOLERANCE, folder.name
