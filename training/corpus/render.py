"""Look at a clip: a small numpy z-buffer rasteriser and the `render` command's figure.

Each PNG shows the whole face and a lip close-up (orthographic, front view, Gouraud-shaded), next to
the clip's waveform with its phone labels and a marker at the frame's time.
"""

from pathlib import Path

import numpy as np

from backend.atomic import atomic_path
from backend.datasets import open_dataset
from backend.errors import BackendError

_LIGHT = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])
_SKIN = np.array([0.87, 0.72, 0.62])


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit normals: area-weighted sum of the adjacent triangle normals."""
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def rasterise(vertices: np.ndarray, faces: np.ndarray, centre, half_extent: float, size: int) -> np.ndarray:
    """Front view (looking down -z) of a mesh: (size, size, 3) float RGB in 0..1, background white.

    vertices: (V, 3) metres; faces: (F, 3); the square window is `centre` (x, y) ± half_extent metres.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    shade = 0.25 + 0.75 * np.clip(vertex_normals(vertices, faces) @ _LIGHT, 0.0, 1.0)
    scale = size / (2.0 * half_extent)
    screen_x = (vertices[:, 0] - centre[0] + half_extent) * scale - 0.5
    screen_y = (centre[1] + half_extent - vertices[:, 1]) * scale - 0.5
    depth = vertices[:, 2]
    tri_x, tri_y = screen_x[faces], screen_y[faces]
    x_min, x_max = np.floor(tri_x.min(1)).astype(int), np.ceil(tri_x.max(1)).astype(int)
    y_min, y_max = np.floor(tri_y.min(1)).astype(int), np.ceil(tri_y.max(1)).astype(int)
    visible = (x_max >= 0) & (x_min < size) & (y_max >= 0) & (y_min < size)
    span = np.maximum(x_max - x_min, y_max - y_min) + 1
    best_depth = np.full(size * size, -np.inf)
    colour = np.ones((size * size, 3))
    # Triangles are grouped by bounding-box size so each group is one padded, vectorised pass.
    for low, high in ((0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 4096)):
        group = np.flatnonzero(visible & (span > low) & (span <= high))
        if group.size == 0:
            continue
        width = min(high, int(span[group].max()))
        offsets = np.arange(width)
        pixel_x = (x_min[group, None, None] + offsets[None, None, :]).repeat(width, 1)
        pixel_y = (y_min[group, None, None] + offsets[None, :, None]).repeat(width, 2)
        ax, ay = tri_x[group, 0, None, None], tri_y[group, 0, None, None]
        bx, by = tri_x[group, 1, None, None], tri_y[group, 1, None, None]
        cx, cy = tri_x[group, 2, None, None], tri_y[group, 2, None, None]
        area = (bx - ax) * (cy - ay) - (cx - ax) * (by - ay)
        area = np.where(np.abs(area) < 1e-12, 1e-12, area)
        w1 = ((pixel_x - ax) * (cy - ay) - (cx - ax) * (pixel_y - ay)) / area
        w2 = ((bx - ax) * (pixel_y - ay) - (pixel_x - ax) * (by - ay)) / area
        w0 = 1.0 - w1 - w2
        inside = ((w0 >= -1e-6) & (w1 >= -1e-6) & (w2 >= -1e-6) & (pixel_x >= 0) & (pixel_x < size)
                  & (pixel_y >= 0) & (pixel_y < size))
        tri_index, row, column = np.nonzero(inside)
        if tri_index.size == 0:
            continue
        corners = faces[group[tri_index]]
        weights = np.stack([w0[inside], w1[inside], w2[inside]], axis=1)
        pixel_depth = np.einsum("kc,kc->k", weights, depth[corners])
        pixel_shade = np.einsum("kc,kc->k", weights, shade[corners])
        pixel = pixel_y[tri_index, row, column] * size + pixel_x[tri_index, row, column]
        order = np.lexsort((-pixel_depth, pixel))
        first = order[np.r_[True, pixel[order][1:] != pixel[order][:-1]]]
        nearer = pixel_depth[first] > best_depth[pixel[first]]
        chosen = first[nearer]
        best_depth[pixel[chosen]] = pixel_depth[chosen]
        colour[pixel[chosen]] = pixel_shade[chosen, None] * _SKIN
    return colour.reshape(size, size, 3)


