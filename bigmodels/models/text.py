"""Text classifiers over int32 token ids (0 = padding): a keras-hub Transformer and an embedding bag.

Both take ids rather than strings because string ops are not TFLite builtins: the run's
WordPiece vocabulary travels with the model, and ``bigmodels.lite.WordPieceTokenizer``
reproduces the training tokenizer's ids on a device.
"""

import warnings

import keras
import numpy as np
import tensorflow as tf

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


@keras.saving.register_keras_serializable(package="bigmodels")
class HashedNgramBag(keras.layers.Layer):
    """A linear bag of the tokens and their hashed bigrams (``order`` 3: and trigrams, hashed
    into the same buckets): TF-IDF features' idea in the graph.

    Each token id, and each pair of consecutive ids hashed into ``buckets`` rows, looks up a
    learned vector; a text's vectors are summed and divided by the square root of their count
    (a sum over an L2-normalised bag of features, as TF-IDF + logistic regression has: the
    plain mean lost 5 points on a 14-topic set). The pair (a, b) goes to bucket
    (T[a] + b) mod ``buckets``, T a fixed random table (tabulation hashing) stored as three
    int8 bytes per token: an int8 GATHER, CAST, integer ADD/MUL, a compare and a subtraction, all
    TFLite and TFLite Micro builtins (TFLite Micro has no int32 FLOOR_MOD nor int32 GATHER), so
    the tokenizer and its ids stay those of every other text model. On SST-2, 20k buckets lost
    2 points to collisions against 200k; the builders size ``buckets`` from a weight budget.

    ``use_bias`` adds a learned logit per unit after the sum (logistic regression's intercept:
    +0.3 to +1.8 points on the Russian fortunes set, whose classes differ in size).

    ``reference_class`` fixes the first unit's logit at 0 and stores only the others (a PAD
    after the sum): softmax logits have one degree of freedom too many, so a two-class bag is
    the same model with one column, and gets twice the buckets from one budget.

    ``gain`` multiplies the output: zero-initialised linear weights trained with Adam move by
    about the learning rate per step, so the gain lets the bag learn at the pace a linear model
    needs while the rest of a model keeps its learning rate (wide-and-deep trains its wide part
    faster for the same reason).

    The lookups are ``tf.gather`` rather than ``keras.ops.take``: take wraps negative indices
    with an int32 SELECT_V2, which TFLite Micro lacks.
    """

    def __init__(
        self,
        vocabulary_size: int,
        buckets: int,
        order: int,
        units: int,
        gain: float = 8.0,
        use_bias: bool = False,
        reference_class: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocabulary_size, self.buckets = int(vocabulary_size), int(buckets)
        self.order, self.units, self.gain = int(order), int(units), float(gain)
        self.use_bias, self.reference_class = bool(use_bias), bool(reference_class)
        self.stored_units = self.units - self.reference_class  # the table's columns
        _check_ngram_arguments(self.vocabulary_size, self.buckets, self.order)

    def build(self, input_shape):
        rows = self.vocabulary_size + (self.buckets if self.order > 1 else 0)
        # Zeros: a text starts at no opinion, as a linear model's weights do.
        self.table = self.add_weight(shape=(rows, self.stored_units), initializer="zeros", name="table")
        if self.use_bias:
            self.bias = self.add_weight(shape=(self.stored_units,), initializer="zeros", name="bias")
        if self.order > 1:
            self.offset_bytes = self._hash_table(HASH_SEED, "hash_offsets")
        if self.order > 2:
            self.second_offset_bytes = self._hash_table(HASH_SEED + 1, "hash_offsets_2")

    def _hash_table(self, seed: int, name: str):
        """A fixed random offset in [0, buckets) per token, stored as three bytes each (int8,
        less 128): TFLite Micro gathers int8 but not int32."""
        offsets = np.random.default_rng(seed).integers(0, self.buckets, self.vocabulary_size)
        digits = np.stack([(offsets >> shift) & 255 for shift in OFFSET_SHIFTS], axis=1) - 128
        return self.add_weight(
            shape=(self.vocabulary_size, len(OFFSET_SHIFTS)),
            dtype="int8",
            initializer=keras.initializers.Constant(digits.astype(np.int8)),
            trainable=False,
            name=name,
        )

    def _offsets(self, table, ids):
        digits = tf.cast(tf.gather(table, ids, axis=0), "int32") + 128
        return digits[..., 0] + digits[..., 1] * 256 + digits[..., 2] * 65536

    def _bucket(self, code):  # code mod buckets for 0 <= code < 2 * buckets
        return code - self.buckets * tf.cast(code >= self.buckets, "int32")

    def feature_ids(self, ids):
        """(batch, length) token ids -> (rows of the features, 1 where a feature is real)."""
        ids = tf.cast(ids, "int32")
        real = tf.cast(ids > 0, "int32")
        if self.order < 2:
            return ids, real
        first, second = ids[:, :-1], ids[:, 1:]
        pair_real = real[:, :-1] * real[:, 1:]
        # offsets < buckets and ids < vocabulary_size <= buckets: one subtraction is the mod.
        pair_code = self._bucket(self._offsets(self.offset_bytes, first) + second)
        features = [ids, (pair_code + self.vocabulary_size) * pair_real]
        flags = [real, pair_real]
        if self.order > 2:
            # (a, b, c) -> ((T[a] + b) mod buckets + U[b] + c) mod buckets, U a second table.
            triple_real = pair_real[:, :-1] * real[:, 2:]
            code = self._bucket(pair_code[:, :-1] + self._offsets(self.second_offset_bytes, ids[:, 1:-1]))
            code = self._bucket(code + ids[:, 2:])
            features.append((code + self.vocabulary_size) * triple_real)
            flags.append(triple_real)
        return tf.concat(features, axis=1), tf.concat(flags, axis=1)

    def call(self, ids):
        return self.bag(ids, self.table)

    def bag(self, ids, table):
        """The bag's output with ``table`` as its lookup table (QAT passes a fake-quantized one)."""
        features, valid = self.feature_ids(ids)
        # Sums are FULLY_CONNECTED layers with a constant column of ones, whose output scale is
        # their own: the int16x8 quantizer gives a SUM its input's scale (a count of 0/1 flags
        # saturated at 1) and TFLite Micro has no int32 SUM.
        flags = tf.cast(valid, self.compute_dtype)
        ones = tf.ones([features.shape[1], 1], self.compute_dtype)
        count = tf.maximum(tf.matmul(flags, ones), 1.0)
        weights = flags / tf.sqrt(count)
        # Each feature's weight carries the whole scaling, and the features are summed with
        # the ones. Measured on a trained bag (top-1 agreement with Keras; largest probability error): a
        # MUL or DIV after a mean took the mean's int8 scale (11%); a BATCH_MATMUL gave wrong
        # dynamic-range results once the interpreter was resized (55%); a SUM saturated in
        # int16x8, which gives SUM its input's scale (0.13); this form: int8 96% (0.06),
        # dynamic 99% (0.03), int16x8 99.9% (0.01).
        vectors = tf.gather(table, features, axis=0)
        products = tf.transpose(vectors * weights[..., None], [0, 2, 1])  # (batch, units, features)
        # The gain is the summing column's value, not a factor of the weights: the int8
        # converter gives the gathered table its product's scale, so weights above 1 would
        # quantize the table coarser (top-1 agreement with Keras: 95.7% with the gain there,
        # 98.7% with it here).
        logits = tf.matmul(products, ones * self.gain)[..., 0]
        logits = logits + self.bias if self.use_bias else logits
        return tf.pad(logits, [[0, 0], [1, 0]]) if self.reference_class else logits

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self):
        names = ("vocabulary_size", "buckets", "order", "units", "gain", "use_bias", "reference_class")
        return {**super().get_config(), **{name: getattr(self, name) for name in names}}


