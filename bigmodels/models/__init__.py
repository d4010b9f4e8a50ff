"""Model builders; importing this package registers every family."""

from bigmodels.models.cnn import choose_cnn_variant, cnn_classifier
from bigmodels.models.text import embedding_bag_classifier, transformer_classifier

__all__ = ["choose_cnn_variant", "cnn_classifier", "embedding_bag_classifier", "transformer_classifier"]
