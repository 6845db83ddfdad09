"""Add-on speed with pip bpy: 10 s and 60 s of audio -> baked, scored animation (Animate from Audio), the current
pipeline beside the previous one in the same run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/addon.py [--seconds 10,60] [--template FLAME_sample.ply]

Both pipelines run the default shipped generator with the default editable bake (the template preference points
at the FLAME template, whose FLAME_masks.npz the bake needs):
- previous (the baseline, kept here as `previous_compute_animation`: the worker's part as it was before issue 17
  item 7): the generator runs the speech front end, the solved weights are rebuilt into the full (T, 5023, 3)
  clip, and scoring loads the PLRS evaluator and runs the speech front end again on that clip;
- current (`blender_addon.pipeline.compute_animation`): the front end runs once and feeds the generator and PLRS,
  the clip is rebuilt only at the vertices the scores read, the evaluator's sessions are kept between runs.
Reported per clip length and pipeline: the worker's stages (front end, generator graph + projection onto the basis,
solve + life, rebuild, scoring), the worker's total, the whole threaded job as the modal operator runs it (worker
thread + UI-thread ticks, the bake included), the longest UI-thread stall and where it happened (a tick's kind,
gathering the request, or how late the timer-paced main-thread loop wakes while the worker holds the GIL), and
current/previous ratios. The scores of the two pipelines are printed side by side (they must agree: see
tests/test_cheap_scoring.py). Each pipeline's first run builds its onnxruntime sessions (the caches are cleared);
the timings are of a second, warm run. Targets (issue 17 item 7): 60 s of audio in <= 2 s, no UI stall > 100 ms.
Audio: the bundled synthetic espeak sentence repeated.
"""

import argparse
import os
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import bpy  # noqa: E402
import addon_utils  # noqa: E402  (bpy's module, importable once bpy is)

from backend.atomic import atomic_path  # noqa: E402
from backend.audio import load_audio  # noqa: E402
from backend.frame_rate import MESH_FPS, resample_frames  # noqa: E402
from backend.generators import DEFAULT_GENERATOR, GENERATORS, default_models_dir  # noqa: E402
from backend.retarget.basis import ShapeBasis  # noqa: E402
from backend.retarget.solver import Projector, solve_weights  # noqa: E402
from backend.rig.flame_rig import FlameRig  # noqa: E402
from blender_addon import bake, operators, pipeline, properties, scoring  # noqa: E402

COMPUTE = pipeline.compute_animation   # the current worker's part (threaded_run patches the module's name)
STAGES = ("front end", "generator + projection", "solve + life", "rebuild", "scoring")


def make_audio(seconds: float, folder: Path) -> Path:
    samples, rate = soundfile.read(REPO / "samples" / "sample_sentence.wav", dtype="float32")
    tiled = np.tile(samples, int(np.ceil(seconds * rate / len(samples))))[:int(seconds * rate)]
    path = folder / f"speech_{seconds:g}s.wav"
    with atomic_path(path) as temporary:
        soundfile.write(temporary, tiled, rate)
    return path