# Fixed: the offsets are part of the model (saved with it), never redrawn; three int8 bytes each.
HASH_SEED, OFFSET_SHIFTS = 20150, (0, 8, 16)


def _check_ngram_arguments(vocabulary_size: int, buckets: int, order: int) -> None:
    if order not in (1, 2, 3):
        raise ValueError(f"ngram_order must be 1 (tokens), 2 (and bigrams) or 3 (and trigrams), got {order}")
    if order >= 2 and buckets < vocabulary_size:
        raise ValueError(
            f"bigrams need at least as many hash buckets as tokens ({vocabulary_size}), got {buckets}"
        )


def ngram_layout(budget: int, vocabulary_size: int, units: int, order: int, buckets: int | None):
    """(order, buckets) of a bag of ``units`` columns whose table stays near ``budget`` weights:
    ``buckets`` when given; else the buckets the budget leaves after the tokens, or tokens only
    when that is fewer buckets than tokens (14 topics on a 7.7k vocabulary: a 576 KB file)."""
    if buckets or order < 2:
        return order, buckets or 0
    free = budget // max(units, 1) - vocabulary_size
    return (order, int(free)) if free >= vocabulary_size else (1, 0)


def budgeted_bag(budget: int, vocabulary_size: int, num_classes: int, order: int, buckets, name: str):
    """A ``HashedNgramBag`` of class logits with an intercept whose table keeps near ``budget``
    weights (``ngram_layout``). Two classes store one column (``reference_class``): the same
    model as two symmetric columns, with twice the buckets. More classes keep a column each: a
    reference class makes the L2 penalty favour it, which cost the English fortunes (14 topics)
    4 points of test accuracy (54.6% against 58.6%)."""
    binary = num_classes == 2
    order, buckets = ngram_layout(budget, vocabulary_size, num_classes - binary, order, buckets)
    return HashedNgramBag(
        vocabulary_size, buckets, order, num_classes, use_bias=True, reference_class=binary, name=name
    )


