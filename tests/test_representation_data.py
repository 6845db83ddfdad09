"""Representation data: windows and batches, the LRS3-like video reader, mouth-video rendering, the
property measures on constructed embeddings, and a tiny end-to-end run on the ci corpus."""

import json

import numpy as np
import pytest
import soundfile
import torch

from backend.errors import BackendError, MetricError
from training.representation import properties
from training.representation.clips import PairedClip, gather_batch, sample_windows, speech_rate
from training.representation.train import load_representation
from training.representation.video import read_video_clips, render_mouth_video




pytestmark = pytest.mark.training


def video_clip(frames=40, size=8, clip_id="c"):
    rng = np.random.default_rng(len(clip_id))
    speech = rng.normal(scale=0.1, size=frames * 640).astype(np.float32)
    return PairedClip(clip_id, speech, rng.integers(0, 255, (frames, size, size), dtype=np.uint8), 30.0)


def test_speech_rate_puts_640_samples_in_a_frame():
    assert speech_rate(30) == 19200 and speech_rate(25) == 16000


def test_sampled_batches_hold_distinct_offsets_of_each_clip_paired_exactly():
    clips = [video_clip(40, clip_id="a"), video_clip(12, clip_id="bb")]  # 36 and 8 windows
    groups = sample_windows(clips, batch_size=16, windows_per_clip=8, rng=np.random.default_rng(0))
    assert len(groups) == 2
    for index, starts in groups:
        assert len(np.unique(starts)) == 8 and starts.max() < clips[index].window_count
    fbank, frames = gather_batch(clips, groups)
    assert fbank.shape == (16, 20, 128) and frames.shape == (16, 5, 8, 8)
    index, starts = groups[0]
    assert torch.equal(frames[0], torch.from_numpy(clips[index].frames[starts[0]:starts[0] + 5] / np.float32(255)))
    expected = clips[index].speech_features(starts[:1])
    assert np.allclose(fbank[0].numpy(), expected[0])


def test_sampling_refuses_clips_too_short_for_a_group():
    with pytest.raises(BackendError, match=r"no clip has 8 windows \(12 frames\); the longest has 3 windows"):
        sample_windows([video_clip(7)], 16, 8, np.random.default_rng(0))


def write_speaker(root, frames, rate=16000, seconds=None, as_png=False):
    speaker = root / "spk1"
    speaker.mkdir(parents=True, exist_ok=True)
    seconds = len(frames) / 25 if seconds is None else seconds
    soundfile.write(speaker / "clip1.wav", np.zeros(int(seconds * rate), dtype=np.float32) + 0.01, rate)
    if as_png:
        from matplotlib.image import imsave
        (speaker / "clip1").mkdir()
        for number, frame in enumerate(frames):
            imsave(speaker / "clip1" / f"{number:04d}.png", np.repeat(frame[..., None], 3, axis=2).astype(np.uint8))
    else:
        np.save(speaker / "clip1.npy", frames)


def test_video_reader_loads_arrays_and_png_folders_resized_and_grey(tmp_path):
    frames = np.zeros((20, 24, 24), dtype=np.uint8)
    frames[:, 12:] = 200
    write_speaker(tmp_path / "npy", frames)
    write_speaker(tmp_path / "png", frames, as_png=True)
    for layout in ("npy", "png"):
        (clip,) = read_video_clips(tmp_path / layout, size=8)
        assert clip.frames.shape == (20, 8, 8) and clip.frames.dtype == np.uint8
        assert clip.fps == 25.0 and len(clip.speech) == 20 * 640  # 0.8 s at 16 kHz
        assert clip.frames[0, 0, 0] < 10 and clip.frames[0, 7, 0] > 190
    (tmp_path / "npy" / "video.json").write_text(json.dumps({"fps": 20}))
    assert read_video_clips(tmp_path / "npy", size=8)[0].fps == 20.0


