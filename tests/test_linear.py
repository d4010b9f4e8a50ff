"""The n-gram bag fitted as logistic regression on TF-IDF features (bigmodels.training.linear):
its features are the layer's, its optimum is scikit-learn's, and the train app uses it."""

import json
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from helpers import write_chinese_reviews_tsv, write_reviews_csv

from bigmodels import get_model
from bigmodels.data.splits import SOURCE_VALIDATION_SPLIT
from bigmodels.models.text import HashedNgramBag
from bigmodels.training.linear import (
    DEEP_SCALES,
    NB_FLOOR,
    _log_loss,
    _log_softmax,
    bag_features,
    best_deep_scale,
    fit_bag,
    inverse_document_frequency,
    keeps_refit,
    refit_wide_head,
)

VOCABULARY, LENGTH = 60, 12


def _ids(count: int, seed: int) -> np.ndarray:
    """Token ids of varied lengths, padded with 0."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCABULARY, size=(count, LENGTH)).astype(np.int32)
    for row, length in zip(ids, rng.integers(1, LENGTH + 1, size=count), strict=True):
        row[length:] = 0
    return ids


def _labelled(count: int, seed: int, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Ids whose label is which third of the vocabulary most of their tokens come from."""
    ids = _ids(count, seed)
    thirds = np.where(ids > 0, (ids - 1) * classes // (VOCABULARY - 1), -1)
    labels = np.array([np.bincount(row[row >= 0], minlength=classes).argmax() for row in thirds])
    return ids, labels


def _bag(use_bias: bool = True, units: int = 3, reference_class: bool = False) -> HashedNgramBag:
    bag = HashedNgramBag(VOCABULARY, 200, 2, units, use_bias=use_bias, reference_class=reference_class)
    bag.build((None, LENGTH))
    return bag


def test_the_features_are_what_the_layer_multiplies_its_table_with():
    bag = _bag()
    rng = np.random.default_rng(1)
    bag.table.assign(rng.normal(size=bag.table.shape).astype(np.float32))
    bag.bias.assign(rng.normal(size=3).astype(np.float32))
    ids = _ids(40, seed=2)
    expected = bag.gain * (bag_features(bag, ids) @ bag.table.numpy()) + bag.bias.numpy()
    np.testing.assert_allclose(bag(ids).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_the_idf_is_scikit_learns_smoothed_idf():
    from sklearn.feature_extraction.text import TfidfTransformer

    features = bag_features(_bag(), _ids(50, seed=3))
    reference = TfidfTransformer(smooth_idf=True).fit((features > 0).astype(float)).idf_
    np.testing.assert_allclose(inverse_document_frequency(features), reference, rtol=1e-9)


def test_the_fit_is_scikit_learns_logistic_regression_on_the_tf_idf_features():
    """Same features (the layer's, times IDF), same penalty and unpenalised intercept: the same
    probabilities, so the table holds the exact optimum, not an early-stopped approximation."""
    import scipy.sparse
    from sklearn.linear_model import LogisticRegression

    train, validation = _labelled(150, seed=4), _labelled(40, seed=5)
    bag = _bag()
    rows, chosen = fit_bag(bag, train, validation, strengths=(0.5,), refit=False, nb_power=0)
    assert chosen == 0 and rows[0]["C"] == 0.5
    features = bag_features(bag, train[0])
    idf = inverse_document_frequency(features)
    reference = LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(
        features @ scipy.sparse.diags(idf), train[1]
    )
    test = _ids(30, seed=6)
    expected = reference.predict_proba(bag_features(bag, test) @ scipy.sparse.diags(idf))
    np.testing.assert_allclose(keras.ops.softmax(bag(test)).numpy(), expected, atol=2e-3)


def test_a_two_class_bag_with_a_reference_class_is_scikit_learns_binary_logistic_regression():
    """One stored column, the first class's logit fixed at 0: scikit-learn's binary model, with
    the same C (its penalty is on the one weight vector too)."""
    import scipy.sparse
    from sklearn.linear_model import LogisticRegression

    (ids, labels), (val_ids, val_labels) = _labelled(150, seed=4), _labelled(40, seed=5)
    train, validation = (ids, labels % 2), (val_ids, val_labels % 2)
    bag = _bag(units=2, reference_class=True)
    assert bag.table.shape[1] == 1 and bag.bias.shape == (1,)
    fit_bag(bag, train, validation, strengths=(0.5,), refit=False, nb_power=0)
    features = bag_features(bag, train[0])
    idf = scipy.sparse.diags(inverse_document_frequency(features))
    reference = LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(features @ idf, train[1])
    test = _ids(30, seed=6)
    logits = bag(test).numpy()
    np.testing.assert_array_equal(logits[:, 0], 0.0)
    expected = reference.predict_proba(bag_features(bag, test) @ idf)
    np.testing.assert_allclose(keras.ops.softmax(logits).numpy(), expected, atol=2e-3)


def _tf_idf(bag, ids: np.ndarray):
    import scipy.sparse

    features = bag_features(bag, ids)
    return features, scipy.sparse.diags(inverse_document_frequency(features))


def test_a_two_class_bag_is_nbsvms_logistic_regression_on_naive_bayes_scaled_features():
    """Wang & Manning's log-count ratio r from the TF-IDF features summed per class (+1 each),
    the features times |r|^0.5: scikit-learn's binary model on them, folded into the table."""
    import scipy.sparse
    from sklearn.linear_model import LogisticRegression

    (ids, labels), (val_ids, val_labels) = _labelled(150, seed=4), _labelled(40, seed=5)
    bag = _bag(units=2, reference_class=True)
    fit_bag(bag, (ids, labels % 2), (val_ids, val_labels % 2), strengths=(0.5,), refit=False, nb_power=0.5)
    features, idf = _tf_idf(bag, ids)
    tf_idf = features @ idf
    positive = np.asarray(tf_idf[labels % 2 == 1].sum(axis=0)).ravel() + 1
    negative = np.asarray(tf_idf[labels % 2 == 0].sum(axis=0)).ravel() + 1
    ratio = np.log(positive / positive.sum()) - np.log(negative / negative.sum())
    scaled = scipy.sparse.diags(np.abs(ratio) ** 0.5 + NB_FLOOR)
    reference = LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(tf_idf @ scaled, labels % 2)
    test = _ids(30, seed=6)
    expected = reference.predict_proba(bag_features(bag, test) @ idf @ scaled)
    np.testing.assert_allclose(keras.ops.softmax(bag(test)).numpy(), expected, atol=2e-3)


def test_each_class_column_is_scaled_by_its_one_vs_rest_ratio():
    """Three classes: the optimum is the softmax regression whose weight w_fc is penalised by
    w_fc^2 / s_fc^2, s_fc = |r_fc|^0.5 + floor with r_fc class c's ratio against the others,
    here minimised directly (dense, by scipy) rather than through the scaled features."""
    import scipy.optimize

    train, validation = _labelled(120, seed=13), _labelled(30, seed=14)
    bag = _bag()
    fit_bag(bag, train, validation, strengths=(0.5,), refit=False, nb_power=0.5)
    features, idf = _tf_idf(bag, train[0])
    tf_idf = (features @ idf).toarray()
    scale = np.empty((tf_idf.shape[1], 3))
    for label in range(3):
        inside = tf_idf[train[1] == label].sum(axis=0) + 1
        outside = tf_idf[train[1] != label].sum(axis=0) + 1
        ratio = np.log(inside / inside.sum()) - np.log(outside / outside.sum())
        scale[:, label] = np.abs(ratio) ** 0.5 + NB_FLOOR
    used = tf_idf.any(axis=0)  # unseen features keep weight 0 either way
    x, s, onehot = tf_idf[:, used], scale[used], np.eye(3)[train[1]]

    def objective(flat):
        weights, bias = flat[:-3].reshape(s.shape), flat[-3:]
        log_probabilities = _log_softmax(x @ weights + bias)
        return -(onehot * log_probabilities).sum() + 0.5 * (weights**2 / s**2).sum() / 0.5

    solution = scipy.optimize.minimize(objective, np.zeros(s.size + 3), method="L-BFGS-B",
                                       options={"maxiter": 20000, "maxfun": 10**6}).x  # fmt: skip
    test_features = (bag_features(bag, _ids(30, seed=6)) @ idf).toarray()[:, used]
    expected = _log_softmax(test_features @ solution[:-3].reshape(s.shape) + solution[-3:])
    fitted = keras.ops.log_softmax(bag(_ids(30, seed=6))).numpy()
    np.testing.assert_allclose(np.exp(fitted), np.exp(expected), atol=5e-3)


def test_the_strength_is_chosen_by_validation_log_loss_and_refit_uses_the_validation_split():
    train, validation = _labelled(150, seed=7), _labelled(60, seed=8)
    held_out, refitted = _bag(), _bag()
    rows, chosen = fit_bag(held_out, train, validation, strengths=(0.01, 1.0, 100.0), refit=False)
    assert [row["C"] for row in rows] == [0.01, 1.0, 100.0]
    assert chosen == int(np.argmin([row["val_loss"] for row in rows]))
    again, chosen_again = fit_bag(refitted, train, validation, strengths=(0.01, 1.0, 100.0), refit=True)
    assert again == rows and chosen_again == chosen  # the choice is made before the refit
    # The refit saw the validation texts: its table differs, and fits them at least as well.
    assert not np.allclose(held_out.table.numpy(), refitted.table.numpy())
    ids, labels = validation

    def loss(bag):
        return float(keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
            labels, bag(ids), from_logits=True
        )))  # fmt: skip

    assert loss(refitted) < loss(held_out)


