"""CodeTalker-style generator (Xing et al. 2023): a discrete motion prior, then speech-driven code prediction.

Stage 1, family "codetalker-vq" (`CodeTalkerVQ`): a vector-quantised autoencoder over facial motion (its
coefficients in the model's fixed motion basis, which spans the displacements). Encoder: per-frame Linear(K -> W), bidirectional transformer blocks,
a projection; each frame's latent (W values) is cut into `code_groups` codes of W / code_groups values,
each replaced by its nearest entry of one learned codebook (`codebook_size` entries). VQ-VAE training:
codebook loss + commitment_weight x commitment loss, straight-through gradients. The codebook starts
from encoder outputs of training frames (`prepare_training`), which keeps codes from dying at the start.
Decoder: projection, transformer blocks, the coefficient head.

Stage 2, family "codetalker" (`CodeTalkerStyle`): the speech encoder (over the front end's features) and the
FaceFormer-style decoder (causal biased self-attention, subject style) predict each frame's latent; it is
quantised with the frozen stage-1 codebook and decoded by the frozen stage-1 decoder, through the prior's basis. Loss: vertex MSE (training loop) +
code_weight x MSE between the predicted latent and the ground-truth motion's quantised latent.

Deviation from CodeTalker: its stage 2 is autoregressive (each step feeds the motion decoded so far back
in). Ours is a parallel code predictor, causal over its own frames but fed by speech only. A hard
nearest-code choice inside a feedback loop would need an ONNX Loop of T steps (one decoder pass per frame)
and teacher forcing through a non-differentiable choice; the parallel predictor is exactly the graph
that trains, exported in one shot with the usual parity check.
"""

import json

import torch
import torch.nn.functional as F
from torch import nn

from backend.errors import ModelError
from training.generators.audio_encoder import CoefficientHead, EncoderBlock, SpeechEncoder
from training.generators.config import GeneratorConfig
from training.generators.faceformer import FaceFormerDecoder
from training.generators.motion_basis import MotionBasis
from training.generators.protocol import Family, GeneratorOutput, LossTerm, TrainingClip, load_generator_checkpoint

INIT_FRAMES = 4096      # encoder outputs sampled to initialise the codebook
MATCHING_FIELDS = ("width", "heads", "encoder_blocks", "decoder_blocks", "period", "attention_block", "basis_size")
BASIS_TOLERANCE = 1e-5   # metres: a stage-2 run must see the motion basis its prior was trained in
MATCHING_SECTION_FIELDS = ("codebook_size", "code_groups")


