"""The WordPiece tokenizer a text run learns from its training texts (or takes from a pretrained
backbone's preset), saved in the run folder.

The run folder (and its export) holds ``vocabulary.txt`` (one token per line, id = line
number; ``[PAD]`` = 0) and ``tokenizer.json`` (the settings). keras-hub's tokenizer turns
texts into ids for training and inside the SavedModel; ``bigmodels.lite.WordPieceTokenizer``
reads the same two files on a device and gives the same ids.
"""

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import tensorflow as tf

from bigmodels.data.dataset import Dataset
from bigmodels.lite.tokenizer import is_cjk

VOCABULARY_FILE = "vocabulary.txt"
TOKENIZER_FILE = "tokenizer.json"
RESERVED_TOKENS = ["[PAD]", "[UNK]"]  # padding must be id 0: the models mask id 0
MAX_AUTO_SEQUENCE_LENGTH = 256
LEARNER_MIN_COUNT = 10  # tensorflow-text's wordpiece learner: lower_thresh


@dataclass
class TokenizerSettings:
    """How texts become ids.

    Attributes:
        vocabulary_size: the most tokens to learn (fewer when the texts hold fewer).
        sequence_length: ids per text (padded with 0 or truncated); None chooses it from the
            training texts (95th percentile of their lengths).
        lowercase: case-fold (Unicode NFKC_Casefold, which also handles e.g. German ß).
        strip_accents: drop combining marks. Off by default: in Yorùbá, Vietnamese and many
            other languages a diacritic changes the word (ọ is not o).
        split_on_cjk: make every CJK ideograph a token of its own, so Chinese and Japanese
            text without spaces still splits into learnable pieces.
        min_frequency: a token must occur at least this often in the training texts to be
            learned. keras-hub's learner alone uses 10 (tensorflow-text's lower threshold),
            which leaves a small corpus with a tiny vocabulary (SST-2: 2,365 tokens, against
            8,482 at 2, and 2-3 points of accuracy).
    """

    vocabulary_size: int = 8000
    sequence_length: int | None = None
    lowercase: bool = True
    strip_accents: bool = False
    split_on_cjk: bool = True
    min_frequency: int = 2

    def keras_hub_options(self) -> dict:
        return {
            "lowercase": self.lowercase,
            "strip_accents": self.strip_accents,
            "split_on_cjk": self.split_on_cjk,
        }


@dataclass
class FixedVocabulary:
    """A vocabulary that comes with a pretrained text backbone: used as it is, never learned.

    Attributes:
        vocabulary: the preset tokenizer's tokens, id = index ([PAD] = 0).
        settings: its lowercasing, accent stripping and CJK splitting; ``sequence_length`` the
            caller's (None: chosen from the training texts, up to ``max_sequence_length``).
        max_sequence_length: the most ids per text the backbone takes.
    """

    vocabulary: list[str]
    settings: TokenizerSettings
    max_sequence_length: int = MAX_AUTO_SEQUENCE_LENGTH


def _string_batches(texts, batch_size: int = 1024):

    return tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), dtype=tf.string)).batch(batch_size)


def learn_vocabulary(texts, settings: TokenizerSettings) -> list[str]:
    """Computes a WordPiece vocabulary from training texts with keras-hub."""
    import keras_hub

    if settings.vocabulary_size < len(RESERVED_TOKENS) + 1:
        raise ValueError(f"--vocabulary-size must be at least 3, got {settings.vocabulary_size}")
    if not 1 <= settings.min_frequency <= LEARNER_MIN_COUNT:
        raise ValueError(
            f"--min-frequency must be between 1 and {LEARNER_MIN_COUNT}, got {settings.min_frequency}"
        )
    # The learner ignores tokens seen fewer than 10 times. Presenting the corpus k times
    # multiplies every count by k and changes nothing else, so a token seen min_frequency
    # times passes that bar.
    repeats = -(-LEARNER_MIN_COUNT // settings.min_frequency)
    vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
        _string_batches(texts).repeat(repeats),
        vocabulary_size=settings.vocabulary_size,
        reserved_tokens=RESERVED_TOKENS,
        **settings.keras_hub_options(),
    )
    if len(vocabulary) <= len(RESERVED_TOKENS):
        raise ValueError("the training texts produced no token; check the text column holds text")
    return list(vocabulary)


def keras_tokenizer(vocabulary: list[str], settings: TokenizerSettings, *, padded: bool = True):
    """keras-hub's WordPieceTokenizer with the run's settings (padded to sequence_length)."""
    import keras_hub

    return keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=vocabulary,
        sequence_length=settings.sequence_length if padded else None,
        oov_token="[UNK]",
        **settings.keras_hub_options(),
    )


def _run_in_graph(tokenizer, texts) -> list:
    """Tokenizes through tf.data, i.e. the TensorFlow graph path a SavedModel also runs."""

    batches = _string_batches(texts).map(tokenizer, num_parallel_calls=tf.data.AUTOTUNE)
    return list(batches.as_numpy_iterator())