def test_a_bag_without_bias_is_fitted_without_intercept():
    bag = _bag(use_bias=False)
    fit_bag(bag, _labelled(100, seed=9), _labelled(30, seed=10), strengths=(1.0,))
    assert [weight.name for weight in bag.weights if weight.trainable] == ["table"]
    assert np.abs(bag.table.numpy()).max() > 0


def _tiny_transformer(classes: int = 3):
    return get_model(
        "transformer_classifier", vocabulary_size=VOCABULARY, sequence_length=LENGTH, num_classes=classes,
        width=8, num_heads=2, feedforward_size=8, embedding_size=8, ngram_buckets=200,
    )  # fmt: skip


def _dataset(validation_split: str):
    return SimpleNamespace(
        arrays={"train": _labelled(200, seed=11), "validation": _labelled(60, seed=12)},
        info=SimpleNamespace(validation_split=validation_split),
    )


def _trained_transformer(dataset, epochs: int):
    keras.utils.set_random_seed(0)
    model = _tiny_transformer()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*dataset.arrays["train"], epochs=epochs, verbose=0)
    return model, keras.Model(model.inputs, model.get_layer("classifier").output)


def test_the_wide_head_refit_scales_the_deep_logits_and_reports_its_validation_accuracy():
    dataset = _dataset(SOURCE_VALIDATION_SPLIT)  # a user's file: no refit on it
    model, deep = _trained_transformer(dataset, epochs=1)
    val_ids, val_labels = dataset.arrays["validation"]
    before = deep.predict(val_ids, verbose=0)
    record = refit_wide_head(model, dataset)
    # After one epoch the joint model is near chance; the fitted head is far better.
    assert record["kept"] and record["val_accuracy"] > record["val_accuracy_joint"] + 0.2
    assert record["deep_scale"] in DEEP_SCALES and "refitted_on" not in record
    np.testing.assert_allclose(
        deep.predict(val_ids, verbose=0), before * record["deep_scale"], rtol=1e-4, atol=1e-5
    )
    accuracy = np.mean(model.predict(val_ids, verbose=0).argmax(axis=1) == val_labels)
    assert accuracy == pytest.approx(record["val_accuracy"], abs=1e-6)


