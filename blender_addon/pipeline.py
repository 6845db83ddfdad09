"""Animate from Audio as a job: inference and scoring in a worker thread, baking in short slices on the UI thread.

`AnimationRequest` is gathered on the UI thread (everything the worker needs, as plain values);
`compute_animation` is the worker's part (numpy/onnxruntime only: bpy is never touched off the UI
thread); `AnimationJob.tick` is called from the operator's modal timer (or in a loop in `-b` mode) and
advances the job by at most ~one slice: a ~50 ms batch of shape keys, then one finishing step per tick
(F-curves or the eval_time curve; packed plot image, ~15-25 ms of PNG encoding; attach, ~25 ms of sound-strip
loading), so no tick holds the UI thread for long. Nothing in the scene changes before the final
`attach_animation`, so a failed or cancelled job leaves the scene exactly as it was.

The editable bake (the default) never holds the generator's whole output: each block it yields is reduced to its
projections onto the shape-key basis (backend.retarget.solver.Projector) as it arrives, the weights are solved
once for the whole take, and the scores are of the clip rebuilt from those weights (what the bake plays back),
rebuilt only at the vertices the scores read (blender_addon.scoring "Cheap scoring"). The speech front end runs
once: its features feed the generator and PLRS.
"""

# Annotations stay strings: an evaluated `Optional[LocalBasis]` is kept in typing's cache and, through this module,
# keeps bpy alive past interpreter teardown, where pip bpy 4.5 then hangs in exit() (its sound thread's condition
# variable destroyed while the thread still waits on it; see benchmarks/README.md "pip bpy exit hang").
from __future__ import annotations

import hashlib
import os
import threading
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import bpy
import numpy as np

from backend.audio import load_audio
from backend.errors import BackendError
from backend.flame import MASKS_ENV, FlameRegions, find_regions_beside
from backend.flame_frame import FlameFrame
from backend.frame_rate import MESH_FPS, resample_frames
from backend.generators import GENERATORS, INPUT_SPEECH_FEATURES, load_generator, speech_frontend_features
from backend.mesh import load_flame_mesh
from backend.retarget import life
from backend.retarget.basis import ShapeBasis
from backend.retarget.curves import thin_linear
from backend.retarget.mapping import KeyMapping
from backend.retarget.solver import Projector, solve_weights
from backend.rig.flame_rig import FlameRig

from . import bake, preferences, properties, scoring

GENERATE_SHARE, SCORE_SHARE = 0.55, 0.15   # progress: generator, then scoring, then the bake (the rest)
SLICE_SECONDS = 0.05


@dataclass
class AnimationRequest:
    """Plain values for the worker. rest_vertices: (5023, 3) local rest shape of the mesh."""

    object_name: str
    audio_path: str          # absolute, for reading
    audio_path_as_set: str   # as the user set it (a //relative path stays relative in the .blend)
    generator: str
    style: Optional[str]
    intensity: float
    models_dir: Path
    template_path: str
    threads: int
    rest_vertices: np.ndarray
    scene_fps: float
    faces: Optional[np.ndarray] = None   # (9976, 3) the mesh's triangles: the shape-key basis's rig needs them
    bake: str = properties.BAKE_EDITABLE
    lip_closure: bool = True  # the backend's lip closure guard (backend.closure_guard; v2 generators)
    blinks: bool = True      # editable bakes: backend.retarget.life on the eyeBlink, browInnerUp and browOuterUp
    brows: bool = True       # keys, and the head's rotation
    pitch_brows: bool = True
    head_motion: bool = True
    seed: int = 0
    mapping: Optional[KeyMapping] = None   # BAKE_TARGET_KEYS: which of the character's keys follow which basis key


@dataclass
class LocalBasis:
    """The editable bake's content: names (K,), keys (K, 5023, 3) local positions of each key at weight 1,
    weights (F, K) at the scene fps, kept: the K curves' thinned keyframes (backend.retarget.curves.thin_linear,
    done here in the worker, off the UI thread)."""

    names: tuple
    keys: np.ndarray
    weights: np.ndarray
    kept: Optional[tuple] = None


