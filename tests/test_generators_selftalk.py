"""The SelfTalk-style family (lip-reading consistency): phoneme labels, the lip region, a tiny run end to end
on a SYNTHETIC ci corpus, export and the errors."""

import json
import shutil

import pytest
import torch

from backend.errors import BackendError
from backend.flame import LOWER_LIP_CENTRE, UPPER_LIP_CENTRE
from backend.generators import load_generator
from backend.mesh import load_flame_mesh
from tiny_runs import TINY
from training.__main__ import main as training_main
from training.loop import read_log
from training.generators.config import generator_preset
from training.generators.export import export_generator
from training.generators.families import build_generator, load_generator_checkpoint
from training.generators.selftalk import LIP_VERTICES, PHONEMES, lip_region, phoneme_labels
from training.generators.clips import ClipLoader, training_styles

pytestmark = pytest.mark.training


@pytest.fixture(scope="session")
def selftalk_run(tmp_path_factory, ci_corpus):
    out = tmp_path_factory.mktemp("selftalk")
    torch.set_num_threads(1)
    assert training_main(["train", *TINY, "--family", "selftalk", "--corpus", str(ci_corpus), "--out", str(out)]) == 0
    return out


def test_phoneme_labels_drop_silences_merge_repeats_and_strip_stress():
    timeline = [(0.0, 0.1, "SIL"), (0.1, 0.2, "HH"), (0.2, 0.3, "ah1"), (0.3, 0.4, "AH"), (0.4, 0.5, "SIL"),
                (0.5, 0.6, "AH0")]
    assert phoneme_labels(timeline).tolist() == [PHONEMES.index("HH") + 1, PHONEMES.index("AH") + 1,
                                                 PHONEMES.index("AH") + 1]
    with pytest.raises(BackendError, match="phoneme 'Q' in a timeline is not ARPAbet; expected one of AA, AE"):
        phoneme_labels([(0.0, 0.1, "Q")])


def test_lip_region_surrounds_the_lip_centres(flame_ply):
    template = torch.from_numpy(load_flame_mesh(flame_ply).vertices)
    region = lip_region(template)
    assert len(region) == LIP_VERTICES == len(set(region.tolist()))
    assert {UPPER_LIP_CENTRE, LOWER_LIP_CENTRE} <= set(region.tolist())


def test_tiny_selftalk_trains_and_exports(selftalk_run, ci_corpus, flame_ply, tmp_path):
    rows = read_log(selftalk_run / "loss.csv")
    assert len(rows) == 4 and all(float(row["phoneme"]) > 0 for row in rows)
    checkpoint = load_generator_checkpoint(selftalk_run / "checkpoint.pt")
    loader = ClipLoader(ci_corpus, "train", training_styles(ci_corpus), generator_preset("tiny"))
    template = torch.from_numpy(loader.dataset.load(loader.ids[0]).template)
    assert torch.equal(checkpoint["model"]["lip_indices"], lip_region(template))
    folder, error = export_generator(selftalk_run / "checkpoint.pt", tmp_path / "selftalk_tiny")
    assert error <= 1e-4 and load_generator(folder).info.family == "selftalk"


def test_generated_lips_train_the_generator_not_the_lip_reader(ci_corpus):
    config = generator_preset("tiny", family="selftalk")
    styles = training_styles(ci_corpus)
    loader = ClipLoader(ci_corpus, "train", styles, config)
    torch.manual_seed(0)
    model = build_generator(config, len(styles))
    model.set_statistics(loader.fit_statistics())
    clip = loader.clips(model.motion_basis)[0]
    with torch.no_grad():
        model.head.linear.weight.normal_(std=1e-4)  # a trained head: the lips move
    output = model.training_output(clip)
    terms = output.details
    assert set(output.losses) == {"phoneme"}
    assert set(terms) == {"recogniser_ctc", "lip_reader_ctc", "generated_ctc", "consistency"}
    assert all(float(value) > 0 for value in terms.values())
    (terms["generated_ctc"] + terms["consistency"]).backward()
    assert all(parameter.grad is None for parameter in model.lip_reader.parameters())
    assert all(parameter.grad is None for parameter in model.recogniser.parameters())
    assert model.head.linear.weight.grad.abs().sum() > 0


def test_selftalk_needs_phoneme_timelines(ci_corpus, tmp_path):
    copy = tmp_path / "corpus"
    shutil.copytree(ci_corpus, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["clips"][0]["timeline"] = []
    (copy / "manifest.json").write_text(json.dumps(manifest))
    first = manifest["clips"][0]["id"]
    with pytest.raises(BackendError, match=f"clip {first} has no phoneme timeline; the SelfTalk-style family"):
        ClipLoader(copy, "train", training_styles(copy), generator_preset("tiny", family="selftalk")).fit_statistics()
