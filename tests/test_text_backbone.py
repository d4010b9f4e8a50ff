"""Transfer learning from a keras-hub text preset (--backbone with text data): a tiny BertBackbone
with random weights and a WordPiece vocabulary, saved with save_to_preset (nothing is downloaded),
trained in two phases, exported in every text mode, bundled and run TF-free; the TF-free
tokenizer's ids against the preset tokenizer's; the stuck-at-chance guard across phases."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from helpers import predict_without_tensorflow, review_rows, write_reviews_csv

ROOT = Path(__file__).resolve().parents[1]
TEXT_OPTIONS = {"text_columns": ["body"], "label_column": "sentiment"}
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # BERT's; [PAD] = 0
# Texts the vocabulary is learned from besides the reviews, so that accented, CJK and other
# pieces exist and the parity texts below meet them.
EXTRA_TEXTS = [
    "Café crème brûlée, naïve façade: déjà vu! Über straße",
    "今天天气很好。我们去公园吧",
    "Ìlera ní Yorùbá; ọmọ ọba",
    "unbelievably, unforgettable, unremarkable -- it's (really) good...",
] * 12
PARITY_TEXTS = [
    "The MOVIE was great!",
    "Café crème brûlée — naïve FAÇADE, déjà vu",
    "今天天气很好，我们去公园吧！",
    "Ìlera ní Yorùbá: ọmọ ọba",
    "zzqx unknownword ¿qué? ¡sí!",
    "antidisestablishmentarianism " + "x" * 120,
    "tabs\tand\nnewlines  and   spaces",
    "emoji 🙂 and symbols © ® ™ $5.00 #tag @user",
    "ﬁne ligatures and Ｆｕｌｌｗｉｄｔｈ letters",
    "it's don't can't won't",
    "",
]
OFFLINE_LINE = (
    "error: preset bert_tiny_en_uncased could not be downloaded: connect once, or pass a local preset folder"
)


def learned_bert_vocabulary(texts) -> list[str]:
    """A WordPiece vocabulary learned from ``texts`` by our learner, with BERT's special tokens."""
    from bigmodels import TokenizerSettings, learn_vocabulary

    learned = learn_vocabulary(texts, TokenizerSettings(vocabulary_size=400, min_frequency=2))
    assert learned[:2] == SPECIAL_TOKENS[:2]
    return learned[:2] + SPECIAL_TOKENS[2:] + learned[2:]


def save_tiny_bert_preset(folder: Path, vocabulary: list[str], **tokenizer_settings) -> Path:
    import keras_hub

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary), num_layers=1, num_heads=2, hidden_dim=16,
        intermediate_dim=32, max_sequence_length=64,
    )  # fmt: skip
    backbone.save_to_preset(str(folder))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, **tokenizer_settings).save_to_preset(str(folder))
    metadata = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**metadata, "license": "Apache-2.0"}))
    return folder


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    return write_reviews_csv(tmp_path_factory.mktemp("reviews") / "reviews.csv", 80)


@pytest.fixture(scope="module")
def bert_preset(tmp_path_factory):
    texts = [row[1] for row in review_rows(80)] + EXTRA_TEXTS
    folder = tmp_path_factory.mktemp("preset") / "tiny_bert"
    return save_tiny_bert_preset(folder, learned_bert_vocabulary(texts), lowercase=True)


class PhaseEnd(keras.callbacks.Callback):
    """The backbone's weights at the end of each phase."""

    def __init__(self):
        super().__init__()
        self.snapshots = []

    def on_train_end(self, logs=None):
        backbone = self.model.get_layer("backbone")
        self.snapshots.append(
            {layer.name: [w.copy() for w in layer.get_weights()] for layer in backbone.layers}
        )


@pytest.fixture(scope="module")
def phase_end():
    return PhaseEnd()


# Batches of 16: a phase of one step would take it at the warm-up's learning rate of 0.
@pytest.fixture(scope="module")
def text_run(bert_preset, reviews, phase_end, tmp_path_factory):
    from bigmodels.workflows.train import train_run

    out = tmp_path_factory.mktemp("run") / "run"
    run_dir, metrics = train_run(
        None, str(reviews), out, backbone=str(bert_preset), epochs=1, fine_tune_epochs=1, batch_size=16,
        fine_tune_from="transformer_layer_0", data_options=TEXT_OPTIONS, callbacks=[phase_end], verbose=0,
    )  # fmt: skip
    return run_dir, metrics


