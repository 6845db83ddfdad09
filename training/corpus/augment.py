"""Seeded training-time audio augmentation: a plan per (seed, epoch, clip), applied to audio, timeline and motion.

Applied at TRAINING time, not at build time: the corpus on disk stays one compact clean copy of each clip
(hours of motion stored once, not once per condition), every epoch hears a fresh variant, and the speech
front end's features are cached per (clip samples, `AugmentPlan.id`) by backend/speech_feature_cache.py, so a
variant seen again (`plan_for(..., variants=K)` cycles K per clip) costs a cache read. The signal processing
lives in backend/audio_conditions.py (numpy/scipy, shared with the real-speech benchmark); this module only
samples and chains it.

    plan = plan_for(seed, epoch, clip_index)          deterministic AugmentPlan; plan.id is the cache key
    audio = apply_plan(audio, plan, babble=[...])     16 kHz float32 (n,) -> float32 (n,) (n / tempo for tempo)
    audio, timeline, motion = augment_clip(audio, timeline, motion, plan, babble=[...])
    timeline, motion = augment_motion(timeline, motion, plan, len(audio))   the same without the audio
    features = SpeechFeatureCache(root).features(audio, 16000, plan.id, augment=lambda a: apply_plan(a, plan, ...))

Order of the chain (the order in which sound meets them): tempo (the talker speaks faster) -> pitch and
formant warp (another voice) -> room reverb -> noise (other sources in the room) -> gain with clipping (the
recorder) -> telephone band (the line) -> lossy codec (the file). Only tempo changes the motion: the timeline
and the 30 fps frames are time-scaled by 1 / tempo, and the frame count is `frame_count(len(new audio))`.

Babble is other clips' speech passed in by the caller; for the feature cache to stay right the caller must
choose those clips from the plan alone (`babble_sources(plan, pool_size, clip_index)` does that).

Ranges, checked with the speech front end (`benchmarks/augment.py --clips 48`: hama 1.6 on 48 held-in Kathleen
clips, 146 s, each augmentation alone; "tok err" = edit distance of the greedy CTC phone sequence from the clean
clip's, over its length; "bilabial" = share of the 103 labelled /p b m/ with a bilabial argmax frame from 30 ms
before to 60 ms after, clean 0.93):
    tempo 0.8 / 1.25            tok err 0.05 / 0.09   bilabial 0.92 / 0.91
    pitch -4 / +4 semitones     0.08 / 0.06           0.93 / 0.90
    formant 0.85 / 1.15         0.05 / 0.04           0.94 / 0.92
    gain -20 / +20 dB (clips)   0.00 / 0.03           0.93 / 0.94
    mp3 24 kbps, Opus 8 kbps    0.10, 0.16            0.84, 0.83
    telephone                   0.16                  0.82
    reverb RT60 0.5 / 0.7 / 1 s 0.22 / 0.26 / 0.33    0.78 / 0.71 / 0.67
    white / pink noise  0 dB    0.60 / 0.52           0.36 / 0.43
                        5 dB    0.37 / 0.29           0.67 / 0.76
                       10 dB    0.21 / 0.16           0.82 / 0.89
    babble 0 / 5 / 10 / 15 dB   0.84 / 0.57 / 0.28 / 0.13   0.10 / 0.39 / 0.67 / 0.83
    brown noise 0 dB            0.03                  0.94
Kept where tok err <= 0.3 and bilabial >= 0.7 (3/4 of clean). So sample_plan draws white and pink noise from
10 dB, babble from 15 dB, brown from 0 dB (SAMPLED_SNR_FLOOR_DB) and RT60 up to 0.7 s (SAMPLED_REVERB_RANGE);
every other range is the issue's in full, and a plan still accepts the full ranges. Sampled plans (mixtures,
plan_for(1, k < 8, clip)) average tok err 0.10, bilabial 0.86.
"""

from dataclasses import dataclass

import numpy as np

from backend import audio_conditions
from backend.errors import AudioError
from backend.frame_rate import resample_frames
from backend.generators import frame_count

