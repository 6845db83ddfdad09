"""Speech-mesh representation: config, network shapes, InfoNCE maths, sync loss, perceptual loss,
the fit loop and checkpoints. Random tensors only (fast)."""

import math

import numpy as np
import pytest
import torch

from backend.errors import AudioError, BackendError, MeshError, ModelError
from training.checkpoints import load_checkpoint, save_checkpoint
from training.representation.config import Config, StageConfig, preset
from training.representation.losses import PerceptualLoss, info_nce, speech_features, sync_loss
from training.representation.model import (AudioVisualPretrainer, FrontendSpeechEncoder, MeshEncoder, SpeechEncoder,
                                           SyncNetFrontendSpeechEncoder, SyncNetMeshEncoder, SyncNetSpeechEncoder,
                                           VideoEncoder, random_keep)
from training.representation.train import fit

pytestmark = pytest.mark.training

TINY = preset("tiny").model




def test_presets_hold_the_published_full_size_and_round_trip_through_dicts():
    full = preset("full")
    assert (full.model.width, full.model.heads, full.model.blocks, full.temperature) == (512, 8, 10, 0.07)
    for name in ("tiny", "small", "full"):
        assert Config.from_dict(preset(name).to_dict()) == preset(name)
    assert preset("tiny", seed=3).seed == 3


def test_shipped_presets_draw_same_clip_negatives_3_to_15_frames_off_and_other_clips():
    """Other-clip negatives alone taught the first release clip identity instead of timing (models/speech_mesh)."""
    for name in ("small", "full"):
        config = preset(name)
        assert config.offset_spacing == 3 and (config.windows_per_clip - 1) * config.offset_spacing >= 15
        for stage in (config.stage1, config.stage2):
            assert stage.batch_size // config.windows_per_clip >= 2   # other clips in every batch too


def test_unknown_preset_is_refused_with_the_known_names():
    with pytest.raises(BackendError, match="unknown preset 'huge'; expected one of tiny, small, full"):
        preset("huge")


def test_encoders_map_windows_to_unit_embeddings_of_one_width():
    torch.manual_seed(0)
    fbank, video, vertices = torch.randn(3, 20, 128), torch.rand(3, 5, 16, 16), torch.randn(3, 5, 15069)
    frontend = torch.randn(3, 5, 447)
    for module, batch in ((SpeechEncoder(TINY), fbank), (VideoEncoder(TINY), video), (MeshEncoder(TINY), vertices),
                          (SyncNetSpeechEncoder(TINY), fbank), (SyncNetMeshEncoder(TINY).eval(), vertices),
                          (FrontendSpeechEncoder(TINY), frontend), (SyncNetFrontendSpeechEncoder(TINY).eval(), frontend)):
        embedding = module(batch)
        assert embedding.shape == (3, TINY.width)
        assert torch.allclose(embedding.norm(dim=1), torch.ones(3), atol=1e-5)


def test_centred_mesh_encoders_see_motion_only_not_the_face_shape():
    torch.manual_seed(0)
    vertices = torch.randn(4, 5, 15069)                 # standardised units (the standardisers are identities here)
    identity = torch.randn(1, 1, 15069) * 2             # another face shape, the same motion
    for module in (MeshEncoder(TINY).eval(), SyncNetMeshEncoder(TINY).eval()):
        assert torch.allclose(module(vertices), module(vertices + identity), atol=1e-4)
        assert not torch.allclose(module(vertices), module(torch.randn(4, 5, 15069)), atol=1e-2)   # motion counts
    absolute = MeshEncoder(preset("tiny", model={"mesh_centring": False}).model).eval()
    assert not torch.allclose(absolute(vertices), absolute(vertices + identity), atol=1e-3)


def test_a_mesh_encoder_reading_few_values_reads_those_that_move_in_training():
    torch.manual_seed(0)
    frames = torch.zeros(200, 15069)
    frames[:, 100:130] = torch.randn(200, 30) * 0.001        # only these move
    encoder = MeshEncoder(preset("tiny", model={"mesh_values": 30}).model).eval()
    encoder.values.fit(frames)
    assert encoder.values.index.tolist() == list(range(100, 130)) and encoder.tokenizer.in_features == 30
    windows = torch.randn(3, 5, 15069) * 0.001
    unread = windows.clone()
    unread[..., 5000:6000] += 0.01
    assert torch.allclose(encoder(windows), encoder(unread)) and not torch.allclose(encoder(windows), encoder(-windows))