@dataclass
class AnimationResult:
    """Exactly one of local_frames ((F, 5023, 3) positions at the scene fps, the per-frame bake) and basis (the
    editable bake); scores: the panel's scores; plot: their (H, W, 4) RGBA plot; warnings: what the FLAME frame
    found implausible or recovered (units, mirroring), or why the editable bake was not possible."""

    scores: scoring.ClipScores
    plot: np.ndarray
    generator: str
    local_frames: Optional[np.ndarray] = None
    basis: Optional[LocalBasis] = None
    warnings: tuple = ()
    head_angles: Optional[np.ndarray] = None      # (F, 3) FLAME-frame head rotations at the scene fps
    flame_rotation: Optional[np.ndarray] = None   # (3, 3) the mesh's local -> FLAME rotation

    @property
    def frame_count(self) -> int:
        return len(self.local_frames) if self.basis is None else len(self.basis.weights)


def flame_frame_for(rest_vertices: np.ndarray, template_path: str) -> FlameFrame:
    """Similarity transform onto the FLAME template when one is configured, else recovered from the mesh itself
    (its units, orientation and handedness, through FLAME topology)."""
    if not template_path:
        return FlameFrame.recover(rest_vertices)
    return FlameFrame.fit(rest_vertices, load_flame_mesh(template_path).vertices)


def flame_masks_for(template_path: str) -> Optional[FlameRegions]:
    """FLAME_masks.npz beside the template set in the preferences, else the one $FLAME_MASKS names, else None.
    (FLAME-licensed, so never bundled: the editable bake needs the user's copy.)"""
    regions = find_regions_beside(template_path) if template_path else None
    if regions is None and os.environ.get(MASKS_ENV):
        regions = FlameRegions.load(os.environ[MASKS_ENV])
    return regions


TARGET_NEEDS_MASKS = ("Driving a character's own keys needs the FLAME template with FLAME_masks.npz beside it "
                      "(FLAME-licensed, not bundled) set in the add-on preferences")
NO_MASKS_NOTE = ("the editable bake needs FLAME_masks.npz (FLAME-licensed, not bundled) beside the FLAME template "
                 "set in the add-on preferences: baked one shape key per frame instead")


def gather_request(context) -> AnimationRequest:
    """Read the panel settings and the active mesh (UI thread)."""
    settings = context.scene.talking_head
    models_dir, template_path, threads = preferences.settings(context)
    obj = context.active_object
    bake.carry_artist_work_back(obj)   # the artist's work on the animated copy: onto their mesh, into this bake
    info = properties.selected_generator(context)
    mesh = bake.rest_mesh(obj)
    if settings.bake == properties.BAKE_TARGET_KEYS:   # any topology: the generator animates the FLAME template
        template = load_flame_mesh(template_path)
        rest, faces = np.asarray(template.vertices, dtype=np.float32), np.asarray(template.faces)
    else:
        rest, faces = bake.mesh_vertices(mesh).copy(), bake.mesh_triangles(mesh)
    return AnimationRequest(
        object_name=obj.name, audio_path=bpy.path.abspath(settings.audio_path),
        audio_path_as_set=settings.audio_path,
        generator=info.name, style=settings.style if settings.style in info.styles else None,
        intensity=settings.intensity, models_dir=models_dir, template_path=template_path, threads=threads,
        rest_vertices=rest, scene_fps=bake.scene_fps(context.scene), faces=faces, bake=settings.bake,
        lip_closure=settings.lip_closure,
        blinks=settings.blinks, brows=settings.brows, pitch_brows=settings.pitch_brows,
        head_motion=settings.head_motion, seed=settings.seed,
        mapping=properties.mapping_for(settings, properties.own_key_names(obj))
        if settings.bake == properties.BAKE_TARGET_KEYS else None)


