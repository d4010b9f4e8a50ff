"""DCGAN run folders: the scoring classifier, training, re-scoring, and the generator's export.

A DCGAN run folder holds what a classifier run holds (model.keras, config.json, metrics.json,
history.csv, logs/, training_curves.png, evaluation.json) plus samples/ (a PNG grid per epoch and
progression.gif), score_history.json and, unless an existing classifier run was named,
score_classifier/: the cnn_classifier run whose CNN computes the quality scores.
"""

import json
from pathlib import Path

import numpy as np

from bigmodels.gan_quality import call_in_batches
from bigmodels.gan_training import SCORE_SEED, drawn_classes, fit_gan, fixed_latents, generate_uint8
from bigmodels.runs import load_run_model, read_run, train_run, write_json

SCORE_CLASSIFIER_FOLDER = "score_classifier"
SCORE_CLASSIFIER_EPOCHS = 8
SCORE_SAMPLES = 2000
GENERATOR_MODES = ("float32", "dynamic", "float16", "int8")


def _score_classifier_run(run_dir: Path, config: dict) -> Path:
    recorded = config["score_classifier"]["run"]
    return run_dir / recorded if recorded == SCORE_CLASSIFIER_FOLDER else Path(recorded)


def prepare_score_classifier(staging: Path, config: dict, dataset, score_classifier) -> dict:
    """Uses the named classifier run, or trains one on the same data into the GAN's run folder."""
    if score_classifier is not None:
        run_dir, classifier_config = read_run(score_classifier)
        recorded = str(Path(score_classifier).resolve())
    else:
        run_dir, recorded = staging / SCORE_CLASSIFIER_FOLDER, SCORE_CLASSIFIER_FOLDER
        if not (run_dir / "metrics.json").is_file():  # a resumed GAN run keeps its classifier
            data = config["data"]
            train_run(
                "cnn_classifier",
                data["source"],
                run_dir,
                epochs=SCORE_CLASSIFIER_EPOCHS,
                seed=data["seed"],
                batch_size=data["batch_size"],
                image_size=data["image_size"],
                overwrite=True,
                verbose=0,
            )
        classifier_config = json.loads((run_dir / "config.json").read_text())
    shape = classifier_config["model_args"].get("input_shape")
    if list(shape or []) != list(dataset.info.input_shape):
        raise ValueError(
            f"the scoring classifier takes images of shape {shape} but the GAN's data are "
            f"{list(dataset.info.input_shape)}; train the classifier on the same data"
        )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "run": recorded,
        "model": classifier_config["model"],
        "test_accuracy": metrics["test_accuracy"],
        "trained_for_this_run": score_classifier is None,
    }


def make_scorer(run_dir: Path, config: dict, dataset):
    from bigmodels.gan_quality import GeneratedImageScorer

    classifier = load_run_model(_score_classifier_run(run_dir, config))
    return GeneratedImageScorer(classifier, dataset.arrays["test"][0])


def _score_latents(config: dict) -> np.ndarray:
    return fixed_latents(SCORE_SAMPLES, config["model_args"]["latent_size"], SCORE_SEED)


def train_gan_into(
    staging: Path, model, dataset, config: dict, *, score_classifier, verbose, callbacks
) -> dict:
    """Trains the DCGAN into ``staging`` and writes its metrics; returns metrics.json's content."""
    from bigmodels.evaluation import plot_history

    config["score_classifier"] = prepare_score_classifier(staging, config, dataset, score_classifier)
    write_json(staging / "config.json", config)
    scorer = make_scorer(staging, config, dataset)
    training = config["training"]
    summary = fit_gan(
        model,
        dataset,
        staging,
        epochs=training["epochs"],
        learning_rate=training["learning_rate"],
        seed=training["seed"],
        scorer=scorer,
        score_samples=SCORE_SAMPLES,
        verbose=verbose,
        callbacks=callbacks,
    )
    final = summary["score_per_epoch"][-1]
    info = dataset.info
    metrics = {
        "classifier_score": final["classifier_score"],
        "frechet_distance": final["frechet_distance"],
        **{key: final[key] for key in ("code_accuracy",) if key in final},
        "real_test_images": {
            "classifier_score": round(scorer.real_classifier_score, 4),
            "frechet_distance": 0.0,
        },
        "max_classifier_score": info.num_classes,
        "num_generated_for_score": SCORE_SAMPLES,
        "score_classifier": config["score_classifier"],
        **summary,
        "data_source": info.source,
        "class_names": info.class_names,
        "counts": info.counts,
        "input_shape": list(info.input_shape),
        "preprocessing": info.preprocessing,
        "skipped_files": info.skipped_files,
        "num_skipped_files": len(info.skipped_files),
        "num_parameters": {
            "generator": int(model.generator.count_params()),
            "discriminator": int(model.discriminator.count_params()),
        },
    }
    write_json(staging / "metrics.json", metrics)
    write_json(
        staging / "evaluation.json",
        {
            key: metrics[key]
            for key in ("classifier_score", "frechet_distance", "code_accuracy")
            if key in metrics
        },
    )
    plot_history(staging / "history.csv", staging / "training_curves.png", metrics=("d_loss", "g_loss"))
    return metrics


