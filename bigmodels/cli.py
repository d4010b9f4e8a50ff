"""What every app shares: quiet TensorFlow logs, one-line errors with exit code 2."""

import argparse
import contextlib
import csv
import errno
import os
import sys

EXIT_BAD_INPUT = 2
EXIT_PARITY_FAILED = 1  # export and pipeline: an artifact fell below Keras by more than allowed

# TensorFlow's C++ start-up chatter (CPU features, missing CUDA) would bury the one line a
# user needs; real failures still surface as Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a single-line error (no usage dump) and exit code 2."""

    def error(self, message: str):
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with file descriptor 2 muted for the duration.

    TensorFlow's C++ start-up lines (oneDNN, missing CUDA) reach stderr before its logging is
    configured, so no environment variable silences them, and they would bury the one line a
    user needs. An import error still raises (and is shown) as usual.
    """
    from bigmodels.lite.runtime import quiet_stderr

    with quiet_stderr():
        import tensorflow  # noqa: F401


def run_app(main, parse_args, argv=None, *, tensorflow: bool = True) -> int:
    """Runs ``main(parse_args(argv))``; bad input becomes one stderr line and exit code 2.

    Every expected failure is bad input or a full or read-only disk: a bad value, path, file,
    image, table, bundle or model file, and the OSErrors (no space left, permission denied, not
    a folder). The writers stage their output, so nothing half-written is left behind.
    ``tensorflow=False`` is for the device apps (predict, benchmark), which must run where only
    numpy, Pillow and ai-edge-litert are installed.
    """
    args = parse_args(argv)
    if tensorflow:
        import_tensorflow_quietly()
    try:
        with quiet_cleanup_errors():
            return int(main(args) or 0)
    except Exception as error:  # noqa: BLE001  classified below; anything else is re-raised
        message = describe_failure(error)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            # h5py's handles left mid-write are freed later, some at interpreter exit, where each
            # prints a traceback and the shutdown can crash (SIGSEGV seen): an app run as a script
            # ends here, its one line printed and nothing half-written kept (writers stage).
            sys.excepthook = sys.unraisablehook = lambda *arguments: None
            if main.__module__ == "__main__":
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(EXIT_BAD_INPUT)
        return EXIT_BAD_INPUT


@contextlib.contextmanager
def quiet_cleanup_errors():
    """Silences errors raised while objects are freed, for the duration.

    After a full disk, h5py's half-written file handles raise as they are freed; Cython prints
    those through ``sys.excepthook`` and ``sys.unraisablehook`` ("Exception ignored in ..."),
    pages of tracebacks for a failure that gets its own one line. An exception that leaves the
    block is not affected: the hooks are restored before it reaches the interpreter.
    """
    saved = sys.excepthook, sys.unraisablehook
    sys.excepthook = sys.unraisablehook = lambda *arguments: None
    try:
        yield
    finally:
        sys.excepthook, sys.unraisablehook = saved


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)

# What a user can act on, by errno: the one line names the file and the remedy.
OS_ERROR_ADVICE = {
    errno.ENOSPC: "no space left on the device; free some space and run again",
    errno.EDQUOT: "disk quota exceeded; free some space and run again",
    errno.EACCES: "permission denied; choose a folder you may write to",
    errno.EPERM: "operation not permitted; choose a folder you may write to",
    errno.EROFS: "read-only file system; choose a folder on a writable disk",
    errno.ENOTDIR: "a part of this path is a file, not a folder; check the path",
    errno.EISDIR: "this is a folder, not a file; check the path",
    errno.ENAMETOOLONG: "the file name is too long; choose a shorter path",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) and run again",
}


def describe_failure(error: BaseException) -> str | None:
    """The one line for an expected failure, or None for a bug (which keeps its traceback)."""
    if isinstance(error, (ValueError, FileNotFoundError)):
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        advice = OS_ERROR_ADVICE.get(error.errno, error.strerror or str(error))
        return f"{where}{advice}"
    if isinstance(error, csv.Error):
        return f"unreadable table ({error}); check the file's quoting and delimiter"
    if type(error).__name__ == "DecompressionBombError":  # Pillow's, without importing Pillow here
        return f"image refused as a decompression bomb ({error})"
    return None


def _column(text: str) -> str | int:
    """A column flag: a 0-based index when it is a number, else a header name."""
    return int(text) if text.lstrip("-").isdigit() else text


def add_training_flags(parser, *, out_default: str | None = None) -> None:
    """The flags of apps/train.py, shared by apps/pipeline.py so both accept the same options."""
    parser.add_argument(
        "--model",
        default=None,
        help="registered model name (default: cnn_classifier for images, transformer_classifier for text)",
    )
    parser.add_argument(
        "--data",
        default=None,
        help="tfds name, image folder, IDX folder, CSV/TSV file, folder of .txt class folders, "
        "or 'digits' (embedded, the default)",
    )
    parser.add_argument(
        "--out", required=out_default is None, default=out_default, help="run folder to create"
    )
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", dest="batch_size", type=int, default=64)
    parser.add_argument(
        "--learning-rate",
        dest="learning_rate",
        type=float,
        default=None,
        help="peak learning rate (default 3e-3 for classifiers, 2e-4 for the DCGAN)",
    )
    parser.add_argument("--patience", type=int, default=8, help="early-stopping patience in epochs")
    parser.add_argument(
        "--augmentation", default=None, help="none, shift or shift_flip (default: chosen from the data)"
    )
    parser.add_argument(
        "--image-size",
        dest="image_size",
        type=int,
        nargs=2,
        default=None,
        metavar=("HEIGHT", "WIDTH"),
        help="size photos are resized to when loading",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument(
        "--strategy",
        default="default",
        help="default, mirrored (all GPUs, or --logical-cpus) or multi_worker (machines from TF_CONFIG)",
    )
    parser.add_argument(
        "--logical-cpus",
        dest="logical_cpus",
        type=int,
        default=None,
        help="split the CPU into this many devices for --strategy mirrored without GPUs",
    )
    text = parser.add_argument_group("text data (CSV/TSV files)")
    text.add_argument(
        "--text-column",
        dest="text_columns",
        type=_column,
        nargs="+",
        default=None,
        metavar="COLUMN",
        help="text column(s) by header name or 0-based index; several are joined",
    )
    text.add_argument("--label-column", dest="label_column", type=_column, default=None, metavar="COLUMN")
    text.add_argument("--test-data", dest="test_source", default=None, help="separate test file or folder")
    text.add_argument(
        "--validation-data",
        dest="validation_source",
        default=None,
        help="separate validation (dev) file used for model selection",
    )
    text.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether the first row names the columns (default: guessed)",
    )
    text.add_argument(
        "--encoding", default=None, help="text encoding (default utf-8; bad bytes are reported)"
    )
    tokenizer = parser.add_argument_group("tokenizer (learned from the training texts)")
    tokenizer.add_argument("--vocabulary-size", dest="vocabulary_size", type=int, default=8000)
    tokenizer.add_argument(
        "--sequence-length",
        dest="sequence_length",
        type=int,
        default=None,
        help="token ids per text (default: covers 95%% of the training texts)",
    )
    tokenizer.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=True)
    tokenizer.add_argument(
        "--strip-accents",
        dest="strip_accents",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="drop diacritics (off: in Yoruba or Vietnamese they change the word)",
    )
    tokenizer.add_argument(
        "--split-on-cjk", dest="split_on_cjk", action=argparse.BooleanOptionalAction, default=True
    )
    tokenizer.add_argument(
        "--min-frequency",
        dest="min_frequency",
        type=int,
        default=2,
        help="times a token must occur in the training texts to be learned (1-10)",
    )
    group = parser.add_argument_group("model arguments (cnn_classifier)")
    group.add_argument("--variant", default="auto", help="compact, mobile, or auto (chosen from the data)")
    group.add_argument("--width-multiplier", dest="width_multiplier", type=float, default=None)
    group.add_argument(
        "--resolution", type=int, default=None, help="resize inside the model to this square size"
    )
    group.add_argument("--dropout", type=float, default=None, help="dropout rate (every family)")
    text_model = parser.add_argument_group(
        "model arguments (transformer_classifier, embedding_bag_classifier)"
    )
    text_model.add_argument("--width", type=int, default=None, help="embedding and model width")
    text_model.add_argument("--num-heads", dest="num_heads", type=int, default=None)
    text_model.add_argument("--feedforward-size", dest="feedforward_size", type=int, default=None)
    text_model.add_argument("--depth", type=int, default=None, help="number of Transformer encoder blocks")
    gan = parser.add_argument_group("model arguments (dcgan)")
    gan.add_argument("--latent-size", dest="latent_size", type=int, default=None)
    gan.add_argument(
        "--base-filters", dest="base_filters", type=int, default=None, help="width of the generator"
    )
    gan.add_argument(
        "--discriminator-filters",
        dest="discriminator_filters",
        type=int,
        default=None,
        help="width of the discriminator (default: --base-filters)",
    )
    gan.add_argument(
        "--label-smoothing",
        dest="label_smoothing",
        type=float,
        default=None,
        help="one-sided smoothing of the discriminator's real targets (e.g. 0.1)",
    )
    gan.add_argument(
        "--ema-momentum",
        dest="ema_momentum",
        type=float,
        default=None,
        help="sample from an exponential moving average of the generator (e.g. 0.999)",
    )
    gan.add_argument(
        "--code-classes",
        dest="code_classes",
        type=int,
        default=None,
        help="categories of an InfoGAN-style code read from the latent vector (e.g. 10; 0: off)",
    )
    gan.add_argument(
        "--code-weight",
        dest="code_weight",
        type=float,
        default=None,
        help="weight of the code's cross-entropy in both losses (default 1)",
    )
    gan.add_argument(
        "--code-from-labels",
        dest="code_from_labels",
        action="store_true",
        default=None,
        help="learn the code from the class labels (AC-GAN): category c draws class c",
    )
    gan.add_argument(
        "--score-classifier",
        dest="score_classifier",
        default=None,
        help="classifier run on the same data that scores the samples (default: one is trained)",
    )


MODEL_FLAGS = (
    "width_multiplier",
    "resolution",
    "dropout",
    "width",
    "num_heads",
    "feedforward_size",
    "depth",
    "latent_size",
    "base_filters",
    "discriminator_filters",
    "label_smoothing",
    "ema_momentum",
    "code_classes",
    "code_weight",
    "code_from_labels",
)


def train_from_args(args, *, verbose: int = 1):
    """Calls ``train_run`` with the flags of ``add_training_flags``; returns (run_dir, metrics)."""
    from bigmodels.data.vocabulary import TokenizerSettings
    from bigmodels.runs import train_run

    model_args = {name: getattr(args, name) for name in MODEL_FLAGS}
    if args.variant != "auto":
        model_args["variant"] = args.variant
    tokenizer = TokenizerSettings(
        vocabulary_size=args.vocabulary_size,
        sequence_length=args.sequence_length,
        lowercase=args.lowercase,
        strip_accents=args.strip_accents,
        split_on_cjk=args.split_on_cjk,
        min_frequency=args.min_frequency,
    )
    data_options = {
        "text_columns": args.text_columns,
        "label_column": args.label_column,
        "test_source": args.test_source,
        "validation_source": args.validation_source,
        "header": args.header,
        "encoding": args.encoding,
    }
    return train_run(
        args.model,
        args.data,
        args.out,
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        patience=args.patience,
        augmentation=args.augmentation,
        image_size=args.image_size,
        model_args=model_args,
        data_options=data_options,
        tokenizer=tokenizer,
        score_classifier=args.score_classifier,
        strategy=args.strategy,
        logical_cpus=args.logical_cpus,
        overwrite=args.overwrite,
        verbose=verbose,
    )


def parse_model_arguments(text: str) -> dict:
    """--student-config: JSON ('{"width": 32}') or comma-separated key=value ('width=32,depth=1')."""
    import json

    text = text.strip()
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"--student-config is not valid JSON ({error}); e.g. '{{\"width\": 32}}'"
            ) from error
        if not isinstance(parsed, dict):
            raise ValueError("--student-config must be a JSON object, e.g. '{\"width\": 32}'")
        return parsed
    arguments = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"--student-config item '{item}' is not key=value; e.g. width=32,depth=1")
        try:
            arguments[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            arguments[key.strip()] = value.strip()
    if not arguments:
        raise ValueError("--student-config is empty; e.g. width=32 or '{\"width\": 32}'")
    return arguments
