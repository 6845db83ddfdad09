"""benchmarks/real_speech.py on set (b), the unseen real speakers, with the default generator (CI-sized)."""

import importlib.util
import json

import pytest

from backend.generators import DEFAULT_GENERATOR
from conftest import REPO, SHARED


@pytest.fixture(scope="module")
def benchmark():
    if not (SHARED / "speech" / "dev").is_dir() or not (SHARED / "flame" / "FLAME_masks.npz").is_file():
        pytest.skip(f"{SHARED}: the speech/dev clips and FLAME assets live in ../shared (not in the repo)")
    spec = importlib.util.spec_from_file_location("real_speech", REPO / "benchmarks" / "real_speech.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_set_b_with_the_default_generator_and_reference_rows(benchmark, tmp_path, capsys):
    out = tmp_path / "bench"
    code = benchmark.main(["--sets", "b", "--models", f"{DEFAULT_GENERATOR},rig,rig_shift2,static_open",
                           "--unguarded", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "real_speech.json").read_text())
    rows = {row["model"]: row for row in report["rows"]}
    unguarded = DEFAULT_GENERATOR + benchmark.UNGUARDED
    assert set(rows) == {DEFAULT_GENERATOR, unguarded, "rig", "rig_shift2", "static_open"}
    for guarded_clip, plain_clip in zip(rows[DEFAULT_GENERATOR]["clips"], rows[unguarded]["clips"]):
        # the lip closure guard only ever shuts lips: no clip closes less or rests less with it
        assert guarded_clip["clip"] == plain_clip["clip"]
        for key in ("closure", "rest"):   # None where a clip has no bilabial / no long pause
            assert (guarded_clip[key] is None) == (plain_clip[key] is None)
            assert guarded_clip[key] is None or guarded_clip[key] >= plain_clip[key]
    assert all(row["set"].startswith("b:") and row["summary"]["clips"] == 9 for row in rows.values())
    rig, shifted, static = rows["rig"]["summary"], rows["rig_shift2"]["summary"], rows["static_open"]["summary"]
    assert rig["closure"] == 1.0 and rig["mtm_median_ms"] == 0.0 and rig["lag_frames"] == 0.0
    assert shifted["mtm_median_ms"] == pytest.approx(66.67, abs=0.01) and shifted["lag_frames"] == 2.0
    assert static["closure"] == 0.0 and static["mtm_median_ms"] is None
    generator = rows[DEFAULT_GENERATOR]["summary"]
    assert generator["bilabials"] == rig["bilabials"] > 20 and 0.0 <= generator["closure"] <= 1.0
    assert generator["mtm_ms_clips"] >= 8 and generator["mtm_median_ms"] > 0.0
    assert len(rows[DEFAULT_GENERATOR]["clips"]) == 9 and "jfk" in {c["clip"] for c in rows["rig"]["clips"]}
    table = (out / "real_speech.md").read_text()
    assert f"| {DEFAULT_GENERATOR} | b: unseen real speakers | 9 |" in table and "| rig | b:" in table
    assert len(list((out / "plots").rglob("*.png"))) == 9
    assert (out / "closeups" / "bilabials_set_b.png").stat().st_size > 10_000
    assert f"| {DEFAULT_GENERATOR} |" in capsys.readouterr().out


def test_unknown_rows_and_sets_are_refused(benchmark, tmp_path, capsys):
    assert benchmark.main(["--sets", "b", "--models", "nonesuch", "--out", str(tmp_path)]) == 2
    assert benchmark.main(["--sets", "q", "--out", str(tmp_path)]) == 2
    assert "unknown sets ['q']" in capsys.readouterr().err