def test_speech_encoder_has_160_tokens_from_1x16_patches():
    tokens = SpeechEncoder(TINY).tokens(torch.randn(2, 20, 128))
    assert tokens.shape == (2, 160, TINY.width)


@pytest.mark.parametrize("speech_input, shape", [("frontend", (5, 447)), ("fbank", (20, 128))])
def test_pretrainer_returns_embeddings_and_a_reconstruction_loss_that_trains_everything(speech_input, shape):
    torch.manual_seed(0)
    model = AudioVisualPretrainer(preset("tiny", model={"speech_input": speech_input}).model)
    speech, video, reconstruction = model(torch.randn(4, *shape), torch.rand(4, 5, 16, 16), mask_ratio=0.75)
    assert speech.shape == video.shape == (4, TINY.width) and reconstruction.ndim == 0
    (reconstruction + info_nce(speech, video)).backward()
    untouched = [name for name, parameter in model.named_parameters() if parameter.grad is None]
    assert untouched == []


def test_video_patches_follow_the_conv3d_token_order():
    model = AudioVisualPretrainer(TINY)
    video = torch.arange(5 * 16 * 16, dtype=torch.float32).reshape(1, 5, 16, 16)
    patches = model.video_patches(video)  # (1, 5 * 2 * 2, 64), frame-major then row then column
    assert patches.shape == (1, 20, 64)
    assert torch.equal(patches[0, 3] + 0.5, video[0, 0, 8:16, 8:16].flatten())
    assert torch.equal(patches[0, 4] + 0.5, video[0, 1, 0:8, 0:8].flatten())


def test_random_keep_splits_every_row_into_disjoint_kept_and_masked_tokens():
    torch.manual_seed(0)
    kept, masked = random_keep(3, 10, 4)
    for row in range(3):
        assert sorted(kept[row].tolist() + masked[row].tolist()) == list(range(10))
        assert kept[row].tolist() == sorted(kept[row].tolist())


def test_info_nce_matches_a_hand_computed_case():
    first = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    second = torch.tensor([[0.6, 0.8], [0.0, 2.0]])  # row 2 normalises to (0, 1)
    # logits = first @ unit(second).T = [[0.6, 0], [0.8, 1]] at temperature 1
    rows = (-0.6 + math.log(math.exp(0.6) + math.exp(0.0)) - 1.0 + math.log(math.exp(0.8) + math.exp(1.0))) / 2
    columns = (-0.6 + math.log(math.exp(0.6) + math.exp(0.8)) - 1.0 + math.log(math.exp(0.0) + math.exp(1.0))) / 2
    assert info_nce(first, second, temperature=1.0).item() == pytest.approx((rows + columns) / 2, abs=1e-6)
    # identity pairs at the published temperature: every row and column is log(1 + exp(-1 / 0.07))
    identity = torch.eye(2)
    assert info_nce(identity, identity).item() == pytest.approx(math.log1p(math.exp(-1 / 0.07)), abs=1e-7)


def test_info_nce_is_symmetric_and_lowest_for_matched_pairs():
    torch.manual_seed(0)
    first, second = torch.randn(8, 16), torch.randn(8, 16)
    assert info_nce(first, second).item() == pytest.approx(info_nce(second, first).item(), rel=1e-6)
    assert info_nce(first, first).item() < info_nce(first, second).item()


def test_info_nce_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"info_nce needs two \(B, D\) tensors of one shape; got \(2, 3\) and \(3, 3\)"):
        info_nce(torch.zeros(2, 3), torch.zeros(3, 3))


def test_sync_loss_is_small_for_aligned_unit_pairs_and_large_for_opposed_ones():
    basis = torch.eye(4)
    # matched cos 1 -> p 1 (loss 0); mismatched cos 0 -> p 1/2 (loss ln 2); the mean over 2B terms
    assert sync_loss(basis, basis).item() == pytest.approx(math.log(2) / 2, abs=1e-4)
    assert sync_loss(basis, -basis).item() > 5


def perceptual_loss(weight=1.0, batch_windows=80):
    torch.manual_seed(0)
    mesh = MeshEncoder(TINY)
    mesh.values.standardise.std.fill_(0.01)
    return PerceptualLoss(SpeechEncoder(TINY), mesh, weight=weight, batch_windows=batch_windows)


def test_perceptual_loss_sends_gradients_to_the_generator_only():
    loss_module = perceptual_loss()
    generator = torch.nn.Linear(8, 15069)
    vertices = generator(torch.randn(30, 8)).reshape(30, 5023, 3)
    target = loss_module.speech_target(np.random.default_rng(0).normal(size=(26, 20, 128)))
    loss = loss_module(vertices, target)
    loss.backward()
    assert generator.weight.grad is not None and torch.isfinite(generator.weight.grad).all()
    assert all(parameter.grad is None and not parameter.requires_grad for parameter in loss_module.parameters())
    loss_module.train()
    assert not loss_module.mesh_encoder.training and not loss_module.speech_encoder.training


