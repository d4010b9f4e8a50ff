"""Model builders; importing this package registers every family."""

from bigmodels.models import losses  # noqa: F401  registers the saved losses for loading
from bigmodels.models.cnn import choose_cnn_variant, cnn_classifier
from bigmodels.models.dcgan import DCGAN, dcgan, dcgan_discriminator, dcgan_generator, uint8_generator
from bigmodels.models.text import embedding_bag_classifier, ngram_classifier, transformer_classifier
from bigmodels.models.text_transfer import text_backbone_classifier
from bigmodels.models.transfer import backbone_classifier

__all__ = [
    "DCGAN",
    "backbone_classifier",
    "choose_cnn_variant",
    "cnn_classifier",
    "dcgan",
    "dcgan_discriminator",
    "dcgan_generator",
    "embedding_bag_classifier",
    "ngram_classifier",
    "text_backbone_classifier",
    "transformer_classifier",
    "uint8_generator",
]