_loaded_generators: dict = {}


def cached_generator(name: str, generators_dir: Path, threads: int):
    """load_generator, kept while its folder's files are unchanged: building the onnxruntime session holds
    Python's GIL for ~50-70 ms (a UI stall), so only the first run with a generator pays it."""
    folder = generators_dir / name
    key = (str(folder), threads, scoring.folder_stamp(folder))
    if key not in _loaded_generators:
        generator = load_generator(name, generators_dir, threads)
        _loaded_generators.clear()
        _loaded_generators[key] = generator
    return _loaded_generators[key]


_built_bases: dict = {}


def cached_basis(template: np.ndarray, faces: np.ndarray, regions: FlameRegions) -> tuple:
    """(ShapeBasis, Projector) on `template` (FLAME frame), kept while the template, its triangles and the masks
    are the same: building them costs ~0.1-0.15 s of every run otherwise."""
    digest = hashlib.blake2b(np.ascontiguousarray(template).tobytes())
    digest.update(np.ascontiguousarray(faces).tobytes())
    for name in sorted(regions.masks):
        digest.update(name.encode() + np.ascontiguousarray(regions.masks[name]).tobytes())
    key = digest.hexdigest()
    if key not in _built_bases:
        basis = ShapeBasis.build(FlameRig(template, faces, regions.masks))
        _built_bases.clear()
        _built_bases[key] = (basis, Projector(basis))
    return _built_bases[key]


def compute_animation(request: AnimationRequest, progress: Callable[[float], None],
                      should_cancel: Callable[[], bool]) -> AnimationResult:
    """The worker's part: audio -> generator -> (basis weights) -> scores -> what the bake needs, in local
    coordinates at the scene fps."""
    samples, rate = load_audio(request.audio_path)
    frame = flame_frame_for(request.rest_vertices, request.template_path)
    template = frame.to_flame(request.rest_vertices)
    generator = cached_generator(request.generator, Path(request.models_dir) / GENERATORS, request.threads)
    notes = frame.notes
    regions = flame_masks_for(request.template_path) if request.bake != properties.BAKE_PER_FRAME else None
    if request.bake == properties.BAKE_TARGET_KEYS and regions is None:
        raise BackendError(TARGET_NEEDS_MASKS)
    if request.bake == properties.BAKE_EDITABLE and regions is None:
        notes += (NO_MASKS_NOTE,)
    features = speech_frontend_features(samples, rate) if generator.info.input == INPUT_SPEECH_FEATURES or \
        scoring.hears_frontend(request.models_dir, request.threads) else None
    blocks = generator.animate_blocks(samples, rate, template, request.style,
                                      progress=lambda fraction: progress(GENERATE_SHARE * fraction),
                                      should_cancel=should_cancel, frontend_features=features,
                                      lip_closure=request.lip_closure)
    total = next(blocks)
    if regions is None:
        flame = np.empty((total, *template.shape), dtype=np.float32)
        for start, block in blocks:
            flame[start:start + len(block)] = _with_intensity(block, template, request.intensity)
        basis = weights = scored = None
    else:
        basis, projector = cached_basis(template, request.faces, regions)
        projections = np.empty((total, len(basis.names)))
        for start, block in blocks:   # each block is reduced as it comes: the take never exists whole
            projections[start:start + len(block)] = projector.project(_with_intensity(block, template,
                                                                                      request.intensity))
        weights = solve_weights(projections, projector.gram)
        add_life(weights, basis.names, request, samples, rate)
        scored = scoring.scored_vertices(request.models_dir, request.template_path, request.threads)
        flame = basis.rebuild(weights, scored)   # what the bake plays back is what is scored, where it is scored
    scores = scoring.score_animation(samples, rate, flame, request.models_dir, request.template_path,
                                     request.threads, vertex_ids=scored, frontend_features=features)
    progress(GENERATE_SHARE + SCORE_SHARE)
    result = AnimationResult(scores=scores, plot=scoring.plot_pixels(scores), generator=request.generator,
                             warnings=notes)
    if basis is None:
        result.local_frames = frame.to_local(resample_frames(flame, MESH_FPS, request.scene_fps))
    else:
        del flame
        keys = frame.to_local(basis.template.astype(np.float32) + basis.displacements)
        weights = resample_frames(weights, MESH_FPS, request.scene_fps).astype(np.float32)   # as the bake keeps them
        result.basis = LocalBasis(basis.names, keys, weights, tuple(thin_linear(column) for column in weights.T))
        if request.head_motion:
            result.head_angles = life.head_rotation_angles(samples, rate, len(result.basis.weights),
                                                           request.scene_fps, request.seed)
            result.flame_rotation = frame.rotation
    return result


