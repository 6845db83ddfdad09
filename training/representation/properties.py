"""Emergent properties of a speech-mesh representation (REFERENCE §3), measured on held-out clips:

- offset curve: mean cosine similarity of mesh window s and speech window s + k, k = -10..+10 frames
  (it should peak at 0 and fall off);
- phoneme clustering: nearest-centroid phone accuracy of window embeddings (label = phone at the
  window centre), centroids from the *other* clips (leave one clip out); speech, mesh, and mesh
  windows classified by speech centroids (the shared space); plus a 2D PCA plot;
- intensity direction: clip-mean embeddings projected on the level-3 minus level-1 direction
  (estimated leaving the sentence out); the fraction of (subject, sentence) groups whose
  projections rise strictly with level 1 < 2 < 3, and the Spearman correlation of level and projection;
- PLRS of the ground-truth pairing vs shifted (±5, ±10 frames) and shuffled pairings.

Everything runs through the PLRS encoder protocol (`embed_speech`, `embed_mesh` on numpy arrays), so
torch checkpoints (`TorchEncoders`) and the exported ONNX models are measured by the same code.
"""

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from backend import features
from backend.atomic import atomic_path, write_json
from backend.errors import MetricError
from backend.metrics.plrs import window_similarities
from training.representation.clips import PairedClip, load_corpus_clips
from training.representation.train import load_representation

OFFSETS = np.arange(-10, 11)
PLRS_SHIFTS = (-10, -5, 5, 10)
MIN_PHONE_WINDOWS = 20


class TorchEncoders:
    """A trained Representation behind the PLRS encoder protocol (numpy in, numpy out, no grad)."""

    def __init__(self, representation):
        self.representation = representation

    @torch.no_grad()
    def embed_speech(self, fbank: np.ndarray) -> np.ndarray:
        return self.representation.speech_encoder(torch.as_tensor(fbank, dtype=torch.float32)).numpy()

    @torch.no_grad()
    def embed_mesh(self, vertices: np.ndarray) -> np.ndarray:
        windows = torch.as_tensor(vertices, dtype=torch.float32)
        return self.representation.mesh_encoder(windows.reshape(len(windows), features.WINDOW_FRAMES, -1)).numpy()


def _unit(array: np.ndarray) -> np.ndarray:
    return array / np.maximum(np.linalg.norm(array, axis=-1, keepdims=True), 1e-12)