def _check_text_arguments(vocabulary_size: int, sequence_length: int, num_classes: int, dropout: float):
    if vocabulary_size < 2:
        raise ValueError(f"vocabulary_size must be at least 2 (padding and one token), got {vocabulary_size}")
    if sequence_length < 1:
        raise ValueError(f"sequence_length must be at least 1, got {sequence_length}")
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got num_classes={num_classes}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")


def _check_encoder_arguments(width: int, num_heads: int, depth: int, embedding_size: int, attention_length):
    if width % num_heads:
        raise ValueError(f"num_heads ({num_heads}) must divide width ({width})")
    if depth < 1 or embedding_size < 1:
        raise ValueError(f"depth and embedding_size must be at least 1, got {depth} and {embedding_size}")
    if attention_length is not None and attention_length < 1:
        message = "attention_length must be at least 1 (the sequence length or more: all ids)"
        raise ValueError(f"{message}, got {attention_length}")


DEEP_LOGITS, WIDE_LOGITS, DEEP_AND_WIDE = "classifier", "ngram_head", "deep_and_wide"  # training.linear
# transformer_classifier's weights with its int8 hash tables (dynamic-range file: 1.13-1.16 bytes
# a weight, under 500,000 bytes). Its n-gram head gets what the rest leaves, at least
# WIDE_HEAD_BUDGET: 112k buckets beside 8,000 tokens, 290k beside 2,650 (Chinese characters).
TRANSFORMER_BUDGET, WIDE_HEAD_BUDGET = 425_000, 120_000
NGRAM_BAG_BUDGET = 400_000  # weights of ngram_classifier's table (int8: ~400 KB)
# The encoder's cost grows with the ids it reads (attention with their square): 184 ids (en
# fortunes) took 0.55 ms at 1 thread, the first 64 a quarter of that; the n-gram head reads all.
ATTENTION_LENGTH = 64


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
    embedding_size: int = 32,
    ngram_order: int = 2,
    ngram_buckets: int | None = None,
    attention_length: int | None = ATTENTION_LENGTH,
) -> keras.Model:
    """A small Transformer encoder classifier built from keras-hub layers, with a wide n-gram head.

    Deep part: token embedding of ``embedding_size`` projected to ``width`` (factorised, as
    ALBERT does: the table is most of the file) + keras-hub ``PositionEmbedding`` (padding id 0
    masked) -> ``depth`` x keras-hub ``TransformerEncoder`` -> mean over real tokens -> dropout
    -> class logits. Wide part (``ngram_order`` > 0): a ``HashedNgramBag`` of the tokens and
    their n-grams giving class logits directly (TF-IDF + logistic regression's model, what wins
    on small topic sets) from the weights the deep part leaves; the logits are added.

    Args:
        vocabulary_size: number of WordPiece tokens (the run's vocabulary file length).
        sequence_length: ids per example; longer texts are truncated, shorter ones padded with 0.
        num_classes: number of labels.
        width: model width.
        num_heads: attention heads per encoder block (must divide ``width``).
        feedforward_size: inner size of each block's feed-forward network.
        depth: number of encoder blocks.
        dropout: dropout rate in the blocks and before the head.
        embedding_size: size of the token table's vectors (``width`` for no factorisation).
        ngram_order: 2 for a wide head of tokens and bigrams, 3 with trigrams too (the train
            app's choice for text mostly in CJK ideographs), 1 for tokens only, 0 for none.
        ngram_buckets: hash buckets of the wide head's n-grams (None: what the rest leaves of
            425,000 weights, at least 120,000; tokens only if fewer buckets than tokens).
        attention_length: the encoder reads the first this many ids (None: all of them), the
            n-gram head all of them: it bounds the latency of long texts.

    Example:
        model = get_model("transformer_classifier", vocabulary_size=5000, sequence_length=48)
        probabilities = model.predict(ids)  # ids: int32 (N, 48)
    """
    import keras_hub

    _check_text_arguments(vocabulary_size, sequence_length, num_classes, dropout)
    _check_encoder_arguments(width, num_heads, depth, embedding_size, attention_length)
    ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    read = min(sequence_length, attention_length or sequence_length)
    head = ids if read == sequence_length else ids[:, :read]
    # The padding mask is passed explicitly: a projection and PositionEmbedding would drop a
    # Keras mask, and attention and pooling must ignore padding.
    padding = keras.ops.not_equal(head, 0)
    x = keras.layers.Embedding(vocabulary_size, embedding_size, name="token_embedding")(head)
    if embedding_size != width:
        x = keras.layers.Dense(width, use_bias=False, name="embedding_projection")(x)
    positions = keras_hub.layers.PositionEmbedding(read, name="position_embedding")(x)
    x = keras.layers.Add(name="embedding")([x, positions])
    for block in range(depth):
        x = keras_hub.layers.TransformerEncoder(
            feedforward_size, num_heads, dropout=dropout, name=f"encoder_{block}"
        )(x, padding_mask=padding)
    x = MaskedMeanPooling(name="mean_pool")(x, mask=padding)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    logits = keras.layers.Dense(num_classes, name=DEEP_LOGITS)(x)
    if ngram_order > 0:
        hash_bytes = len(OFFSET_SHIFTS) * vocabulary_size * (ngram_order - 1)  # int8 offset tables
        left = TRANSFORMER_BUDGET - keras.Model(ids, logits).count_params() - hash_bytes
        wide_budget = max(WIDE_HEAD_BUDGET, left)
        wide = budgeted_bag(
            wide_budget, vocabulary_size, num_classes, ngram_order, ngram_buckets, WIDE_LOGITS
        )
        logits = keras.layers.Add(name=DEEP_AND_WIDE)([logits, wide(ids)])
    outputs = keras.layers.Activation("softmax", name="probabilities")(logits)
    return keras.Model(ids, outputs, name="transformer_classifier")


