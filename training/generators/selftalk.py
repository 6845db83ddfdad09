"""SelfTalk-style generator (Peng et al. 2023): non-autoregressive speech-to-motion with a commonsense
consistency loop.

- Speech to motion: the speech encoder over the frozen front end's features, bidirectional biased-attention
  blocks with subject style and the periodic positional encoding (the KMTalk-style backbone), the
  coefficient head of the motion basis. One parallel pass.
- Audio-side phoneme recogniser: a linear CTC head on the encoded speech (SelfTalk fine-tunes an ASR model;
  ours reads hama's pretrained features and maps them to ARPAbet with the corpus timelines). Its CTC loss
  (recogniser_weight) also shapes the shared speech encoder.
- Lip reader: per-frame lip displacements (mm) of LIP_VERTICES vertices around the lip centre (decoded from
  the coefficients through the basis rows of those vertices only) -> a
  transformer block -> phoneme CTC log-probabilities. It learns on the ground-truth lips (CTC against the
  clip's phoneme sequence) and reads the generated lips with its weights detached, so only the generator
  is pushed by: lip_reading_weight x CTC(generated lips) and consistency_weight x KL(audio recogniser ||
  lip reader on generated lips) per frame, the audio side as the (detached) teacher: their agreement.
Only speech encoder, backbone and head are in the exported graph; recogniser and lip reader train only.

Phoneme sequence of a clip: its timeline's labels (ARPAbet, stress digits stripped), silences dropped,
repeats merged unless a silence separates them; index 0 is the CTC blank.
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from backend.errors import BackendError
from backend.flame import LOWER_LIP_CENTRE, MM_PER_M, NUM_VERTICES, UPPER_LIP_CENTRE
from training.generators.audio_encoder import CoefficientHead, EncoderBlock, SpeechEncoder
from training.generators.config import GeneratorConfig
from training.generators.kmtalk import TransformerBackbone
from training.generators.protocol import Family, GeneratorOutput, LossTerm, TrainingClip

PHONEMES = ("AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH",
            "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V",
            "W", "Y", "Z", "ZH")
SILENCES = ("SIL", "SP", "SPN", "")
VOCABULARY = len(PHONEMES) + 1  # + the CTC blank (index 0)
LIP_VERTICES = 128


def phoneme_labels(timeline) -> torch.Tensor:
    """[(start, end, phoneme), ...] -> (L,) long CTC targets in 1..len(PHONEMES); BackendError on a label
    outside ARPAbet."""
    labels, previous = [], None
    for _, _, phoneme in timeline:
        name = phoneme.upper().rstrip("012")
        if name in SILENCES:
            previous = None
            continue
        if name not in PHONEMES:
            raise BackendError(f"phoneme {phoneme!r} in a timeline is not ARPAbet; expected one of "
                               f"{', '.join(PHONEMES)} or a silence ({', '.join(filter(None, SILENCES))})")
        index = PHONEMES.index(name) + 1
        if index != previous:
            labels.append(index)
        previous = index
    return torch.tensor(labels, dtype=torch.long)


def lip_region(template: torch.Tensor, count: int = LIP_VERTICES) -> torch.Tensor:
    """(count,) indices of the template vertices nearest the midpoint of the upper and lower lip centres."""
    centre = 0.5 * (template[UPPER_LIP_CENTRE] + template[LOWER_LIP_CENTRE])
    return torch.linalg.vector_norm(template - centre, dim=-1).argsort()[:count].sort().values


def sequence_ctc(log_probabilities: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CTC of one clip: log-probabilities (1, T, V), labels (L,) -> scalar (mean per target phoneme)."""
    frames = log_probabilities.shape[1]
    return F.ctc_loss(log_probabilities.transpose(0, 1), labels[None], torch.tensor([frames]),
                      torch.tensor([len(labels)]), blank=0, zero_infinity=True)


class LipReader(nn.Module):
    """(B, T, LIP_VERTICES * 3) lip displacements in mm -> (B, T, VOCABULARY) phoneme log-probabilities."""

    def __init__(self, width: int, heads: int, period: int, block: int):
        super().__init__()
        self.embed = nn.Linear(3 * LIP_VERTICES, width)
        self.block = EncoderBlock(width, heads, period, False, block)
        self.classify = nn.Linear(width, VOCABULARY)

    def forward(self, lips: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.classify(self.block(self.embed(lips))), dim=-1)


