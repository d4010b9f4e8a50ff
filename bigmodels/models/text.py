"""Text classifiers over int32 token ids (0 = padding): a keras-hub Transformer and an embedding bag.

Both take ids rather than strings because string ops are not TFLite builtins: the run's
WordPiece vocabulary travels with the model, and ``bigmodels.lite.WordPieceTokenizer``
reproduces the training tokenizer's ids on a device.
"""

import warnings

import keras

from bigmodels.models.registry import register_model

# keras-hub's TokenAndPositionEmbedding passes the token mask into its position sublayer,
# which warns that it drops it; the outer layer still returns the mask, so attention and
# pooling do ignore padding (tests/test_text.py checks this).
warnings.filterwarnings("ignore", message="Layer 'position_embedding'", category=UserWarning)


@keras.saving.register_keras_serializable(package="bigmodels")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean over the real (unmasked) tokens of each sequence.

    Written as mean(x * mask) * length / count rather than sum(x * mask) / count: TFLite's
    16-bit quantizer gives SUM the scale of its input, which would saturate the sum, while a
    mean never leaves its input's range. The token count is summed in int32 so no quantized
    op ever holds it.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            return keras.ops.mean(inputs, axis=1)
        count = keras.ops.sum(keras.ops.cast(mask, "int32"), axis=1, keepdims=True)
        count = keras.ops.cast(keras.ops.maximum(count, 1), inputs.dtype)
        length = keras.ops.cast(keras.ops.shape(inputs)[1], inputs.dtype)
        weights = keras.ops.cast(mask, inputs.dtype)[..., None]
        return keras.ops.mean(inputs * weights, axis=1) * (length / count)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


def _check_text_arguments(vocabulary_size: int, sequence_length: int, num_classes: int, dropout: float):
    if vocabulary_size < 2:
        raise ValueError(f"vocabulary_size must be at least 2 (padding and one token), got {vocabulary_size}")
    if sequence_length < 1:
        raise ValueError(f"sequence_length must be at least 1, got {sequence_length}")
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got num_classes={num_classes}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


@register_model("transformer_classifier", task="text_classification")
def transformer_classifier(
    *,
    vocabulary_size: int = 8000,
    sequence_length: int = 64,
    num_classes: int = 2,
    width: int = 64,
    num_heads: int = 2,
    feedforward_size: int = 128,
    depth: int = 1,
    dropout: float = 0.1,
) -> keras.Model:
    """A small Transformer encoder classifier built from keras-hub layers.

    ``TokenAndPositionEmbedding`` (padding id 0 masked) -> ``depth`` x ``TransformerEncoder``
    -> mean over real tokens -> dropout -> softmax. The padding mask made by the embedding
    flows through the blocks (attention ignores padding) into the pooling.

    Args:
        vocabulary_size: number of WordPiece tokens (the run's vocabulary file length).
        sequence_length: ids per example; longer texts are truncated, shorter ones padded with 0.
        num_classes: number of labels.
        width: embedding and model width.
        num_heads: attention heads per encoder block (must divide ``width``).
        feedforward_size: inner size of each block's feed-forward network.
        depth: number of encoder blocks.
        dropout: dropout rate in the blocks and before the head.

    Example:
        model = get_model("transformer_classifier", vocabulary_size=5000, sequence_length=48,
                          num_classes=2)
        probabilities = model.predict(ids)  # ids: int32 (N, 48)
    """
    import keras_hub

    _check_text_arguments(vocabulary_size, sequence_length, num_classes, dropout)
    if width % num_heads:
        raise ValueError(f"num_heads ({num_heads}) must divide width ({width})")
    if depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    x = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size, sequence_length, width, mask_zero=True, name="embedding"
    )(ids)
    for block in range(depth):
        x = keras_hub.layers.TransformerEncoder(
            feedforward_size, num_heads, dropout=dropout, name=f"encoder_{block}"
        )(x)
    x = MaskedMeanPooling(name="mean_pool")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(ids, outputs, name="transformer_classifier")


@register_model("embedding_bag_classifier", task="text_classification")
def embedding_bag_classifier(
    *,
    vocabulary_size: int = 8000,
    sequence_length: int = 64,
    num_classes: int = 2,
    width: int = 16,
    dropout: float = 0.2,
) -> keras.Model:
    """Averaged token embeddings and a softmax: fastText's (and MediaPipe's average word
    embedding's) idea, for the smallest devices.

    Args:
        vocabulary_size: number of WordPiece tokens.
        sequence_length: ids per example (padding id 0 is ignored by the pooling).
        num_classes: number of labels.
        width: embedding size.
        dropout: dropout before the head.

    Example:
        model = get_model("embedding_bag_classifier", vocabulary_size=5000, num_classes=2)
    """
    _check_text_arguments(vocabulary_size, sequence_length, num_classes, dropout)
    ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(vocabulary_size, width, mask_zero=True, name="embedding")(ids)
    x = MaskedMeanPooling(name="mean_pool")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(ids, outputs, name="embedding_bag_classifier")
