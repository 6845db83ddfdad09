"""Losses of the speech-mesh representation: symmetric InfoNCE, the SyncNet-style sync loss, and the
plug-in perceptual loss for generators (REFERENCE §3)."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from backend import features
from backend.errors import AudioError, MeshError, ModelError
from backend.metrics.plrs import FRONTEND_INPUT, speech_track, speech_window_inputs

TEMPERATURE = 0.07
PERCEPTUAL_BATCH_WINDOWS = 80
FACEFORMER_WEIGHT = 1e-7


def info_nce(first: torch.Tensor, second: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """Symmetric InfoNCE of paired rows: (B, D), (B, D) -> scalar.

    Rows are L2-normalised; logits = first @ second.T / temperature; the loss is the mean of the
    cross-entropy of rows (first -> second) and of columns (second -> first), targets on the diagonal.
    """
    if first.ndim != 2 or first.shape != second.shape:
        raise ValueError(f"info_nce needs two (B, D) tensors of one shape; got {tuple(first.shape)} "
                         f"and {tuple(second.shape)}")
    logits = F.normalize(first, dim=-1) @ F.normalize(second, dim=-1).T / temperature
    targets = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets))


def sync_loss(speech: torch.Tensor, mesh: torch.Tensor) -> torch.Tensor:
    """SyncNet-style (Wav2Lip) sync loss on (B, D) unit embeddings: binary cross-entropy of the sync
    probability (1 + cosine) / 2 for the B matched pairs (label 1) and B mismatched pairs (mesh rolled
    by one, label 0)."""
    matched = (speech * mesh).sum(-1)
    mismatched = (speech * mesh.roll(1, dims=0)).sum(-1)
    probability = ((1 + torch.cat([matched, mismatched])) / 2).clamp(1e-6, 1 - 1e-6)
    labels = torch.cat([torch.ones_like(matched), torch.zeros_like(mismatched)])
    return F.binary_cross_entropy(probability, labels)


def speech_features(samples: np.ndarray, rate: int, num_frames: int, kind: str = FRONTEND_INPUT) -> np.ndarray:
    """Speech-encoder input for every 5-frame window of a 30 fps clip: float mono audio (S,) at `rate` ->
    (num_frames - 4, 5, 447) front-end rows (the default speech side) or, kind "fbank", (num_frames - 4, 20, 128)
    normalised fbank; window i paired with mesh frames i..i+4 (backend.metrics.plrs windowing)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1 or samples.size == 0:
        raise AudioError(f"expected non-empty mono audio of shape (S,); got shape {samples.shape}")
    starts = features.window_starts(num_frames, stride=1)
    if len(starts) == 0:
        raise MeshError(f"a clip needs at least {features.WINDOW_FRAMES} frames for the perceptual loss; "
                        f"got {num_frames}")
    return speech_window_inputs(kind, speech_track(kind, samples, int(rate), num_frames), starts).astype(np.float32)


def frontend_speech_features(stacked: np.ndarray, num_frames: int) -> np.ndarray:
    """`speech_features` of kind FRONTEND_INPUT from the front end's features already computed (T50, 447) at 50 Hz
    (e.g. from backend.speech_feature_cache) instead of the audio: (num_frames - 4, 5, 447)."""
    from backend.speech_frontend import features_at_fps
    starts = features.window_starts(num_frames, stride=1)
    if len(starts) == 0:
        raise MeshError(f"a clip needs at least {features.WINDOW_FRAMES} frames for the perceptual loss; "
                        f"got {num_frames}")
    track = features_at_fps(stacked, int(num_frames))
    return speech_window_inputs(FRONTEND_INPUT, track, starts).astype(np.float32)


