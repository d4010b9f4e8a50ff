"""The flags that say how data is read and split, shared by the apps that train and evaluate."""

import argparse


def _column(text: str) -> str | int:
    """A column flag: a 0-based index when it is a number, else a header name."""
    return int(text) if text.lstrip("-").isdigit() else text


def add_split_flags(parser) -> None:
    """How the data is shaped and split where the source does not say."""
    parser.add_argument(
        "--image-size",
        dest="image_size",
        type=int,
        nargs=2,
        default=None,
        metavar=("HEIGHT", "WIDTH"),
        help="size photos are resized to when loading",
    )
    parser.add_argument(
        "--test-fraction",
        dest="test_fraction",
        type=float,
        default=None,
        help="share of the data held out for testing when it has no test split of its own (0.2)",
    )
    parser.add_argument(
        "--validation-fraction",
        dest="validation_fraction",
        type=float,
        default=None,
        help="share of the training data held out for model selection when it has no validation "
        "split (10%%; up to 20%% for small data)",
    )
    parser.add_argument(
        "--split-seed",
        dest="split_seed",
        type=int,
        default=None,
        help="seed of the held-out test and validation splits carved from the data (default: --seed), "
        "to compare runs of different --seed on the same held-out examples",
    )


def add_text_column_flags(parser):
    """How a CSV/TSV file is read (columns, header row, encoding); returns the flag group."""
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
    text.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether the first row names the columns (default: guessed)",
    )
    text.add_argument(
        "--encoding", default=None, help="text encoding (default utf-8; bad bytes are reported)"
    )
    return text


def text_column_options(args) -> dict:
    """The values of ``add_text_column_flags``' flags, as load_dataset and the workflows name them."""
    return {name: getattr(args, name) for name in ("text_columns", "label_column", "header", "encoding")}


def add_text_data_flags(parser) -> None:
    text = add_text_column_flags(parser)
    text.add_argument("--test-data", dest="test_source", default=None, help="separate test file or folder")
    text.add_argument(
        "--validation-data",
        dest="validation_source",
        default=None,
        help="separate validation (dev) file used for model selection",
    )