def test_video_reader_errors_name_what_was_found(tmp_path):
    with pytest.raises(BackendError, match="video folder not found"):
        read_video_clips(tmp_path / "absent", 8)
    with pytest.raises(BackendError, match="no <speaker>/<clip>.wav with mouth frames found"):
        read_video_clips(tmp_path, 8)
    write_speaker(tmp_path / "a", np.zeros((20, 8, 8), dtype=np.uint8), seconds=3.0)
    with pytest.raises(BackendError, match=r"audio lasts 3.00 s but its 20 frames at 25 fps last 0.80 s"):
        read_video_clips(tmp_path / "a", 8)
    write_speaker(tmp_path / "b", np.zeros((20, 8), dtype=np.uint8))
    with pytest.raises(BackendError, match=r"mouth frames have shape \(20, 8\); expected \(T >= 5, H, W\)"):
        read_video_clips(tmp_path / "b", 8)
    (tmp_path / "c" / "s").mkdir(parents=True)
    soundfile.write(tmp_path / "c" / "s" / "x.wav", np.zeros(1600, dtype=np.float32), 16000)
    with pytest.raises(BackendError, match="x.wav has no mouth frames: expected x.npy or a folder x/"):
        read_video_clips(tmp_path / "c", 8)
    write_speaker(tmp_path / "d", np.zeros((20, 8, 8), dtype=np.uint8))
    (tmp_path / "d" / "video.json").write_text(json.dumps({"fps": -1}))
    with pytest.raises(BackendError, match=r"'fps' is -1; expected a positive number"):
        read_video_clips(tmp_path / "d", 8)


def test_mouth_video_shows_the_lips_opening(flame_ply):
    from backend.flame import LOWER_LIP_CENTRE
    from backend.mesh import load_flame_mesh
    mesh = load_flame_mesh(flame_ply)
    opened = mesh.vertices.copy()
    lower = mesh.vertices[:, 1] < mesh.vertices[LOWER_LIP_CENTRE, 1] + 0.001
    opened[lower, 1] -= 0.008  # drop everything below the lower lip by 8 mm
    video = render_mouth_video(np.stack([mesh.vertices, opened]), mesh.faces, mesh.vertices, size=32)
    assert video.shape == (2, 32, 32) and video.dtype == np.uint8
    difference = np.abs(video[1].astype(int) - video[0].astype(int))
    assert difference[:8].max() == 0             # above the lips (top quarter of the 6 cm crop) nothing moved
    assert difference[16:].mean() > 5            # the lowered lip and chin change the lower half


