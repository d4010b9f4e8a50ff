"""A text classifier on a pretrained keras-hub text backbone (BERT family): int32 ids in.

The model takes what every text model of ours takes: the WordPiece ids of a text, 0 = padding,
no special tokens. The start and end tokens ([CLS], [SEP]) and the padding mask are added inside
the model, so the TF-free tokenizer of a bundle, the browser's and the training pipeline all
produce the same plain ids, and the device needs nothing a BERT preprocessor would add.
"""

import keras

from bigmodels.models.backbones import load_backbone
from bigmodels.models.registry import register_model

# The start and end tokens take two places of the backbone's positions.
SPECIAL_TOKENS = 2


@keras.saving.register_keras_serializable(package="bigmodels")
class SpecialTokenPacker(keras.layers.Layer):
    """(batch, L) ids, real tokens first then 0s -> the backbone's (batch, L + 2) token ids
    ``start ids end 0...``, its padding mask (1 on start, ids and end) and zero segment ids.

    The end token goes where the first padding was: a comparison of the positions with the count
    of real ids (EQUAL, LESS, CAST, integer SUM and ADD: TFLite builtins in every mode).
    """

    def __init__(self, start_id: int, end_id: int, **kwargs):
        super().__init__(**kwargs)
        self.start_id, self.end_id = int(start_id), int(end_id)

    def call(self, ids):
        ids = keras.ops.cast(ids, "int32")
        count = keras.ops.sum(keras.ops.cast(keras.ops.not_equal(ids, 0), "int32"), axis=1, keepdims=True)
        first = keras.ops.zeros_like(ids[:, :1])
        packed = keras.ops.concatenate([first + self.start_id, ids, first], axis=1)
        positions = keras.ops.arange(ids.shape[1] + SPECIAL_TOKENS, dtype="int32")[None, :]
        end = keras.ops.cast(keras.ops.equal(positions, count + 1), "int32") * self.end_id
        padding_mask = keras.ops.cast(keras.ops.less(positions, count + SPECIAL_TOKENS), "int32")
        return packed + end, padding_mask, keras.ops.zeros_like(packed)

    def compute_output_shape(self, input_shape):
        shape = (input_shape[0], input_shape[1] + SPECIAL_TOKENS)
        return shape, shape, shape

    def get_config(self):
        return {**super().get_config(), "start_id": self.start_id, "end_id": self.end_id}


def _text_features(backbone, token_ids, padding_mask, segment_ids):
    """The backbone's text vector: its pooled output, or the start token's sequence vector."""
    offered = {"token_ids": token_ids, "padding_mask": padding_mask, "segment_ids": segment_ids}
    inputs = backbone.input if isinstance(backbone.input, dict) else {"token_ids": None}
    outputs = backbone({name: offered[name] for name in inputs})
    if isinstance(outputs, dict):
        return outputs["pooled_output"] if "pooled_output" in outputs else outputs["sequence_output"][:, 0]
    return outputs[:, 0]


@register_model("text_backbone_classifier", task="text_classification")
def text_backbone_classifier(
    *,
    backbone: str | None = None,
    vocabulary_size: int | None = None,
    sequence_length: int = 64,
    num_classes: int = 2,
    dropout: float = 0.1,
) -> keras.Model:
    """Builds a text classifier on a keras-hub text preset (``--backbone`` with text data).

    Args:
        backbone: a keras-hub text preset with a WordPiece tokenizer: a preset folder, or a
            handle such as ``bert_tiny_en_uncased`` (downloaded once).
        vocabulary_size: the preset tokenizer's vocabulary length (checked; None: not checked).
        sequence_length: WordPiece ids per text, without the start and end tokens.
        num_classes: number of labels.
        dropout: dropout rate before the new classification layer.

    Returns:
        An uncompiled functional ``keras.Model`` from int32 ids (N, sequence_length) to
        probabilities; the backbone is its nested model "backbone".

    Example:
        model = text_backbone_classifier(backbone="presets/tiny_bert", sequence_length=48)
    """
    if backbone is None:
        raise ValueError("text_backbone_classifier needs a keras-hub text preset (--backbone)")
    if num_classes < 2 or sequence_length < 1 or not 0.0 <= dropout < 1.0:
        raise ValueError(
            f"num_classes must be at least 2, sequence_length at least 1 and dropout in [0, 1), got "
            f"{num_classes}, {sequence_length} and {dropout}"
        )
    loaded = load_backbone(backbone)
    if loaded.tokenizer is None:
        raise ValueError(
            f"--backbone '{backbone}' is an image backbone; a text classifier needs a text preset"
        )
    tokenizer = loaded.tokenizer
    if vocabulary_size is not None and vocabulary_size != len(tokenizer["vocabulary"]):
        raise ValueError(
            f"vocabulary_size {vocabulary_size} differs from the preset's {len(tokenizer['vocabulary'])} "
            "tokens; leave it out"
        )
    longest = tokenizer["max_sequence_length"] - SPECIAL_TOKENS
    if sequence_length > longest:
        raise ValueError(
            f"--sequence-length must be at most {longest} for this preset, got {sequence_length}"
        )
    ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    packer = SpecialTokenPacker(tokenizer["start_id"], tokenizer["end_id"], name="special_tokens")
    x = _text_features(loaded.features, *packer(ids))
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(ids, outputs, name="text_backbone_classifier")
