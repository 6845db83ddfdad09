"""Speech-driven generators: FaceFormer-style and KMTalk-style (issue 6), CodeTalker-style and SelfTalk-style
(issue 7), sharing one speech encoder.

`build_generator(config, styles)` makes the model named by `config.family`; every model maps
audio (B, N) 16 kHz, template (B, 5023, 3) and one-hot style (B, S) to vertices (B, T, 5023, 3) with
T = backend.generators.frame_count(N), and is exported as one ONNX graph (training/export_generator.py).
"""

from training.config import GeneratorConfig
from training.generators.faceformer import FaceFormerStyle
from training.generators.kmtalk import KMTalkStyle
from training.generators.codetalker import CodeTalkerStyle, CodeTalkerVQ
from training.generators.selftalk import SelfTalkStyle


# Families whose forward also takes the clip's training targets (see training.train.clip_losses).
TARGET_FAMILIES = ("codetalker-vq", "codetalker", "selftalk")


def build_generator(config: GeneratorConfig, num_styles: int):
    """The generator of `config.family` with `num_styles` subject styles."""
    if config.family == "faceformer":
        return FaceFormerStyle(config, num_styles)
    if config.family in ("codetalker-vq", "codetalker"):
        return (CodeTalkerVQ if config.family == "codetalker-vq" else CodeTalkerStyle)(config, num_styles)
    if config.family == "selftalk":
        return SelfTalkStyle(config, num_styles)
    return KMTalkStyle(config, num_styles)
