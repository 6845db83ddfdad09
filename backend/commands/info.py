"""`python -m backend info FILE [--json]`: describe an audio file, a mesh, or a vertex sequence."""

import json
from pathlib import Path

import numpy as np

from backend.audio import SUPPORTED_EXTENSIONS as AUDIO_SUFFIXES
from backend.audio import audio_info
from backend.errors import BackendError, MeshError
from backend.flame import check_flame_topology
from backend.frame_rate import MESH_FPS
from backend.mesh import MESH_SUFFIXES, check_flame_mesh, load_vertex_sequence, read_mesh

SEQUENCE_SUFFIXES = (".npy",)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "info", help="describe an audio file, a mesh or a vertex sequence",
        description="Describe an audio file (" + ", ".join(AUDIO_SUFFIXES) + "), a mesh ("
                    + ", ".join(MESH_SUFFIXES) + ") or a vertex sequence (.npy), including whether it has FLAME topology.")
    parser.add_argument("file", type=Path, help="the file to describe")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.set_defaults(run=run)


def describe(path: Path) -> dict:
    """A JSON-ready description of `path`; the kind of file is chosen by its suffix."""
    suffix = path.suffix.lower()
    if suffix in MESH_SUFFIXES:
        return describe_mesh(path)
    if suffix in SEQUENCE_SUFFIXES:
        return describe_sequence(path)
    if suffix in AUDIO_SUFFIXES:
        return describe_audio(path)
    raise BackendError(f"{path}: unsupported file type '{path.suffix}'; info describes audio "
                       f"({', '.join(AUDIO_SUFFIXES)}), meshes ({', '.join(MESH_SUFFIXES)}) and vertex "
                       f"sequences ({', '.join(SEQUENCE_SUFFIXES)})")


def _flame_verdict(check, *args) -> tuple[bool, str]:
    """(is FLAME, why not) from a topology check that raises MeshError, its message without the source."""
    try:
        check(*args, source="it")
    except MeshError as error:
        return False, str(error).removeprefix("it: ")
    return True, ""


def describe_mesh(path: Path) -> dict:
    mesh = read_mesh(path)
    is_flame, reason = _flame_verdict(check_flame_mesh, mesh)
    size = np.ptp(mesh.vertices, axis=0) if len(mesh.vertices) else np.zeros(3)
    return {"kind": "mesh", "path": str(path), "vertices": len(mesh.vertices), "faces": mesh.num_faces,
            "all_triangles": mesh.face_sizes is None, "uvs": 0 if mesh.uvs is None else len(mesh.uvs),
            "bounding_box_m": [float(value) for value in size], "flame_topology": is_flame, "not_flame_because": reason}


def describe_sequence(path: Path) -> dict:
    frames = load_vertex_sequence(path, num_vertices=None)
    is_flame, reason = _flame_verdict(check_flame_topology, frames[0])
    return {"kind": "vertex_sequence", "path": str(path), "frames": frames.shape[0], "vertices": frames.shape[1],
            "fps_assumed": MESH_FPS, "duration_s": frames.shape[0] / MESH_FPS,
            "flame_topology": is_flame, "not_flame_because": reason}


def describe_audio(path: Path) -> dict:
    info = audio_info(path)
    return {"kind": "audio", "path": str(path), "duration_s": info.duration_s, "sample_rate": info.sample_rate,
            "channels": info.channels, "frames": info.frames, "format": info.format, "subtype": info.subtype}


def format_text(description: dict) -> str:
    """Human-readable lines for a describe() result."""
    kind = description["kind"]
    lines = [f"{description['path']}"]
    if kind == "audio":
        lines += [f"  audio: {description['format']} {description['subtype']}",
                  f"  duration: {description['duration_s']:.3f} s ({description['frames']} samples)",
                  f"  sample rate: {description['sample_rate']} Hz, channels: {description['channels']}"]
        return "\n".join(lines)
    flame = "yes" if description["flame_topology"] else f"no ({description['not_flame_because']})"
    if kind == "mesh":
        width, height, depth = description["bounding_box_m"]
        faces = f"{description['faces']} faces" + ("" if description["all_triangles"] else " (not all triangles)")
        uvs = f"yes ({description['uvs']} texture coordinates)" if description["uvs"] else "no"
        lines += [f"  mesh: {description['vertices']} vertices, {faces}",
                  f"  UVs: {uvs}",
                  f"  bounding box: {width:.4f} x {height:.4f} x {depth:.4f} m",
                  f"  FLAME topology: {flame}"]
    else:
        lines += [f"  vertex sequence: {description['frames']} frames of {description['vertices']} vertices",
                  f"  duration: {description['duration_s']:.3f} s at {description['fps_assumed']} fps",
                  f"  FLAME topology: {flame}"]
    return "\n".join(lines)


def run(args) -> int:
    description = describe(args.file)
    print(json.dumps(description, indent=2) if args.json else format_text(description))
    return 0