def preset_ids(preset: Path, texts: list[str]) -> list[list[int]]:
    import keras_hub

    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(str(preset))
    return [[int(i) for i in keras.ops.convert_to_numpy(tokenizer(text))] for text in texts]


def test_text_preset_trains_on_its_own_vocabulary_in_two_phases(text_run, bert_preset):
    run_dir, metrics = text_run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model"] == "text_backbone_classifier"
    record = config["backbone"]
    assert record["kind"] == "keras_hub_preset" and record["class"] == "BertBackbone"
    assert record["preset"] == "tiny_bert" and record["licence"] == "Apache-2.0"
    assert record["tokenizer"]["class"] == "BertTokenizer" and record["tokenizer"]["lowercase"] is True
    assert [phase["name"] for phase in record["phases"]] == ["feature_extraction", "fine_tuning"]
    with open(run_dir / "history.csv", newline="") as handle:
        assert [int(float(row["phase"])) for row in csv.DictReader(handle)] == [1, 2]
    assert [phase["phase"] for phase in metrics["phases"]] == [1, 2]
    # The preset's vocabulary, not one learned from the reviews; its settings, not the defaults'.
    preset_vocabulary = (bert_preset / "assets" / "tokenizer" / "vocabulary.txt").read_text().splitlines()
    assert (run_dir / "vocabulary.txt").read_text().splitlines() == preset_vocabulary
    assert config["model_args"]["vocabulary_size"] == len(preset_vocabulary)
    assert config["tokenizer"]["lowercase"] is True and config["tokenizer"]["strip_accents"] is False


def test_phase_1_freezes_the_encoder_and_phase_2_tunes_it_from_the_layer_asked(
    text_run, bert_preset, phase_end
):
    import keras_hub

    run_dir, _ = text_run
    assert (
        json.loads((run_dir / "config.json").read_text())["backbone"]["fine_tune_from"]
        == "transformer_layer_0"
    )
    preset = keras_hub.models.Backbone.from_preset(str(bert_preset))
    source = {layer.name: layer.get_weights() for layer in preset.layers}
    after_frozen, after_fine_tuning = phase_end.snapshots
    for name, weights in after_frozen.items():  # phase 1: every weight is the preset's
        for ours, theirs in zip(weights, source[name], strict=True):
            np.testing.assert_array_equal(ours, theirs, err_msg=name)
    changed = {
        name
        for name, weights in after_fine_tuning.items()
        if not all(np.array_equal(a, b) for a, b in zip(weights, source[name], strict=True))
    }
    assert changed == {"transformer_layer_0", "pooled_dense"}  # the embeddings come before the layer


def test_text_preset_exports_every_text_mode_bundles_and_runs_tf_free(text_run):
    from bigmodels.workflows.export import export_run

    run_dir, _ = text_run
    report = export_run(run_dir, latency_repeats=3)
    tflite = [a["quantization"] for a in report["artifacts"] if a["format"] == "tflite"]
    assert tflite == ["float32", "dynamic", "float16", "int8", "int16x8"]
    float32 = next(a for a in report["artifacts"] if a["quantization"] == "float32")
    assert float32["agreement"] == 1.0
    card = (run_dir / "export" / "bundle" / "MODEL_CARD.md").read_text()
    assert "BertBackbone" in card and "Apache-2.0" in card and "tiny_bert" in card
    metadata = json.loads((run_dir / "export" / "bundle" / "metadata.json").read_text())
    assert metadata["backbone"]["class"] == "BertBackbone"
    device = predict_without_tensorflow(
        run_dir / "export" / "bundle.zip", ["great film, loved it", "dull and boring"]
    )
    assert len(device["labels"]) == 2
    assert device["selftest"]["passed"] == device["selftest"]["total"] > 0