def embeddings_with_a_peak(frames=40, dim=16, seed=0):
    """Speech and mesh embeddings where window s matches window s best (a synthetic case)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(frames, dim))
    smooth = base + np.roll(base, 1, axis=0)
    unit = properties._unit
    return unit(smooth + 0.1 * rng.normal(size=smooth.shape)), unit(smooth)


def test_offset_curve_peaks_where_the_windows_match():
    speech, mesh = embeddings_with_a_peak()
    curve = properties.offset_curve([(speech, mesh)])
    assert curve.shape == (21,) and properties.OFFSETS[curve.argmax()] == 0
    shifted = properties.offset_curve([(speech[3:], mesh[:-3])])  # speech leads by 3 windows
    assert properties.OFFSETS[shifted.argmax()] == -3


def test_nearest_centroid_accuracy_leaves_each_group_out():
    references = np.array([[1.0, 0], [1, 0.1], [0, 1], [0.1, 1]])
    labels = np.array(["a", "a", "b", "b"])
    assert properties.nearest_centroid_accuracy(references, references, labels, np.array([0, 1, 0, 1])) == 1.0
    # group 0 holds every "a": its rows cannot see an "a" centroid and are labelled "b"
    assert properties.nearest_centroid_accuracy(references, references, labels, np.array([0, 0, 1, 1])) == 0.0


def test_window_phones_label_each_window_by_its_centre():
    clip = video_clip(10)
    clip.timeline = [(0.0, 0.1, "AA"), (0.1, 1.0, "M")]
    # window centres at (s + 2.5) / 30 s: 0.083, 0.117, ...
    assert list(properties.window_phones(clip)) == ["AA", "M", "M", "M", "M", "M"]


def test_intensity_direction_counts_monotonic_sentences_and_needs_levels():
    clips, embeddings = [], []
    for sentence in ("s1", "s2", "s3"):
        for level in (1, 2, 3):
            clip = video_clip(10, clip_id=f"{sentence}{level}")
            clip.subject, clip.sentence, clip.level = "A", sentence, level
            feature = np.array([level, 1.0 + (sentence == "s3") * 0.5 * (level == 2) * 10])
            clips.append(clip)
            embeddings.append((np.tile(feature, (6, 1)), np.tile(feature, (6, 1))))
    result = properties.intensity_direction(clips, embeddings, 0)
    assert result["groups"] == 3 and result["monotonic_fraction"] == pytest.approx(1.0)
    with pytest.raises(MetricError, match="needs .subject, sentence. groups with levels 1, 2 and 3"):
        properties.intensity_direction(clips[:2], embeddings[:2], 0)




def test_tiny_two_stage_run_trains_exports_and_measures(ci_corpus, tmp_path, flame_ply):
    from training.representation.config import preset
    from training.representation.export import export_representation
    from training.representation.train import represent
    short = {"steps": 3, "batch_size": 16, "learning_rate": 1e-3, "warmup_steps": 1}
    config = preset("tiny", stage1=short, stage2=short)
    messages = []
    path = represent(config, ci_corpus, tmp_path, "two-stage", template_path=flame_ply, log=messages.append)
    representation = load_representation(path)
    for stage in ("stage1", "stage2"):  # every stage checkpoints and logs on disk (training.loop)
        folder = tmp_path / "runs" / "two-stage" / stage
        assert {file.name for file in folder.iterdir()} == {"checkpoint.pt", "loss.csv", "loss.png", "config.json"}
    with pytest.raises(BackendError, match="stage1/checkpoint.pt exists; pass --resume"):
        represent(config, ci_corpus, tmp_path, "two-stage", template_path=flame_ply, log=messages.append)
    again = load_representation(represent(config, ci_corpus, tmp_path, "two-stage", template_path=flame_ply,
                                          log=messages.append, resume=True))  # finished stages: loaded, not rerun
    for name, tensor in representation.mesh_encoder.state_dict().items():
        assert torch.equal(again.mesh_encoder.state_dict()[name], tensor), name
    assert representation.meta["stage1_video"].startswith("mouth video rendered from the SYNTHETIC corpus")
    assert representation.meta["corpus"]["synthetic"] is True and representation.config == config
    assert any(message.startswith("stage 2 step 3/3") for message in messages)
    assert len(list((tmp_path / "mouth_video").glob("*_16.npy"))) == representation.meta["corpus"]["train_clips"]
    files = export_representation(path, tmp_path / "onnx")
    assert [file.name for file in files] == ["speech_encoder.onnx", "mesh_encoder.onnx", "representation.json"]
    report = properties.measure_and_plot([path], tmp_path / "properties", ci_corpus, split="val")
    result = report["variants"]["two-stage"]
    assert len(result["offset_curve"]) == 21 and 0 <= result["phonemes"]["speech_accuracy"] <= 1
    assert set(result["plrs"]) == {"ground_truth", "shuffled", "margin_shuffled", "margin_shift_3"} | {
        f"shift_{shift:+d}" for shift in properties.PLRS_SHIFTS}
    assert {file.name for file in (tmp_path / "properties").glob("*.png")} == {
        "offset_curve.png", "phonemes_two-stage.png", "intensity_two-stage.png"}
    assert "| margin true − shuffled (target ≥ 0.2) |" in (tmp_path / "properties" / "properties.md").read_text()


def test_represent_refuses_unknown_variants(tmp_path):
    from training.representation.config import preset
    from training.representation.train import represent
    with pytest.raises(BackendError, match="unknown variant 'other'; expected one of two-stage, no-2d-prior, syncnet"):
        represent(preset("tiny"), tmp_path, tmp_path, "other")


def test_identity_mix_moves_the_face_towards_another_template_and_keeps_the_motion():
    from training.representation.clips import mix_identities
    first, second = video_clip(12, clip_id="a"), video_clip(12, clip_id="b")
    for clip, offset in ((first, 0.0), (second, 1.0)):
        clip.template = np.full((5023, 3), offset, dtype=np.float32)
        clip.frames = clip.template.reshape(1, -1) + np.random.default_rng(0).normal(size=(12, 15069)).astype(np.float32)
    clips = [first, second]
    groups = [(0, np.array([0, 3])), (1, np.array([2, 5]))]
    windows = torch.from_numpy(np.concatenate([clips[index].frame_windows(starts) for index, starts in groups]))
    mixed = mix_identities(clips, groups, windows, np.random.default_rng(1))
    shift = (mixed - windows).numpy()
    assert np.allclose(shift, shift[:, :1, :1])               # one constant shift per window (motion kept)
    assert np.all((-1 - 1e-6 <= shift) & (shift <= 1 + 1e-6))  # at most the whole template difference
    assert np.allclose(shift[0], shift[1]) and np.allclose(shift[2], shift[3])  # one draw per group


def test_kill_mid_stage_then_resume_matches_an_uninterrupted_run(ci_corpus, tmp_path):
    """The representation's stages run on the generators' loop: kill -9 part-way, --resume, same weights and log."""
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from training.__main__ import main as training_main
    from training.checkpoints import load_checkpoint
    from training.loop import read_log
    from training.representation.config import preset
    from training.representation.train import represent

    repo = Path(__file__).resolve().parents[1]
    stage2 = {"steps": 60, "log_every": 1, "checkpoint_every": 5}
    settings = [item for key, value in stage2.items() for item in ("--set", f"stage2.{key}={value}")]
    reference = represent(preset("tiny", stage2=stage2), ci_corpus, tmp_path / "reference", "no-2d-prior",
                          log=lambda message: None)
    out = tmp_path / "killed"
    run = out / "runs" / "no-2d-prior" / "joint"
    arguments = ["represent", "--preset", "tiny", "--variant", "no-2d-prior", *settings, "--corpus", str(ci_corpus),
                 "--out", str(out)]
    process = subprocess.Popen([sys.executable, "-m", "training", "--threads", "1", *arguments], cwd=repo,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = read_log(run / "loss.csv")
            if rows and int(rows[-1]["step"]) >= 12:
                break
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    interrupted_at = load_checkpoint(run / "checkpoint.pt")["step"]
    assert 10 <= interrupted_at < 60 and not (out / "no-2d-prior.pt").exists(), "the run must be killed part-way"
    assert training_main([*arguments, "--resume"]) == 0
    resumed, expected = load_checkpoint(out / "no-2d-prior.pt"), load_checkpoint(reference)
    for encoder in ("speech_encoder", "mesh_encoder"):
        for name, tensor in expected[encoder].items():
            assert torch.equal(resumed[encoder][name], tensor), f"{encoder}.{name}"

    def without_times(rows):
        return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]

    assert without_times(read_log(run / "loss.csv")) == without_times(
        read_log(tmp_path / "reference" / "runs" / "no-2d-prior" / "joint" / "loss.csv"))
    assert [int(row["step"]) for row in read_log(run / "loss.csv")] == list(range(1, 61))
    assert not list(run.glob(".*.tmp*"))


def test_representation_under_torchrun_two_gloo_processes(ci_corpus, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from training.checkpoints import load_checkpoint
    from training.loop import read_log

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "training", "--threads", "1", "represent",
               "--preset", "tiny", "--variant", "syncnet", "--set", "stage2.steps=3", "--set", "stage2.log_every=1",
               "--corpus", str(ci_corpus), "--out", str(out)]
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    run = out / "runs" / "syncnet" / "joint"
    assert load_checkpoint(run / "checkpoint.pt")["world_size"] == 2
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert [int(row["step"]) for row in read_log(run / "loss.csv")] == [1, 2, 3]
    assert load_representation(out / "syncnet.pt").meta["variant"] == "syncnet"