def token_counts(texts, vocabulary: list[str], settings: TokenizerSettings) -> np.ndarray:
    """Number of tokens of each text before padding or truncation."""

    tokenizer = keras_tokenizer(vocabulary, settings, padded=False)
    counts = _string_batches(texts).map(lambda batch: tf.cast(tokenizer(batch).row_lengths(), tf.int32))
    return np.concatenate(list(counts.as_numpy_iterator())) if len(texts) else np.zeros(0, np.int32)


def choose_sequence_length(counts: np.ndarray, longest: int = MAX_AUTO_SEQUENCE_LENGTH) -> int:
    """Covers 95% of the training texts whole, rounded up to a multiple of 8 (at most ``longest``)."""
    length = int(np.ceil(np.percentile(counts, 95))) if len(counts) else 8
    return int(min(longest, MAX_AUTO_SEQUENCE_LENGTH, max(8, -(-length // 8) * 8)))


def tokenize(texts, vocabulary: list[str], settings: TokenizerSettings) -> np.ndarray:
    """int32 ids (N, sequence_length), exactly as the SavedModel's tokenizer computes them."""
    if not len(texts):
        return np.zeros((0, settings.sequence_length), np.int32)
    return np.concatenate(_run_in_graph(keras_tokenizer(vocabulary, settings), texts)).astype(np.int32)


def save_tokenizer(folder: Path, vocabulary: list[str], settings: TokenizerSettings) -> None:
    """Writes vocabulary.txt and tokenizer.json (read by bigmodels.lite.WordPieceTokenizer)."""
    folder = Path(folder)
    (folder / VOCABULARY_FILE).write_text("\n".join(vocabulary) + "\n", encoding="utf-8")
    description = {
        **asdict(settings),
        "split": True,
        "suffix_indicator": "##",
        "oov_token": "[UNK]",
        "padding_id": 0,
        "vocabulary_file": VOCABULARY_FILE,
        "vocabulary_length": len(vocabulary),
    }
    (folder / TOKENIZER_FILE).write_text(json.dumps(description, indent=2, ensure_ascii=False) + "\n")


def load_tokenizer(folder: Path) -> tuple[list[str], TokenizerSettings]:
    """Reads what ``save_tokenizer`` wrote."""
    folder = Path(folder)
    if not (folder / VOCABULARY_FILE).is_file():
        raise ValueError(f"'{folder}' has no {VOCABULARY_FILE}; it is not a text run folder")
    with open(folder / VOCABULARY_FILE, encoding="utf-8") as handle:
        vocabulary = [line.rstrip("\n") for line in handle]
    stored = json.loads((folder / TOKENIZER_FILE).read_text(encoding="utf-8"))
    fields = TokenizerSettings.__dataclass_fields__
    return vocabulary, TokenizerSettings(**{key: stored[key] for key in fields if key in stored})


def tokenize_dataset(dataset, vocabulary: list[str], settings: TokenizerSettings):
    """A copy of a text ``Dataset`` whose arrays hold ids; the raw texts stay in ``.texts``."""

    texts = {split: features for split, (features, _) in dataset.arrays.items()}
    arrays = {
        split: (tokenize(features, vocabulary, settings), labels)
        for split, (features, labels) in dataset.arrays.items()
    }
    info = replace(
        dataset.info,
        input_shape=(settings.sequence_length,),
        preprocessing={
            **dataset.info.preprocessing,
            "tokenizer": {**asdict(settings), "vocabulary_length": len(vocabulary)},
            "ideograph_share": ideograph_share(arrays["train"][0], vocabulary),
            "vocabulary_file": VOCABULARY_FILE,
            "input": "int32 WordPiece ids, 0 = padding",
        },
    )
    return Dataset(arrays=arrays, info=info, batch_size=dataset.batch_size, seed=dataset.seed, texts=texts)


def ideograph_share(ids: np.ndarray, vocabulary: list[str]) -> float:
    """The share of the (non-padding) ``ids`` that are one CJK ideograph each: how much of the
    text is written without spaces, where n-grams of characters stand in for words."""
    ideographs = np.array([len(token) == 1 and is_cjk(token) for token in vocabulary] or [False])
    real = ids[ids > 0]
    return round(float(ideographs[real].mean()), 4) if real.size else 0.0


def prepare_text(dataset, staging: Path, settings):
    """The run's WordPiece vocabulary (learned from the training texts, or a backbone's
    ``FixedVocabulary``), saved into ``staging``, and every split tokenized with it."""
    train_texts = dataset.arrays["train"][0]
    longest = MAX_AUTO_SEQUENCE_LENGTH
    if isinstance(settings, FixedVocabulary):
        vocabulary, longest, settings = settings.vocabulary, settings.max_sequence_length, settings.settings
    else:
        vocabulary = learn_vocabulary(train_texts, settings)
    if settings.sequence_length is None:
        # The validation texts count too: trained on SST-2's phrases (95% within 32 tokens) and
        # selected on whole sentences (95% within 48), a length from the phrases alone cut a
        # quarter of the sentences the model is judged on.
        lengths = [
            choose_sequence_length(token_counts(dataset.arrays[split][0], vocabulary, settings), longest)
            for split in ("train", "validation")
            if split == "train" or len(dataset.arrays.get(split, ((), ()))[0])
        ]
        settings = replace(settings, sequence_length=max(lengths))
    save_tokenizer(staging, vocabulary, settings)
    return tokenize_dataset(dataset, vocabulary, settings)
