"""The registry of generator families (each implements training.generators.protocol.Family): build one from a
config, or rebuild a trained one from its checkpoint."""

import json

from training.generators.codetalker import CodeTalkerStyle, CodeTalkerVQ
from training.generators.config import FAMILIES, GeneratorConfig
from training.generators.faceformer import FaceFormerStyle
from training.generators.kmtalk import KMTalkStyle
from training.generators.protocol import Family, load_generator_checkpoint
from training.generators.selftalk import SelfTalkStyle

FAMILY_CLASSES = {"faceformer": FaceFormerStyle, "kmtalk": KMTalkStyle, "codetalker-vq": CodeTalkerVQ,
                  "codetalker": CodeTalkerStyle, "selftalk": SelfTalkStyle}
assert tuple(FAMILY_CLASSES) == FAMILIES, "training.generators.config.FAMILIES names every class here"


def build_generator(config: GeneratorConfig, num_styles: int) -> Family:
    """The generator of `config.family` with `num_styles` subject styles."""
    return FAMILY_CLASSES[config.family](config, num_styles)


def load_trained(path):
    """(model in eval mode, config, styles, checkpoint) from a generator checkpoint."""
    checkpoint = load_generator_checkpoint(path)
    config = GeneratorConfig.from_dict(json.loads(checkpoint["config"]))
    styles = json.loads(checkpoint["styles"])
    model = build_generator(config, len(styles))
    model.load_state_dict(checkpoint["model"])
    return model.eval(), config, styles, checkpoint
