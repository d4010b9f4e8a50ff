"""What a model costs per example: multiply-accumulates of its convolutions and dense layers."""

import math

from keras import layers


def multiply_accumulates(model) -> int:
    """Multiply-accumulates per example (one input), as MLPerf Tiny counts them: every weight of
    a Conv2D, DepthwiseConv2D or Dense kernel once per output position. Pooling, batch norm
    (folded into the convolutions at export), activations and additions are not counted."""
    total = 0
    for layer in _all_layers(model):
        if isinstance(layer, layers.DepthwiseConv2D | layers.Conv2D | layers.Dense):
            positions = math.prod(layer.output.shape[1:-1]) if len(layer.output.shape) > 2 else 1
            total += math.prod(layer.kernel.shape) * positions
    return int(total)


def _all_layers(model):
    for layer in model.layers:
        if hasattr(layer, "layers"):  # a nested model (a backbone)
            yield from _all_layers(layer)
        else:
            yield layer
