"""A head that is not FLAME topology against FLAME, on real speech (issue 17 item 3): closure and rest in pauses.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/retarget_character.py [--sets a,b] [--max-clips N]
                                                                      [--generator NAME] [--shared DIR]

The character is the FLAME template remeshed by vertex clustering (tests/remeshed_head.py, made here; 1,950
vertices) with the 35-key basis transferred onto it by surface binding (backend.retarget.binding). For every clip
the generator (default: the shipped default) animates the FLAME template, the solver gives the basis weights,
blinks are added as the add-on adds them (backend.retarget.life, seed 0; they do not move the lips), and the same
weights play on FLAME (what the editable bake plays) and on the character (what driving its own keys plays),
computed without Blender (tests/test_addon_retarget.py runs six such clips through the add-on itself). Lip gap on
the character: between the benchmark's lip landmarks bound to its surface, against its own rest gap (REFERENCE
§8 checks). Sets: a = Kathleen held-out prompts, b = the labelled dev speakers (unseen voices).
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from backend.audio import load_audio  # noqa: E402
from backend.flame import FlameRegions  # noqa: E402
from backend.frame_rate import MESH_FPS  # noqa: E402
from backend.generators import DEFAULT_GENERATOR, load_generator  # noqa: E402
from backend.heldout import is_heldout  # noqa: E402
from backend.mesh import load_flame_mesh  # noqa: E402
from backend.metrics import phone_checks  # noqa: E402
from backend.metrics.mtm import lip_distance_curve  # noqa: E402
from backend.retarget import life  # noqa: E402
from backend.retarget.basis import ShapeBasis  # noqa: E402
from backend.retarget.binding import bound_lip_gap, lip_landmarks_on, transfer_fields  # noqa: E402
from backend.retarget.solver import solve_clip  # noqa: E402
from backend.rig.flame_rig import FlameRig  # noqa: E402
from backend.rig.timeline import read_lab  # noqa: E402
from remeshed_head import remesh_by_clustering  # noqa: E402

DEFAULT_SHARED = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared"))


def clips(shared: Path, subset: str) -> list:
    if subset == "a":
        labels = [path for path in sorted((shared / "speech" / "kathleen").glob("*.phones.lab"))
                  if is_heldout(path.name[:-len(".phones.lab")])]
    else:
        labels = sorted((shared / "speech" / "dev").glob("*.phones.lab"))
    return [(path, path.with_name(path.name.replace(".phones.lab", ".flac"))) for path in labels]


def main() -> None:
    parser = argparse.ArgumentParser(prog="retarget_character.py")
    parser.add_argument("--sets", default="a,b")
    parser.add_argument("--max-clips", type=int, default=0, help="per set (0: all)")
    parser.add_argument("--generator", default=DEFAULT_GENERATOR)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    args = parser.parse_args()
    template = load_flame_mesh(args.shared / "flame" / "FLAME_sample.ply")
    rig = FlameRig(template.vertices, template.faces, FlameRegions.load(args.shared / "flame" / "FLAME_masks.npz").masks)
    basis = ShapeBasis.build(rig)
    vertices, faces = remesh_by_clustering(template.vertices, template.faces)
    keys = transfer_fields(basis.displacements, template.vertices, template.faces, vertices)
    landmarks = lip_landmarks_on(template.vertices, vertices, faces)
    character_rest = float(bound_lip_gap(landmarks, vertices[None])[0])
    flame_rest = phone_checks.rest_gap(template.vertices)
    generator = load_generator(args.generator, REPO / "models" / "generators")
    flame_template = template.vertices.astype(np.float32)
    print(f"character: {len(vertices)} vertices, {len(faces)} triangles, rest gap {character_rest * 1000:.2f} mm "
          f"(FLAME {flame_rest * 1000:.2f} mm); generator {args.generator}\n")
    print("| set | clips | /p b m/ | pause frames | closure FLAME | closure character | Δ | rest FLAME | "
          "rest character | Δ |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for subset in args.sets.split(","):
        on_flame, on_character = [], []
        chosen = clips(args.shared, subset)
        for labels, audio in chosen[:args.max_clips or None]:
            samples, rate = load_audio(audio)
            timeline = read_lab(labels)
            weights = solve_clip(generator.animate(samples, rate, flame_template), basis)
            blinks = life.blink_weights(len(weights), MESH_FPS, 0)
            for name in ("eyeBlink_L", "eyeBlink_R"):
                column = basis.names.index(name)
                weights[:, column] = np.maximum(weights[:, column], blinks)
            on_flame.append(phone_checks.closure_and_rest(lip_distance_curve(basis.rebuild(weights)), flame_rest,
                                                          timeline))
            frames = vertices[None].astype(np.float32) + np.einsum("tk,knd->tnd", weights, keys)
            on_character.append(phone_checks.closure_and_rest(bound_lip_gap(landmarks, frames), character_rest,
                                                              timeline))
        flame, character = phone_checks.summarise(on_flame), phone_checks.summarise(on_character)

        def cell(value):
            return "n/a" if value is None else f"{100 * value:.1f} %"

        def delta(key):
            if flame[key] is None or character[key] is None:
                return "n/a"
            return f"{100 * (character[key] - flame[key]):+.1f}"

        print(f"| {subset} | {flame['clips']} | {flame['bilabials']} | {flame['pause_frames']} | "
              f"{cell(flame['closure'])} | {cell(character['closure'])} | {delta('closure')} | "
              f"{cell(flame['rest'])} | {cell(character['rest'])} | {delta('rest')} |")


if __name__ == "__main__":
    main()
