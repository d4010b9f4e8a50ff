"""Evaluate a trained run: accuracy, per-class precision/recall/F1, confusion matrix (DCGAN: scores).

Usage:
    python apps/evaluate.py --run saved_models/digits
    python apps/evaluate.py --run saved_models/bees --data path/to/other/bees_and_ants

Writes RUN_DIR/evaluation.json and confusion_matrix.png (with --data:
evaluation_other_data.json and confusion_matrix_other_data.png). For a DCGAN run it recomputes
the classifier score and the Frechet distance of 2,000 samples from fixed latent vectors.
"""

import sys

from bigmodels.cli import ArgumentParser, run_app


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="run folder written by apps/train.py")
    parser.add_argument("--data", default=None, help="evaluate on this source's test split instead")
    return parser.parse_args(argv)


def main(args) -> int:
    from bigmodels.runs import evaluate_run

    report = evaluate_run(args.run, args.data)
    if "classifier_score" in report:  # a DCGAN run
        real = report["real_test_images"]
        print(
            f"classifier score {report['classifier_score']:.3f} "
            f"(real test images {real['classifier_score']:.3f}), "
            f"Frechet distance {report['frechet_distance']:.3f} on {report['num_generated']} samples, "
            f"scored by {report['score_classifier']['run']}; class entropy {report['class_entropy']:.3f}, "
            f"prediction entropy {report['prediction_entropy']:.3f}, "
            f"{report['confident_share']:.1%} of samples classified with p >= 0.9"
        )
        if "code_accuracy" in report:  # a generator conditioned on the class
            print(f"{report['code_accuracy']:.1%} of samples classified as the class they were drawn for")
        return 0
    print(
        f"accuracy {report['accuracy']:.4f}, macro F1 {report['macro_f1']:.4f} "
        f"on {report['num_examples']} examples of {report['data_source']}"
    )
    print(f"{'class':<20}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}")
    for name, row in report["per_class"].items():
        print(
            f"{name[:19]:<20}{row['precision']:>10.4f}{row['recall']:>8.4f}{row['f1']:>8.4f}{row['support']:>9}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args))
