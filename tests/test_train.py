"""The generator training system end to end on a SYNTHETIC ci corpus: python, torchrun (2 gloo
processes), headless Blender, kill-and-resume, evaluation table, and the bad-input messages."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from backend.errors import BackendError, ModelError
from training.__main__ import main as training_main
from training.loop import read_log
from training.generators.config import generator_preset
from training.generators.evaluate import parse_model_arguments
from training.generators.families import load_generator_checkpoint
from training.generators.train import train

pytestmark = pytest.mark.training

REPO = Path(__file__).resolve().parents[1]
TINY = ["--preset", "tiny", "--set", "steps=6", "--set", "log_every=1", "--set", "checkpoint_every=3"]






@pytest.fixture(scope="session")
def trained(tmp_path_factory, ci_corpus):
    """A tiny FaceFormer-style and a tiny KMTalk-style run (6 steps each)."""
    runs = {}
    for family in ("faceformer", "kmtalk"):
        out = tmp_path_factory.mktemp(family)
        assert training_main(["train", *TINY, "--family", family, "--corpus", str(ci_corpus), "--out", str(out)]) == 0
        runs[family] = out
    return runs


def training_command(*args) -> list:
    return [sys.executable, "-m", "training", "--threads", "1", "train", *args]


@pytest.mark.parametrize("family", ["faceformer", "kmtalk"])
def test_tiny_run_writes_checkpoint_log_and_plot(trained, family):
    out = trained[family]
    checkpoint = load_generator_checkpoint(out / "checkpoint.pt")
    assert checkpoint["step"] == 6 and json.loads(checkpoint["config"])["family"] == family
    rows = read_log(out / "loss.csv")
    assert [int(row["step"]) for row in rows] == [1, 2, 3, 4, 5, 6]
    assert all(float(row["loss"]) > 0 for row in rows)
    if family == "kmtalk":
        assert all(row["key_mse"] and row["lip_gap"] for row in rows)
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "config.json").read_text())["styles"] == ["SYN01", "SYN02", "SYN03"]


def test_kill_mid_epoch_then_resume_matches_an_uninterrupted_run(ci_corpus, tmp_path):
    settings = {"steps": 30, "log_every": 1, "checkpoint_every": 5}
    reference = train(generator_preset("tiny", **settings), ci_corpus, tmp_path / "reference")
    out = tmp_path / "killed"
    overrides = [item for key, value in settings.items() for item in ("--set", f"{key}={value}")]
    command = training_command("--preset", "tiny", *overrides, "--corpus", str(ci_corpus), "--out", str(out))
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = read_log(out / "loss.csv")
            if rows and int(rows[-1]["step"]) >= 12:
                break
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    interrupted_at = load_generator_checkpoint(out / "checkpoint.pt")["step"]
    assert 10 <= interrupted_at < 30, "the run must be killed part-way (mid-epoch: 18 steps per epoch)"
    assert training_main(["train", "--preset", "tiny", *overrides, "--corpus", str(ci_corpus), "--out", str(out),
                          "--resume"]) == 0
    resumed, expected = load_generator_checkpoint(out / "checkpoint.pt"), load_generator_checkpoint(reference)
    assert resumed["step"] == 30
    for name, tensor in expected["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name
    def without_times(rows):
        return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]

    assert without_times(read_log(out / "loss.csv")) == without_times(read_log(reference.parent / "loss.csv"))
    assert [int(row["step"]) for row in read_log(out / "loss.csv")] == list(range(1, 31))
    assert not list(out.glob(".*.tmp*"))


def test_torchrun_two_gloo_processes(ci_corpus, tmp_path):
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "training", "--threads", "1", "train",
               *TINY, "--corpus", str(ci_corpus), "--out", str(out)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    checkpoint = load_generator_checkpoint(out / "checkpoint.pt")
    assert checkpoint["step"] == 6 and checkpoint["world_size"] == 2
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
    assert [int(row["step"]) for row in read_log(out / "loss.csv")] == [1, 2, 3, 4, 5, 6]


# ~18 s on a lightly loaded 2-core machine (two Blender starts + torch import); Debian's blender installs in ~1 min
@pytest.mark.blender
@pytest.mark.skipif(shutil.which("blender") is None, reason="Debian blender not installed (.ci/apt-packages.txt)")
def test_headless_blender_runs_the_same_command(ci_corpus, tmp_path):
    out = tmp_path / "blender"
    base = ["blender", "-b", "--factory-startup", "--python-exit-code", "1", "-P", str(REPO / "training" / "blender_run.py"),
            "--"]
    result = subprocess.run([*base, "train", *TINY, "--corpus", str(ci_corpus), "--out", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert load_generator_checkpoint(out / "checkpoint.pt")["step"] == 6
    assert "unregister()" not in result.stdout + result.stderr and "Traceback" not in result.stdout + result.stderr
    failed = subprocess.run([*base, "train", "--preset", "nope", "--corpus", str(ci_corpus), "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 2
    assert "unknown generator preset 'nope'; expected one of tiny, small, full" in failed.stderr


def test_evaluate_writes_the_paper_table(trained, ci_corpus, flame_masks, flame_ply, tmp_path, capsys, monkeypatch):
    out = tmp_path / "evaluation"
    exported = tmp_path / "exported"
    assert training_main(["export-generator", "--checkpoint", str(trained["kmtalk"] / "checkpoint.pt"),
                          "--out", str(exported)]) == 0
    monkeypatch.setenv("FLAME_TEMPLATE", str(flame_ply))
    code = training_main(["evaluate", "--model", f"FaceFormer={trained['faceformer'] / 'checkpoint.pt'}",
                          "--model", f"KMTalk onnx={exported}", "--corpus", str(ci_corpus), "--out", str(out),
                          "--masks", str(flame_masks), "--encoders", str(tmp_path / "no-encoders")])
    assert code == 2   # an explicit encoder folder without the encoders is an error, not a silent n/a
    assert "missing speech_encoder.onnx, mesh_encoder.onnx" in capsys.readouterr().err
    code = training_main(["evaluate", "--model", f"FaceFormer={trained['faceformer'] / 'checkpoint.pt'}",
                          "--model", f"KMTalk onnx={exported}", "--corpus", str(ci_corpus), "--out", str(out),
                          "--masks", str(flame_masks), "--render", "1"])
    assert code == 0
    (render,) = (out / "renders").glob("*.png")
    assert render.read_bytes()[:4] == b"\x89PNG"
    table = (out / "table.md").read_text()
    assert "| model | MTM (ms) ↓ | LVE (×10⁻⁵ m²) ↓ | PLRS ↑ | SLCC (Δ ↓) | FDD (×10⁻⁷ m²) |" in table
    with open(out / "table.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["model"] for row in rows] == ["ground truth", "FaceFormer", "KMTalk onnx"]
    assert float(rows[0]["LVE_1e-5"]) == 0.0 and float(rows[0]["MTM_ms"]) == 0.0
    assert all(float(row["LVE_1e-5"]) > 0 and row["clips"] == "6" for row in rows[1:])
    assert len(list((out / "predictions" / "KMTalk_onnx").glob("*.npy"))) == 6


@pytest.mark.parametrize("arguments, message", [
    (["--preset", "huge"], "unknown generator preset 'huge'; expected one of tiny, small, full"),
    (["--preset", "tiny", "--family", "wav2lip"], "unknown generator family 'wav2lip'; expected one of "
                                                  "faceformer, kmtalk"),
    (["--preset", "tiny", "--set", "colour=red"], "unknown generator setting(s) colour; known: name, family"),
    (["--preset", "tiny", "--set", "kmtalk.audio_guidance=maybe"], "--set kmtalk.audio_guidance=maybe: expected "
                                                                   "true or false"),
    (["--preset", "tiny", "--set", "steps=many"], "--set steps=many: expected a number"),
    (["--preset", "tiny", "--set", "steps=2.5"], "--set steps=2.5: expected a whole number"),
    (["--preset", "tiny", "--set", "kmtalk.key_frames=random"], "unknown key-frame source 'random'; expected one of "
                                                                "phonemes, uniform"),
    (["--preset", "tiny", "--set", "kmtalk.backbone=lstm"], "unknown key-motion backbone 'lstm'"),
    (["--preset", "tiny", "--set", "kmtalk.colour=red"], "unknown kmtalk setting(s) kmtalk.colour; known: "
                                                         "kmtalk.backbone"),
    (["--preset", "tiny", "--set", "key_frames=uniform"], "unknown generator setting(s) key_frames"),
    (["--preset", "tiny", "--set", "steps"], "--set steps: expected KEY=VALUE"),
    (["--preset", "tiny", "--perceptual-weight", "1e-7"], "perceptual_weight > 0 needs --representation"),
    # issue 16 item 10: settings that used to end in tracebacks, and steps=0 that claimed a checkpoint
    (["--preset", "tiny", "--set", "clips_per_step=0"], "clips_per_step must be at least 1; got 0"),
    (["--preset", "tiny", "--set", "checkpoint_every=0"], "checkpoint_every must be at least 1; got 0"),
    (["--preset", "tiny", "--set", "heads=3"], "width 16 is not divisible by heads 3"),
    (["--preset", "tiny", "--set", "learning_rate=nan"], "learning_rate=nan: expected a finite number"),
    (["--preset", "tiny", "--set", "learning_rate=-1"], "learning_rate and grad_clip must be positive"),
    (["--preset", "tiny", "--set", "steps=0"], "steps must be at least 1; got 0"),
    (["--preset", "tiny", "--set", "seed=-1"], "seed must be at least 0; got -1"),
])
def test_train_bad_arguments(ci_corpus, tmp_path, capsys, arguments, message):
    assert training_main(["train", *arguments, "--corpus", str(ci_corpus), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert message in error and error.count("\n") == 1 and "Traceback" not in error
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("threads", ["0", "-2", "two"])
def test_threads_must_be_a_positive_whole_number(ci_corpus, tmp_path, capsys, threads):
    with pytest.raises(SystemExit) as exit_status:
        training_main(["--threads", threads, "train", "--preset", "tiny", "--corpus", str(ci_corpus),
                       "--out", str(tmp_path / "run")])
    assert exit_status.value.code == 2
    error = capsys.readouterr().err
    assert "argument --threads: expected a whole number >= 1" in error and "Traceback" not in error


def test_seed_and_sections_reach_the_config(trained, ci_corpus, tmp_path):
    out = tmp_path / "seeded"
    assert training_main(["train", *TINY, "--set", "steps=2", "--seed", "7", "--family", "kmtalk", "--set",
                          "kmtalk.key_frames=uniform", "--corpus", str(ci_corpus), "--out", str(out)]) == 0
    config = json.loads(load_generator_checkpoint(out / "checkpoint.pt")["config"])
    assert config["seed"] == 7 and config["kmtalk"]["key_frames"] == "uniform" and config["steps"] == 2
    assert float(read_log(out / "loss.csv")[0]["key_mse"]) > 0   # uniform key frames still train the key motion


def test_existing_run_needs_resume_and_the_same_config(trained, ci_corpus, capsys):
    out = str(trained["faceformer"])
    assert training_main(["train", *TINY, "--corpus", str(ci_corpus), "--out", out]) == 2
    assert "checkpoint.pt exists; pass --resume to continue it or choose another --out" in capsys.readouterr().err
    assert training_main(["train", *TINY, "--set", "width=32", "--corpus", str(ci_corpus), "--out", out, "--resume"]) == 2
    assert "was trained with another configuration; resume it with the same preset and settings" in \
        capsys.readouterr().err


def test_bad_checkpoints(tmp_path):
    with pytest.raises(ModelError, match="checkpoint not found"):
        load_generator_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable checkpoint"):
        load_generator_checkpoint(tmp_path / "corrupt.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(ModelError, match="lacks model, config, styles, step; expected one written by "
                                         "`python -m training train`"):
        load_generator_checkpoint(tmp_path / "other.pt")


def test_evaluate_model_labels():
    assert parse_model_arguments(["a=/x/checkpoint.pt", "/runs/km/checkpoint.pt"]) == {
        "a": Path("/x/checkpoint.pt"), "km": Path("/runs/km/checkpoint.pt")}
    with pytest.raises(BackendError, match="model label 'a' is used twice"):
        parse_model_arguments(["a=/x", "a=/y"])


def test_tiny_run_with_the_perceptual_loss(ci_corpus, tmp_path):
    """A representation checkpoint in `python -m training represent`'s format (random tiny encoders) drives
    the perceptual term; it is logged and enters the loss."""
    from training.checkpoints import save_checkpoint as save_representation
    from training.representation.config import preset
    from training.representation.model import build_encoders

    torch.manual_seed(0)
    config = preset("tiny")
    speech_encoder, mesh_encoder = build_encoders("two-stage", config.model)
    representation = save_representation(tmp_path / "two-stage.pt", {
        "meta": json.dumps({"variant": "two-stage", "config": config.to_dict()}),
        "speech_encoder": speech_encoder.state_dict(), "mesh_encoder": mesh_encoder.state_dict()})
    out = tmp_path / "perceptual"
    assert training_main(["train", *TINY, "--corpus", str(ci_corpus), "--out", str(out), "--perceptual-weight", "1e-7",
                          "--representation", str(representation)]) == 0
    rows = read_log(out / "loss.csv")
    assert all(float(row["perceptual"]) > 0 for row in rows)
    lip_gap_weight = generator_preset("tiny").lip_gap_weight
    assert all(float(row["loss"]) == pytest.approx(float(row["mse"]) + lip_gap_weight * float(row["lip_gap"])
                                                   + float(row["perceptual"]), rel=1e-4) for row in rows)


# --- issue 16 item 6: export-generator replaces a folder only when asked, atomically, with its card and provenance

def folder_bytes(folder: Path) -> dict:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_export_refuses_an_existing_folder_then_replaces_it_whole_with_force(trained, tmp_path, capsys):
    out = tmp_path / "generator"
    checkpoint = str(trained["faceformer"] / "checkpoint.pt")
    assert training_main(["export-generator", "--checkpoint", checkpoint, "--out", str(out)]) == 0
    model = json.loads((out / "model.json").read_text())
    assert model["synthetic_training_data"] is True and model["training_data"]["preset"] == "ci"
    card = (out / "MODEL_CARD.md").read_text()
    assert card.startswith("# generator — ") and "SYNTHETIC" in card and "faceformer" in card
    (out / "MODEL_CARD.md").write_text("# Default generator (a stale card)\n")
    before = folder_bytes(out)
    capsys.readouterr()
    assert training_main(["export-generator", "--checkpoint", str(trained["kmtalk"] / "checkpoint.pt"),
                          "--out", str(out)]) == 2
    assert "generator exists; pass --force to replace it" in capsys.readouterr().err
    assert folder_bytes(out) == before
    assert training_main(["export-generator", "--checkpoint", str(trained["kmtalk"] / "checkpoint.pt"),
                          "--out", str(out), "--force"]) == 0
    assert json.loads((out / "model.json").read_text())["family"] == "kmtalk"
    assert "Default generator" not in (out / "MODEL_CARD.md").read_text() and "kmtalk" in (out / "MODEL_CARD.md").read_text()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["generator"]  # no temporary sibling left


def test_export_takes_provenance_from_the_training_data(ci_corpus, tmp_path):
    corpus = tmp_path / "not_synthetic"
    shutil.copytree(ci_corpus, corpus)
    manifest = json.loads((corpus / "manifest.json").read_text())
    del manifest["synthetic"]
    (corpus / "manifest.json").write_text(json.dumps(manifest))
    run = tmp_path / "run"
    assert training_main(["train", *TINY, "--set", "steps=1", "--corpus", str(corpus), "--out", str(run)]) == 0
    assert training_main(["export-generator", "--checkpoint", str(run / "checkpoint.pt"), "--out",
                          str(tmp_path / "exported")]) == 0
    model = json.loads((tmp_path / "exported" / "model.json").read_text())
    assert model["synthetic_training_data"] is False and model["training_data"]["folder"] == "not_synthetic"
    assert "not synthetic" in (tmp_path / "exported" / "MODEL_CARD.md").read_text()


def test_a_killed_export_leaves_the_old_generator_whole(trained, tmp_path):
    out = tmp_path / "generator"
    assert training_main(["export-generator", "--checkpoint", str(trained["faceformer"] / "checkpoint.pt"),
                          "--out", str(out)]) == 0
    before = folder_bytes(out)
    command = [sys.executable, "-m", "training", "export-generator", "--checkpoint",
               str(trained["kmtalk"] / "checkpoint.pt"), "--out", str(out), "--force"]
    for stage in ("folder", "onnx"):  # killed as soon as the new folder exists, then once its graph is written
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and process.poll() is None:
                building = list(tmp_path.glob(".generator.*.tmp"))
                if building and (stage == "folder" or (building[0] / "generator.onnx").exists()):
                    break
                time.sleep(0.005)
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait()
        assert process.returncode == -signal.SIGKILL, "the export must be killed part-way"
        assert folder_bytes(out) == before
    assert training_main(["export-generator", "--checkpoint", str(trained["kmtalk"] / "checkpoint.pt"),
                          "--out", str(out), "--force"]) == 0
    assert json.loads((out / "model.json").read_text())["family"] == "kmtalk"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["generator"]  # stale builds were cleared