def test_the_deep_scale_is_the_one_of_best_accuracy_not_least_log_loss():
    labels = np.array([1, 1, 0])
    wide = np.array([[0.1, 0.0]] * 3)  # class 0 for all
    # One confident mistake from 1/16 on; the two right answers need 1/8 or more.
    deep = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 40.0]])
    losses = [_log_loss(scale * deep + wide, labels) for scale in DEEP_SCALES]
    assert DEEP_SCALES[int(np.argmin(losses))] == 0.0625  # log loss: the confident mistake's least
    assert best_deep_scale(deep, wide, labels) == 0.125  # 2 of 3 right, the least loss of those


def test_a_refit_that_validates_worse_than_the_joint_model_is_undone(monkeypatch):
    import bigmodels.training.linear as linear

    def noise_fit(bag, train, validation, **_):
        noise = np.random.default_rng(0).normal(scale=50, size=bag.table.shape)
        bag.table.assign(noise.astype(np.float32))
        return [{"C": 1.0}], 0

    dataset = _dataset("10% of the training data")
    model, _ = _trained_transformer(dataset, epochs=30)
    weights = [weight.numpy() for weight in model.weights]
    monkeypatch.setattr(linear, "fit_bag", noise_fit)
    record = refit_wide_head(model, dataset)
    assert not record["kept"] and record["val_accuracy"] < record["val_accuracy_joint"]
    for weight, value in zip(model.weights, weights, strict=True):
        np.testing.assert_array_equal(weight.numpy(), value)


