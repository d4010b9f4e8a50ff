"""What image and text classification share: fitting with the best checkpoint, the test-split
report, the top-1 parity check of an exported file, and the classifier's bundle metadata."""

import functools
import json
from pathlib import Path

import numpy as np

from bigmodels.compress.quantized_layers import calibrate_ranges
from bigmodels.data.splits import EmptySplitError
from bigmodels.lite.selftest import CLASSIFIER_RULE, score_tolerance
from bigmodels.quality.classification import classification_report, plot_confusion_matrix, plot_history
from bigmodels.run_folder import load_run_model, record_entries, write_json
from bigmodels.tasks.base import (
    SELFTEST_EXAMPLES,
    BundleParts,
    ExportSubject,
    SelfTestExamples,
    Task,
    data_fields,
)
from bigmodels.training.callbacks import save_atomically
from bigmodels.training.classifier import OPTIMIZER_DEFAULTS, fit_classifier
from bigmodels.training.linear import deep_and_wide, fit_linear_classifier, linear_bag, refit_wide_head
from bigmodels.training.retrain import retrain_on_all
from bigmodels.training.transfer import fit_in_phases

INTENDED_USE = (
    "Classifies inputs like its training data into the classes above, and only those: anything "
    "else still gets one of these labels, so check the score. The accuracy holds for data like "
    "the test split; other cameras, lighting, languages or writing styles can lower it. Measure "
    "on your own data before relying on it."
)
CALIBRATION_EXAMPLES = 200


def fit_classifier_into(staging: Path, model, dataset, training: dict, *, verbose, callbacks,
                        keep_best: bool = True, saved_model=None, backbone: dict | None = None,
                        start_is_candidate: bool = False) -> dict:  # fmt: skip
    """Trains a classifier into ``staging``; writes metrics.json and the curves; returns metrics.

    ``saved_model`` is the model that model.keras holds when ``model`` wraps it (distillation).
    ``backbone`` is config.json's record of a pretrained backbone: its phases (frozen, then
    fine-tuned) run one after the other (``bigmodels.training.transfer``).
    """
    settings = {key: training[key] for key in ("epochs", "learning_rate", "seed", "patience", "augmentation")}
    # Runs made before these settings existed trained with Adam, no decay and no smoothing.
    settings.update({key: training.get(key, value) for key, value in OPTIMIZER_DEFAULTS.items()})
    options = {"verbose": verbose, "callbacks": callbacks, "keep_best": keep_best, "saved_model": saved_model}
    # From scratch: not a derived run (pruned, QAT, distilled), not a backbone's phases.
    from_scratch = keep_best and saved_model is None and not start_is_candidate and not backbone
    bag = linear_bag(model) if from_scratch else None
    phases = _phase_settings(backbone)
    retrain = (
        keep_best and training.get("retrain_on_all") and bag is None and (from_scratch or phases is not None)
    )
    starting_weights = model.get_weights() if retrain else None

    def fit(model, dataset, folder, **changes):
        if phases is not None:
            return fit_in_phases(model, dataset, folder, **settings, **{**options, **changes}, **phases)
        return fit_classifier(model, dataset, folder, **settings, **{**options, **changes},
                              start_is_candidate=start_is_candidate)  # fmt: skip

    if bag is not None:  # a linear model has an exact optimum: no epochs needed
        summary = fit_linear_classifier(model, bag, dataset, staging)
    else:
        summary = fit(model, dataset, staging)
        if from_scratch and deep_and_wide(model) is not None:
            summary["wide_head_refit"] = refit = _refit_wide_head(staging, dataset)
            if refit["kept"]:
                summary["validation_accuracy"] = refit["val_accuracy"]
    if retrain:  # the validated pass has judged the run; now every labelled example trains it
        last_epoch = functools.partial(fit, keep_best=False)
        summary["retrained_on_all"] = retrain_on_all(model, starting_weights, dataset, staging, last_epoch)
    metrics = evaluate_into(staging, dataset, load_run_model(staging))
    metrics.update(summary, num_parameters=int((saved_model or model).count_params()))
    write_json(staging / "metrics.json", metrics)
    plot_history(staging / "history.csv", staging / "training_curves.png")
    return metrics