class SelfTalkStyle(Family):
    """speech_features (B, T, 447), template (B, 5023, 3), style (B, S), optional target coefficients (1, T, K)
    with their phonemes (L,) -> GeneratorOutput(coefficients (B, T, K); with targets losses {"phoneme": the
    weighted sum of the selftalk.* terms} and details (its unweighted parts))."""

    title = "SelfTalk-style"

    def __init__(self, config: GeneratorConfig, num_styles: int):
        super().__init__(config)
        width, heads, block = config.width, config.heads, config.attention_block
        self.speech_encoder = SpeechEncoder.from_config(config)
        self.backbone = TransformerBackbone(width, heads, config.decoder_blocks, num_styles, config.period, block)
        self.head = CoefficientHead(width, config.basis_size)
        self.recogniser = nn.Linear(width, VOCABULARY)
        self.lip_reader = LipReader(width, heads, config.period, block)
        self.register_buffer("lip_indices", torch.arange(LIP_VERTICES) * (NUM_VERTICES // LIP_VERTICES))

    @classmethod
    def loss_names(cls, config: GeneratorConfig) -> tuple:
        return ("phoneme",)

    @classmethod
    def check_clip(cls, config: GeneratorConfig, clip_id: str, clip) -> None:
        """BackendError for a clip without a phoneme timeline (the lip reader's CTC targets) or with labels
        outside ARPAbet."""
        if not clip.timeline:
            raise BackendError(f"clip {clip_id} has no phoneme timeline; the SelfTalk-style family "
                               "trains its lip reader on the corpus manifest's timelines")
        phoneme_labels(clip.timeline)

    def training_output(self, clip: TrainingClip) -> GeneratorOutput:
        return self(clip.features, clip.template[None], clip.style[None], clip.coefficients[None],
                    phoneme_labels(clip.timeline or []))

    def forward(self, features: torch.Tensor, template: torch.Tensor, style: torch.Tensor,
                target: torch.Tensor | None = None, labels: torch.Tensor | None = None) -> GeneratorOutput:
        speech = self.speech_encoder(features)
        coefficients = self.head(self.backbone(speech, style))
        if target is None:
            return GeneratorOutput(coefficients)
        frames = min(coefficients.shape[1], target.shape[1])
        audio_log_probabilities = torch.log_softmax(self.recogniser(speech[:, :frames]), dim=-1)
        frozen_reader = {name: value.detach() for name, value in self.lip_reader.named_parameters()}
        generated = functional_call(self.lip_reader, frozen_reader, (self.lips(coefficients[:, :frames]),))
        real = self.lip_reader(self.lips(target[:, :frames]))
        terms = {"recogniser_ctc": sequence_ctc(audio_log_probabilities, labels),
                 "lip_reader_ctc": sequence_ctc(real, labels),
                 "generated_ctc": sequence_ctc(generated, labels),
                 "consistency": F.kl_div(generated, audio_log_probabilities.detach(), log_target=True,
                                         reduction="batchmean") / frames}
        weights = self.config.selftalk
        phoneme = (weights.recogniser_weight * terms["recogniser_ctc"]
                   + weights.lip_reading_weight * (terms["lip_reader_ctc"] + terms["generated_ctc"])
                   + weights.consistency_weight * terms["consistency"])
        return GeneratorOutput(coefficients, losses={"phoneme": LossTerm(phoneme)}, details=terms)

    def lips(self, coefficients: torch.Tensor) -> torch.Tensor:
        """(B, T, K) -> (B, T, LIP_VERTICES * 3) lip displacements from the template, in mm."""
        return (self.motion_basis.region(coefficients, self.lip_indices) * MM_PER_M).flatten(2)

    def prepare_training(self, clips: list) -> None:
        """The lip region from the first training clip's template (kept in the checkpoint, not in the ONNX graph)."""
        self.lip_indices.copy_(lip_region(clips[0].template))