def interesting_frames(timeline, n_frames: int, fps: float) -> list[int]:
    """Default frames to look at: the first /p b m/, the first /f v/ and the most open vowel, in order."""
    from backend.rig.timeline import BILABIALS, LABIODENTALS, VOWEL_OPENNESS
    centre = {}
    for start, end, label in timeline:
        frame = min(int(round((start + end) / 2 * fps)), n_frames - 1)
        if label in BILABIALS:
            centre.setdefault("bilabial", frame)
        elif label in LABIODENTALS:
            centre.setdefault("labiodental", frame)
        elif label in VOWEL_OPENNESS and VOWEL_OPENNESS[label] > centre.get("openness", (-1, 0))[0]:
            centre["openness"] = (VOWEL_OPENNESS[label], frame)
    frames = [centre[key] for key in ("bilabial", "labiodental") if key in centre]
    frames += [centre["openness"][1]] if "openness" in centre else []
    return sorted(set(frames)) or [n_frames // 2]


def render_frame(path, vertices: np.ndarray, faces: np.ndarray, audio: np.ndarray, sample_rate: int, timeline,
                 frame: int, fps: float, title: str, size: int = 360) -> None:
    """Write one PNG: whole face, lip close-up, and the waveform with phone labels and a time marker.

    vertices: (T, 5023, 3) metres; audio: (n,) float samples.
    """
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    from backend.flame import LOWER_LIP_CENTRE, MM_PER_M, UPPER_LIP_CENTRE
    mesh = vertices[frame]
    lips = 0.5 * (mesh[UPPER_LIP_CENTRE] + mesh[LOWER_LIP_CENTRE])
    head_centre = 0.5 * (mesh.min(0) + mesh.max(0))
    figure = pyplot.figure(figsize=(12, 6.2))
    grid = figure.add_gridspec(2, 2, height_ratios=[3, 1])
    for column, (centre, half, label) in enumerate((((head_centre[0], head_centre[1] - 0.02), 0.12, "face"),
                                                    ((lips[0], lips[1]), 0.035, "lips"))):
        axis = figure.add_subplot(grid[0, column])
        axis.imshow(rasterise(mesh, faces, centre, half, size))
        axis.set_title(label)
        axis.axis("off")
    gap_mm = np.linalg.norm(mesh[UPPER_LIP_CENTRE] - mesh[LOWER_LIP_CENTRE]) * MM_PER_M
    wave = figure.add_subplot(grid[1, :])
    times = np.arange(len(audio)) / sample_rate
    wave.plot(times, audio, linewidth=0.4, color="0.3")
    now = frame / fps
    for start, end, label in timeline:
        wave.axvline(start, color="0.8", linewidth=0.5)
        wave.text((start + end) / 2, 1.02, label, ha="center", va="bottom", fontsize=6,
                  transform=wave.get_xaxis_transform(), color="red" if start <= now < end else "black")
    wave.axvline(now, color="red", linewidth=1.2)
    wave.set_xlim(0, max(times[-1] if len(times) else 0, now))
    wave.set_xlabel("seconds")
    wave.set_yticks([])
    figure.suptitle(f"{title} — frame {frame} ({now:.2f} s), lip-centre gap {gap_mm:.1f} mm — SYNTHETIC animation",
                    fontsize=10)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=80)
    pyplot.close(figure)


def render_clip(corpus_dir, clip_id: str, out_dir, frames=None) -> list[Path]:
    """Render frames of a corpus clip (decoded from its stored controls) to `<out_dir>/<clip>_frame<NNNN>.png`;
    returns the paths. The corpus folder has all it needs (templates and the rig's triangles)."""
    dataset = open_dataset(corpus_dir, kind="corpus", fps=None)
    clip = dataset.load(clip_id)
    vertices = clip.vertices
    faces = dataset.faces()
    timeline = clip.timeline or []
    frames = list(frames) if frames else interesting_frames(timeline, len(vertices), clip.fps)
    bad = [frame for frame in frames if not 0 <= frame < len(vertices)]
    if bad:
        raise BackendError(f"clip {clip_id} has frames 0..{len(vertices) - 1}; asked for {bad}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for frame in frames:
        path = out / f"{clip_id}_frame{frame:04d}.png"
        render_frame(path, vertices, faces, clip.audio, clip.sample_rate, timeline, frame, clip.fps,
                     f"{clip_id} (level {clip.level}, {dataset.manifest_entry(clip_id).get('source')})")
        paths.append(path)
    return paths
