"""Text sources: CSV/TSV files in the shapes people have, folders of .txt files, bad rows."""

import csv

import numpy as np
import pytest

from bigmodels.data import load_dataset
from bigmodels.data.text import read_table

ROWS = [
    ("great film , loved it", "pos"),
    ("dull and far too long", "neg"),
    ("a joy from start to end", "pos"),
    ("i want my money back", "neg"),
    ("wonderful acting", "pos"),
    ("boring plot", "neg"),
] * 5


def write_csv(path, rows, header=None, delimiter=","):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerows(([header] if header else []) + [list(row) for row in rows])
    return path


def test_csv_with_header_by_column_names(tmp_path):
    path = write_csv(tmp_path / "reviews.csv", [(t, label) for t, label in ROWS], header=("text", "label"))
    data = load_dataset(str(path), text_columns="text", label_column="label", seed=0)
    info = data.info
    assert info.kind == "text" and info.class_names == ["neg", "pos"]
    assert sum(info.counts.values()) == 30 and "seeded stratified" in info.test_split
    texts, labels = data.arrays["train"]
    assert isinstance(texts[0], str) and set(labels.tolist()) == {0, 1}
    batch_texts, batch_labels = next(iter(data.train))
    assert batch_texts.dtype.name == "string"


def test_headerless_tsv_by_index_with_integer_labels(tmp_path):
    path = write_csv(
        tmp_path / "data.tsv", [(str(int(label == "pos")), t) for t, label in ROWS], delimiter="\t"
    )
    texts, labels, problems = read_table(path, text_columns=[1], label_column=0)
    assert len(texts) == 30 and problems == [] and texts[0] == "great film , loved it"
    data = load_dataset(str(path), text_columns=1, label_column=0)
    assert data.info.class_names == ["0", "1"]


def test_header_row_is_detected_when_columns_are_given_by_index(tmp_path):
    path = write_csv(
        tmp_path / "data.tsv",
        [(label, t) for t, label in ROWS],
        header=("sentiment", "review"),
        delimiter="\t",
    )
    texts, labels, _ = read_table(path, text_columns=[1], label_column=0)
    assert len(texts) == 30 and "sentiment" not in labels


def test_several_text_columns_are_joined_and_quoted_fields_survive(tmp_path):
    path = tmp_path / "tickets.csv"
    path.write_text(
        'title,body,label\n"Refund, please","It broke\non day two",billing\n'
        '"Login","Cannot sign in",account\n'
        '"Card declined","Charged twice, ""why""?",billing\n"Password","Reset link expired",account\n',
        encoding="utf-8",
    )
    texts, labels, problems = read_table(path, text_columns=["title", "body"], label_column="label")
    assert texts[0] == "Refund, please It broke\non day two"
    assert texts[2] == 'Card declined Charged twice, "why"?'
    assert labels == ["billing", "account", "billing", "account"] and problems == []


def test_chinese_and_yoruba_text_load_unchanged(tmp_path):
    rows = [("今天天气很好", "好"), ("Ìlera ní Yorùbá pè ní oògùn", "yo")] * 4
    path = write_csv(tmp_path / "mixed.csv", rows, header=("text", "label"))
    texts, labels, _ = read_table(path, text_columns=["text"], label_column="label")
    assert "今天天气很好" in texts and "Ìlera ní Yorùbá pè ní oògùn" in texts


def test_bad_rows_are_reported_not_fatal(tmp_path):
    path = tmp_path / "messy.csv"
    good = b"".join(f'"{t}",{label}\n'.encode() for t, label in ROWS[:8])
    path.write_bytes(b"text,label\n" + good + b"caf\xe9 au lait,pos\n,neg\nno label here,\n")
    texts, labels, problems = read_table(path, text_columns=["text"], label_column="label")
    reasons = {problem["row"]: problem["reason"] for problem in problems}
    assert len(texts) == 9 and "caf\ufffd au lait" in texts
    assert reasons[10].startswith("bytes that are not utf-8") and reasons[11] == "empty text"
    assert reasons[12] == "missing label"
    data = load_dataset(str(path), text_columns="text", label_column="label")
    assert len(data.info.skipped_files) == 2 and data.info.skipped_files[0]["path"] == str(path)
    assert [row["row"] for row in data.info.repaired_rows] == [10]  # kept, and said so


