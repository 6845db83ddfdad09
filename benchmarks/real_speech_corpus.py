"""The real-speech benchmark's labelled sets as an evaluation corpus, so the paper's metrics (MTM, LVE, PLRS,
SLCC, FDD: REFERENCE §2) can score generators on real speech with `python -m training evaluate` / `compare`.

Real speech has no captured 3D face, so the ground truth is the pseudo ground truth of REFERENCE §8: the
articulatory rig driven by the clip's phone labels with the neutral style (backend.metrics.phone_checks
`label_controls`, exactly what benchmarks/real_speech.py compares against), on the FLAME_sample template the
benchmark animates. Every metric that needs 3D ground truth (MTM, LVE, FDD, the data's SLCC) is therefore
measured against that rig, not against a person's face; PLRS hears the real audio.

The folder is a corpus in the vertex store (backend/datasets/corpus.py: manifest.json, wav/, vertices_npy/
float32, templates/, and rig/ so readers can rebuild the rig for the phone checks; vertices, not controls,
because every metric row reads the ground truth again and decoding the rig would cost more than the scoring);
one split per set, named by its key (`a`, `b`, `c`, from
benchmarks/real_speech.py's own set definitions); clip ids `<set>_<utterance>`; subject = the speaker (or TTS
voice), which SLCC z-normalises within. It holds held-out and unseen-speaker speech: the manifest says
`evaluation_only`, it has no `train` split, and no training reader can use it.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/real_speech_corpus.py --out out/real_speech_corpus [--sets abc]
"""

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import soundfile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import real_speech  # noqa: E402
from backend.atomic import atomic_path, write_json, write_npy, write_npz  # noqa: E402
from backend.audio import to_int16  # noqa: E402
from backend.datasets.corpus import (MANIFEST_FILE, RIG_DIR, RIG_FACES_FILE, RIG_MASKS_FILE,  # noqa: E402
                                     TEMPLATES_DIR, VERTEX_STORE)
from backend.datasets.converted import VERTICES_DIR, WAV_DIR  # noqa: E402
from backend.flame import FlameRegions  # noqa: E402
from backend.frame_rate import MESH_FPS  # noqa: E402
from backend.generators import SAMPLE_RATE, frame_count  # noqa: E402
from backend.mesh import load_flame_mesh  # noqa: E402
from backend.metrics.phone_checks import rig_from_labels  # noqa: E402
from backend.rig.flame_rig import FlameRig  # noqa: E402

LABELLED_SETS = "abc"
_DEV_SPEAKER = re.compile(r"^cmu_arctic_us_([a-z]+)_")


def speaker_of(set_key: str, clip_name: str) -> str:
    """The subject SLCC normalises within: Kathleen for (a), the CMU speaker for (b), the voice for (c)."""
    if set_key == "a":
        return "kathleen"
    if set_key == "b":
        match = _DEV_SPEAKER.match(clip_name)
        return f"dev_{match.group(1) if match else clip_name}"     # a clip of unknown speaker is its own
    return clip_name.rsplit("_arctic_", 1)[0]


def write_corpus(out: Path, sets: str = LABELLED_SETS, shared: Path = real_speech.DEFAULT_SHARED) -> dict:
    """Write the corpus (see the module docstring) into `out`; returns the manifest."""
    unknown = sorted(set(sets) - set(LABELLED_SETS))
    if unknown or not sets:
        raise SystemExit(f"unknown or unlabelled set(s) {unknown or sets!r}; choose from {LABELLED_SETS}")
    mesh = load_flame_mesh(shared / "flame" / "FLAME_sample.ply")
    regions = FlameRegions.load(shared / "flame" / "FLAME_masks.npz")
    rig = FlameRig(mesh.vertices, mesh.faces, regions.masks)
    groups, notes = real_speech.build_sets(sets, shared)
    if notes:
        raise SystemExit("; ".join(notes.values()))
    for folder in (RIG_DIR, TEMPLATES_DIR, WAV_DIR, VERTICES_DIR):
        (out / folder).mkdir(parents=True, exist_ok=True)
    write_npy(out / RIG_DIR / RIG_FACES_FILE, np.asarray(mesh.faces, dtype=np.int32))
    write_npz(out / RIG_DIR / RIG_MASKS_FILE, **regions.masks)
    entries, subjects = [], set()
    for label, clips, _ in groups:
        key = label.split(":")[0]
        for clip in clips:
            clip_id, subject = f"{key}_{clip.name}", speaker_of(key, clip.name)
            n_frames = frame_count(len(clip.audio))
            with atomic_path(out / WAV_DIR / f"{clip_id}.wav") as temporary:
                soundfile.write(temporary, to_int16(clip.audio), SAMPLE_RATE, subtype="PCM_16", format="WAV")
            write_npy(out / VERTICES_DIR / f"{clip_id}.npy",
                      rig_from_labels(rig, clip.timeline, n_frames, MESH_FPS).astype(np.float32))
            subjects.add(subject)
            entries.append({"id": clip_id, "subject": subject, "sentence": clip.name, "split": key, "level": None,
                            "source": label, "timeline": [[start, end, phone] for start, end, phone in clip.timeline]})
    for subject in sorted(subjects):
        write_npz(out / TEMPLATES_DIR / f"{subject}.npz", vertices=np.asarray(mesh.vertices, dtype=np.float32))
    manifest = {"synthetic": True, "evaluation_only": True, "store": VERTEX_STORE, "fps": MESH_FPS,
                "sample_rate": SAMPLE_RATE, "preset": f"real-speech sets {sets}", "seed": None,
                "description": "real and unseen-voice speech (benchmarks/real_speech.py sets "
                               f"{', '.join(sets)}); the motion is the rig driven by the phone labels (REFERENCE "
                               "§8 pseudo ground truth), SYNTHETIC; held-out speech: evaluation only",
                "sets": {label.split(":")[0]: label for label, _, _ in groups}, "clips": entries}
    write_json(out / MANIFEST_FILE, manifest, indent=1, sort_keys=True)
    return manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "out" / "real_speech_corpus")
    parser.add_argument("--sets", default=LABELLED_SETS, help="labelled sets to write (default abc)")
    parser.add_argument("--shared", type=Path, default=real_speech.DEFAULT_SHARED, help="the shared data folder")
    args = parser.parse_args(argv)
    manifest = write_corpus(args.out, args.sets.replace(",", ""), args.shared)
    counts = {key: sum(entry["split"] == key for entry in manifest["clips"]) for key in manifest["sets"]}
    print(f"wrote {args.out}: " + ", ".join(f"{manifest['sets'][key]} {count} clips" for key, count in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
