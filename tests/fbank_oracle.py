"""Test oracle: torchaudio's Kaldi fbank, loaded from the wheel that scripts/setup.sh downloads.

torchaudio cannot be imported here (its C extension needs CUDA torch), but `compliance/kaldi.py` is pure
torch. We read that one file out of `.venv/oracle/torchaudio-*.whl` and execute it as a module with a
stub `torchaudio` in sys.modules (fbank never touches it). Third-party code, used only as an oracle and
never copied into the repository.
"""

import sys
import types
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

ORACLE_DIR = Path(__file__).resolve().parents[1] / ".venv" / "oracle"
KALDI_MODULE_PATH = "torchaudio/compliance/kaldi.py"


@lru_cache(maxsize=1)
def _kaldi_module() -> types.ModuleType:
    wheels = sorted(ORACLE_DIR.glob("torchaudio-*.whl"))
    if not wheels:
        pytest.skip(f"no torchaudio wheel in {ORACLE_DIR}: run ./scripts/setup.sh to download the fbank oracle")
    pytest.importorskip("torch", reason="the fbank oracle needs torch")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        source = wheel.read(KALDI_MODULE_PATH).decode("utf-8")
    module = types.ModuleType("torchaudio_kaldi_oracle")
    previous = sys.modules.get("torchaudio")
    sys.modules["torchaudio"] = types.ModuleType("torchaudio")  # stub: only mfcc would use it
    try:
        exec(compile(source, f"{wheels[-1].name}/{KALDI_MODULE_PATH}", "exec"), module.__dict__)
    finally:
        if previous is None:
            del sys.modules["torchaudio"]
        else:
            sys.modules["torchaudio"] = previous
    return module


def torchaudio_fbank(
    samples: np.ndarray,
    sample_rate: int = 16000,
    num_mel_bins: int = 128,
    frame_length_ms: float = 8.0,
    frame_shift_ms: float = 10.0,
    dtype=np.float32,
) -> np.ndarray:
    """torchaudio.compliance.kaldi.fbank with the AudioMAE settings: samples (N,) -> (frames, bins).

    torchaudio computes in the input's dtype: float32 is what AudioMAE-style pipelines run, float64 shows
    the method's own agreement without float32 rounding.
    """
    kaldi = _kaldi_module()
    waveform = kaldi.torch.from_numpy(np.asarray(samples, dtype=dtype).copy())[None, :]
    fbank = kaldi.fbank(
        waveform,
        htk_compat=True,
        sample_frequency=sample_rate,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=num_mel_bins,
        dither=0.0,
        frame_length=frame_length_ms,
        frame_shift=frame_shift_ms,
        remove_dc_offset=True,
        preemphasis_coefficient=0.97,
        snip_edges=True,
        round_to_power_of_two=True,
        low_freq=20.0,
        high_freq=0.0,
        use_log_fbank=True,
        use_power=True,
    )
    return fbank.numpy()