def setup_scene(template: Path, models: Path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon_utils.enable("blender_addon", default_set=True)
    preferences = bpy.context.preferences.addons["blender_addon"].preferences
    preferences.models_dir, preferences.template_path = str(models), str(template)
    bpy.ops.talking_head.import_flame(filepath=str(template))
    bpy.context.scene.render.fps = MESH_FPS
    settings = bpy.context.scene.talking_head
    settings.generator, settings.bake = DEFAULT_GENERATOR, properties.BAKE_EDITABLE
    return bpy.context.active_object


class Stopwatch:
    """Seconds spent in named stages of one compute run; `timed` wraps a callable to add its time to a stage."""

    def __init__(self):
        self.seconds = dict.fromkeys(STAGES, 0.0)

    def timed(self, stage: str, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - started
        return wrapper


@contextmanager
def patched(module, **replacements):
    """Module attributes replaced for the duration of the block."""
    originals = {name: getattr(module, name) for name in replacements}
    for name, value in replacements.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in originals.items():
            setattr(module, name, value)


def previous_compute_animation(request, progress, should_cancel, watch: Stopwatch = None):
    """The baseline: the worker's part of the editable bake as it was before the cheap scoring (issue 17 item 7)."""
    watch = watch or Stopwatch()
    samples, rate = load_audio(request.audio_path)
    frame = pipeline.flame_frame_for(request.rest_vertices, request.template_path)
    template = frame.to_flame(request.rest_vertices)
    generator = pipeline.cached_generator(request.generator, Path(request.models_dir) / GENERATORS, request.threads)
    regions = pipeline.flame_masks_for(request.template_path)
    started = time.perf_counter()
    blocks = generator.animate_blocks(samples, rate, template, request.style, should_cancel=should_cancel)
    total = next(blocks)   # the generator's own front-end run
    watch.seconds["front end"] += time.perf_counter() - started
    started = time.perf_counter()
    basis = ShapeBasis.build(FlameRig(template, request.faces, regions.masks))
    projector = Projector(basis)
    projections = np.empty((total, len(basis.names)))
    for start, block in blocks:
        projections[start:start + len(block)] = projector.project(pipeline._with_intensity(block, template,
                                                                                           request.intensity))
    watch.seconds["generator + projection"] += time.perf_counter() - started
    started = time.perf_counter()
    weights = solve_weights(projections, projector.gram)
    pipeline.add_life(weights, basis.names, request, samples, rate)
    watch.seconds["solve + life"] += time.perf_counter() - started
    started = time.perf_counter()
    flame = basis.rebuild(weights)
    watch.seconds["rebuild"] += time.perf_counter() - started
    started = time.perf_counter()
    scoring._loaded_encoders.clear()   # the evaluator was loaded on every run; PLRS ran the front end itself
    scores = scoring.score_animation(samples, rate, flame, request.models_dir, request.template_path, request.threads)
    watch.seconds["scoring"] += time.perf_counter() - started
    del flame
    result = pipeline.AnimationResult(scores=scores, plot=scoring.plot_pixels(scores), generator=request.generator,
                                      warnings=frame.notes)
    keys = frame.to_local(basis.template.astype(np.float32) + basis.displacements)
    result.basis = pipeline.LocalBasis(basis.names, keys, resample_frames(weights, MESH_FPS, request.scene_fps))
    return result


def current_compute_animation(request, progress, should_cancel, watch: Stopwatch = None):
    """blender_addon.pipeline.compute_animation with its stages timed."""
    watch = watch or Stopwatch()
    with patched(pipeline, speech_frontend_features=watch.timed("front end", pipeline.speech_frontend_features),
                 solve_weights=watch.timed("solve + life", pipeline.solve_weights),
                 add_life=watch.timed("solve + life", pipeline.add_life)), \
            patched(scoring, score_animation=watch.timed("scoring", scoring.score_animation)), \
            patched(ShapeBasis, rebuild=watch.timed("rebuild", ShapeBasis.rebuild)):
        started = time.perf_counter()
        result = COMPUTE(request, progress, should_cancel)
        total = time.perf_counter() - started
    watch.seconds["generator + projection"] = total - sum(watch.seconds.values())   # the rest of the worker
    return result


PIPELINES = {"previous": previous_compute_animation, "current": current_compute_animation}


def clear_caches() -> None:
    pipeline._loaded_generators.clear()
    scoring._loaded_encoders.clear()


def worker_timings(audio: Path, compute):
    """(total s, {stage: s}, result) of a warm run of `compute` on this thread (a first run builds the sessions)."""
    bpy.context.scene.talking_head.audio_path = str(audio)
    request = pipeline.gather_request(bpy.context)
    clear_caches()
    compute(request, lambda fraction: None, lambda: False)
    watch = Stopwatch()
    started = time.perf_counter()
    result = compute(request, lambda fraction: None, lambda: False, watch)
    return time.perf_counter() - started, watch.seconds, result


def _phase(job) -> str:
    """What the next tick of `job` will do (for naming the longest stall)."""
    if job.state == "computing":
        return "tick: computing done? / bake start"
    if not job._bake.keys_done:
        return "tick: shape-key slice"
    return f"tick: {pipeline.FINISHING_STEPS[len(pipeline.FINISHING_STEPS) - len(job._finishing_steps)]}"


def threaded_run(audio: Path, compute):
    """The modal operator's path with `compute` as the worker's part: worker thread + UI-thread ticks, warm
    sessions. Returns (total s, {where: longest stall s}); 'worker holds GIL' is how late the timer-paced UI
    loop wakes while the worker computes."""
    bpy.context.scene.talking_head.audio_path = str(audio)
    stalls = {}

    def record(where: str, seconds: float) -> None:
        stalls[where] = max(stalls.get(where, 0.0), seconds)

    with patched(pipeline, compute_animation=compute):
        started = time.perf_counter()
        job = pipeline.AnimationJob(pipeline.gather_request(bpy.context))
        record("gather request (UI thread)", time.perf_counter() - started)
        job.start_thread()
        last = time.perf_counter()
        while True:
            tick_start = time.perf_counter()
            if job.state == "computing":
                record("worker holds GIL", tick_start - last - operators.TIMER_SECONDS)
            where = _phase(job)
            state = job.tick(bpy.context)
            record(where, time.perf_counter() - tick_start)
            if state in ("finished", "failed", "cancelled"):
                break
            last = time.perf_counter()
            time.sleep(operators.TIMER_SECONDS)   # the modal timer's interval
        total = time.perf_counter() - started
    if state != "finished":
        raise SystemExit(f"benchmark: the job ended '{state}': {job.message}")
    bake.remove_animation(bpy.context.scene, bpy.context.active_object)
    return total, stalls


def playback_ms(frames: int, count: int = 200) -> float:
    scene = bpy.context.scene
    started = time.perf_counter()
    for index in range(count):
        scene.frame_set(scene.frame_start + index % frames)
    return (time.perf_counter() - started) / count * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", default="10,60", help="audio lengths, comma-separated")
    parser.add_argument("--template", type=Path, default=os.environ.get("FLAME_TEMPLATE") or
                        REPO.parent / "shared" / "flame" / "FLAME_sample.ply")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    models = default_models_dir().parent
    if not (models / GENERATORS / DEFAULT_GENERATOR).is_dir():
        raise SystemExit(f"benchmark: the default generator '{DEFAULT_GENERATOR}' is not under {models}")
    print(f"generator: shipped default '{DEFAULT_GENERATOR}', editable bake; machine: {os.cpu_count()} CPUs; "
          f"bpy {bpy.app.version_string}")
    rows, ratio_rows, stall_rows, score_rows = [], [], [], []
    for seconds in (float(value) for value in args.seconds.split(",")):
        audio = make_audio(seconds, folder)
        setup_scene(args.template, models)
        measured = {}
        for name, compute in PIPELINES.items():
            worker, stages, result = worker_timings(audio, compute)
            job, stalls = threaded_run(audio, compute)
            measured[name] = (worker, stages, job, stalls, result)
            worst = max(stalls, key=stalls.get)
            rows.append(f"| {seconds:g} s | {name} | " + " | ".join(f"{stages[stage]:.3f}" for stage in STAGES)
                        + f" | {worker:.3f} | {job:.3f} | {stalls[worst] * 1000:.0f} ({worst}) |")
            stall_rows.append(f"| {seconds:g} s | {name} | " + " | ".join(
                f"{where} {value * 1000:.0f}" for where, value in sorted(stalls.items())) + " |")
        (old_worker, old_stages, old_job, _, old_result), (new_worker, new_stages, new_job, _, new_result) = \
            measured["previous"], measured["current"]
        ratio_rows.append(f"| {seconds:g} s | " + " | ".join(
            f"{new_stages[stage] / old_stages[stage]:.2f}" if old_stages[stage] else "n/a" for stage in STAGES)
            + f" | {new_worker / old_worker:.2f} | {new_job / old_job:.2f} |")
        for old, new in zip(old_result.scores.scores, new_result.scores.scores):
            score_rows.append(f"| {seconds:g} s | {old.name} | {old.value!r} | {new.value!r} | "
                              + (f"{abs(new.value - old.value):.1e} |" if None not in (old.value, new.value)
                                 else "n/a |"))
    print("\n| audio | pipeline | " + " s | ".join(STAGES) + " s | worker total s | threaded job total s "
          "| longest UI stall ms (where) |")
    print("|---|---|" + "---|" * (len(STAGES) + 3))
    print("\n".join(rows))
    print("\ncurrent / previous (time ratio, lower is faster):\n\n| audio | " + " | ".join(STAGES)
          + " | worker total | threaded job total |")
    print("|---|" + "---|" * (len(STAGES) + 2))
    print("\n".join(ratio_rows))
    print("\nLongest UI-thread stall per step (ms):\n")
    print("\n".join(stall_rows))
    print("\nScores (previous vs current pipeline):\n\n| audio | score | previous | current | abs difference |")
    print("|---|---|---|---|---|")
    print("\n".join(score_rows))
    return 0


if __name__ == "__main__":
    try:
        code = main()
    except SystemExit as error:
        code = error.code if isinstance(error.code, int) else (print(error.code, file=sys.stderr) or 1)
    except Exception:   # still end the process (os._exit below), with the traceback
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)   # pip bpy can hang in its exit handlers (see benchmarks/memory.py)
