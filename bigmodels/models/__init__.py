"""Model builders; importing this package registers every family."""

from bigmodels.models.cnn import choose_cnn_variant, cnn_classifier

__all__ = ["choose_cnn_variant", "cnn_classifier"]