def test_a_refit_within_one_standard_error_below_the_joint_model_is_kept():
    """The joint model's validation accuracy is the best of its epochs on that split: a refit
    two texts of 79 below it is kept (one standard error there is 5.6 points), while on 872
    examples the same 2.5 points are more than one standard error (1.7) and undo it."""
    assert keeps_refit(35 / 79, 37 / 79, 79)
    assert not keeps_refit(0.443, 0.468, 872)
    assert keeps_refit(0.468, 0.468, 872) and keeps_refit(0.9, 0.5, 10)
    assert not keeps_refit(0.0, 0.5, 100)


def test_a_model_without_a_wide_head_is_left_alone():
    model = get_model("transformer_classifier", vocabulary_size=VOCABULARY, sequence_length=LENGTH,
                      num_classes=2, width=8, feedforward_size=8, ngram_order=0)  # fmt: skip
    assert refit_wide_head(model, _dataset("carved")) is None


def test_the_train_app_fits_the_ngram_classifier_exactly_and_refits_on_a_carved_validation_split(tmp_path):
    from bigmodels.workflows.train import train_run

    data = write_reviews_csv(tmp_path / "reviews.csv", 160)
    options = {"text_columns": ["title", "body"], "label_column": "sentiment"}
    run_dir, metrics = train_run(
        "ngram_classifier", str(data), tmp_path / "run", data_options=options, verbose=0
    )
    assert "L-BFGS logistic regression" in metrics["fitted_by"] and "refitted" in metrics["fitted_by"]
    history = (run_dir / "history.csv").read_text().splitlines()
    assert history[0].split(",")[:2] == ["epoch", "C"] and len(history) == 1 + metrics["epochs_trained"]
    assert 0.5 < metrics["validation_accuracy"] <= 1 and metrics["test_accuracy"] > 0.6
    # A validation file of the user's is not trained on.
    validation = write_reviews_csv(tmp_path / "validation.csv", 40, seed=3)
    _, kept_apart = train_run(
        "ngram_classifier", str(data), tmp_path / "run2", verbose=0,
        data_options={**options, "validation_source": str(validation)},
    )  # fmt: skip
    assert "refitted" not in kept_apart["fitted_by"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["model_args"]["ngram_order"] == 2


def test_text_mostly_in_cjk_ideographs_gets_character_trigrams(tmp_path):
    """A token per ideograph: trigrams of characters stand in for words (+1 point on Chinese
    reviews), while word text keeps bigrams (the test above: word trigrams cost 1.5-2 points)."""
    from bigmodels.data.vocabulary import ideograph_share
    from bigmodels.workflows.train import train_run

    vocabulary = ["[PAD]", "[UNK]", "好", "书", "good", "##s"]
    assert ideograph_share(np.array([[2, 3, 4, 0], [2, 3, 3, 0]]), vocabulary) == round(5 / 6, 4)
    data = write_chinese_reviews_tsv(tmp_path / "评论.tsv")
    options = {"text_columns": [0], "label_column": 1, "header": False}
    run_dir, metrics = train_run(
        "ngram_classifier", str(data), tmp_path / "run", data_options=options, verbose=0
    )
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    assert config["model_args"]["ngram_order"] == 3 and metrics["test_accuracy"] >= 0.8, metrics
    assert metrics["preprocessing"]["ideograph_share"] > 0.9
    _, given = train_run(
        "ngram_classifier", str(data), tmp_path / "bigrams", data_options=options, verbose=0,
        model_args={"ngram_order": 2},
    )  # fmt: skip
    assert json.loads((tmp_path / "bigrams" / "config.json").read_text())["model_args"]["ngram_order"] == 2
