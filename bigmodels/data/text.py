"""Text sources: CSV/TSV files (any columns, with or without a header) and folders of .txt files.

Bad rows (empty text, missing label) are skipped and reported, not fatal; rows whose undecodable
bytes were replaced by U+FFFD are kept and reported as repaired; a source with no usable row is an
error. CSV is parsed strictly: a quote that is never closed (which would merge every later row
into one field) is an error naming the line where it opens; in a TSV file such quotes are text.
"""

import csv
import io
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from bigmodels.data.images import find_split_folders
from bigmodels.lite.images import IMAGE_EXTENSIONS

TEXT_FILE_EXTENSIONS = (".csv", ".tsv", ".txt", ".tab")


def _decode(data: bytes, path: Path, encoding: str) -> tuple[str, bool]:
    """Decodes a file; undecodable bytes become U+FFFD and the caller reports those rows."""
    try:
        return data.decode(encoding).lstrip("\ufeff"), False
    except UnicodeDecodeError:
        return data.decode(encoding, errors="replace").lstrip("\ufeff"), True
    except LookupError as error:
        raise ValueError(f"unknown text encoding '{encoding}'; use e.g. utf-8 or cp1252") from error


@contextmanager
def _field_size_limit(limit: int):
    """Lets the csv module read fields up to ``limit`` characters (its default is 131072; a
    long document is real data), restoring the process-wide setting afterwards."""
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, limit))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def _parse_error(path: Path, start: int, end: int, error: csv.Error) -> ValueError:
    """The csv module's strict-mode complaint as one line naming where the bad row starts."""
    fix = 'close the quote, or double a quote that is part of the text ("") and put the whole field in quotes'
    if "unexpected end of data" in str(error):
        message = (
            f"{path}: line {start}: a quote opened here is never closed, so every later row "
            f"would be read as part of one field; {fix}"
        )
    elif end > start:
        message = (
            f"{path}: line {start}: a quote opened here is only closed on line {end}, with text "
            f"after it ({error}); {fix}"
        )
    else:
        message = f"{path}: line {start}: text after a closing quote ({error}); {fix}"
    return ValueError(message)


def _parse_rows(text: str, path: Path, delimiter: str) -> list[tuple[int, list[str]]]:
    """(line where the record starts, cells) for every record, strictly: a quoted field must
    end with a quote followed by a delimiter or a line end, never run to the end of the file.

    A tab-separated file whose quotes do not parse as quoted fields is read again with quotes
    as plain characters, a line a record: TSV has no quoting (GLUE's files, most corpora), and
    a review that starts with a quote ('"Great" book') is text, not an error. A CSV file needs
    its quotes (a comma in a text), so there the strict parse's error stands."""
    try:
        return _read_records(text, path, delimiter, csv.QUOTE_MINIMAL)
    except ValueError:
        if delimiter != "\t":
            raise
        return _read_records(text, path, delimiter, csv.QUOTE_NONE)


def _read_records(text: str, path: Path, delimiter: str, quoting: int) -> list[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True, quoting=quoting)
    records = []
    with _field_size_limit(len(text) + 1):
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return records
            except csv.Error as error:
                raise _parse_error(path, start, reader.line_num, error) from error
            records.append((start, row))


def _delimiter(path: Path, sample: str) -> str:
    if path.suffix.lower() in (".tsv", ".tab"):
        return "\t"
    if path.suffix.lower() == ".csv":
        return ","
    try:
        return csv.Sniffer().sniff(sample[:65536], delimiters=",\t;|").delimiter
    except csv.Error:
        return "\t" if "\t" in sample else ","


def _column_index(column: str | int, header: list[str] | None, path: Path, width: int) -> int:
    """A column given by name (needs a header) or by 0-based index."""
    if isinstance(column, int) or (isinstance(column, str) and column.lstrip("-").isdigit()):
        index = int(column)
        if not 0 <= index < width:
            raise ValueError(f"{path}: column {index} does not exist (rows have {width} columns, 0-based)")
        return index
    if header is None or column not in header:
        names = ", ".join(repr(name) for name in header) if header else "none (no header row)"
        raise ValueError(
            f"{path}: no column named '{column}'; columns are {names}; pass a name or a 0-based index"
        )
    return header.index(column)


