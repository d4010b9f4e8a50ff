"""The main job: train, export every TFLite mode, verify on ai-edge-litert, print a report.

Usage:
    python apps/pipeline.py                      # embedded digits, offline, into saved_models/demo
    python apps/pipeline.py --data ../shared/data/mnist --out saved_models/mnist --epochs 12

Exits 1 when the parity gate fails (an artifact more than --max-accuracy-drop points below Keras).
"""

import sys

from bigmodels.cli import (
    ArgumentParser,
    add_model_flags,
    model_args_from,
    print_export_table,
    run_app,
)

EXIT_PARITY_FAILED = 1


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn_classifier")
    parser.add_argument("--data", default=None, help="tfds name, folder, or 'digits' (embedded default)")
    parser.add_argument("--out", default="saved_models/demo")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    parser.add_argument("--learning-rate", dest="learning_rate", type=float, default=3e-3)
    parser.add_argument("--quantization", default="float32,dynamic,float16,int8")
    parser.add_argument("--max-accuracy-drop", dest="max_accuracy_drop", type=float, default=1.0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    add_model_flags(parser)
    return parser.parse_args(argv)


def main(args) -> int:
    from bigmodels.export import export_run, parse_quantization
    from bigmodels.runs import train_run

    modes = parse_quantization(args.quantization)  # bad flags fail before training starts
    run_dir, metrics = train_run(
        args.model,
        args.data,
        args.out,
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        model_args=model_args_from(args),
        overwrite=args.overwrite,
        verbose=2,
    )
    report = export_run(run_dir, quantization=modes, max_accuracy_drop=args.max_accuracy_drop)
    print(
        f"\ntrained {args.model} on {metrics['data_source']}: {metrics['counts']} examples, "
        f"{metrics['epochs_trained']} epochs, {metrics['training_seconds']:.0f} s"
    )
    print_export_table(report)
    print(f"run folder: {run_dir} (export report: {run_dir}/export/report.json)")
    return 0 if report["parity_gate"]["passed"] else EXIT_PARITY_FAILED


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args))