def add_life(weights: np.ndarray, names: tuple, request: AnimationRequest, samples: np.ndarray, rate: int) -> None:
    """Blinks, loudness and pitch brow raises (backend.retarget.life) onto their keys' 30 fps weight columns, where
    switched on (the larger of the solved weight and the added one, in place)."""
    frames = len(weights)
    if request.blinks:
        blinks = life.blink_weights(frames, MESH_FPS, request.seed)
        for name in ("eyeBlink_L", "eyeBlink_R"):
            column = names.index(name)
            weights[:, column] = np.maximum(weights[:, column], blinks)
    if request.brows:
        column = names.index("browInnerUp")
        weights[:, column] = np.maximum(weights[:, column], life.brow_weights(samples, rate, frames, MESH_FPS))
    if request.pitch_brows:
        raised = life.pitch_brow_weights(samples, rate, frames, MESH_FPS)
        for name in ("browOuterUp_L", "browOuterUp_R"):
            column = names.index(name)
            weights[:, column] = np.maximum(weights[:, column], raised)


def _with_intensity(block: np.ndarray, template: np.ndarray, intensity: float) -> np.ndarray:
    """The motion of a (F, 5023, 3) block scaled around the template (float32, in place)."""
    if intensity != 1.0:
        block -= template
        block *= intensity
        block += template
    return block