def _has_header(rows: list[list[str]], text_columns, label_column) -> bool:
    """A header when a column is named, or when the first label occurs nowhere else."""
    named = [c for c in (*text_columns, label_column) if isinstance(c, str) and not c.lstrip("-").isdigit()]
    if named:
        return True
    if len(rows) < 3:
        return False
    index = int(label_column)
    first = rows[0][index] if index < len(rows[0]) else ""
    return all(index >= len(row) or row[index] != first for row in rows[1:])


def read_table(
    path: str | Path,
    *,
    text_columns: list[str | int],
    label_column: str | int,
    header: bool | None = None,
    encoding: str = "utf-8",
):
    """Reads texts and labels from a CSV or TSV file.

    Args:
        path: the file; ``.tsv``/``.tab`` is tab-separated, ``.csv`` comma-separated, others sniffed.
        text_columns: one or several columns (names or 0-based indices), joined with a space.
        label_column: the label column (name or index); labels may be names or integers.
        header: whether the first row names the columns; guessed when None.
        encoding: the file's encoding.

    Returns:
        (texts, labels, problems): parallel lists of usable rows, and {"row", "line", "reason"}
        for each row that was skipped or repaired (rows count non-blank rows from 1, header
        included; lines are the file's line where the row starts). A repaired row (undecodable
        bytes replaced by U+FFFD) is kept in the texts and its problem has ``"repaired": True``.

    Raises:
        ValueError: a quote that is never closed (naming its line), no usable row, unknown
            columns or encoding.
    """
    path = Path(path)
    text, had_bad_bytes = _decode(path.read_bytes(), path, encoding)
    records = _parse_rows(text, path, _delimiter(path, text))
    records = [(line, row) for line, row in records if any(cell.strip() for cell in row)]
    rows = [row for _, row in records]
    if not rows:
        raise ValueError(f"{path}: the file has no rows; add one example per row")
    header_row = (
        rows[0] if (header if header is not None else _has_header(rows, text_columns, label_column)) else None
    )
    width = max(len(row) for row in rows)
    text_indices = [_column_index(c, header_row, path, width) for c in text_columns]
    label_index = _column_index(label_column, header_row, path, width)
    texts, labels, problems = [], [], []
    body = records[1:] if header_row else records
    for number, (line, row) in enumerate(body, start=2 if header_row else 1):
        label = row[label_index].strip() if label_index < len(row) else ""
        joined = " ".join(row[i].strip() for i in text_indices if i < len(row) and row[i].strip())
        if not label:
            problems.append({"row": number, "line": line, "reason": "missing label"})
        elif not joined:
            problems.append({"row": number, "line": line, "reason": "empty text"})
        else:
            if had_bad_bytes and ("\ufffd" in joined or "\ufffd" in label):
                problems.append({"row": number, "line": line, **_repaired(encoding)})
            texts.append(joined)
            labels.append(label)
    if not texts:
        raise ValueError(f"{path}: no usable row ({len(problems)} skipped: missing labels or empty texts)")
    return texts, labels, problems


def _repaired(encoding: str) -> dict:
    return {"reason": f"bytes that are not {encoding} replaced by U+FFFD", "repaired": True}


def split_problems(problems: list[dict]) -> tuple[list[dict], list[dict]]:
    """(skipped, repaired): rows or files left out, and those kept after U+FFFD replacement."""
    skipped = [problem for problem in problems if not problem.get("repaired")]
    repaired = [
        {key: value for key, value in problem.items() if key != "repaired"}
        for problem in problems
        if problem.get("repaired")
    ]
    return skipped, repaired


def read_text_folder(root: str | Path, *, encoding: str = "utf-8"):
    """Reads root/<class>/*.txt, one example per file. Returns (texts, labels, problems); a file
    whose undecodable bytes were replaced is kept, and its problem has ``"repaired": True``."""
    root = Path(root)
    texts, labels, problems = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(p for p in folder.rglob("*.txt") if p.is_file()):
            content, bad = _decode(path.read_bytes(), path, encoding)
            if not content.strip():
                problems.append({"path": str(path), "reason": "empty text"})
                continue
            if bad:
                problems.append({"path": str(path), **_repaired(encoding)})
            texts.append(content.strip())
            labels.append(folder.name)
    if not texts:
        raise ValueError(f"{root}: no usable .txt file in any class folder; put one text per .txt file")
    return texts, labels, problems


