"""Cheap scoring (issue 17 item 7): the add-on scores a clip rebuilt from shape-key weights at only the vertices the
scores read, with the speech front-end features the generator computed, and gets the scores of the full clip
scored the old way (full rebuild, PLRS running the front end itself).

Real speech (the bundled sample sentence), the shipped default generator and PLRS evaluator, the user's FLAME
template and masks from ../shared (skipped without them).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from backend.audio import load_audio
from backend.errors import MetricError, ModelError
from backend.flame import FlameRegions, UPPER_LIP_CENTRE
from backend.generators import DEFAULT_GENERATOR, load_generator, speech_frontend_features
from backend.mesh import load_flame_mesh
from backend.metrics.evaluation import SPEECH_ENVELOPE, Regions, score_clip, vertices_scored
from backend.metrics.plrs import (MESH_VERTICES_FIELD, REPRESENTATION_FILE, OnnxSpeechMeshEncoders, clip_plrs,
                                  load_model_set_encoders)
from backend.models import PLRS_EVALUATOR, default_models_dir
from backend.retarget.basis import ShapeBasis
from backend.retarget.solver import solve_clip
from backend.rig.flame_rig import FlameRig

MODELS = default_models_dir(PLRS_EVALUATOR).parent
SHIPPED = MODELS / "generators"
SAMPLE_WAV = Path(__file__).resolve().parents[1] / "samples" / "sample_sentence.wav"
# Scores are means over frames/windows of float32 geometry: a subset rebuild may round a coordinate's last bit
# differently from the full one (BLAS blocking), so equal to 1e-6 (the panel shows 2 decimals or whole ms).
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def take(flame_ply, flame_masks):
    """(samples, rate, basis, weights, regions): the sample sentence through the default generator, solved."""
    samples, rate = load_audio(SAMPLE_WAV)
    template = load_flame_mesh(flame_ply)
    regions = FlameRegions.load(flame_masks)
    basis = ShapeBasis.build(FlameRig(template.vertices, template.faces, regions.masks))
    clip = load_generator(DEFAULT_GENERATOR, SHIPPED).animate(samples, rate, template.vertices.astype(np.float32))
    return samples, rate, basis, solve_clip(clip, basis), Regions(regions.lips, regions.upper_face)


def _values(report) -> dict:
    return {entry.name: entry.value for entry in report.summary}


@pytest.mark.parametrize("offset_by_encoders", [False, True])
def test_cheap_scoring_gives_the_scores_of_the_full_clip(take, offset_by_encoders):
    samples, rate, basis, weights, regions = take
    encoders = load_model_set_encoders(MODELS)
    full = score_clip(basis.rebuild(weights), samples, rate, regions, reference_curve=SPEECH_ENVELOPE,
                      encoders=encoders, offset_by_encoders=offset_by_encoders)
    ids = vertices_scored(regions, encoders)
    assert 1400 <= len(ids) < 1700   # the 1,404 the evaluator reads, the lips, the lip centres: not 5023
    cheap = score_clip(basis.rebuild(weights, ids), samples, rate, regions, reference_curve=SPEECH_ENVELOPE,
                       encoders=encoders, offset_by_encoders=offset_by_encoders, vertex_ids=ids,
                       frontend_features=speech_frontend_features(samples, rate))
    old, new = _values(full), _values(cheap)
    assert old.keys() == new.keys() and all(value is not None for value in old.values()), old
    for name in old:
        assert new[name] == pytest.approx(old[name], abs=TOLERANCE), name
    np.testing.assert_allclose(cheap.curves["lip_opening"], full.curves["lip_opening"], atol=TOLERANCE)


def test_plrs_of_a_clip_known_at_what_the_encoder_reads_is_that_of_the_full_clip(take):
    samples, rate, basis, weights, _ = take
    encoders = load_model_set_encoders(MODELS)
    reads = encoders.mesh_vertices
    full = basis.rebuild(weights)
    expected = clip_plrs(encoders, samples, rate, full).window_scores
    # the same clip, taken at exactly those vertices: bit for bit the same windows reach the encoder
    np.testing.assert_array_equal(clip_plrs(encoders, samples, rate, full[:, reads], vertex_ids=reads).window_scores,
                                  expected)


def test_a_clip_lacking_a_vertex_the_scores_read_is_refused(take):
    samples, rate, basis, weights, regions = take
    encoders = load_model_set_encoders(MODELS)
    ids = vertices_scored(regions, encoders)
    fewer = ids[ids != UPPER_LIP_CENTRE]
    with pytest.raises(MetricError, match="lacks 1 of the vertices its scores read"):
        score_clip(basis.rebuild(weights, fewer), samples, rate, regions, reference_curve=SPEECH_ENVELOPE,
                   encoders=encoders, vertex_ids=fewer)
    with pytest.raises(MetricError, match="reads 1 vertices the clip was not rebuilt at"):
        clip_plrs(encoders, samples, rate, basis.rebuild(weights, encoders.mesh_vertices[1:]),
                  vertex_ids=encoders.mesh_vertices[1:])


def test_a_wrong_list_of_read_vertices_is_refused_when_the_evaluator_is_opened(tmp_path):
    folder = tmp_path / PLRS_EVALUATOR
    shutil.copytree(MODELS / PLRS_EVALUATOR, folder)
    meta = json.loads((folder / REPRESENTATION_FILE).read_text())
    meta[MESH_VERTICES_FIELD] = meta[MESH_VERTICES_FIELD][:-10]   # claims it ignores 10 vertices it reads
    (folder / REPRESENTATION_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="but its output changes with the others"):
        OnnxSpeechMeshEncoders.from_directory(folder)
    del meta[MESH_VERTICES_FIELD]                                  # no list: every vertex is read
    (folder / REPRESENTATION_FILE).write_text(json.dumps(meta))
    assert OnnxSpeechMeshEncoders.from_directory(folder).mesh_vertices is None
    assert vertices_scored(None, OnnxSpeechMeshEncoders.from_directory(folder)) is None
