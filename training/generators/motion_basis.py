"""The fixed linear motion basis every generator family outputs through, and the data statistics fitted once at
the start of training (the z-scoring of the speech front end's features and the basis), stored in the model.

Why a basis: a face's speech motion (the corpus rig's jaw, lips, blinks and brows over many identities) spans a
few dozen directions of the 15,069 vertex values. A family predicts `basis_size` normalised coefficients per
frame; `MotionBasis.vertices` turns them into absolute vertices (template + mean + z · components), inside the
exported ONNX graph. Training never decodes whole faces: with orthogonal components the vertex MSE is a
weighted sum of coefficient errors (`vertex_mse`), and the lip gap needs only two vertices' rows (`lip_gap`),
which is what makes a step cheap on 2 cores.

Fit (`fit_statistics`): PCA of (vertices - template) over frames sampled evenly from the training clips, exact
(eigendecomposition of the frames' Gram matrix, float64), so a seed and a corpus always give the same basis.
Coefficient k of a frame is its displacement's projection on component k divided by that component's standard
deviation s_k, so every coefficient has unit variance on the training data; `components` are stored scaled
by s_k (metres per unit coefficient).
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from backend.flame import LOWER_LIP_CENTRE, MM_PER_M, NUM_VERTICES, UPPER_LIP_CENTRE, VERTEX_VALUES

MM2_PER_M2 = MM_PER_M ** 2
FIT_FRAMES = 2000          # frames sampled for the PCA (Gram matrix 2000 x 2000: ~3 s)
MIN_FEATURE_STD = 1e-3     # floor of the features' standard deviation (constant columns)


class MotionBasis(nn.Module):
    """coefficients (B, T, K) -> displacements; buffers mean (15069,) metres, components (K, 15069) metres per
    unit coefficient (orthogonal rows), explained (K,) share of the training displacements' variance."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size
        self.register_buffer("mean", torch.zeros(VERTEX_VALUES))
        self.register_buffer("components", torch.zeros(size, VERTEX_VALUES))
        self.register_buffer("explained", torch.zeros(size))

    def displacements(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(B, T, K) -> (B, T, 5023, 3) metres."""
        flat = coefficients @ self.components + self.mean
        return flat.reshape(coefficients.shape[0], coefficients.shape[1], NUM_VERTICES, 3)

    def vertices(self, coefficients: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        """(B, T, K), template (B, 5023, 3) -> absolute vertices (B, T, 5023, 3)."""
        return template[:, None] + self.displacements(coefficients)

    def encode(self, displacements: torch.Tensor) -> torch.Tensor:
        """(T, 15069) displacements (metres) -> (T, K) coefficients (the least-squares fit in the basis)."""
        scales = (self.components * self.components).sum(dim=1).clamp(min=1e-30)   # unused components: 0
        return (displacements - self.mean) @ self.components.T / scales

    def vertex_mse(self, predicted: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Frame-weighted vertex MSE in mm^2 of (T, K) coefficients against (T, K) targets: with orthogonal
        components, mean over the 15069 values of the squared vertex error = sum_k |c_k|^2 dz_k^2 / 15069."""
        scales = (self.components * self.components).sum(dim=1) * MM2_PER_M2 / VERTEX_VALUES
        per_frame = ((predicted - target) ** 2 * scales).sum(dim=-1)
        return (per_frame * weights).sum() / weights.sum().clamp(min=1e-6)

    def rows(self, indices: torch.Tensor) -> tuple:
        """(mean (n, 3), components (K, n, 3)) of the vertices `indices`: their motion without the full face."""
        mean = self.mean.reshape(NUM_VERTICES, 3)[indices]
        return mean, self.components.reshape(self.size, NUM_VERTICES, 3)[:, indices]

    def region(self, coefficients: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        """(B, T, K) -> (B, T, n, 3) displacements (metres) of the vertices `indices` only."""
        mean, components = self.rows(indices)
        return torch.einsum("btk,knc->btnc", coefficients, components) + mean

    def lip_gap(self, coefficients: torch.Tensor, template: torch.Tensor) -> torch.Tensor:
        """(B, T, K), template (B, 5023, 3) -> (B, T) lip gap ||v[3531] - v[3504]|| in metres (REFERENCE §2)."""
        indices = torch.tensor([UPPER_LIP_CENTRE, LOWER_LIP_CENTRE], device=coefficients.device)
        moved = self.region(coefficients, indices) + template[:, None, indices]
        return torch.linalg.vector_norm(moved[:, :, 0] - moved[:, :, 1], dim=-1)

    def set(self, mean: np.ndarray, components: np.ndarray, explained: np.ndarray) -> None:
        self.mean.copy_(torch.from_numpy(mean.astype(np.float32)))
        self.components.copy_(torch.from_numpy(components.astype(np.float32)))
        self.explained.copy_(torch.from_numpy(explained.astype(np.float32)))


@dataclass(frozen=True)
class DataStatistics:
    """What training fits once from the data: feature mean/std (447,) and the motion basis (MotionBasis.set)."""

    feature_mean: np.ndarray
    feature_std: np.ndarray
    motion_mean: np.ndarray
    components: np.ndarray
    explained: np.ndarray


def fit_statistics(features: list, displacements: list, basis_size: int) -> DataStatistics:
    """Feature z-scoring over every frame of `features` [(T, 447)], and the PCA basis of `basis_size` components
    over up to FIT_FRAMES frames taken evenly from `displacements` [(T, 15069) metres]."""
    stacked = np.concatenate(features).astype(np.float64)
    feature_mean, feature_std = stacked.mean(axis=0), np.maximum(stacked.std(axis=0), MIN_FEATURE_STD)
    total = sum(len(item) for item in displacements)
    chosen = set(np.linspace(0, total - 1, min(FIT_FRAMES, total)).astype(int).tolist())
    rows, offset = [], 0
    for item in displacements:
        picked = [index - offset for index in range(offset, offset + len(item)) if index in chosen]
        rows.append(np.asarray(item[picked], dtype=np.float64))
        offset += len(item)
    frames = np.concatenate(rows)
    motion_mean = frames.mean(axis=0)
    centred = frames - motion_mean
    gram = centred @ centred.T
    values, vectors = np.linalg.eigh(gram)
    order = np.argsort(values)[::-1]
    values, vectors = np.maximum(values[order], 0.0), vectors[:, order]
    size = min(basis_size, int(np.count_nonzero(values > 1e-9 * max(values[0], 1e-30))))   # no empty directions
    directions = np.zeros((basis_size, centred.shape[1]))
    directions[:size] = (vectors[:, :size].T @ centred) / np.sqrt(np.maximum(values[:size], 1e-30))[:, None]
    std = np.zeros(basis_size)
    std[:size] = np.sqrt(values[:size] / len(frames))
    components = directions * std[:, None]
    explained = np.zeros(basis_size)
    explained[:size] = values[:size] / max(values.sum(), 1e-30)
    return DataStatistics(feature_mean.astype(np.float32), feature_std.astype(np.float32),
                          motion_mean.astype(np.float32), components.astype(np.float32), explained)