SAMPLE_RATE = 16000
# What a plan may ask for (the ranges) ...
TEMPO_RANGE = (0.8, 1.25)          # drawn log-uniformly: as many slower clips as faster ones
PITCH_RANGE = (-4.0, 4.0)          # semitones
FORMANT_RANGE = (0.85, 1.15)       # formant frequency factor (vocal tract length +-15 %)
SNR_RANGE = (0.0, 30.0)            # dB over the whole clip
REVERB_RANGE = (0.2, 1.0)          # RT60 in seconds
GAIN_RANGE = (-20.0, 20.0)         # dB, clipped at full scale
NOISE_KINDS = ("white", "pink", "brown", "babble")
# ... and what sample_plan draws: narrower where the front-end check (module docstring) lost the phones.
SAMPLED_SNR_FLOOR_DB = {"white": 10.0, "pink": 10.0, "brown": 0.0, "babble": 15.0}
SAMPLED_REVERB_RANGE = (0.2, 0.7)
CODECS = {"opus8": ("opus", 8.0), "opus16": ("opus", 16.0), "opus32": ("opus", 32.0), "mp3_24": ("mp3", 24.0),
          "mp3_40": ("mp3", 40.0)}
BABBLE_TALKERS = 4
# How often each augmentation is drawn in a clip that is augmented at all (sample_plan's `probability`).
RATES = {"tempo": 0.5, "pitch": 0.4, "formant": 0.4, "noise": 0.5, "reverb": 0.3, "telephone": 0.1,
         "gain": 0.4, "codec": 0.15}


@dataclass(frozen=True)
class AugmentPlan:
    """One clip's augmentation; the defaults are the clean clip. Values are quantised by sample_plan."""

    tempo: float = 1.0                    # speech rate factor; > 1 is faster and shorter
    pitch_semitones: float = 0.0
    formant_warp: float = 1.0             # formant frequencies x this
    noise_snr_db: float | None = None     # None: no added noise
    noise_kind: str = "pink"              # NOISE_KINDS
    reverb_rt60_s: float | None = None    # None: dry
    telephone: bool = False
    gain_db: float = 0.0
    codec: str | None = None              # a CODECS key, None: uncompressed
    seed: int = 0                         # noise, babble and room draws

    def __post_init__(self):
        checks = [(TEMPO_RANGE, self.tempo, "tempo"), (PITCH_RANGE, self.pitch_semitones, "pitch_semitones"),
                  (FORMANT_RANGE, self.formant_warp, "formant_warp"), (GAIN_RANGE, self.gain_db, "gain_db")]
        if self.noise_snr_db is not None:
            checks.append((SNR_RANGE, self.noise_snr_db, "noise_snr_db"))
        if self.reverb_rt60_s is not None:
            checks.append((REVERB_RANGE, self.reverb_rt60_s, "reverb_rt60_s"))
        for (low, high), value, name in checks:
            if not low <= value <= high:
                raise AudioError(f"augmentation {name} = {value} is out of range; expected {low:g} to {high:g}")
        if self.noise_kind not in NOISE_KINDS:
            raise AudioError(f"unknown noise kind {self.noise_kind!r}; expected one of {', '.join(NOISE_KINDS)}")
        if self.codec is not None and self.codec not in CODECS:
            raise AudioError(f"unknown codec {self.codec!r}; expected one of {', '.join(CODECS)} or None")

    @property
    def id(self) -> str:
        """A short stable name of what the plan does, e.g. "t1.1_p-2.5_n12pink_s77"; "" for the clean plan.

        The seed is part of it only when a seeded step (noise, babble, reverb) is; it keys the feature cache.
        """
        parts = []
        if self.tempo != 1.0:
            parts.append(f"t{self.tempo:g}")
        if self.pitch_semitones != 0.0:
            parts.append(f"p{self.pitch_semitones:+g}")
        if self.formant_warp != 1.0:
            parts.append(f"f{self.formant_warp:g}")
        if self.reverb_rt60_s is not None:
            parts.append(f"r{self.reverb_rt60_s:g}")
        if self.noise_snr_db is not None:
            parts.append(f"n{self.noise_snr_db:g}{self.noise_kind}")
        if self.gain_db != 0.0:
            parts.append(f"g{self.gain_db:+g}")
        if self.telephone:
            parts.append("tel")
        if self.codec is not None:
            parts.append(self.codec)
        if self.noise_snr_db is not None or self.reverb_rt60_s is not None:
            parts.append(f"s{self.seed}")
        return "_".join(parts)


CLEAN = AugmentPlan()


