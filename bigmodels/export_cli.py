"""What the apps that end with an export share: the export flags and the report tables."""

import sys


def _print_generator_table(report: dict) -> None:
    keras_scores = report["keras"]
    print(
        f"keras generator: classifier score {keras_scores['classifier_score']:.3f}, "
        f"Frechet distance {keras_scores['frechet_distance']:.3f} on {keras_scores['num_generated']} samples"
    )
    print(f"{'artifact':<26}{'pixel diff':>11}{'score':>8}{'FD':>8}{'size KB':>9}{'gzip KB':>9}{'ms/img':>8}")
    for artifact in report["artifacts"]:
        latency = artifact.get("latency_ms")
        print(
            f"{artifact['file']:<26}{artifact['mean_abs_pixel_difference']:>11.3f}"
            f"{artifact['classifier_score']:>8.3f}{artifact['frechet_distance']:>8.3f}"
            f"{artifact['size_bytes'] / 1024:>9.1f}{artifact['gzip_bytes'] / 1024:>9.1f}"
            f"{latency if latency is not None else float('nan'):>8.3f}"
        )


def print_export_table(report: dict) -> None:
    """The short per-artifact table the export and pipeline apps print."""
    if "keras" in report:
        _print_generator_table(report)
        _print_chosen_and_failures(report)
        return
    print(f"keras accuracy {report['keras_accuracy']:.4f} on {report['num_test_examples']} test examples")
    print(f"{'artifact':<26}{'accuracy':>9}{'agree':>8}{'size KB':>9}{'gzip KB':>9}{'ms/ex':>8}")
    for artifact in report["artifacts"]:
        print(
            f"{artifact['file']:<26}{artifact['accuracy']:>9.4f}{artifact['agreement']:>8.4f}"
            f"{artifact['size_bytes'] / 1024:>9.1f}{artifact['gzip_bytes'] / 1024:>9.1f}"
            f"{artifact['latency_ms']:>8.3f}"
        )
    _print_chosen_and_failures(report)


def _print_chosen_and_failures(report: dict) -> None:
    bundle = report.get("bundle") or {}
    if bundle.get("folder"):
        print(f"bundle: export/{bundle['folder']}/ and export/{bundle['archive']} ({bundle['artifact']})")
    chosen = report.get("chosen", {})
    print(
        f"chosen: {chosen['file']}: {chosen['reason']}" if chosen.get("file") else f"chosen: none ({chosen})"
    )
    gate = report["parity_gate"]
    for failure in gate["failures"]:
        if "drop_points" in failure:
            allowed = gate["max_accuracy_drop_points"]
            what = f"is {failure['drop_points']:.2f} points below Keras (allowed {allowed})"
        else:
            what = (
                f"differs from Keras by {failure['mean_abs_pixel_difference']:.2f} pixel levels on average "
                f"(allowed {gate['max_mean_abs_pixel_difference']})"
            )
        print(f"error: parity gate failed: {failure['file']} {what}", file=sys.stderr)


def print_stage_table(stages: list) -> None:
    """One table of every artifact of every pipeline stage, so a user can pick."""
    print(f"\n{'stage':<11}{'artifact':<26}{'quality':>9}{'size KB':>9}{'gzip KB':>9}{'ms/ex':>8}")
    for stage, _, report in stages:
        for artifact in report["artifacts"]:
            quality = artifact.get("accuracy", artifact.get("classifier_score"))
            latency = artifact.get("latency_ms", float("nan"))
            print(
                f"{stage:<11}{artifact['file']:<26}{quality:>9.4f}{artifact['size_bytes'] / 1024:>9.1f}"
                f"{artifact['gzip_bytes'] / 1024:>9.1f}{latency:>8.3f}"
            )
    print("quality: test accuracy (classifiers) or classifier score (DCGAN)")


def add_export_flags(parser) -> None:
    """The flags of apps/export.py, shared by every app that ends with an export."""
    parser.add_argument(
        "--quantization",
        default=None,
        help="comma-separated TFLite modes: float32, dynamic, float16, int8, int16x8 "
        "(default: the first four for images, all five for text)",
    )
    parser.add_argument(
        "--max-accuracy-drop",
        dest="max_accuracy_drop",
        type=float,
        default=1.0,
        help="parity gate in percentage points below the Keras accuracy",
    )
    parser.add_argument(
        "--max-pixel-difference",
        dest="max_pixel_difference",
        type=float,
        default=8.0,
        help="DCGAN parity gate: mean absolute pixel difference from Keras (0-255)",
    )
    parser.add_argument(
        "--bundle-artifact",
        dest="bundle_artifact",
        default=None,
        help="TFLite file to ship in export/bundle (default: the smallest within the parity gate)",
    )


def check_export_flags(args) -> None:
    """Refuses bad export flags before a long training or fine-tuning, not after it."""
    from bigmodels.export import parse_quantization

    if args.quantization:
        parse_quantization(args.quantization)


def export_from_args(run_dir, args) -> dict:
    """Calls ``export_run`` with the flags of ``add_export_flags``."""
    from bigmodels.export import export_run, parse_quantization

    return export_run(
        run_dir,
        quantization=parse_quantization(args.quantization) if args.quantization else None,
        max_accuracy_drop=args.max_accuracy_drop,
        max_pixel_difference=args.max_pixel_difference,
        bundle_artifact=args.bundle_artifact,
    )