class AnimationJob:
    """One Animate from Audio run. state: 'computing' -> 'baking' -> 'finished', or 'failed' / 'cancelled'."""

    def __init__(self, request: AnimationRequest):
        self.request = request
        self.state = "computing"
        self.progress = 0.0
        self.message = ""
        self.result: Optional[AnimationResult] = None
        self._cancel = threading.Event()
        self._bake = None   # bake.BasisBake or bake.ShapeKeyBake while baking
        self._plot_image = None
        self._finishing_steps: list = []
        self._thread: Optional[threading.Thread] = None

    def start_thread(self) -> None:
        self._thread = threading.Thread(target=self._compute, name="talking-head-animate", daemon=True)
        self._thread.start()

    def run_here(self, context) -> str:
        """Synchronous run (for -b mode and scripts): compute in this thread, then bake in one go."""
        self._compute()
        while self.state not in ("finished", "failed", "cancelled"):
            self.tick(context, budget_s=float("inf"))
        return self.state

    def wait(self, timeout_s: float = 600.0) -> None:
        """Block until the worker thread has ended (scripts, tests and benchmarks)."""
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _set_progress(self, fraction: float) -> None:
        self.progress = fraction

    def _compute(self) -> None:
        try:
            self.result = compute_animation(self.request, self._set_progress, self._cancel.is_set)
        except BackendError as error:
            self.message = str(error)
        except Exception as error:  # a bug, not bad input: keep the traceback in the console
            traceback.print_exc()
            self.message = f"internal error ({type(error).__name__}: {error}); see the system console"

    def tick(self, context, budget_s: float = SLICE_SECONDS) -> str:
        """Advance by one slice on the UI thread; returns the state."""
        if self.state == "computing":
            if self._thread is not None and self._thread.is_alive():
                return self.state
            if self._cancel.is_set():
                self.state = "cancelled"
            elif self.result is None:
                self.state = "failed"
            else:
                self._start_bake()
            return self.state
        if self.state == "baking":
            keys = self._bake.total
            if not self._bake.keys_done:
                self._bake.step(budget_s)
                steps_done = self._bake.done
            else:
                self._finishing_steps.pop(0)(context)
                steps_done = keys + len(FINISHING_STEPS) - len(self._finishing_steps)
            bake_share = 1 - GENERATE_SHARE - SCORE_SHARE
            self.progress = 1 - bake_share + bake_share * steps_done / (keys + len(FINISHING_STEPS))
        return self.state

    def _target(self):
        obj = bpy.data.objects.get(self.request.object_name)
        if obj is None or obj.type != "MESH":
            raise BackendError(f"object '{self.request.object_name}' was deleted while it was being animated")
        return obj

    def _label(self) -> str:
        return f"TalkingHead {self.request.object_name}"

    def _start_bake(self) -> None:
        try:
            obj = self._target()
        except BackendError as error:
            self.message, self.state = str(error), "failed"
            return
        try:
            if self.result.basis is None:
                self._bake = bake.ShapeKeyBake(obj, self.result.local_frames, self._label())
            elif self.request.bake == properties.BAKE_TARGET_KEYS:
                basis = self.result.basis
                self._bake = bake.TargetKeysBake(obj, self.request.mapping, basis.names, basis.weights, self._label(),
                                                 bpy.context.scene.frame_start)
            else:
                basis = self.result.basis
                self._bake = bake.BasisBake(obj, basis.keys, basis.names, basis.weights, self._label(), basis.kept)
        except BackendError as error:
            self.message, self.state = str(error), "failed"
            return
        self._finishing_steps = [getattr(self, name) for name in FINISHING_STEPS]
        self.state = "baking"

    def _finish_bake(self, context) -> None:
        self._bake.finish(context.scene.frame_start, self._label())

    def _make_plot(self, context) -> None:
        self._plot_image = bake.write_plot_image(None, f"{self._label()} lip plot", self.result.plot)

    def _attach(self, context) -> None:
        try:
            obj = self._target()
        except BackendError as error:
            self.cancel()
            self.message, self.state = str(error), "failed"
            return
        scene, label = context.scene, self._label()
        mesh, action = self._bake.mesh, self._bake.action
        if bake.has_animation(obj):
            bake.remove_animation(scene, obj)
            if mesh is not None:
                mesh.name = mesh.shape_keys.name = label   # the names the removed animation had
            action.name = label
            self._plot_image.name = f"{label} lip plot"
        scores, basis = self.result.scores, self.result.basis
        columns = getattr(self._bake, "key_names", None) or (basis.names if basis is not None else ())
        baked = bake.BakedAnimation(mesh, action, self._plot_image, self.result.frame_count, tuple(columns),
                                    self.result.head_angles, self.result.flame_rotation)
        bake.attach_animation(scene, obj, baked, self.request.audio_path_as_set, scores.to_json(), label)
        self._bake = self._plot_image = None
        self.message = " | ".join(score.text for score in scores.scores)
        self.state = "finished"

    def report_line(self) -> str:
        """The finished job's info line: the generator, the lip closure guard when it was switched off, the
        scores."""
        guard = "" if self.request.lip_closure else " (lip closure guard off)"
        return f"Animated with '{self.result.generator}'{guard}: {self.message}"

    def cancel(self) -> None:
        """Stop the worker at its next check and remove a partial bake; the scene is left as it was."""
        self._cancel.set()
        if self._bake is not None:
            self._bake.discard()
            self._bake = None
        if self._plot_image is not None:
            bpy.data.images.remove(self._plot_image)
            self._plot_image = None
        if self.state in ("computing", "baking"):
            self.state = "cancelled"


# After the last shape key, one of these per tick (method names of AnimationJob), each well under a slice.
FINISHING_STEPS = ("_finish_bake", "_make_plot", "_attach")