@register_model("ngram_classifier", task="text_classification")
def ngram_classifier(
    *,
    vocabulary_size: int = 8000,
    sequence_length: int = 64,
    num_classes: int = 2,
    ngram_order: int = 2,
    ngram_buckets: int | None = None,
) -> keras.Model:
    """A linear classifier over the tokens and their hashed n-grams (fastText's bag of n-grams,
    TF-IDF + logistic regression's features): the smallest and fastest text model, and the only
    one TensorFlow Lite Micro runs (gathers, integer arithmetic and a sum).

    Args:
        vocabulary_size: number of WordPiece tokens.
        sequence_length: ids per example.
        num_classes: number of labels.
        ngram_order: 2 for tokens and bigrams, 3 with trigrams too (the train app's choice
            for text mostly in CJK ideographs, where a token is a character), 1 for tokens only.
        ngram_buckets: hash buckets shared by the bigrams and trigrams (None: from a budget of
            400,000 weights; tokens only when it affords fewer buckets than tokens).

    Example:
        model = get_model("ngram_classifier", vocabulary_size=5000, num_classes=4)
    """
    _check_text_arguments(vocabulary_size, sequence_length, num_classes, 0.0)
    ids = keras.Input(shape=(sequence_length,), dtype="int32", name="token_ids")
    logits = budgeted_bag(
        NGRAM_BAG_BUDGET, vocabulary_size, num_classes, ngram_order, ngram_buckets, "ngram_bag"
    )(ids)
    outputs = keras.layers.Activation("softmax", name="probabilities")(logits)
    return keras.Model(ids, outputs, name="ngram_classifier")


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