def _phase_settings(backbone: dict | None) -> dict | None:
    """``fit_in_phases``' phases and first fine-tuned layer, from config.json's "backbone"
    record (None: one phase, as from scratch)."""
    if not (backbone and backbone.get("phases")):
        return None
    return {"phases": backbone["phases"], "fine_tune_from": backbone.get("fine_tune_from")}


def _refit_wide_head(staging: Path, dataset) -> dict:
    """``refit_wide_head`` on the kept epoch's model, saved back in its place."""
    trained = load_run_model(staging)
    record = refit_wide_head(trained, dataset)
    if record["kept"]:
        save_atomically(trained.save, staging / "model.keras")
    return record


def evaluate_into(run_dir: Path, dataset, model, *, name: str = "evaluation") -> dict:
    """Evaluates ``model`` on the test split; writes NAME.json and the confusion-matrix PNG."""
    features, labels = dataset.arrays["test"]
    probabilities = model.predict(features, batch_size=256, verbose=0)
    report = classification_report(labels, probabilities.argmax(-1), dataset.info.class_names)
    info = dataset.info
    report.update(data_source=info.source, test_split=info.test_split)
    write_json(run_dir / f"{name}.json", report)
    plot_confusion_matrix(report, run_dir / f"{name.replace('evaluation', 'confusion_matrix')}.png")
    return {
        "test_accuracy": report["accuracy"],
        "num_test_examples": report["num_examples"],
        **data_fields(info),
        "test_split": info.test_split,
        "validation_split": info.validation_split,
    }


def check_same_classes(found: list[str], expected: list[str], whose: str) -> None:
    """Raises ValueError unless the data's classes are ``expected`` (a model's), in order."""
    if found != expected:
        raise ValueError(
            f"the data's classes ({_listed(found)}) differ from {whose} ({_listed(expected)}); "
            "evaluate on data with the same classes"
        )


def _listed(names: list[str], shown: int = 10) -> str:
    """The first ``shown`` names (a text column taken for labels has thousands)."""
    more = f", ... ({len(names)} in all)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def top1_report(probabilities, labels, keras_top1) -> dict:
    top1 = probabilities.argmax(-1)
    return {
        "accuracy": round(float(np.mean(top1 == labels)), 6),
        "agreement": round(float(np.mean(top1 == keras_top1)), 6),
    }


def representative_examples(dataset, count: int = CALIBRATION_EXAMPLES) -> np.ndarray:
    """Seeded training examples that calibrate the full-integer modes."""
    return dataset.seeded_sample("train", count)[0]


