"""The flags of the apps that train (train, pipeline), and turning them into a train_run call.

The model-argument flags come from the registered builders (``bigmodels.cli.model_flags``).
"""

import argparse
import json
import sys

import bigmodels
from bigmodels.cli.data_flags import add_split_flags, add_text_data_flags, text_column_options
from bigmodels.cli.model_flags import add_model_flags, builders_taking, model_args_from


def add_training_flags(parser, *, out_default: str | None = None) -> None:
    """The flags of apps/train.py, shared by apps/pipeline.py so both accept the same options."""
    add_run_flags(parser, out_default=out_default)
    add_backbone_flags(parser)
    add_text_data_flags(parser)
    add_tokenizer_flags(parser)
    add_model_flags(parser)
    generation = parser.add_argument_group("generator scoring (dcgan)")
    generation.add_argument(
        "--score-classifier",
        dest="score_classifier",
        default=None,
        help="classifier run on the same data that scores the samples (default: one is trained)",
    )


def add_run_flags(parser, *, out_default: str | None = None) -> None:
    """What to train on, where to, and how long."""
    parser.add_argument(
        "--model",
        default=None,
        help="registered model name, or auto: every candidate for the data trained, the smallest as good as "
        "the best on validation kept (default: cnn_classifier for images; auto for text, or "
        "transformer_classifier when a model flag is given)",
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
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="default 30; for a few hundred photos 40 (camera photos) or 150 (smaller ones)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--batch-size",
        dest="batch_size",
        type=int,
        default=None,
        help="default 64; 16 for a few hundred photos",
    )
    parser.add_argument(
        "--learning-rate",
        dest="learning_rate",
        type=float,
        default=None,
        help="peak learning rate (default 3e-3 for classifiers, 2e-4 for the DCGAN)",
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        help="early-stopping patience in epochs (default 8; 25 for a few hundred photos)",
    )
    parser.add_argument(
        "--augmentation",
        default=None,
        help="none, shift, shift_flip, crop_flip (pad, random crop, flip), crop_flip_cutout (and a "
        "grey square a quarter of the side) or resized_crop_flip (photos: a random quarter to all of "
        "the area resized back, flip, brightness and contrast; resized_crop_flip_cutout adds the grey "
        "square, resized_crop_flip_trivialaugment one random rotation, shear, shift, colour or tone "
        "change per photo); crop_flip_mixup, crop_flip_cutout_mixup "
        "and resized_crop_flip_mixup also blend pairs of images and their labels (mixup) "
        "(default: chosen from the data)",
    )
    parser.add_argument(
        "--recipe",
        default=None,
        help="named recipe whose model and settings fill in the flags not given: "
        "cifar10_tiny (32x32 colour images, MLPerf Tiny's CIFAR-10 bar), mnist_cnn (28x28 digits)",
    )
    add_optimizer_flags(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    add_split_flags(parser)
    add_distribution_flags(parser)


def add_optimizer_flags(parser) -> None:
    """How a classifier's weights are updated, averaged and computed."""
    parser.add_argument(
        "--optimizer", default=None, help="classifiers: adam (default) or sgd (Nesterov momentum 0.9)"
    )
    parser.add_argument(
        "--weight-decay",
        dest="weight_decay",
        type=float,
        default=None,
        help="classifiers: decoupled weight decay (default 0; BatchNorm and biases are exempt)",
    )
    parser.add_argument(
        "--weight-averaging",
        dest="weight_averaging",
        type=float,
        default=None,
        metavar="EPOCHS",
        help="classifiers: validate and save a moving average of the weights over about EPOCHS epochs "
        "(Polyak averaging; default 1 for text, 0 (off) for images)",
    )
    parser.add_argument(
        "--plain-last-epochs",
        dest="plain_last_epochs",
        type=int,
        default=None,
        metavar="N",
        help="classifiers: train the schedule's last N epochs (each phase's, with --backbone) without the "
        "augmentation's cutout and mixup (crops and flips only), at the lowest learning rates (default 0)",
    )
    parser.add_argument(
        "--retrain-on-all",
        dest="retrain_on_all",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="classifiers: once the validated pass is done, train again on training + validation "
        "examples for the whole schedule and keep the last epoch (default: on for at most 1,000 "
        "colour photos, from scratch or on one of our runs; --no-retrain-on-all keeps the best "
        "validated epoch)",
    )
    parser.add_argument(
        "--precision",
        default=None,
        help="classifiers: float32 (default), bfloat16 (mixed precision: about 2x faster on CPUs with "
        "bfloat16 instructions, slower elsewhere; the saved model is float32) or auto",
    )


def add_distribution_flags(parser) -> None:
    """Where training runs: one device, every local one, or several machines."""
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


def add_backbone_flags(parser) -> None:
    """Transfer learning: start from pretrained features, frozen first, then fine-tuned."""
    transfer = parser.add_argument_group("transfer learning (images and text)")
    transfer.add_argument(
        "--backbone",
        default=None,
        help="start from pretrained features: an image run folder, saved_models/<name>, a keras-hub "
        "preset folder or preset name (e.g. mobilenet_v3_small_100_imagenet, or bert_tiny_en_uncased "
        "for text, whose vocabulary and lowercasing replace the tokenizer flags but --sequence-length; "
        "downloaded once). --epochs then counts the frozen phase (default 10)",
    )
    transfer.add_argument(
        "--fine-tune-epochs",
        dest="fine_tune_epochs",
        type=int,
        default=None,
        help="epochs of phase 2, fine-tuning the backbone at a tenth of the learning rate "
        "(default: --epochs; 0: the backbone stays frozen)",
    )
    transfer.add_argument(
        "--fine-tune-from",
        dest="fine_tune_from",
        default=None,
        metavar="LAYER",
        help="backbone layer fine-tuning starts at; the layers before it stay frozen (default: all)",
    )


def add_tokenizer_flags(parser) -> None:
    tokenizer = parser.add_argument_group(
        "tokenizer (learned from the training texts; a text --backbone brings its own)"
    )
    # Defaults None (the TokenizerSettings defaults apply): a text --backbone refuses a typed flag.
    tokenizer.add_argument(
        "--vocabulary-size",
        dest="vocabulary_size",
        type=int,
        default=None,
        help="most tokens to learn (8000)",
    )
    tokenizer.add_argument(
        "--sequence-length",
        dest="sequence_length",
        type=int,
        default=None,
        help="token ids per text (default: covers 95%% of the training texts)",
    )
    tokenizer.add_argument("--lowercase", action=argparse.BooleanOptionalAction, default=None, help="(on)")
    tokenizer.add_argument(
        "--strip-accents",
        dest="strip_accents",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="drop diacritics (off by default: in Yoruba or Vietnamese they change the word)",
    )
    tokenizer.add_argument(
        "--split-on-cjk",
        dest="split_on_cjk",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="(on)",
    )
    tokenizer.add_argument(
        "--min-frequency",
        dest="min_frequency",
        type=int,
        default=None,
        help="times a token must occur in the training texts to be learned (1-10; default 2)",
    )


def train_from_args(args, *, verbose: int | None = None, before_training=None):
    """Calls ``train_run`` with the flags of ``add_training_flags``; returns (run_dir, metrics).
    ``verbose``: Keras's; None: a progress bar on a terminal, else one line an epoch (into a log
    file, the bar wrote every step: 2.7 MB for one CIFAR-10 run).
    ``before_training``: train_run's check of the freshly built model."""
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    names = (
        "vocabulary_size",
        "sequence_length",
        "lowercase",
        "strip_accents",
        "split_on_cjk",
        "min_frequency",
    )
    # Only the flags given: train_run fills in the rest, and a text preset refuses what it replaces.
    tokenizer = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    data_options = {
        **text_column_options(args),
        "test_source": args.test_source,
        "validation_source": args.validation_source,
        "test_fraction": args.test_fraction,
        "validation_fraction": args.validation_fraction,
        "split_seed": args.split_seed,
    }
    model_args, label_smoothing = _label_smoothing_of(args.model, model_args_from(args))
    return bigmodels.train_run(
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
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        label_smoothing=label_smoothing,
        precision=args.precision,
        weight_averaging=args.weight_averaging,
        plain_last_epochs=args.plain_last_epochs,
        retrain_on_all=args.retrain_on_all,
        recipe=args.recipe,
        backbone=args.backbone,
        fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_from=args.fine_tune_from,
        before_training=before_training,
    )


def _label_smoothing_of(model: str | None, model_args: dict) -> tuple[dict, float | None]:
    """--label-smoothing is the DCGAN builder's argument (its real targets) and the classifiers'
    training setting (their one-hot targets): the named builder's when it takes one, else the
    training's. Returns (model arguments, training label smoothing or None)."""
    smoothing = model_args.pop("label_smoothing", None)
    if smoothing is not None and model in builders_taking("label_smoothing"):
        return {**model_args, "label_smoothing": smoothing}, None
    return model_args, smoothing


def parse_model_arguments(text: str) -> dict:
    """--student-config: JSON ('{"width": 32}') or comma-separated key=value ('width=32,depth=1')."""
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
