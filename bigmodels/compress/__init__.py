"""Compression for Keras 3 models: magnitude pruning, weight clustering, quantization-aware
training and knowledge distillation (TFMOT's semantics; TFMOT itself refuses Keras 3 models)."""

from bigmodels.compress.clustering import cluster_kernels, distinct_values, strip_clustering
from bigmodels.compress.pruning import (
    ConstantSparsity,
    MagnitudePruner,
    PolynomialDecay,
    prunable_weights,
    sparsity_report,
    strip_pruning,
)
from bigmodels.compress.quantization import quantize_model, refresh_kernel_ranges

__all__ = [
    "ConstantSparsity",
    "MagnitudePruner",
    "PolynomialDecay",
    "cluster_kernels",
    "distinct_values",
    "prunable_weights",
    "quantize_model",
    "refresh_kernel_ranges",
    "sparsity_report",
    "strip_clustering",
    "strip_pruning",
]