def round_robin(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """``count`` indices of ``labels``, one class after the other (each class's examples in a
    seeded order) until ``count`` are taken or none is left: the self-test covers the classes."""
    rng = np.random.default_rng(seed)
    queues = [list(rng.permutation(np.flatnonzero(labels == value))) for value in np.unique(labels)]
    chosen = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(int(queue.pop(0)))
    return np.asarray(chosen, dtype=np.int64)


def backbone_summary(backbone: dict) -> dict:
    """What a bundle says about the pretrained backbone (metadata.json's "backbone")."""
    keys = ("kind", "source", "preset", "class", "model", "licence")
    return {key: backbone[key] for key in keys if key in backbone}


def backbone_fact(backbone: dict) -> str:
    """The model card's line naming the pretrained backbone, its licence and the training phases."""
    if backbone.get("kind") == "run":
        origin = f"the feature layers of the run `{backbone['source']}` ({backbone.get('model')})"
        licence = "as that run's training data allow"
    else:
        origin = f"the keras-hub preset `{backbone.get('preset')}` ({backbone.get('class')})"
        licence = backbone.get("licence") or (
            "not stated in the preset's metadata; check the preset's own model card before shipping"
        )
    phases = ", then ".join(
        f"{phase['name'].replace('_', ' ')} ({phase['epochs']} epoch{'s' * (phase['epochs'] != 1)} "
        f"at learning rate {phase['learning_rate']:g})"
        for phase in backbone.get("phases", [])
    )
    return f"Backbone: {origin}; licence: {licence}; trained by {phases or 'one phase'}"


class ClassificationTask(Task):
    """Image and text classifiers: softmax over the classes, top-1 accuracy on the test split."""

    can_distill = True
    export_columns = (("accuracy", "accuracy", 9, 4), ("agree", "agreement", 8, 4))
    quality_key = "accuracy"

    def keras_line(self, report: dict) -> str:
        return f"keras accuracy {report['keras_accuracy']:.4f} on {report['num_test_examples']} test examples"

    def gate_failure_text(self, failure: dict, gate: dict) -> str:
        return (
            f"is {failure['drop_points']:.2f} points below Keras (allowed {gate['max_accuracy_drop_points']})"
        )

    def training_summary(self, metrics: dict) -> str:
        return (
            f"test accuracy {metrics['test_accuracy']:.4f} on {metrics['num_test_examples']} examples "
            f"({metrics['num_skipped_files']} file(s) skipped)"
        )

    def evaluation_lines(self, report: dict) -> list[str]:
        lines = [
            f"accuracy {report['accuracy']:.4f}, macro F1 {report['macro_f1']:.4f} "
            f"on {report['num_examples']} examples of {report['data_source']}",
            f"{'class':<20}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}",
        ]
        for name, row in report["per_class"].items():
            lines.append(
                f"{name[:19]:<20}{row['precision']:>10.4f}{row['recall']:>8.4f}{row['f1']:>8.4f}{row['support']:>9}"
            )
        return lines

    def calibrate_quantized(self, trained, network, dataset) -> None:
        calibrate_ranges(network, representative_examples(dataset))

    def fit_into(self, staging, model, dataset, config, *, verbose, callbacks, keep_best=True,
                 start_is_candidate=False, saved_model=None):  # fmt: skip
        training = config["training"]
        return fit_classifier_into(
            staging, model, dataset, training, verbose=verbose, callbacks=callbacks, keep_best=keep_best,
            start_is_candidate=start_is_candidate, saved_model=saved_model,
            # A derived run (pruned, clustered, QAT) tunes its whole model in one phase.
            backbone=config.get("backbone") if keep_best else None,
        )  # fmt: skip

    def evaluate(
        self, run_dir: Path, config: dict, data_source: str | None, all_examples: bool = False
    ) -> dict:
        if all_examples and data_source is None:
            raise ValueError("--all scores every example of --data: name the data to score")
        try:
            dataset = self.load_data(run_dir, config, data_source, all_as_test=all_examples)
        except EmptySplitError as error:
            if data_source is None:
                raise
            # A small folder of new examples is too small to carve; --all scores every one of them.
            raise EmptySplitError(f"{error}, or score every example of it with --all") from None
        trained_classes = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))["class_names"]
        check_same_classes(dataset.info.class_names, trained_classes, "the run's")
        name = "evaluation" if data_source is None else "evaluation_other_data"
        evaluate_into(run_dir, dataset, load_run_model(run_dir), name=name)
        record_entries(run_dir)  # evaluation_other_data.json is the run's own file too
        return json.loads((run_dir / f"{name}.json").read_text(encoding="utf-8"))

    def export_subject(self, run_dir: Path, config: dict, gates: dict) -> ExportSubject:
        dataset = self.load_data(run_dir, config)
        model = load_run_model(run_dir)
        features, labels = dataset.arrays["test"]
        keras_top1 = model.predict(features, batch_size=256, verbose=0).argmax(-1)
        keras_accuracy = float(np.mean(keras_top1 == labels))
        max_drop = gates["max_accuracy_drop"]

        def gate_failure(entry: dict) -> dict | None:
            drop = (keras_accuracy - entry["accuracy"]) * 100
            return {"file": entry["file"], "drop_points": round(drop, 3)} if drop > max_drop else None

        return ExportSubject(
            model=model,
            examples=features,
            representative=representative_examples(dataset),
            file_prefix="model",
            compare=lambda probabilities: top1_report(probabilities, labels, keras_top1),
            gate_failure=gate_failure,
            gate={"max_accuracy_drop_points": max_drop},
            criterion=f"within {max_drop} points of the Keras accuracy",
            header={
                "keras_accuracy": round(keras_accuracy, 6),
                "num_test_examples": int(len(labels)),
                "data_source": dataset.info.source,
                "test_split": dataset.info.test_split,
            },
            record_input=True,
            selftest=self.selftest_examples(dataset, config),
            **self.serving(run_dir, dataset, features),
        )

    def selftest_examples(self, dataset, config) -> SelfTestExamples:
        """Test-split examples, round-robin over the classes (seeded by the run's seed)."""
        features, labels = dataset.arrays["test"]
        indices = round_robin(labels, self.selftest_count(features), dataset.seed)
        names = list(dataset.info.class_names)
        return SelfTestExamples(
            model_inputs=features[indices],
            stored=self.selftest_inputs(dataset, indices),
            classes=[names[int(labels[index])] for index in indices],
            class_names=names,
            selection=f"round-robin over the test split's classes, seed {dataset.seed}",
        )

    def selftest_count(self, features: np.ndarray) -> int:
        return SELFTEST_EXAMPLES

    def selftest_inputs(self, dataset, indices: np.ndarray) -> dict:
        """selftest.json's "inputs" for the test examples at ``indices``."""
        raise NotImplementedError

    def selftest_expectations(self, examples, outputs, output_quantization, gate) -> dict:
        """The top-1 label and every score; one output step (or 1e-4 for float output) of tolerance."""
        names = examples.class_names
        return {
            "expected": {
                "labels": [names[int(index)] for index in np.argmax(outputs, axis=-1)],
                "scores": np.asarray(outputs, dtype=np.float32).tolist(),
            },
            "tolerance": {"score": score_tolerance(output_quantization), "rule": CLASSIFIER_RULE},
        }

    def serving(self, run_dir: Path, dataset, features) -> dict:
        """How the SavedModel is served: the ExportSubject fields that differ by input kind."""
        raise NotImplementedError

    def output_spec(self, config: dict) -> dict:
        classes = config["model_args"]["num_classes"]
        return {"dtype": "float32", "shape": [None, classes], "meaning": "class probabilities"}

    def bundle_parts(self, config, report, artifact, run_metrics) -> BundleParts:
        metrics = {
            "test_accuracy": artifact["accuracy"],
            "keras_test_accuracy": report["keras_accuracy"],
            "agreement_with_keras": artifact["agreement"],
            "num_test_examples": report["num_test_examples"],
        }
        facts = [
            f"Test split: {run_metrics.get('test_split')}",
            f"Test accuracy: {metrics['test_accuracy']:.4f} on {metrics['num_test_examples']} examples "
            f"(Keras model {metrics['keras_test_accuracy']:.4f}, top-1 agreement "
            f"{metrics['agreement_with_keras']:.4f})",
            f"Classes: {', '.join(run_metrics.get('class_names') or [])}",
        ]
        retrained = run_metrics.get("retrained_on_all")
        if retrained:
            facts.append(
                "Training: validated on the validation split, then retrained from the same start on "
                f"training + validation ({retrained['train_examples']} examples) for the whole schedule, "
                "last epoch kept (`--retrain-on-all`; retrain/history.csv in the run)"
            )
        backbone = config.get("backbone")
        if isinstance(backbone, dict):  # transfer learning: the card names where the features came from
            facts.append(backbone_fact(backbone))
        return BundleParts(
            input_spec=self.input_spec(config, artifact),
            output_spec=self.output_spec(config),
            metrics=metrics,
            card_facts=facts,
            intended_use=INTENDED_USE,
            **({"metadata": {"backbone": backbone_summary(backbone)}} if isinstance(backbone, dict) else {}),
        )

    def input_spec(self, config: dict, artifact: dict) -> dict:
        raise NotImplementedError
