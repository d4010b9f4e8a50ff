"""Text classification: a WordPiece vocabulary learned from the run's texts; token ids in on
the device (string ops are not TFLite builtins), raw strings in the SavedModel."""

import numpy as np

from bigmodels.convert.tflite import DEFAULT_TEXT_MODES, QUANTIZATION_MODES
from bigmodels.data.vocabulary import (
    TOKENIZER_FILE,
    VOCABULARY_FILE,
    TokenizerSettings,
    keras_tokenizer,
    load_tokenizer,
    prepare_text,
    tokenize_dataset,
)
from bigmodels.lite.selftest import encode_array
from bigmodels.run_folder import load_run_dataset, text_options
from bigmodels.tasks.classification import ClassificationTask


class TextClassification(ClassificationTask):
    name = "text_classification"
    data_kind = "text"
    default_model = "transformer_classifier"
    quantization_modes = QUANTIZATION_MODES
    default_modes = DEFAULT_TEXT_MODES
    carried_files = (VOCABULARY_FILE, TOKENIZER_FILE)
    # A text classified on a phone within 0.2 ms at 1 thread. On 800 English fortunes (232 ids a
    # text) the int8 Transformer file was 5% smaller than the dynamic-range one and took 0.26 ms
    # against 0.19 (benchmarks/results/text_small_sets.json): not fast enough to win on speed alone.
    latency_budget_ms = 0.2
    # Validate and keep a moving average of the weights over about one epoch (training.classifier's
    # weight_averaging): the Transformer's validation peaks within a few epochs, while it already
    # fits its training texts, so single epochs' weights are noisy. SST-2 phrases, seeds 0-2:
    # 84.02 / 84.62 / 83.64% on test (mean 84.09) against 83.80 / 83.96 / 83.31 (mean 83.69); the
    # smaller sets moved by less than a seed does (README, "Text").
    weight_averaging_epochs = 1.0

    def default_training(self, info) -> dict:
        return {**super().default_training(info), "weight_averaging": self.weight_averaging_epochs}

    def load_data(self, run_dir, config, source=None, all_as_test=False):
        """Text tokenized with the run's own vocabulary, never a new one."""
        raw = load_run_dataset(config, source, all_as_test=all_as_test, **text_options(config, source))
        if raw.info.kind != "text":
            raise ValueError(f"{source}: the run was trained on text; evaluate it on text data")
        return tokenize_dataset(raw, *load_tokenizer(run_dir))

    def bundle_data_options(self, metadata: dict) -> dict:
        """The columns and encoding the bundle's training data had (a CSV/TSV of the same layout)."""
        preprocessing = metadata.get("preprocessing", {})
        return {
            k: preprocessing[k] for k in ("text_columns", "label_column", "encoding") if k in preprocessing
        }

    def prepare_data(self, dataset, staging, tokenizer):
        """Learns the run's vocabulary from the training texts only (or takes a backbone's
        ``FixedVocabulary``), into ``staging``."""
        if isinstance(tokenizer, dict):
            tokenizer = TokenizerSettings(**tokenizer)
        return prepare_text(dataset, staging, tokenizer or TokenizerSettings())

    def complete_config(self, config, staging, dataset, options):
        return {**config, "tokenizer": dataset.info.preprocessing["tokenizer"]}

    def serving(self, run_dir, dataset, features) -> dict:
        return {
            "serving_inputs": dataset.texts["test"].astype(str),
            "serving_tokenizer": keras_tokenizer(*load_tokenizer(run_dir)),
            "saved_model_fields": {"input": "raw strings (tokenizer inside)"},
            "extra_files": (run_dir / VOCABULARY_FILE, run_dir / TOKENIZER_FILE),
        }

    def selftest_inputs(self, dataset, indices) -> dict:
        """The raw strings and the training tokenizer's ids for them (a device's tokenizer must
        give the same ids)."""
        return {
            "texts": [str(text) for text in dataset.texts["test"][indices]],
            "token_ids": encode_array(dataset.arrays["test"][0][indices].astype(np.int32)),
        }

    def input_spec(self, config: dict, artifact: dict) -> dict:
        args = config["model_args"]
        return {
            "dtype": "int32",
            "shape": [None, args["sequence_length"]],
            "value_range": [0, args["vocabulary_size"] - 1],
            "padding_id": 0,
        }

    def bundle_parts(self, config, report, artifact, run_metrics):
        parts = super().bundle_parts(config, report, artifact, run_metrics)
        tokenizer = config["tokenizer"]
        parts.metadata = {
            **parts.metadata,
            "tokenizer": {**tokenizer, "vocabulary_file": VOCABULARY_FILE, "settings_file": TOKENIZER_FILE},
        }
        parts.files = (VOCABULARY_FILE, TOKENIZER_FILE)
        origin = "the backbone preset's" if isinstance(config.get("backbone"), dict) else "learned"
        parts.card_facts.append(
            f"Tokenizer: WordPiece ({origin} vocabulary), {tokenizer['vocabulary_length']} tokens, "
            f"{tokenizer['sequence_length']} "
            f"ids per text (longer texts are cut), lowercase={tokenizer['lowercase']}, "
            f"strip_accents={tokenizer['strip_accents']}"
        )
        return parts


TASK = TextClassification()