class PerceptualLoss(nn.Module):
    """Plug-in perceptual loss for any generator (REFERENCE §3).

    The representation is frozen (no parameter takes gradients, eval mode): gradients reach only the
    generated vertices. The mesh encoder must offer `frame_tokens` and `encode_windows` (both of ours
    do), so each frame is tokenised once although it lies in 5 windows. A clip of T frames gives T - 4 windows, one at every start frame; they are
    cut into batches of up to `batch_windows` consecutive windows, and each batch is an InfoNCE over
    its windows (the other time offsets of the same clip are the negatives). The result is the mean
    over batches times `weight` (FaceFormer setting: 1e-7 next to the MSE).

    Use: `target = loss.speech_target(speech)` once per clip (speech from `speech_features`, of the kind the
    speech encoder hears: `speech_encoder.input_name`), then
    `loss(vertices, target)` every step; the frozen speech side never changes, so it is computed once.
    """

    def __init__(self, speech_encoder: nn.Module, mesh_encoder: nn.Module, weight: float = FACEFORMER_WEIGHT,
                 batch_windows: int = PERCEPTUAL_BATCH_WINDOWS, temperature: float = TEMPERATURE):
        super().__init__()
        if batch_windows < 2:
            raise ModelError(f"batch_windows must be at least 2 (InfoNCE needs negatives); got {batch_windows}")
        self.speech_encoder, self.mesh_encoder = speech_encoder.eval(), mesh_encoder.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.weight, self.batch_windows, self.temperature = float(weight), int(batch_windows), float(temperature)

    def train(self, mode: bool = True) -> "PerceptualLoss":
        """The representation stays in eval mode whatever the generator's mode."""
        return super().train(False)

    @torch.no_grad()
    def speech_target(self, speech) -> torch.Tensor:
        """(N, 5, 447) front-end or (N, 20, 128) fbank speech windows (what the speech encoder hears) -> (N, D)
        frozen speech embeddings."""
        device = next(self.parameters()).device
        speech = torch.as_tensor(speech, dtype=torch.float32, device=device)
        shape = tuple(self.speech_encoder.input_shape)
        if speech.ndim != 3 or tuple(speech.shape[1:]) != shape:
            raise AudioError(f"expected {self.speech_encoder.input_name} speech windows of shape (N, {shape[0]}, "
                             f"{shape[1]}) (training.representation.losses.speech_features, kind "
                             f"'{self.speech_encoder.input_name}'); got {tuple(speech.shape)}")
        return torch.cat([self.speech_encoder(chunk) for chunk in speech.split(256)])

    def forward(self, vertices: torch.Tensor, speech_target: torch.Tensor) -> torch.Tensor:
        """vertices (T, 5023, 3) or (T, 15069) generated, absolute, metres; speech_target (T - 4, D)."""
        frames = vertices.reshape(vertices.shape[0], -1) if vertices.ndim == 3 else vertices
        if frames.ndim != 2 or frames.shape[1] != 3 * 5023:
            raise MeshError(f"expected generated vertices of shape (T, 5023, 3) or (T, 15069); "
                            f"got {tuple(vertices.shape)}")
        # Every frame is in 5 windows: tokenise each frame once, then cut the tokens into windows.
        tokens = self.mesh_encoder.frame_tokens(frames)
        windows = tokens.unfold(0, features.WINDOW_FRAMES, 1).transpose(1, 2)  # (T - 4, 5, width)
        if speech_target.ndim != 2 or len(speech_target) != len(windows):
            raise ModelError(f"{len(frames)} frames give {len(windows)} windows, but the speech target has shape "
                             f"{tuple(speech_target.shape)}; expected ({len(windows)}, D)")
        mesh = self.mesh_encoder.encode_windows(windows)   # one pass: each window is encoded on its own anyway
        losses = []
        for begin in range(0, len(windows), self.batch_windows):
            end = min(begin + self.batch_windows, len(windows))
            if end - begin < 2:  # a lone trailing window has no negatives; it joins no batch
                continue
            losses.append(info_nce(mesh[begin:end], speech_target[begin:end], self.temperature))
        if not losses:
            raise MeshError(f"the perceptual loss needs at least {features.WINDOW_FRAMES + 1} frames; "
                            f"got {len(frames)}")
        return self.weight * torch.stack(losses).mean()