def evaluate_gan_run(run_dir: Path, config: dict) -> dict:
    """Recomputes the quality scores of a DCGAN run's saved generator (same latent vectors)."""
    from bigmodels.runs import load_run_dataset

    dataset = load_run_dataset(run_dir, config)
    scorer = make_scorer(run_dir, config, dataset)
    model, latents = load_run_model(run_dir), _score_latents(config)
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


def export_generator_run(
    run_dir: Path,
    config: dict,
    *,
    quantization=None,
    max_pixel_difference: float = 8.0,
    latency_repeats: int = 200,
    bundle_artifact: str | None = None,
) -> dict:
    """Exports the generator (latent in, uint8 image out) as a SavedModel and TFLite files.

    Each file is run on the score latents and compared with Keras: mean absolute pixel
    difference (0-255) and the quality scores of its own samples. The parity gate fails an
    artifact whose mean pixel difference exceeds ``max_pixel_difference``.
    """
    from bigmodels.export import (
        choose_smallest,
        directory_size,
        export_saved_model,
        finish_report,
        gzip_size,
        parse_quantization,
        staged_export,
        tflite_artifact,
    )
    from bigmodels.models import uint8_generator
    from bigmodels.runs import load_run_dataset

    modes = parse_quantization(",".join(quantization or GENERATOR_MODES), allowed=GENERATOR_MODES)
    dataset = load_run_dataset(run_dir, config)
    scorer = make_scorer(run_dir, config, dataset)
    model, latents = load_run_model(run_dir), _score_latents(config)
    generator, classes = uint8_generator(model.sampling_generator), drawn_classes(model, latents)
    (keras_images,) = call_in_batches(generator, latents)
    keras_scores = scorer.score(keras_images, classes)

    def compare(images: np.ndarray) -> dict:
        difference = np.abs(images.astype(np.int16) - keras_images.astype(np.int16))
        return {
            "mean_abs_pixel_difference": round(float(difference.mean()), 4),
            **scorer.score(images, classes),
        }

    with staged_export(run_dir) as staging:
        saved_model = export_saved_model(generator, staging / "saved_model")
        import tensorflow as tf

        serve = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
        served = np.concatenate(
            [
                next(iter(serve(tf.constant(latents[i : i + 500])).values())).numpy()
                for i in range(0, len(latents), 500)
            ]
        )
        artifacts = [
            {
                "file": "saved_model",
                "format": "saved_model",
                "quantization": "none",
                "size_bytes": directory_size(saved_model),
                "gzip_bytes": sum(gzip_size(p) for p in saved_model.rglob("*") if p.is_file()),
                "input": "float32 latent vectors",
                "output": "uint8 images",
                **compare(served),
            }
        ]
        for mode in modes:
            entry, runner = tflite_artifact(
                generator,
                mode,
                staging / f"generator_{mode}.tflite",
                latents[:200],
                latents[0],
                latency_repeats,
            )
            entry.update(compare(np.clip(np.round(runner.predict(latents)), 0, 255).astype(np.uint8)))
            artifacts.append(entry)
        failures = [
            {"file": a["file"], "mean_abs_pixel_difference": a["mean_abs_pixel_difference"]}
            for a in artifacts
            if a["mean_abs_pixel_difference"] > max_pixel_difference
        ]
        within = [
            a
            for a in artifacts
            if a["format"] == "tflite" and a["mean_abs_pixel_difference"] <= max_pixel_difference
        ]
        report = {
            "run": str(run_dir),
            "model": config["model"],
            "keras": {**keras_scores, "num_generated": len(latents)},
            "latency_threads": 1,
            "artifacts": artifacts,
            "chosen": choose_smallest(within, f"within {max_pixel_difference} mean pixel levels of Keras"),
            "parity_gate": {
                "max_mean_abs_pixel_difference": max_pixel_difference,
                "passed": not failures,
                "failures": failures,
            },
        }
        finish_report(staging, run_dir, config, report, bundle_artifact)
    return report