def class_names_of(labels: list[str]) -> list[str]:
    """Sorted class names: numerically when every label is an integer, else alphabetically."""
    unique = sorted(Counter(labels))
    if all(label.lstrip("-").isdigit() for label in unique):
        return sorted(unique, key=int)
    return unique


def is_text_folder(root: Path) -> bool:
    """True when the class subfolders hold .txt files and no images (a stray README.txt beside
    photos does not make a photo folder a text source)."""
    suffixes = Counter(
        p.suffix.lower()
        for folder in root.iterdir()
        if folder.is_dir()
        for p in folder.rglob("*")
        if p.is_file()
    )
    has_images = any(suffixes[extension] for extension in IMAGE_EXTENSIONS)
    return suffixes[".txt"] > 0 and not has_images


def _read_text_source(path: Path, text_columns, label_column, header, encoding):
    if path.is_dir():
        return read_text_folder(path, encoding=encoding)
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise ValueError(f"{path}: a single image is not a dataset; pass a folder of class subfolders")
    if text_columns is None or label_column is None:
        raise ValueError(
            f"{path}: say which columns hold the text and the label "
            "(--text-column NAME_OR_INDEX --label-column NAME_OR_INDEX)"
        )
    return read_table(
        path, text_columns=text_columns, label_column=label_column, header=header, encoding=encoding
    )


def _read_extra_source(
    source, what: str, flag: str, class_names, text_columns, label_column, header, encoding
):
    """A separate test or validation file: its rows, problems, and a check on its labels."""
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{what} data '{source}' does not exist; check the {flag} path")
    texts, labels, problems = _read_text_source(path, text_columns, label_column, header, encoding)
    unknown = sorted(set(labels) - set(class_names))
    if unknown:
        raise ValueError(
            f"{source}: label(s) {', '.join(unknown[:5])} do not occur in the training data; "
            "use the same labels in every file"
        )
    return (texts, labels), [{**problem, "path": problem.get("path", str(path))} for problem in problems]


def load_text_source(
    path: Path,
    *,
    test_source: str | Path | None,
    text_columns,
    label_column,
    header: bool | None,
    encoding: str,
    validation_source: str | Path | None = None,
):
    """Reads a text source (and optional separate test and validation sources) into splits.

    Returns:
        (splits, class_names, test_split, extra) in the form ``load_dataset`` assembles; extra
        holds "skipped" (rows or files left out) and "repaired" (rows or files kept after their
        undecodable bytes were replaced by U+FFFD), each entry with the file's "path".
    """

    if text_columns is not None and not isinstance(text_columns, list | tuple):
        text_columns = [text_columns]
    if path.is_dir() and test_source is None:
        split_folders = find_split_folders(path)
        if "train" in split_folders:  # train/ and test/ (or val/) subfolders, as for images
            path = split_folders["train"]
            test_source = split_folders.get("test", split_folders.get("validation"))
    texts, labels, problems = _read_text_source(path, text_columns, label_column, header, encoding)
    for problem in problems:
        problem.setdefault("path", str(path))
    class_names = class_names_of(labels)
    reading = (class_names, text_columns, label_column, header, encoding)

    def as_arrays(texts_, labels_):
        return np.asarray(texts_, dtype=object), np.asarray([class_names.index(label) for label in labels_])

    splits = {"all": as_arrays(texts, labels)}
    test_split = None
    for name, source, flag in (
        ("test", test_source, "--test-data"),
        ("validation", validation_source, "--validation-data"),
    ):
        if source is not None:
            rows, more_problems = _read_extra_source(source, name, flag, *reading)
            splits[name] = as_arrays(*rows)
            problems += more_problems
    if len(splits) > 1:
        splits["train"] = splits.pop("all")
    if test_source is not None:
        test_split = f"the separate test data '{test_source}'"
    preprocessing = {"text_columns": text_columns, "label_column": label_column, "encoding": encoding}
    skipped, repaired = split_problems(problems)
    return (
        splits,
        class_names,
        test_split,
        {"skipped": skipped, "repaired": repaired, "preprocessing": preprocessing},
    )