def clip_embeddings(encoders, clip: PairedClip, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Unit speech and mesh embeddings of every stride-1 window of a clip: two (T - 4, D) arrays."""
    starts = features.window_starts(len(clip.frames), stride=1)
    speech, mesh = [], []
    for begin in range(0, len(starts), batch):
        chunk = starts[begin: begin + batch]
        speech.append(encoders.embed_speech(clip.speech_features(chunk)))
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
    """PLRS (mean over clips of non-overlapping-window cosine similarity, REFERENCE §2) of the true
    pairing, of speech shifted by ±5 / ±10 frames, and of each mesh paired with another clip's speech."""
    def score(clip: PairedClip, speech: np.ndarray, shift: int) -> float:
        starts = features.window_starts(len(clip.frames))
        starts = starts[(starts + shift >= 0) & (starts + shift + features.WINDOW_FRAMES <= len(clip.frames))]
        if len(starts) == 0:
            return np.nan
        mesh = clip.frames.reshape(len(clip.frames), -1, 3)
        return float(np.mean(window_similarities(encoders, speech, mesh, starts, starts + shift)))

    result = {"ground_truth": float(np.nanmean([score(clip, clip.speech, 0) for clip in clips]))}
    for shift in PLRS_SHIFTS:
        result[f"shift_{shift:+d}"] = float(np.nanmean([score(clip, clip.speech, shift) for clip in clips]))
    rolled = [clips[(index + len(clips) // 2) % len(clips)] for index in range(len(clips))]  # another clip
    result["shuffled"] = float(np.nanmean([score(clip, other.speech, 0) for clip, other in zip(clips, rolled)]))
    return result


def measure(encoders, clips: list[PairedClip]) -> dict:
    """Every property of one representation on `clips`."""
    embeddings = [clip_embeddings(encoders, clip) for clip in clips]
    curve = offset_curve(embeddings)
    at = dict(zip(OFFSETS.tolist(), curve.tolist()))
    return {"offset_curve": at, "peak_offset": int(OFFSETS[curve.argmax()]),
            "falloff_5": at[0] - 0.5 * (at[-5] + at[5]), "falloff_10": at[0] - 0.5 * (at[-10] + at[10]),
            "phonemes": phoneme_clustering(clips, embeddings),
            "intensity_speech": intensity_direction(clips, embeddings, 0),
            "intensity_mesh": intensity_direction(clips, embeddings, 1),
            "plrs": plrs_pairings(encoders, clips), "_embeddings": embeddings}


def measure_and_plot(checkpoints, corpus_dir, out_dir, split: str = "test") -> dict:
    """Measure every checkpoint on a held-out split; write properties.json and PNG plots to out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clips = load_corpus_clips(corpus_dir, split)
    results = {}
    for path in checkpoints:
        representation = load_representation(path)
        variant = representation.meta["variant"]
        results[variant] = measure(TorchEncoders(representation), clips)
        plot_phonemes(clips, results[variant].pop("_embeddings"), out / f"phonemes_{variant}.png", variant)
        plot_intensity(results[variant], out / f"intensity_{variant}.png", variant)
        print(summary_line(variant, results[variant]))
    plot_offset_curves(results, out / "offset_curve.png")
    report = {"split": split, "clips": len(clips), "corpus": str(corpus_dir), "variants": results}
    write_json(out / "properties.json", report, indent=1)
    return report


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


def plot_offset_curves(results: dict, path: Path) -> None:
    pyplot = _pyplot()
    figure, axis = pyplot.subplots(figsize=(6, 4))
    for variant, result in results.items():
        axis.plot(OFFSETS, [result["offset_curve"][int(k)] for k in OFFSETS], marker="o", label=variant)
    axis.axvline(0, color="0.7", linewidth=0.8)
    axis.set_xlabel("speech offset relative to mesh (frames at 30 fps)")
    axis.set_ylabel("mean cosine similarity")
    axis.set_title("Offset sensitivity on held-out SYNTHETIC corpus clips")
    axis.legend()
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=90)
    pyplot.close(figure)


def plot_phonemes(clips, embeddings, path: Path, variant: str, top: int = 6, per_phone: int = 60) -> None:
    """2D PCA of speech (squares) and mesh (circles) window embeddings of the `top` commonest phones."""
    pyplot = _pyplot()
    labels = np.concatenate([window_phones(clip) for clip in clips])
    speech = np.concatenate([speech for speech, _ in embeddings])
    mesh = np.concatenate([mesh for _, mesh in embeddings])
    common = [label for label, _ in Counter(labels[labels != ""]).most_common(top)]
    rng = np.random.default_rng(0)
    rows = np.concatenate([rng.permutation(np.flatnonzero(labels == label))[:per_phone] for label in common])
    both = np.concatenate([speech[rows], mesh[rows]])
    centred = both - both.mean(0)
    projected = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
    figure, axis = pyplot.subplots(figsize=(6, 5))
    for colour, label in enumerate(common):
        chosen = labels[rows] == label
        axis.scatter(*projected[:len(rows)][chosen].T, marker="s", s=12, color=f"C{colour}", label=label)
        axis.scatter(*projected[len(rows):][chosen].T, marker="o", s=12, color=f"C{colour}", alpha=0.5)
    axis.set_title(f"{variant}: PCA of window embeddings (squares speech, circles mesh)")
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
    figure.suptitle(f"{variant}: clip-mean features vs intensity level (held-out clips)")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=90)
    pyplot.close(figure)
