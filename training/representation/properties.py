"""Emergent properties of a speech-mesh representation (REFERENCE §3, the paper's Fig. 5), measured on REAL
held-out speech (never trained on) with the articulatory rig driven by its phone labels as the mesh
(`real_heldout_clips`: the Kathleen held-out prompts and shared/speech/dev, as benchmarks/real_speech.py), or on
a corpus split:

- offset curve: mean cosine similarity of mesh window s and speech window s + k, k = -10..+10 frames; it should
  peak at 0 and fall monotonically with |k| (`monotonic_violations` counts the steps where it does not);
- PLRS (non-overlapping windows, REFERENCE §2) of the true pairing vs speech shifted by ±1, ±3, ±5, ±10 frames and
  vs another clip's speech (shuffled); margins true - shuffled and true - shifted(±3) (targets 0.2 and 0.1);
- phoneme clustering: nearest-centroid phone accuracy of window embeddings (label = phone at the window centre),
  centroids from the *other* clips (leave one clip out); speech, mesh, and mesh windows classified by speech
  centroids (the shared space), against the majority-class rate; plus a 2D t-SNE picture (our own exact t-SNE,
  `tsne`: scikit-learn is not installed here);
- intensity direction: clip-mean embeddings projected on the level-3 minus level-1 direction (estimated leaving
  the group out); the fraction of groups rising strictly with level 1 < 2 < 3 and the Spearman correlation of
  level and projection. On real speech the levels are made as the corpus makes them (training.corpus.intensity:
  the recording's effort transform for the speech, the articulation gain for the rig), so they are semi-synthetic.

Everything runs through the PLRS encoder protocol (`embed_speech`, `embed_mesh` on numpy arrays, `speech_input`),
so torch checkpoints (`TorchEncoders`) and the exported ONNX models are measured by the same code.
"""

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from backend import features
from backend.atomic import atomic_path, write_json
from backend.errors import MetricError
from backend.metrics.plrs import FBANK_INPUT, speech_input_of, window_similarities
from training.representation.clips import PairedClip, load_corpus_clips, speech_rate
from training.representation.train import load_representation

OFFSETS = np.arange(-10, 11)
PLRS_SHIFTS = (-10, -5, -3, -1, 1, 3, 5, 10)
MIN_PHONE_WINDOWS = 20
INTENSITY_CLIPS = 30          # real clips given the three intensity levels
TARGETS = {"margin_shuffled": 0.2, "margin_shift_3": 0.1}


class TorchEncoders:
    """A trained Representation behind the PLRS encoder protocol (numpy in, numpy out, no grad)."""

    def __init__(self, representation):
        self.representation = representation
        self.speech_input = getattr(representation.speech_encoder, "input_name", FBANK_INPUT)

    @torch.no_grad()
    def embed_speech(self, speech: np.ndarray) -> np.ndarray:
        return self.representation.speech_encoder(torch.as_tensor(speech, dtype=torch.float32)).numpy()

    @torch.no_grad()
    def embed_mesh(self, vertices: np.ndarray) -> np.ndarray:
        windows = torch.as_tensor(vertices, dtype=torch.float32)
        return self.representation.mesh_encoder(windows.reshape(len(windows), features.WINDOW_FRAMES, -1)).numpy()


def _unit(array: np.ndarray) -> np.ndarray:
    return array / np.maximum(np.linalg.norm(array, axis=-1, keepdims=True), 1e-12)


