"""Image generation (the DCGAN): a latent vector in, a uint8 image out, scored by a CNN.

A DCGAN run folder holds what a classifier run holds (model.keras, config.json, metrics.json,
history.csv, logs/, training_curves.png, evaluation.json) plus samples/ (a PNG grid per epoch and
progression.gif), score_history.json and, unless an existing classifier run was named,
score_classifier/: the cnn_classifier run whose CNN computes the quality scores.
"""

import json
from pathlib import Path

import numpy as np

from bigmodels.compress.quantized_layers import calibrate_ranges
from bigmodels.lite.latents import latents_for_class
from bigmodels.lite.selftest import GENERATOR_RULE, encode_array
from bigmodels.models import uint8_generator
from bigmodels.quality.classification import plot_history
from bigmodels.quality.generation import GeneratedImageScorer, call_in_batches
from bigmodels.run_folder import load_run_model, read_run, write_json
from bigmodels.tasks.base import (
    SELFTEST_EXAMPLES,
    BundleParts,
    ExportSubject,
    SelfTestExamples,
    Task,
    data_fields,
)
from bigmodels.training.gan import SCORE_SEED, drawn_classes, fit_gan, fixed_latents, generate_uint8

SCORE_CLASSIFIER_FOLDER = "score_classifier"
SCORE_CLASSIFIER_EPOCHS = 8
SCORE_SAMPLES = 2000
CALIBRATION_EXAMPLES = 200
SELFTEST_SEED = 2024  # the self-test's latent vectors: fixed, and not among the score latents
GENERATOR_MODES = ("float32", "dynamic", "float16", "int8")
INTENDED_USE = (
    "Generates images like its training data, for augmentation, demos and tests. It reproduces "
    "that data's biases and cannot produce what it never saw. The scores come from a CNN trained "
    "on the same data, so they measure likeness to that data, not realism in general."
)


def score_classifier_run(run_dir: Path, config: dict) -> Path:
    """The classifier run that scores this GAN run's samples."""
    recorded = config["score_classifier"]["run"]
    return run_dir / recorded if recorded == SCORE_CLASSIFIER_FOLDER else Path(recorded)


def describe_score_classifier(classifier_dir: Path, recorded: str, dataset, *, trained_here: bool) -> dict:
    """What config.json records about the scoring classifier, after checking it fits the data."""
    _, classifier_config = read_run(classifier_dir)
    shape = classifier_config["model_args"].get("input_shape")
    if list(shape or []) != list(dataset.info.input_shape):
        raise ValueError(
            f"the scoring classifier takes images of shape {shape} but the GAN's data are "
            f"{list(dataset.info.input_shape)}; train the classifier on the same data"
        )
    metrics = json.loads((classifier_dir / "metrics.json").read_text(encoding="utf-8"))
    return {
        "run": recorded,
        "model": classifier_config["model"],
        "test_accuracy": metrics["test_accuracy"],
        "trained_for_this_run": trained_here,
    }


def make_scorer(run_dir: Path, config: dict, dataset) -> GeneratedImageScorer:
    classifier = load_run_model(score_classifier_run(run_dir, config))
    return GeneratedImageScorer(classifier, dataset.arrays["test"][0])


def score_latents(config: dict) -> np.ndarray:
    return fixed_latents(SCORE_SAMPLES, config["model_args"]["latent_size"], SCORE_SEED)


def calibration_latents(latent_size: int) -> np.ndarray:
    """The latent vectors full-integer files are calibrated on (and QAT's ranges start from)."""
    return fixed_latents(SCORE_SAMPLES, latent_size, SCORE_SEED)[:CALIBRATION_EXAMPLES]