def test_perceptual_loss_batches_consecutive_windows_and_scales_by_weight():
    loss_module = perceptual_loss(batch_windows=10)
    vertices = torch.randn(29, 15069) * 0.01  # 25 windows -> batches of 10, 10, 5
    target = loss_module.speech_target(torch.randn(25, 20, 128))
    expected = torch.stack([info_nce(loss_module.mesh_encoder(vertices.unfold(0, 5, 1).transpose(1, 2)[begin:end]),
                                     target[begin:end]) for begin, end in ((0, 10), (10, 20), (20, 25))]).mean()
    assert loss_module(vertices, target).item() == pytest.approx(expected.item(), rel=1e-5)
    scaled = PerceptualLoss(loss_module.speech_encoder, loss_module.mesh_encoder, weight=1e-7, batch_windows=10)
    assert scaled(vertices, target).item() == pytest.approx(1e-7 * expected.item(), rel=1e-5)


def test_perceptual_loss_rejects_bad_inputs_with_clear_messages():
    loss_module = perceptual_loss()
    target = torch.zeros(26, TINY.width)
    with pytest.raises(MeshError, match=r"expected generated vertices of shape \(T, 5023, 3\) or \(T, 15069\); got \(30, 100\)"):
        loss_module(torch.zeros(30, 100), target)
    with pytest.raises(ModelError, match=r"30 frames give 26 windows, but the speech target has shape \(20, 32\)"):
        loss_module(torch.zeros(30, 15069), target[:20])
    with pytest.raises(MeshError, match="the perceptual loss needs at least 6 frames; got 5"):
        loss_module(torch.zeros(5, 15069), target[:1])
    with pytest.raises(AudioError, match=r"expected fbank speech windows of shape \(N, 20, 128\) .*; got \(4, 20, 64\)"):
        loss_module.speech_target(torch.zeros(4, 20, 64))
    with pytest.raises(ModelError, match="batch_windows must be at least 2 .InfoNCE needs negatives.; got 1"):
        PerceptualLoss(SpeechEncoder(TINY), MeshEncoder(TINY), batch_windows=1)


def test_speech_features_give_one_window_per_start_frame_of_the_kind_asked():
    samples = np.random.default_rng(0).normal(scale=0.1, size=16000).astype(np.float32)  # 1 s
    assert speech_features(samples, 16000, 30, "fbank").shape == (26, 20, 128)
    rows = speech_features(samples, 16000, 30)    # the front end's rows, window i = rows i..i+4
    assert rows.shape == (26, 5, 447) and np.array_equal(rows[1, :4], rows[0, 1:])
    with pytest.raises(MeshError, match="needs at least 5 frames for the perceptual loss; got 4"):
        speech_features(samples, 16000, 4)
    with pytest.raises(AudioError, match=r"expected non-empty mono audio of shape \(S,\); got shape \(2, 8000\)"):
        speech_features(samples.reshape(2, -1), 16000, 30)


def test_fit_is_reproducible_and_lowers_a_simple_loss():
    stage = StageConfig(steps=100, batch_size=8, learning_rate=0.05, warmup_steps=2, weight_decay=0.0, grad_clip=100.0,
                        log_every=100)

    def run():
        torch.manual_seed(123)
        model = torch.nn.Linear(4, 1)
        target = torch.tensor([[1.0, -2.0, 0.5, 3.0]])

        def batch_loss(rng):
            inputs = torch.from_numpy(rng.normal(size=(8, 4)).astype(np.float32))
            return ((model(inputs) - inputs @ target.T) ** 2).mean()
        return fit(model, batch_loss, stage, seed=5, log=lambda message: None)

    first, second = run(), run()
    assert first == second
    assert np.mean(first[-5:]) < 0.1 * np.mean(first[:5])


def test_checkpoints_are_written_atomically_and_loaded_weights_only(tmp_path):
    path = save_checkpoint(tmp_path / "sub" / "model.pt", {"weights": torch.arange(3), "meta": "{}"})
    assert [item.name for item in path.parent.iterdir()] == ["model.pt"]
    assert torch.equal(load_checkpoint(path)["weights"], torch.arange(3))
    with pytest.raises(ModelError, match="missing.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="junk.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