def test_file_without_a_usable_row_is_an_error(tmp_path):
    path = tmp_path / "empty_labels.csv"
    path.write_text("text,label\nhello,\nworld,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no usable row"):
        read_table(path, text_columns=["text"], label_column="label")


@pytest.mark.parametrize(
    "column, message", [("review", "no column named 'review'"), (5, "column 5 does not exist")]
)
def test_wrong_columns_name_the_columns_that_exist(tmp_path, column, message):
    path = write_csv(tmp_path / "reviews.csv", ROWS, header=("text", "label"))
    with pytest.raises(ValueError, match=message):
        load_dataset(str(path), text_columns=column, label_column="label")


def test_missing_column_flags_are_a_clear_error(tmp_path):
    path = write_csv(tmp_path / "reviews.csv", ROWS, header=("text", "label"))
    with pytest.raises(ValueError, match="--text-column"):
        load_dataset(str(path))


def test_folder_of_txt_files_per_class(tmp_path):
    for index, (text, label) in enumerate(ROWS):
        (tmp_path / label).mkdir(exist_ok=True)
        (tmp_path / label / f"{index}.txt").write_text(text, encoding="utf-8")
    (tmp_path / "pos" / "blank.txt").write_text("   ", encoding="utf-8")
    data = load_dataset(str(tmp_path))
    assert data.info.kind == "text" and data.info.class_names == ["neg", "pos"]
    assert [p["reason"] for p in data.info.skipped_files] == ["empty text"]


def test_separate_test_file_is_the_test_split(tmp_path):
    train = write_csv(tmp_path / "train.csv", ROWS, header=("text", "label"))
    test = write_csv(tmp_path / "test.csv", ROWS[:6], header=("text", "label"))
    data = load_dataset(str(train), text_columns="text", label_column="label", test_source=str(test))
    assert data.info.counts["test"] == 6 and "separate test data" in data.info.test_split
    assert np.array_equal(data.arrays["test"][1], [1, 0, 1, 0, 1, 0])


def test_test_file_with_unknown_labels_is_refused(tmp_path):
    train = write_csv(tmp_path / "train.csv", ROWS, header=("text", "label"))
    test = write_csv(tmp_path / "test.csv", [("meh", "neutral")], header=("text", "label"))
    with pytest.raises(ValueError, match="neutral"):
        load_dataset(str(train), text_columns="text", label_column="label", test_source=str(test))


def test_sst2_style_tsv_with_named_columns(tmp_path):
    path = write_csv(
        tmp_path / "train.tsv",
        [(label, t) for t, label in ROWS],
        header=("label", "sentence"),
        delimiter="\t",
    )
    data = load_dataset(str(path), text_columns="sentence", label_column="label")
    assert data.info.preprocessing["text_columns"] == ["sentence"]


def test_text_folder_with_train_and_test_subfolders(tmp_path):
    for split, rows in (("train", ROWS), ("test", ROWS[:4])):
        for index, (text, label) in enumerate(rows):
            (tmp_path / split / label).mkdir(parents=True, exist_ok=True)
            (tmp_path / split / label / f"{index}.txt").write_text(text, encoding="utf-8")
    data = load_dataset(str(tmp_path))
    assert data.info.class_names == ["neg", "pos"] and data.info.counts["test"] == 4


def test_separate_validation_and_test_files(tmp_path):
    train = write_csv(tmp_path / "train.csv", ROWS, header=("text", "label"))
    dev = write_csv(tmp_path / "dev.csv", ROWS[:4], header=("text", "label"))
    test = write_csv(tmp_path / "test.csv", ROWS[:6], header=("text", "label"))
    data = load_dataset(
        str(train),
        text_columns="text",
        label_column="label",
        test_source=str(test),
        validation_source=str(dev),
    )
    assert data.info.counts == {"train": 30, "validation": 4, "test": 6}
    assert data.info.validation_split == "the source's own validation split"
    only_dev = load_dataset(str(train), text_columns="text", label_column="label", validation_source=str(dev))
    assert only_dev.info.counts["validation"] == 4 and "seeded stratified" in only_dev.info.test_split


def test_separate_test_data_is_refused_for_images(tmp_path):
    from helpers import write_image_folder

    folder = write_image_folder(tmp_path / "photos", per_class=3)
    with pytest.raises(ValueError, match="apply to text files"):
        load_dataset(str(folder), test_source=str(folder))