def sample_plan(rng: np.random.Generator, probability: float = 0.7, babble: bool = True) -> AugmentPlan:
    """A random plan: clean with chance 1 - `probability`; else each augmentation with its RATES chance (at
    least one), drawn from the sampled ranges (SNR from SAMPLED_SNR_FLOOR_DB of the kind to 30 dB, RT60 in
    SAMPLED_REVERB_RANGE, the rest over the plan's ranges). Values are quantised (tempo 0.01, pitch 0.1
    semitone, warp 0.01, SNR and gain 0.5 dB, RT60 0.05 s) so that ids stay short and equal ids mean equal
    plans. `babble=False` never asks for babble (a caller without other clips' audio)."""
    if not 0.0 <= probability <= 1.0:
        raise AudioError(f"augmentation probability {probability} is out of range; expected 0 to 1")
    augmented = rng.random() < probability
    drawn = {name: rng.random() < rate for name, rate in RATES.items()}
    if augmented and not any(drawn.values()):
        drawn[list(RATES)[int(rng.integers(len(RATES)))]] = True
    kinds = NOISE_KINDS if babble else tuple(kind for kind in NOISE_KINDS if kind != "babble")
    noise_kind = kinds[int(rng.integers(len(kinds)))]
    values = {
        "tempo": round(float(np.exp(rng.uniform(*np.log(TEMPO_RANGE)))), 2),
        "pitch_semitones": round(float(rng.uniform(*PITCH_RANGE)), 1),
        "formant_warp": round(float(rng.uniform(*FORMANT_RANGE)), 2),
        "noise_snr_db": round(float(rng.uniform(SAMPLED_SNR_FLOOR_DB[noise_kind], SNR_RANGE[1])) * 2) / 2,
        "reverb_rt60_s": round(float(rng.uniform(*SAMPLED_REVERB_RANGE)) * 20) / 20,
        "gain_db": round(float(rng.uniform(*GAIN_RANGE)) * 2) / 2,
        "codec": list(CODECS)[int(rng.integers(len(CODECS)))],
        "seed": int(rng.integers(2 ** 31)),
    }
    if not augmented:
        return CLEAN
    return AugmentPlan(
        tempo=values["tempo"] if drawn["tempo"] else 1.0,
        pitch_semitones=values["pitch_semitones"] if drawn["pitch"] else 0.0,
        formant_warp=values["formant_warp"] if drawn["formant"] else 1.0,
        noise_snr_db=values["noise_snr_db"] if drawn["noise"] else None,
        noise_kind=noise_kind if drawn["noise"] else CLEAN.noise_kind,
        reverb_rt60_s=values["reverb_rt60_s"] if drawn["reverb"] else None,
        telephone=drawn["telephone"],
        gain_db=values["gain_db"] if drawn["gain"] else 0.0,
        codec=values["codec"] if drawn["codec"] else None,
        seed=values["seed"] if drawn["noise"] or drawn["reverb"] else 0,
    )


def plan_for(seed: int, epoch: int, clip_index: int, probability: float = 0.7, babble: bool = True,
             variants: int | None = None) -> AugmentPlan:
    """The plan of clip `clip_index` in `epoch` of a run seeded `seed`: the same arguments, the same plan.

    `variants=None` draws a fresh plan every epoch; `variants=K` cycles K plans per clip (epoch e uses
    variant e % K), so the feature cache holds at most K + 1 entries per clip.
    """
    if variants is not None and variants < 1:
        raise AudioError(f"variants = {variants}; expected a positive number of plans per clip or None")
    draw = epoch if variants is None else epoch % variants
    return sample_plan(np.random.default_rng([int(seed), int(draw), int(clip_index)]), probability, babble)


def babble_sources(plan: AugmentPlan, pool_size: int, clip_index: int, talkers: int = BABBLE_TALKERS) -> list:
    """Indices of `talkers` other clips (never `clip_index`) in a pool of `pool_size` to make the plan's babble
    from: a function of the plan's seed, so that a cached feature always belongs to the same babble."""
    others = np.setdiff1d(np.arange(pool_size), [clip_index])
    if others.size == 0:
        raise AudioError(f"babble needs another clip than {clip_index}; the pool has {pool_size}")
    chosen = np.random.default_rng([plan.seed, 1]).choice(others, talkers, replace=others.size < talkers)
    return [int(index) for index in chosen]