def clip_embeddings(encoders, clip: PairedClip, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Unit speech and mesh embeddings of every stride-1 window of a clip: two (T - 4, D) arrays."""
    starts = features.window_starts(len(clip.frames), stride=1)
    kind = speech_input_of(encoders)
    speech, mesh = [], []
    for begin in range(0, len(starts), batch):
        chunk = starts[begin: begin + batch]
        speech.append(encoders.embed_speech(clip.speech_features(chunk, kind)))
        mesh.append(encoders.embed_mesh(clip.frame_windows(chunk)))
    return _unit(np.concatenate(speech)), _unit(np.concatenate(mesh))


def offset_curve(embeddings: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(21,) mean over clips of the mean cosine similarity of mesh window s and speech window s + k."""
    curve = np.zeros(len(OFFSETS))
    for position, offset in enumerate(OFFSETS):
        per_clip = []
        for speech, mesh in embeddings:
            count = len(mesh) - abs(offset)
            if count > 0:
                mesh_part = mesh[max(0, -offset): max(0, -offset) + count]
                speech_part = speech[max(0, offset): max(0, offset) + count]
                per_clip.append(np.mean(np.sum(mesh_part * speech_part, axis=1)))
        curve[position] = np.mean(per_clip)
    return curve


def window_phones(clip: PairedClip) -> np.ndarray:
    """The phone label at the centre of every stride-1 window ('' where the timeline has none)."""
    centres = (features.window_starts(len(clip.frames), stride=1) + features.WINDOW_FRAMES / 2) / clip.fps
    labels = np.full(len(centres), "", dtype=object)
    for start, end, label in clip.timeline or ():
        labels[(centres >= start) & (centres < end)] = label
    return labels


def nearest_centroid_accuracy(queries: np.ndarray, references: np.ndarray, labels: np.ndarray,
                              groups: np.ndarray) -> float:
    """Accuracy of labelling each query row by the nearest (cosine) label centroid of `references`,
    with centroids computed from the rows of the other groups (clips) only."""
    classes = np.unique(labels)
    one_hot = (labels[:, None] == classes[None, :]).astype(np.float64)
    total_sums, total_counts = one_hot.T @ references, one_hot.sum(0)
    correct = 0
    for group in np.unique(groups):
        rows = groups == group
        sums = total_sums - one_hot[rows].T @ references[rows]
        counts = total_counts - one_hot[rows].sum(0)
        centroids = _unit(sums / np.maximum(counts, 1)[:, None])
        scores = queries[rows] @ centroids.T
        scores[:, counts == 0] = -np.inf
        correct += np.sum(classes[scores.argmax(1)] == labels[rows])
    return float(correct / len(labels))


def phoneme_clustering(clips, embeddings) -> dict:
    """Nearest-centroid phone accuracy (speech, mesh, mesh-by-speech-centroids) over phones with at
    least MIN_PHONE_WINDOWS windows, with the majority-class rate as the chance level."""
    labels = np.concatenate([window_phones(clip) for clip in clips])
    groups = np.concatenate([np.full(len(speech), index) for index, (speech, _) in enumerate(embeddings)])
    speech = np.concatenate([speech for speech, _ in embeddings])
    mesh = np.concatenate([mesh for _, mesh in embeddings])
    counts = Counter(labels[labels != ""])
    kept = np.isin(labels, [label for label, count in counts.items() if count >= MIN_PHONE_WINDOWS])
    if kept.sum() == 0:
        raise MetricError(f"no phone has {MIN_PHONE_WINDOWS} windows in these clips; phoneme clustering "
                          "needs clips with timelines")
    labels, groups, speech, mesh = labels[kept], groups[kept], speech[kept], mesh[kept]
    return {"phones": int(len(np.unique(labels))), "windows": int(kept.sum()),
            "chance_majority": float(max(Counter(labels).values()) / len(labels)),
            "speech_accuracy": nearest_centroid_accuracy(speech, speech, labels, groups),
            "mesh_accuracy": nearest_centroid_accuracy(mesh, mesh, labels, groups),
            "mesh_by_speech_centroids_accuracy": nearest_centroid_accuracy(mesh, speech, labels, groups)}


def intensity_direction(clips, embeddings, modality: int) -> dict:
    """Monotonicity of clip-mean embeddings (modality 0 speech, 1 mesh) along the level direction."""
    means = np.stack([embedding[modality].mean(0) for embedding in embeddings])
    levels = np.array([clip.level for clip in clips])
    keys = np.array([f"{clip.subject}/{clip.sentence}" for clip in clips])
    projections, monotonic, groups = {}, 0, 0
    for key in np.unique(keys):
        rows = keys == key
        if sorted(levels[rows]) != [1, 2, 3]:
            continue
        others = ~rows
        direction = _unit(means[others & (levels == 3)].mean(0) - means[others & (levels == 1)].mean(0))
        by_level = {int(level): float(means[rows & (levels == level)][0] @ direction) for level in (1, 2, 3)}
        projections[str(key)] = by_level
        monotonic += by_level[1] < by_level[2] < by_level[3]
        groups += 1
    if groups == 0:
        raise MetricError("intensity direction needs (subject, sentence) groups with levels 1, 2 and 3")
    centred = [(level, value - np.mean(list(group.values())))
               for group in projections.values() for level, value in group.items()]
    rho = spearmanr([level for level, _ in centred], [value for _, value in centred]).statistic
    return {"groups": groups, "monotonic_fraction": monotonic / groups, "spearman": float(rho),
            "projections": projections}


def plrs_pairings(encoders, clips: list[PairedClip]) -> dict:
    """PLRS (mean over clips of non-overlapping-window cosine similarity, REFERENCE §2) of the true pairing, of
    speech shifted by each of PLRS_SHIFTS frames, and of each mesh paired with another clip's speech; plus the
    margins true - shuffled and true - shifted (mean of ±3)."""
    kind = speech_input_of(encoders)

    def track(clip: PairedClip) -> np.ndarray:
        return clip.speech if kind == FBANK_INPUT else clip.frontend

    def score(clip: PairedClip, speech: np.ndarray, shift: int, speech_frames: int) -> float:
        frames = min(len(clip.frames), speech_frames)
        starts = features.window_starts(frames)
        starts = starts[(starts + shift >= 0) & (starts + shift + features.WINDOW_FRAMES <= frames)]
        if len(starts) == 0:
            return np.nan
        mesh = clip.frames.reshape(len(clip.frames), -1, 3)
        return float(np.mean(window_similarities(encoders, speech, mesh, starts, starts + shift)))

    result = {"ground_truth": float(np.nanmean([score(clip, track(clip), 0, len(clip.frames)) for clip in clips]))}
    for shift in PLRS_SHIFTS:
        result[f"shift_{shift:+d}"] = float(np.nanmean([score(clip, track(clip), shift, len(clip.frames))
                                                        for clip in clips]))
    rolled = [clips[(index + len(clips) // 2) % len(clips)] for index in range(len(clips))]  # another clip
    result["shuffled"] = float(np.nanmean([score(clip, track(other), 0, len(other.frames))
                                           for clip, other in zip(clips, rolled)]))
    result["margin_shuffled"] = result["ground_truth"] - result["shuffled"]
    result["margin_shift_3"] = result["ground_truth"] - 0.5 * (result["shift_-3"] + result["shift_+3"])
    return result


def monotonic_violations(curve: np.ndarray) -> int:
    """Steps k -> k + 1 (k = 0..9, on both sides of 0) where the offset curve rises as |offset| grows."""
    centre = len(curve) // 2
    right, left = curve[centre:], curve[centre::-1]
    return int(np.sum(np.diff(right) > 0) + np.sum(np.diff(left) > 0))


def measure(encoders, clips: list[PairedClip], intensity_clips: list[PairedClip] | None = None) -> dict:
    """Every property of one representation on `clips` (intensity on `intensity_clips`, default `clips`)."""
    embeddings = [clip_embeddings(encoders, clip) for clip in clips]
    curve = offset_curve(embeddings)
    at = dict(zip(OFFSETS.tolist(), curve.tolist()))
    level_clips = clips if intensity_clips is None else intensity_clips
    level_embeddings = embeddings if intensity_clips is None else [clip_embeddings(encoders, clip)
                                                                   for clip in intensity_clips]
    plrs = plrs_pairings(encoders, clips)
    return {"offset_curve": at, "peak_offset": int(OFFSETS[curve.argmax()]),
            "monotonic_violations": monotonic_violations(curve),
            "falloff_5": at[0] - 0.5 * (at[-5] + at[5]), "falloff_10": at[0] - 0.5 * (at[-10] + at[10]),
            "phonemes": phoneme_clustering(clips, embeddings),
            "intensity_speech": intensity_direction(level_clips, level_embeddings, 0),
            "intensity_mesh": intensity_direction(level_clips, level_embeddings, 1),
            "plrs": plrs, "targets_met": {name: bool(plrs[name] >= target) for name, target in TARGETS.items()},
            "_embeddings": embeddings}


def real_heldout_clips(shared, feature_cache, intensity: bool = False) -> list[PairedClip]:
    """The real-speech benchmark's sets (a) Kathleen held-out and (b) shared/speech/dev as paired clips: speech
    at 19.2 kHz and its front-end rows, and as the mesh the articulatory rig on FLAME_sample driven by the phone
    labels (neutral style), one frame per 1/30 s of audio.

    intensity: instead, the first INTENSITY_CLIPS held-out clips at levels 1, 2, 3 (speech through the corpus's
    recorded-effort transform, the rig at that level's articulation gain)."""
    from backend.flame import FlameRegions
    from backend.frame_rate import MESH_FPS
    from backend.heldout import dev_utterances, heldout_utterances
    from backend.mesh import load_flame_mesh
    from backend.metrics.evaluation import audio_frame_count
    from backend.rig.coarticulation import ArticulationStyle, control_curves
    from backend.rig.flame_rig import FlameRig
    from backend.speech_frontend import features_at_fps
    from training.corpus.intensity import ARTICULATION_GAIN, LEVELS, recorded_effort
    from backend.audio import resample
    shared = Path(shared)
    mesh = load_flame_mesh(shared / "flame" / "FLAME_sample.ply")
    rig = FlameRig(mesh.vertices, mesh.faces, FlameRegions.load(shared / "flame" / "FLAME_masks.npz").masks)
    if intensity:
        versions = [(item, "kathleen", level) for item in heldout_utterances(shared)[:INTENSITY_CLIPS]
                    for level in LEVELS]
    else:
        versions = ([(item, "kathleen", None) for item in heldout_utterances(shared)]
                    + [(item, "dev", None) for item in dev_utterances(shared)])
    clips = []
    for item, speaker, level in versions:
        audio = item.audio if level is None else recorded_effort(item.audio, level).astype(np.float32)
        frames = audio_frame_count(len(audio), item.rate, MESH_FPS)
        style = ArticulationStyle(gain=1.0 if level is None else ARTICULATION_GAIN[level], blink_rate_hz=1e-6)
        controls = control_curves(item.timeline, frames, MESH_FPS, rig, style, np.zeros(frames),
                                  np.random.default_rng(0))
        vertices = rig.animate(controls).reshape(frames, -1).astype(np.float32)
        rows = features_at_fps(feature_cache.features(audio, item.rate), frames, MESH_FPS)
        clips.append(PairedClip(item.name if level is None else f"{item.name}@{level}",
                                resample(audio, item.rate, speech_rate(MESH_FPS)).astype(np.float32), vertices,
                                float(MESH_FPS), speaker, item.name, level, item.timeline, mesh.vertices, rows))
    return clips


def measure_and_plot(checkpoints, out_dir, corpus_dir=None, split: str = "test", shared=None,
                     feature_cache=None) -> dict:
    """Measure every checkpoint on real held-out speech (`shared`: the shared folder) or on a corpus split
    (`corpus_dir`); write properties.json, properties.md and PNG plots (the paper's Fig. 5) to out_dir."""
    from backend.speech_feature_cache import SpeechFeatureCache
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = SpeechFeatureCache(feature_cache or out / "speech_features")
    if shared is not None:
        clips, intensity_clips = real_heldout_clips(shared, cache), real_heldout_clips(shared, cache, intensity=True)
        source = f"real held-out speech ({shared}/speech: Kathleen held-out prompts + dev), rig from labels as mesh"
    else:
        clips, intensity_clips = load_corpus_clips(corpus_dir, split, feature_cache=cache), None
        source = f"corpus {corpus_dir} split {split}"
    results = {}
    for path in checkpoints:
        representation = load_representation(path)
        name = representation.meta.get("name", representation.meta["variant"])
        results[name] = measure(TorchEncoders(representation), clips, intensity_clips)
        results[name]["variant"] = representation.meta["variant"]
        results[name]["speech_input"] = representation.config.model.speech_input
        plot_phonemes(clips, results[name].pop("_embeddings"), out / f"phonemes_{name}.png", name)
        plot_intensity(results[name], out / f"intensity_{name}.png", name)
        print(summary_line(name, results[name]))
    plot_offset_curves(results, out / "offset_curve.png", source)
    report = {"source": source, "clips": len(clips), "variants": results}
    write_json(out / "properties.json", report, indent=1)
    from backend.atomic import write_text
    write_text(out / "properties.md", property_table(report))
    return report


def property_table(report: dict) -> str:
    """The properties of every measured representation as one markdown table."""
    names = list(report["variants"])
    rows = [f"Properties on {report['source']} ({report['clips']} clips).", "",
            "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]

    def row(label, cell):
        rows.append(f"| {label} | " + " | ".join(cell(report["variants"][name]) for name in names) + " |")

    row("speech side", lambda r: r["speech_input"])
    row("offset peak (frames) / monotonic violations over ±10", lambda r: f"{r['peak_offset']:+d} / "
        f"{r['monotonic_violations']}")
    row("cos at 0 / ±3 / ±5 / ±10", lambda r: " / ".join(
        f"{(r['offset_curve'][k] + r['offset_curve'][-k]) / 2:.3f}" if k else f"{r['offset_curve'][0]:.3f}"
        for k in (0, 3, 5, 10)))
    row("PLRS true / shifted ±1 / ±3 / ±5 / shuffled", lambda r: " / ".join(
        f"{r['plrs'][key]:.3f}" if key in r["plrs"] else
        f"{(r['plrs'][f'shift_-{key}'] + r['plrs'][f'shift_+{key}']) / 2:.3f}"
        for key in ("ground_truth", "1", "3", "5", "shuffled")))
    row("margin true − shuffled (target ≥ 0.2)", lambda r: f"**{r['plrs']['margin_shuffled']:.3f}**"
        if r["plrs"]["margin_shuffled"] >= 0.2 else f"{r['plrs']['margin_shuffled']:.3f} (missed)")
    row("margin true − shifted ±3 (target ≥ 0.1)", lambda r: f"**{r['plrs']['margin_shift_3']:.3f}**"
        if r["plrs"]["margin_shift_3"] >= 0.1 else f"{r['plrs']['margin_shift_3']:.3f} (missed)")
    row("phone acc. speech / mesh / mesh→speech centroids (chance)", lambda r: (
        f"{r['phonemes']['speech_accuracy']:.3f} / {r['phonemes']['mesh_accuracy']:.3f} / "
        f"{r['phonemes']['mesh_by_speech_centroids_accuracy']:.3f} ({r['phonemes']['chance_majority']:.3f}, "
        f"{r['phonemes']['phones']} phones)"))
    row("intensity monotonic groups speech / mesh", lambda r: f"{r['intensity_speech']['monotonic_fraction']:.2f} / "
        f"{r['intensity_mesh']['monotonic_fraction']:.2f}")
    row("intensity Spearman speech / mesh", lambda r: f"{r['intensity_speech']['spearman']:.2f} / "
        f"{r['intensity_mesh']['spearman']:.2f}")
    return "\n".join(rows) + "\n"


def summary_line(variant: str, result: dict) -> str:
    phones, plrs = result["phonemes"], result["plrs"]
    return (f"{variant}: offset peak {result['peak_offset']:+d}, fall-off@5 {result['falloff_5']:.3f}, "
            f"@10 {result['falloff_10']:.3f}; phone acc speech {phones['speech_accuracy']:.3f} mesh "
            f"{phones['mesh_accuracy']:.3f} cross {phones['mesh_by_speech_centroids_accuracy']:.3f} "
            f"(chance {phones['chance_majority']:.3f}); intensity monotonic speech "
            f"{result['intensity_speech']['monotonic_fraction']:.2f} mesh {result['intensity_mesh']['monotonic_fraction']:.2f}; "
            f"PLRS gt {plrs['ground_truth']:.3f} shuffled {plrs['shuffled']:.3f}")


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    return pyplot


def plot_offset_curves(results: dict, path: Path, source: str = "") -> None:
    pyplot = _pyplot()
    figure, axis = pyplot.subplots(figsize=(6, 4))
    for variant, result in results.items():
        axis.plot(OFFSETS, [result["offset_curve"][int(k)] for k in OFFSETS], marker="o", label=variant)
    axis.axvline(0, color="0.7", linewidth=0.8)
    axis.set_xlabel("speech offset relative to mesh (frames at 30 fps)")
    axis.set_ylabel("mean cosine similarity")
    axis.set_title("Offset sensitivity (cosine vs audio-mesh offset)")
    figure.text(0.01, 0.01, source[:110], fontsize=6)
    axis.legend()
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=90)
    pyplot.close(figure)


def tsne(points: np.ndarray, perplexity: float = 30.0, iterations: int = 400, seed: int = 0) -> np.ndarray:
    """(N, D) -> (N, 2): exact t-SNE (van der Maaten & Hinton 2008) in numpy: Gaussian affinities at the given
    perplexity (binary search per point), Student-t map, gradient descent with momentum and early exaggeration
    (x4 for the first 100 iterations). For the few hundred points of a picture; O(N^2) memory."""
    points = np.asarray(points, dtype=np.float64)
    count = len(points)
    squared = np.square(points[:, None, :] - points[None, :, :]).sum(-1)
    affinities = np.zeros((count, count))
    target = np.log(min(perplexity, (count - 1) / 3.0))
    for row in range(count):
        distances = np.delete(squared[row], row)
        low, high, beta = 0.0, np.inf, 1.0
        for _ in range(60):
            weights = np.exp(-(distances - distances.min()) * beta)
            total = weights.sum()
            entropy = np.log(total) + beta * np.sum((distances - distances.min()) * weights) / total
            if abs(entropy - target) < 1e-5:
                break
            if entropy > target:
                low, beta = beta, beta * 2 if high == np.inf else (beta + high) / 2
            else:
                high, beta = beta, (beta + low) / 2
        affinities[row, np.arange(count) != row] = weights / total
    joint = np.maximum((affinities + affinities.T) / (2 * count), 1e-12)
    layout = np.random.default_rng(seed).normal(scale=1e-4, size=(count, 2))
    velocity = np.zeros_like(layout)
    for step in range(iterations):
        exaggeration = 4.0 if step < 100 else 1.0
        difference = layout[:, None, :] - layout[None, :, :]
        kernel = 1.0 / (1.0 + np.square(difference).sum(-1))
        np.fill_diagonal(kernel, 0.0)
        low_dim = np.maximum(kernel / kernel.sum(), 1e-12)
        gradient = 4.0 * np.einsum("ij,ijk->ik", (exaggeration * joint - low_dim) * kernel, difference)
        velocity = (0.5 if step < 100 else 0.8) * velocity - 100.0 * gradient
        layout = layout + velocity
    return layout - layout.mean(0)


def plot_phonemes(clips, embeddings, path: Path, variant: str, top: int = 6, per_phone: int = 40) -> None:
    """t-SNE (`tsne`) of speech (squares) and mesh (circles) window embeddings of the `top` commonest phones."""
    pyplot = _pyplot()
    labels = np.concatenate([window_phones(clip) for clip in clips])
    speech = np.concatenate([speech for speech, _ in embeddings])
    mesh = np.concatenate([mesh for _, mesh in embeddings])
    common = [label for label, _ in Counter(labels[(labels != "") & (labels != "SIL")]).most_common(top)]
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.permutation(np.flatnonzero(labels == label))[:per_phone] for label in common])
    projected = tsne(np.concatenate([speech[rows], mesh[rows]]))
    figure, axis = pyplot.subplots(figsize=(6, 5))
    for colour, label in enumerate(common):
        chosen = labels[rows] == label
        axis.scatter(*projected[:len(rows)][chosen].T, marker="s", s=12, color=f"C{colour}", label=label)
        axis.scatter(*projected[len(rows):][chosen].T, marker="o", s=12, color=f"C{colour}", alpha=0.5)
    axis.set_title(f"{variant}: t-SNE of window embeddings (squares speech, circles mesh)", fontsize=9)
    axis.legend(title="phone", fontsize=7)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=90)
    pyplot.close(figure)


def plot_intensity(result: dict, path: Path, variant: str) -> None:
    pyplot = _pyplot()
    figure, axes = pyplot.subplots(1, 2, figsize=(9, 4), sharey=False)
    for axis, key in zip(axes, ("intensity_speech", "intensity_mesh")):
        for group in result[key]["projections"].values():
            values = [group[level] for level in (1, 2, 3)]
            axis.plot([1, 2, 3], np.array(values) - np.mean(values), color="0.5", alpha=0.5, marker="o")
        axis.set_xticks([1, 2, 3])
        axis.set_xlabel("intensity level")
        axis.set_title(f"{key.split('_')[1]}: monotonic {result[key]['monotonic_fraction']:.2f}, "
                       f"rho {result[key]['spearman']:.2f}")
    axes[0].set_ylabel("projection on level direction (centred per sentence)")
    figure.suptitle(f"{variant}: clip-mean features vs intensity level (held-out clips)", fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=90)
    pyplot.close(figure)