def test_the_model_adds_the_special_tokens_as_the_presets_preprocessor_does(text_run, bert_preset):
    """The packing inside the model equals keras-hub's BertTextClassifierPreprocessor's."""
    import keras_hub

    from bigmodels import load_model
    from bigmodels.lite import WordPieceTokenizer

    run_dir, _ = text_run
    model = load_model(run_dir)
    length = model.input_shape[1]
    texts = ["The MOVIE was great!", "", "a " * (length + 5), "今天天气很好"]
    ids = WordPieceTokenizer.from_files(run_dir / "vocabulary.txt", run_dir / "tokenizer.json")(texts)
    packer = model.get_layer("special_tokens")
    token_ids, padding_mask, _ = (keras.ops.convert_to_numpy(t) for t in packer(ids))
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        keras_hub.tokenizers.Tokenizer.from_preset(str(bert_preset)), sequence_length=length + 2
    )
    expected = preprocessor(keras.ops.convert_to_tensor(texts))
    np.testing.assert_array_equal(token_ids, keras.ops.convert_to_numpy(expected["token_ids"]))
    np.testing.assert_array_equal(padding_mask, keras.ops.convert_to_numpy(expected["padding_mask"]))


def test_the_runs_tf_free_tokenizer_gives_the_preset_tokenizers_ids(text_run, bert_preset):
    from bigmodels.lite import WordPieceTokenizer

    run_dir, _ = text_run
    ours = WordPieceTokenizer.from_files(run_dir / "vocabulary.txt", run_dir / "tokenizer.json")
    expected = preset_ids(bert_preset, PARITY_TEXTS)
    assert [ours.tokenize(text) for text in PARITY_TEXTS] == expected
    vocabulary = ours.vocabulary
    seen = {vocabulary[i] for row in expected for i in row}
    assert "[UNK]" in seen and {"今", "天"} <= seen and any(t.startswith("##") for t in seen)


def test_the_browser_pages_tokenizer_gives_the_preset_tokenizers_ids_too(text_run, bert_preset, tmp_path):
    """The page's tokenizer.js, under node, on the run's two files (what the bundle carries)."""
    from web_helpers import NodeTokenizer

    from bigmodels.web.unicode_tables import unicode_tables_js

    run_dir, _ = text_run
    tables = tmp_path / "unicode_tables.js"
    tables.write_text(unicode_tables_js(), encoding="utf-8")
    node = NodeTokenizer(tables)
    try:
        vocabulary = (run_dir / "vocabulary.txt").read_text(encoding="utf-8").splitlines()
        settings = json.loads((run_dir / "tokenizer.json").read_text(encoding="utf-8"))
        node.setup(vocabulary, {**settings, "sequence_length": None})
        assert node.ids(PARITY_TEXTS) == preset_ids(bert_preset, PARITY_TEXTS)
    finally:
        node.close()


def test_a_presets_accent_stripping_and_case_are_carried(reviews, tmp_path):
    """A cased preset that strips accents: its settings, not the learned tokenizer's defaults."""
    from bigmodels.data.vocabulary import TokenizerSettings, save_tokenizer
    from bigmodels.lite import WordPieceTokenizer
    from bigmodels.workflows.backbone_settings import apply_backbone, preset_vocabulary

    texts = [row[1] for row in review_rows(40)] + EXTRA_TEXTS
    vocabulary = learned_bert_vocabulary(texts) + ["Cafe", "MOVIE", "creme"]
    preset = save_tiny_bert_preset(tmp_path / "cased", vocabulary, lowercase=False, strip_accents=True)
    settings = {"epochs": None, "patience": None}
    transfer = apply_backbone(None, None, settings, backbone=str(preset), fine_tune_epochs=None,
                               fine_tune_from=None, recipe=None)[3]  # fmt: skip
    fixed = preset_vocabulary(transfer, {"sequence_length": 40})
    assert (fixed.settings.lowercase, fixed.settings.strip_accents) == (False, True)
    with pytest.raises(ValueError, match="--lowercase: a text --backbone brings its own"):
        preset_vocabulary(transfer, {"sequence_length": 40, "lowercase": True})
    with pytest.raises(ValueError, match="--min-frequency: a text --backbone brings its own"):
        preset_vocabulary(transfer, TokenizerSettings(sequence_length=40, min_frequency=1))  # from Python
    assert preset_vocabulary(transfer, TokenizerSettings(sequence_length=30)).settings.sequence_length == 30
    save_tokenizer(tmp_path, fixed.vocabulary, fixed.settings)
    ours = WordPieceTokenizer.from_files(tmp_path / "vocabulary.txt", tmp_path / "tokenizer.json")
    assert [ours.tokenize(text) for text in PARITY_TEXTS] == preset_ids(preset, PARITY_TEXTS)
    with pytest.raises(ValueError, match="--sequence-length must be between 1 and 62"):
        preset_vocabulary(transfer, {"sequence_length": 63})


