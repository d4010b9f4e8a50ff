"""What the apps that end with an export share: the export flags and the report tables."""

import sys

import bigmodels

EXIT_PARITY_FAILED = 1  # export and pipeline: an artifact fell below Keras by more than allowed


def print_export_table(report: dict) -> None:
    """The short per-artifact table the export and pipeline apps print; its columns are the task's."""
    task = bigmodels.task_of(report["model"])
    print(task.keras_line(report))
    columns = task.export_columns
    latency_title = task.latency_title
    titles = "".join(f"{title:>{width}}" for title, _, width, _ in columns)
    print(f"{'artifact':<26}{titles}{'size KB':>9}{'gzip KB':>9}{latency_title:>8}")
    for artifact in report["artifacts"]:
        cells = "".join(f"{artifact[key]:>{width}.{decimals}f}" for _, key, width, decimals in columns)
        print(f"{artifact['file']:<26}{cells}{_sizes_and_latency(artifact)}")
    _print_chosen_and_failures(report, task)
    _print_micro(report.get("micro"))


def _print_micro(micro: dict | None) -> None:
    """One line on TensorFlow Lite Micro: the folder and its figures, or why it was skipped."""
    if not micro:
        return
    if not micro.get("folder"):
        print(f"micro: {micro['skipped']}")
        return
    compared = "equal to" if micro["equal_to_litert"] else "NOT equal to"
    print(
        f"micro: export/{micro['folder']}/ ({micro['file']}): flash {micro['flash_bytes']:,} bytes, "
        f"arena {micro['arena_bytes']:,} bytes, {len(micro['ops'])} ops; outputs {compared} "
        f"ai-edge-litert's on {micro['compared']} examples"
    )


def _sizes_and_latency(artifact: dict) -> str:
    latency = artifact.get("latency_ms")
    return (
        f"{artifact['size_bytes'] / 1024:>9.1f}{artifact['gzip_bytes'] / 1024:>9.1f}"
        f"{latency if latency is not None else float('nan'):>8.3f}"
    )


def _print_chosen_and_failures(report: dict, task) -> None:
    bundle = report.get("bundle") or {}
    if bundle.get("folder"):
        print(f"bundle: export/{bundle['folder']}/ and export/{bundle['archive']} ({bundle['artifact']})")
    chosen = report.get("chosen", {})
    print(
        f"chosen: {chosen['file']}: {chosen['reason']}" if chosen.get("file") else f"chosen: none ({chosen})"
    )
    gate = report["parity_gate"]
    for failure in gate["failures"]:
        what = task.gate_failure_text(failure, gate)
        print(f"error: parity gate failed: {failure['file']} {what}", file=sys.stderr)


def print_stage_table(stages: list) -> None:
    """One table of every artifact of every pipeline stage, so a user can pick."""
    print(f"\n{'stage':<11}{'artifact':<26}{'quality':>9}{'size KB':>9}{'gzip KB':>9}{'ms/ex':>8}")
    for stage, _, report in stages:
        quality_key = bigmodels.task_of(report["model"]).quality_key
        for artifact in report["artifacts"]:
            print(
                f"{stage:<11}{artifact['file']:<26}{artifact[quality_key]:>9.4f}{_sizes_and_latency(artifact)}"
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


def check_export_flags(args, *, qat: str | None = None) -> None:
    """Refuses bad export flags before a long training or fine-tuning, not after it.

    ``qat``: "alone" when the flags export only a quantization-aware run (int8 alone), "among"
    when they also export one (the pipeline: int8 must be among the modes asked for).
    """
    # Lazy, as in every function here that needs TensorFlow: apps/predict.py imports
    # bigmodels.cli on devices without it.
    from bigmodels.convert.tflite import parse_qat_quantization, parse_quantization

    if args.quantization:
        parse_quantization(args.quantization)
    if args.quantization and (
        qat == "alone" or (qat and "int8" not in parse_quantization(args.quantization))
    ):
        parse_qat_quantization(args.quantization)


def export_from_args(run_dir, args, *, int8_only: bool = False) -> dict:
    """Calls ``export_run`` with the flags of ``add_export_flags`` (``int8_only``: the pipeline's
    QAT stage, whose run exports the full-int8 file alone, whatever the other stages make)."""
    from bigmodels.convert.tflite import parse_quantization  # lazy: TensorFlow

    modes = ["int8"] if int8_only else parse_quantization(args.quantization) if args.quantization else None
    return bigmodels.export_run(
        run_dir,
        quantization=modes,
        max_accuracy_drop=args.max_accuracy_drop,
        max_pixel_difference=args.max_pixel_difference,
        bundle_artifact=args.bundle_artifact,
    )


def export_and_report(run_dir, args, label: str) -> int:
    """The end of every app that makes a run and exports it: export with the flags, print the
    table and the run folder; the exit code (1 when a file failed the parity gate)."""
    report = export_from_args(run_dir, args)
    print_export_table(report)
    print(f"{label} run folder: {run_dir}")
    return 0 if report["parity_gate"]["passed"] else EXIT_PARITY_FAILED
