"""Compression for Keras 3 models: magnitude pruning and knowledge distillation."""

from bigmodels.compress.pruning import (
    ConstantSparsity,
    MagnitudePruner,
    PolynomialDecay,
    prunable_weights,
    sparsity_report,
    strip_pruning,
)

__all__ = [
    "ConstantSparsity",
    "MagnitudePruner",
    "PolynomialDecay",
    "prunable_weights",
    "sparsity_report",
    "strip_pruning",
]