def apply_plan(audio, plan: AugmentPlan, babble=None) -> np.ndarray:
    """16 kHz mono samples (n,) -> float32 (n,) in [-1, 1] (round-half-up(n / tempo) with tempo), `plan` applied.

    `babble`: other clips' 16 kHz samples (a list of (m,) arrays) when plan.noise_kind is "babble".
    """
    out = np.asarray(audio, dtype=np.float64)
    if out.ndim != 1 or out.size == 0:
        raise AudioError(f"augmentation needs mono samples of shape (n,) with n > 0; got shape {out.shape}")
    rate = SAMPLE_RATE
    if plan.tempo != 1.0:
        out = audio_conditions.change_tempo(out, rate, plan.tempo)
    if plan.pitch_semitones != 0.0:
        out = audio_conditions.shift_pitch(out, rate, plan.pitch_semitones, plan.formant_warp)
    elif plan.formant_warp != 1.0:
        out = audio_conditions.warp_formants(out, rate, plan.formant_warp)
    if plan.reverb_rt60_s is not None:
        out = audio_conditions.reverberate(out, rate, plan.reverb_rt60_s, plan.seed)
    if plan.noise_snr_db is not None:
        if plan.noise_kind == "babble":
            if not babble:
                raise AudioError("the plan asks for babble noise; pass babble=[other clips' samples] "
                                 "(babble_sources picks them)")
            crowd = audio_conditions.babble(babble, out.size, plan.seed, BABBLE_TALKERS)
            out = audio_conditions.mix_at_snr(out, crowd, plan.noise_snr_db)
        else:
            out = audio_conditions.add_noise(out, plan.noise_snr_db, plan.seed, plan.noise_kind)
    if plan.gain_db != 0.0:
        out = audio_conditions.change_gain(out, plan.gain_db)
    if plan.telephone:
        out = audio_conditions.telephone_band(out, rate)
    if plan.codec is not None:
        codec, kbps = CODECS[plan.codec]
        out = audio_conditions.codec_round_trip(out, rate, kbps, codec)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def scale_timeline(timeline, tempo: float) -> list:
    """[(start_s, end_s, label)] of the clip spoken `tempo` times as fast: every time divided by tempo."""
    return [(start / tempo, end / tempo, label) for start, end, label in timeline]


def scale_motion(frames: np.ndarray, tempo: float, n_frames: int | None = None) -> np.ndarray:
    """(T, ...) 30 fps motion of the clip spoken `tempo` times as fast -> (n_frames, ...), linear in time.

    Frame j of the result is the input at time j * tempo / 30 s (backend.frame_rate.resample_frames),
    holding the last frame past the end. n_frames defaults to round-half-up(T / tempo); augment_clip passes
    frame_count(len(new audio)), which it matches to within one frame.
    """
    frames = np.asarray(frames)
    if frames.ndim < 1 or len(frames) == 0:
        raise AudioError(f"motion needs frames of shape (T, ...) with T > 0; got shape {frames.shape}")
    if n_frames is None:
        n_frames = int(np.floor(len(frames) / tempo + 0.5))
    scaled = resample_frames(frames, 1.0, 1.0 / tempo) if tempo != 1.0 else frames
    if len(scaled) >= n_frames:
        return np.ascontiguousarray(scaled[:n_frames])
    return np.concatenate([scaled, np.repeat(scaled[-1:], n_frames - len(scaled), axis=0)])


def augmented_length(num_samples: int, plan: AugmentPlan) -> int:
    """Samples apply_plan returns for `num_samples` in: round-half-up(num_samples / tempo)."""
    return int(np.floor(num_samples / plan.tempo + 0.5)) if plan.tempo != 1.0 else int(num_samples)


def augment_motion(timeline, motion: np.ndarray, plan: AugmentPlan, num_samples: int) -> tuple:
    """The timeline and 30 fps motion (T, ...) of a clip of `num_samples` clean samples under `plan`, without
    touching audio (for a feature-cache hit): time-scaled by 1 / tempo to frame_count(augmented_length) frames."""
    if plan.tempo == 1.0:
        return list(timeline), np.asarray(motion)
    return (scale_timeline(timeline, plan.tempo),
            scale_motion(motion, plan.tempo, frame_count(augmented_length(num_samples, plan), SAMPLE_RATE)))


def augment_clip(audio, timeline, motion: np.ndarray, plan: AugmentPlan, babble=None) -> tuple:
    """(audio (n,), timeline, motion (T, ...)) -> the same three with `plan` applied: audio float32 (n',),
    timeline and motion time-scaled by 1 / tempo, motion (frame_count(n'), ...) (vertices or rig controls)."""
    new_audio = apply_plan(audio, plan, babble)
    return (new_audio, *augment_motion(timeline, motion, plan, np.asarray(audio).shape[-1]))