class VectorQuantiser(nn.Module):
    """(B, T, W) latents -> (quantised with straight-through gradients (B, T, W), code indices (B, T, G),
    quantised without gradient path to the latent (B, T, W)). One codebook (K, W / G) shared by the G groups."""

    def __init__(self, width: int, groups: int, size: int):
        super().__init__()
        self.groups = groups
        self.codebook = nn.Parameter(torch.empty(size, width // groups).uniform_(-1.0 / size, 1.0 / size))

    def indices(self, latent: torch.Tensor) -> torch.Tensor:
        codes = latent.reshape(latent.shape[0], latent.shape[1], self.groups, -1)
        distances = ((codes * codes).sum(-1, keepdim=True) - 2 * codes @ self.codebook.T
                     + (self.codebook * self.codebook).sum(-1))
        return distances.argmin(-1)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return self.codebook[indices].reshape(indices.shape[0], indices.shape[1], -1)

    def forward(self, latent: torch.Tensor) -> tuple:
        indices = self.indices(latent)
        quantised = self.lookup(indices)
        return latent + (quantised - latent).detach(), indices, quantised


class CodeTalkerVQ(Family):
    """Stage 1. speech features (unused), template (B, 5023, 3), style (unused) and target coefficients (B, T, K)
    -> GeneratorOutput(reconstructed coefficients, code_indices (B, T, G), losses {"vq": codebook + commitment})."""

    title = "CodeTalker-style stage 1 (VQ autoencoder)"
    animates_speech = False

    def __init__(self, config: GeneratorConfig, num_styles: int):
        super().__init__(config)
        width, heads, block = config.width, config.heads, config.attention_block
        section = config.codetalker
        self.motion_in = nn.Sequential(nn.Linear(config.basis_size, width), nn.LayerNorm(width))
        self.encoder = nn.ModuleList(EncoderBlock(width, heads, config.period, False, block)
                                     for _ in range(config.encoder_blocks))
        self.to_latent = nn.Linear(width, width)
        self.quantiser = VectorQuantiser(width, section.code_groups, section.codebook_size)
        self.from_latent = nn.Linear(width, width)
        self.decoder = nn.ModuleList(EncoderBlock(width, heads, config.period, False, block)
                                     for _ in range(config.decoder_blocks))
        self.head = CoefficientHead(width, config.basis_size)

    def encode(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(B, T, K) motion coefficients -> (B, T, W) unquantised latents."""
        hidden = self.motion_in(coefficients)
        for block in self.encoder:
            hidden = block(hidden)
        return self.to_latent(hidden)

    def decode(self, quantised: torch.Tensor) -> torch.Tensor:
        """(B, T, W) quantised latents -> (B, T, K) motion coefficients."""
        hidden = self.from_latent(quantised)
        for block in self.decoder:
            hidden = block(hidden)
        return self.head(hidden)

    @classmethod
    def loss_names(cls, config: GeneratorConfig) -> tuple:
        return ("vq",)

    def forward(self, features, template: torch.Tensor, style=None,
                coefficients: torch.Tensor | None = None) -> GeneratorOutput:
        if coefficients is None:
            raise ModelError("a 'codetalker-vq' model is the stage-1 motion autoencoder: it needs ground-truth "
                             "motion, not audio; train a 'codetalker' model on top of it to animate speech")
        latent = self.encode(coefficients)
        straight, indices, quantised = self.quantiser(latent)
        vq_loss = F.mse_loss(quantised, latent.detach()) + \
            self.config.codetalker.commitment_weight * F.mse_loss(latent, quantised.detach())
        return GeneratorOutput(self.decode(straight), code_indices=indices, losses={"vq": LossTerm(vq_loss)})

    def training_output(self, clip: TrainingClip) -> GeneratorOutput:
        return self(clip.features, clip.template[None], clip.style[None], clip.coefficients[None])

    @torch.no_grad()
    def prepare_training(self, clips: list) -> None:
        """Codebook <- codes of the (still random) encoder on up to INIT_FRAMES training frames, drawn with the
        torch generator (seeded by the training loop); frames are reused when there are fewer."""
        size, depth = self.quantiser.codebook.shape
        codes, frames = [], 0
        for clip in clips:
            if frames >= INIT_FRAMES:
                break
            codes.append(self.encode(clip.coefficients[None]).reshape(-1, depth))
            frames += clip.frames
        codes = torch.cat(codes)
        chosen = torch.randperm(len(codes))[:size] if len(codes) >= size else torch.randint(len(codes), (size,))
        self.quantiser.codebook.copy_(codes[chosen] + 1e-3 * torch.randn(size, depth))


class CodeTalkerStyle(Family):
    """Stage 2. speech_features (B, T, 447), template (B, 5023, 3), style (B, S), optional target coefficients
    (B, T, K) -> GeneratorOutput(coefficients (B, T, K), code_indices (B, T, G), with targets losses
    {"code": latent MSE}). Its motion basis is the prior's."""

    title = "CodeTalker-style"
    prior_family = "codetalker-vq"

    def __init__(self, config: GeneratorConfig, num_styles: int):
        super().__init__(config)
        del self.basis   # the prior's basis is the one this model outputs through
        width, block = config.width, config.attention_block
        self.speech_encoder = SpeechEncoder.from_config(config)
        self.decoder = FaceFormerDecoder(width, config.heads, config.decoder_blocks, num_styles, config.period, block)
        self.to_latent = nn.Linear(width, width)
        self.prior = CodeTalkerVQ(config, num_styles)

    @property
    def motion_basis(self) -> MotionBasis:
        return self.prior.basis

    @classmethod
    def loss_names(cls, config: GeneratorConfig) -> tuple:
        return ("code",)

    def forward(self, features: torch.Tensor, template: torch.Tensor, style: torch.Tensor,
                coefficients: torch.Tensor | None = None) -> GeneratorOutput:
        predicted = self.to_latent(self.decoder(self.speech_encoder(features), style))
        straight, indices, _ = self.prior.quantiser(predicted)
        output = GeneratorOutput(self.prior.decode(straight), code_indices=indices)
        if coefficients is not None:
            with torch.no_grad():
                target = self.prior.quantiser(self.prior.encode(coefficients))[2]
            output.losses["code"] = LossTerm(F.mse_loss(predicted[:, :target.shape[1]], target),
                                             self.config.codetalker.code_weight)
        return output

    def training_output(self, clip: TrainingClip) -> GeneratorOutput:
        return self(clip.features, clip.template[None], clip.style[None], clip.coefficients[None])

    def prepare_training(self, clips: list) -> None:
        """Load the stage-1 checkpoint named by codetalker.motion_prior into `prior` and freeze it."""
        path = self.config.codetalker.motion_prior
        if not path:
            raise ModelError("a 'codetalker' model needs its stage-1 motion prior: train family 'codetalker-vq' "
                             "first, then pass --set codetalker.motion_prior=RUN/checkpoint.pt")
        checkpoint = load_generator_checkpoint(path)
        prior = GeneratorConfig.from_dict(json.loads(checkpoint["config"]))
        if prior.family != "codetalker-vq":
            raise ModelError(f"{path}: motion_prior is a '{prior.family}' checkpoint; "
                             "expected a 'codetalker-vq' (stage 1) one")
        pairs = [(name, getattr(prior, name), getattr(self.config, name)) for name in MATCHING_FIELDS]
        pairs += [(name, getattr(prior.codetalker, name), getattr(self.config.codetalker, name))
                  for name in MATCHING_SECTION_FIELDS]
        differing = [f"{name} {theirs} vs {ours}" for name, theirs, ours in pairs if theirs != ours]
        if differing:
            raise ModelError(f"{path}: the motion prior was trained with other sizes "
                             f"({'; '.join(differing)}); train both stages with the same preset")
        fitted = self.prior.basis.components.clone()
        self.prior.load_state_dict(checkpoint["model"])
        self.prior.requires_grad_(False)
        if float((self.prior.basis.components - fitted).abs().max()) > BASIS_TOLERANCE:
            raise ModelError(f"{path}: the motion prior was trained in another motion basis (another corpus or "
                             "seed); train both stages on the same corpus with the same seed")