def gan_metrics(model, dataset, config: dict, scorer, summary: dict) -> dict:
    """metrics.json of a DCGAN run: the final scores, the real images' scores, the data."""
    final = summary["score_per_epoch"][-1]
    return {
        "classifier_score": final["classifier_score"],
        "frechet_distance": final["frechet_distance"],
        **{key: final[key] for key in ("code_accuracy",) if key in final},
        "real_test_images": {
            "classifier_score": round(scorer.real_classifier_score, 4),
            "frechet_distance": 0.0,
        },
        "max_classifier_score": dataset.info.num_classes,
        "num_generated_for_score": SCORE_SAMPLES,
        "score_classifier": config["score_classifier"],
        **summary,
        **data_fields(dataset.info),
        "num_parameters": {
            "generator": int(model.generator.count_params()),
            "discriminator": int(model.discriminator.count_params()),
        },
    }


class ImageGeneration(Task):
    name = "image_generation"
    data_kind = "image"
    default_model = None  # never picked for a data set: ask for --model dcgan
    default_learning_rate = 2e-4  # DCGAN paper: Adam 2e-4, beta1 0.5
    optimizer_settings = False  # both networks train with that Adam
    keeps_best_epoch = False  # a GAN has no validation accuracy: its last epoch is kept
    quantization_modes = GENERATOR_MODES
    default_modes = GENERATOR_MODES
    export_columns = (
        ("pixel diff", "mean_abs_pixel_difference", 11, 3),
        ("score", "classifier_score", 8, 3),
        ("FD", "frechet_distance", 8, 3),
    )
    quality_key = "classifier_score"
    latency_title = "ms/img"

    def keras_line(self, report: dict) -> str:
        scores = report["keras"]
        return (
            f"keras generator: classifier score {scores['classifier_score']:.3f}, "
            f"Frechet distance {scores['frechet_distance']:.3f} on {scores['num_generated']} samples"
        )

    def gate_failure_text(self, failure: dict, gate: dict) -> str:
        return (
            f"differs from Keras by {failure['mean_abs_pixel_difference']:.2f} pixel levels on average "
            f"(allowed {gate['max_mean_abs_pixel_difference']})"
        )

    def training_summary(self, metrics: dict) -> str:
        return (
            f"classifier score {metrics['classifier_score']:.3f} of {metrics['max_classifier_score']}, "
            f"Frechet distance {metrics['frechet_distance']:.3f}"
        )

    def evaluation_lines(self, report: dict) -> list[str]:
        real = report["real_test_images"]
        lines = [
            f"classifier score {report['classifier_score']:.3f} "
            f"(real test images {real['classifier_score']:.3f}), "
            f"Frechet distance {report['frechet_distance']:.3f} on {report['num_generated']} samples, "
            f"scored by {report['score_classifier']['run']}; class entropy {report['class_entropy']:.3f}, "
            f"prediction entropy {report['prediction_entropy']:.3f}, "
            f"{report['confident_share']:.1%} of samples classified with p >= 0.9"
        ]
        if "code_accuracy" in report:  # a generator conditioned on the class
            lines.append(
                f"{report['code_accuracy']:.1%} of samples classified as the class they were drawn for"
            )
        return lines

    def companion_runs(self, config: dict, staging: Path, options: dict) -> list[dict]:
        if (
            options.get("score_classifier") is not None
            or (staging / SCORE_CLASSIFIER_FOLDER / "metrics.json").is_file()
        ):
            return []  # a named classifier run, or a resumed GAN run that already trained its own
        data = config["data"]
        return [
            {
                "model_name": "cnn_classifier",
                "data_source": data["source"],
                "out_dir": staging / SCORE_CLASSIFIER_FOLDER,
                "epochs": SCORE_CLASSIFIER_EPOCHS,
                "seed": data["seed"],
                "batch_size": data["batch_size"],
                "image_size": data["image_size"],
                "overwrite": True,
                "verbose": 0,
            }
        ]

    def complete_config(self, config: dict, staging: Path, dataset, options: dict) -> dict:
        named = options.get("score_classifier")
        if named is None:
            record = describe_score_classifier(
                staging / SCORE_CLASSIFIER_FOLDER, SCORE_CLASSIFIER_FOLDER, dataset, trained_here=True
            )
        else:
            record = describe_score_classifier(
                Path(named), str(Path(named).resolve()), dataset, trained_here=False
            )
        return {**config, "score_classifier": record}

    def fit_into(self, staging, model, dataset, config, *, verbose, callbacks, keep_best=True,
                 start_is_candidate=False, saved_model=None):  # fmt: skip
        """A GAN keeps its last epoch and is not distilled: ``keep_best``, ``start_is_candidate``
        and ``saved_model`` do not apply."""
        scorer = make_scorer(staging, config, dataset)
        settings = {key: config["training"][key] for key in ("epochs", "learning_rate", "seed")}
        summary = fit_gan(
            model, dataset, staging, **settings, scorer=scorer, score_samples=SCORE_SAMPLES, verbose=verbose,
            callbacks=callbacks,
        )  # fmt: skip
        metrics = gan_metrics(model, dataset, config, scorer, summary)
        write_json(staging / "metrics.json", metrics)
        scores = ("classifier_score", "frechet_distance", "code_accuracy")
        write_json(staging / "evaluation.json", {key: metrics[key] for key in scores if key in metrics})
        plot_history(staging / "history.csv", staging / "training_curves.png", metrics=("d_loss", "g_loss"))
        return metrics

    def evaluate(
        self, run_dir: Path, config: dict, data_source: str | None, all_examples: bool = False
    ) -> dict:
        """Recomputes the quality scores of the saved generator (same latent vectors)."""
        if data_source is not None or all_examples:
            raise ValueError("a DCGAN run is scored against its own data; leave out --data and --all")
        dataset = self.load_data(run_dir, config)
        scorer = make_scorer(run_dir, config, dataset)
        model, latents = load_run_model(run_dir), score_latents(config)
        report = {
            **scorer.score(generate_uint8(model.sampling_generator, latents), drawn_classes(model, latents)),
            "real_test_images": {
                "classifier_score": round(scorer.real_classifier_score, 4),
                "frechet_distance": 0.0,
            },
            "num_generated": SCORE_SAMPLES,
            "score_classifier": config["score_classifier"],
            "data_source": dataset.info.source,
        }
        write_json(run_dir / "evaluation.json", report)
        return report

    def export_subject(self, run_dir: Path, config: dict, gates: dict) -> ExportSubject:
        """The generator (latent in, uint8 image out), compared with Keras on the score latents:
        mean absolute pixel difference (0-255) and the quality scores of its own samples."""
        dataset = self.load_data(run_dir, config)
        scorer = make_scorer(run_dir, config, dataset)
        model, latents = load_run_model(run_dir), score_latents(config)
        generator, classes = uint8_generator(model.sampling_generator), drawn_classes(model, latents)
        (keras_images,) = call_in_batches(generator, latents)
        limit = gates["max_pixel_difference"]

        def compare(images: np.ndarray) -> dict:
            difference = np.abs(images.astype(np.int16) - keras_images.astype(np.int16))
            return {
                "mean_abs_pixel_difference": round(float(difference.mean()), 4),
                **scorer.score(images, classes),
            }

        def gate_failure(entry: dict) -> dict | None:
            difference = entry["mean_abs_pixel_difference"]
            return (
                {"file": entry["file"], "mean_abs_pixel_difference": difference}
                if difference > limit
                else None
            )

        return ExportSubject(
            model=generator,
            examples=latents,
            representative=calibration_latents(latents.shape[-1]),
            file_prefix="generator",
            compare=compare,
            gate_failure=gate_failure,
            gate={"max_mean_abs_pixel_difference": limit},
            criterion=f"within {limit} mean pixel levels of Keras",
            header={"keras": {**scorer.score(keras_images, classes), "num_generated": len(latents)}},
            serving_inputs=latents,
            saved_model_fields={"input": "float32 latent vectors", "output": "uint8 images"},
            to_outputs=lambda outputs: np.clip(np.round(outputs), 0, 255).astype(np.uint8),
            selftest=self.selftest_examples(dataset, config),
        )

    def selftest_examples(self, dataset, config) -> SelfTestExamples:
        """Seeded latent vectors; a generator conditioned on the class draws the classes in turn."""
        args, names = config["model_args"], list(dataset.info.class_names)
        latents = fixed_latents(SELFTEST_EXAMPLES, args["latent_size"], SELFTEST_SEED)
        classes = [None] * len(latents)
        selection = f"standard normal latent vectors, seed {SELFTEST_SEED}"
        if args.get("code_from_labels"):  # the class code is the labels: cover them round-robin
            drawn = np.arange(len(latents)) % args["code_classes"]
            for index in np.unique(drawn):
                latents[drawn == index] = latents_for_class(
                    latents[drawn == index], index, args["code_classes"]
                )
            classes = [names[index] for index in drawn]
            selection += ", each class's code in turn"
        return SelfTestExamples(
            model_inputs=latents,
            stored={"latents": encode_array(latents)},
            classes=classes,
            class_names=names,
            selection=selection,
        )

    def selftest_expectations(self, examples, outputs, output_quantization, gate) -> dict:
        """The uint8 images; each may differ on average by the parity gate's pixel levels."""
        return {
            "expected": {"images": encode_array(outputs.astype(np.uint8))},
            "tolerance": {
                "mean_abs_pixel_difference": float(gate["max_mean_abs_pixel_difference"]),
                "rule": GENERATOR_RULE,
            },
        }

    def bundle_parts(self, config, report, artifact, run_metrics) -> BundleParts:
        args = config["model_args"]
        metrics = {
            "classifier_score": artifact["classifier_score"],
            "frechet_distance": artifact["frechet_distance"],
            "mean_abs_pixel_difference_from_keras": artifact["mean_abs_pixel_difference"],
            "score_classifier": run_metrics.get("score_classifier"),
        }
        scorer = run_metrics["score_classifier"]
        fact = (
            f"Quality: classifier score {metrics['classifier_score']} (maximum "
            f"{run_metrics.get('max_classifier_score')}), Fréchet distance {metrics['frechet_distance']} "
            f"on the penultimate features of the scoring CNN (`{scorer['run']}`, test accuracy "
            f"{scorer['test_accuracy']})"
        )
        metadata = {"latent_size": args["latent_size"]}
        if args.get("code_from_labels"):  # generate(label=...) can pick the class
            metadata["class_code"] = {
                "latent_entries": args["code_classes"],
                "rule": "the class drawn is the index of the largest of the first latent_entries values",
            }
        return BundleParts(
            input_spec={
                "dtype": "float32",
                "shape": [None, args["latent_size"]],
                "value_range": "standard normal",
            },
            output_spec={
                "dtype": "uint8",
                "shape": [None, *args["image_shape"]],
                "value_range": [0, 255],
                "meaning": "generated images",
            },
            metrics=metrics,
            card_facts=[fact],
            intended_use=INTENDED_USE,
            metadata=metadata,
        )

    def pruning_target(self, model):
        return model.generator

    def calibrate_quantized(self, trained, network, dataset) -> None:
        """The generator's ranges from the latent vectors its export calibrates on; its weight
        average, when the run keeps one, restarts from the calibrated generator."""
        calibrate_ranges(network, calibration_latents(network.input_shape[-1]))
        trained.restart_average()

    def with_quantization_aware(self, model, quantize):
        """The GAN trains on with a quantization-aware copy of the generator it samples from
        (the weight average, when it keeps one) against its own discriminator."""
        generator = quantize(model.sampling_generator)
        return model.with_generator(generator), generator

    def derived_config(self, config: dict, source_dir: Path) -> dict:
        """A pruned generator is scored by its source run's classifier, wherever that lives."""
        record = dict(config["score_classifier"])
        record.update(run=str(score_classifier_run(source_dir, config).resolve()), trained_for_this_run=False)
        return {**config, "score_classifier": record}


TASK = ImageGeneration()