def test_a_text_handle_offline_is_one_line_and_writes_nothing(reviews, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KAGGLEHUB_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "apps" / "train.py"), "--data", str(reviews), "--out", str(out),
         "--text-column", "body", "--label-column", "sentiment", "--backbone", "bert_tiny_en_uncased"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [OFFLINE_LINE]
    assert sorted(path.name for path in tmp_path.iterdir() if path.name != "cache") == []


def test_tokenizer_flags_a_text_preset_replaces_are_refused_in_one_line(reviews, bert_preset, tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(ROOT / "apps" / "train.py"), "--data", str(reviews), "--out", str(out),
         "--text-column", "body", "--label-column", "sentiment", "--backbone", str(bert_preset),
         "--vocabulary-size", "500", "--no-lowercase", "--sequence-length", "16"],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "error: --lowercase, --vocabulary-size: a text --backbone brings its own vocabulary and settings; "
        "leave them out"
    ]
    assert not out.exists()


def test_a_text_preset_on_images_is_refused_in_one_line(bert_preset, tmp_path):
    from helpers import write_image_folder

    from bigmodels.workflows.train import train_run

    photos = write_image_folder(tmp_path / "photos", per_class=4, size=(16, 16))
    with pytest.raises(ValueError, match="--backbone takes text data, and the data is image") as raised:
        train_run(None, str(photos), tmp_path / "out", backbone=str(bert_preset), epochs=1, verbose=0)
    assert "\n" not in str(raised.value) and not (tmp_path / "out").exists()


class FakePhases:
    """fit_classifier's stand-in: logs the given validation accuracies per phase to history.csv."""

    def __init__(self, per_phase: list[list[float]]):
        self.per_phase, self.judged = list(per_phase), []

    def __call__(self, model, dataset, run_dir, *, initial_epoch, phase, judge_at_chance, **settings):
        self.judged.append(judge_at_chance)
        history = Path(run_dir) / "history.csv"
        rows = self.per_phase[phase - 1]
        with open(history, "a", newline="") as handle:
            writer = csv.writer(handle)
            if not initial_epoch:
                writer.writerow(["epoch", "val_accuracy", "phase"])
            writer.writerows([initial_epoch + i, value, phase] for i, value in enumerate(rows))
        return {"epochs_trained": len(rows), "best_epoch": 1, "training_seconds": 0.0}


@pytest.mark.parametrize("fine_tuning, refused", [([0.5, 0.75], False), ([0.5, 0.5, 0.5], True)])
def test_stuck_at_chance_is_judged_after_the_last_phase_only(fine_tuning, refused, monkeypatch, tmp_path):
    from bigmodels.training import transfer
    from bigmodels.training.callbacks import StuckAtChance

    fake = FakePhases([[0.5] * 6, fine_tuning])  # phase 1 at chance for more epochs than patience
    monkeypatch.setattr(transfer, "fit_classifier", fake)
    monkeypatch.setattr(transfer, "find_backbone", lambda model: None)
    monkeypatch.setattr(transfer, "set_phase_trainable", lambda *args: None)
    dataset = SimpleNamespace(arrays={"validation": (None, np.array([0, 1] * 10))})
    phases = transfer.training_phases(6, len(fine_tuning), 1e-3, None)
    model = SimpleNamespace(_initial_epoch=None)
    call = lambda: transfer.fit_in_phases(model, dataset, tmp_path, phases=phases, patience=5, keep_best=True)  # noqa: E731
    if refused:
        with pytest.raises(StuckAtChance, match="never rose above chance"):
            call()
    else:
        assert call()["epochs_trained"] == 6 + len(fine_tuning)
    assert fake.judged == [False, False]  # no phase judges itself
