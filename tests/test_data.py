"""The data layer: every source, the splits it records, and the errors it gives."""

import numpy as np
import pytest
from helpers import mock_tfds, write_corrupt_files, write_idx, write_idx_folder, write_image_folder
from PIL import Image

from bigmodels.data import load_dataset
from bigmodels.data.dataset import stratified_split


def test_embedded_digits_default_is_real_offline_data():
    data = load_dataset()
    info = data.info
    assert info.source == "digits"
    assert info.input_shape == (8, 8, 1)
    assert info.class_names == [str(d) for d in range(10)]
    assert sum(info.counts.values()) == 1797
    assert "seeded stratified 20%" in info.test_split
    features, labels = next(iter(data.train))
    assert features.dtype.name == "uint8" and features.shape[1:] == (8, 8, 1)
    assert features.shape[0] == data.batch_size
    assert set(np.unique(data.arrays["test"][1])) == set(range(10))


def test_stratified_split_is_seeded_and_keeps_every_class():
    labels = np.array([0] * 50 + [1] * 10 + [2] * 2)
    kept, held = stratified_split(labels, 0.2, seed=3)
    again_kept, again_held = stratified_split(labels, 0.2, seed=3)
    assert np.array_equal(held, again_held) and np.array_equal(kept, again_kept)
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(len(labels)))
    assert [int(np.sum(labels[held] == c)) for c in (0, 1, 2)] == [10, 2, 1]


def test_image_folder_without_splits_gets_a_recorded_stratified_split(tmp_path):
    write_image_folder(tmp_path, per_class=15)
    data = load_dataset(str(tmp_path), seed=1)
    info = data.info
    assert info.class_names == ["ants", "bees"]
    assert info.input_shape == (20, 24, 3)
    assert (
        info.counts["test"] == 6
        and "seeded stratified 20%" in info.test_split
        and "seed 1" in info.test_split
    )
    assert sum(info.counts.values()) == 30


def test_test_and_validation_fractions_are_honoured_and_recorded():
    data = load_dataset("digits", test_fraction=0.1, validation_fraction=0.05)
    counts = data.info.counts
    assert counts["test"] == pytest.approx(0.1 * 1797, abs=10)
    assert counts["validation"] == pytest.approx(0.05 * (1797 - counts["test"]), abs=10)
    assert "seeded stratified 10%" in data.info.test_split
    assert "seeded stratified 5%" in data.info.validation_split


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, "0.1", True])
def test_a_fraction_outside_zero_to_one_is_a_clear_error(fraction):
    with pytest.raises(ValueError, match="--test-fraction must be a share between 0 and 1"):
        load_dataset("digits", test_fraction=fraction)
    with pytest.raises(ValueError, match="--validation-fraction must be a share between 0 and 1"):
        load_dataset("digits", validation_fraction=fraction)


def test_a_split_seed_holds_out_the_same_examples_whatever_the_seed():
    def held_out(**seeds):
        data = load_dataset("digits", **seeds)
        return [data.arrays[split][0] for split in ("test", "validation")], data.info.test_split

    (test, validation), described = held_out(seed=0, split_seed=7)
    (other_test, other_validation), _ = held_out(seed=3, split_seed=7)
    np.testing.assert_array_equal(test, other_test)
    np.testing.assert_array_equal(validation, other_validation)
    assert "seed 7" in described
    assert not np.array_equal(held_out(seed=0, split_seed=8)[0][0], test)
    np.testing.assert_array_equal(held_out(seed=7)[0][0], test)  # by default the seed splits too


@pytest.mark.parametrize("split_seed", [-1, 1.5, "3", True])
def test_a_split_seed_that_is_not_a_whole_number_is_a_clear_error(split_seed):
    with pytest.raises(ValueError, match="--split-seed must be a whole number, 0 or more"):
        load_dataset("digits", split_seed=split_seed)


def test_image_folder_uses_train_and_test_subfolders(tmp_path):
    write_image_folder(tmp_path / "train", per_class=10)
    write_image_folder(tmp_path / "test", per_class=3, seed=5)
    info = load_dataset(str(tmp_path)).info
    assert info.counts["test"] == 6
    assert "'test/'" in info.test_split


def test_all_as_test_joins_every_split_and_carves_nothing(tmp_path):
    write_image_folder(tmp_path / "train", per_class=10)
    write_image_folder(tmp_path / "test", per_class=3, seed=5)
    data = load_dataset(str(tmp_path), all_as_test=True)
    assert data.info.counts == {"train": 0, "validation": 0, "test": 26}
    assert data.arrays["test"][0].shape == (26, 20, 24, 3) and data.info.test_split.startswith("every")
    # A test/ folder handed over without its train/ holds a split, not a class named "test".
    (tmp_path / "train").rename(tmp_path.with_name(tmp_path.name + "_train"))
    assert load_dataset(str(tmp_path), all_as_test=True).info.class_names == ["ants", "bees"]
    with pytest.raises(ValueError, match="no training split found"):
        load_dataset(str(tmp_path))


def test_val_folder_beside_train_is_the_test_split(tmp_path):
    write_image_folder(tmp_path / "train", per_class=10)
    write_image_folder(tmp_path / "val", per_class=4, seed=5)
    info = load_dataset(str(tmp_path)).info
    assert info.counts["test"] == 8 and "'val/'" in info.test_split


def test_uneven_photos_are_cropped_and_resized_to_one_size(tmp_path):
    write_image_folder(tmp_path, per_class=8, uneven=True, extension=".jpg")
    data = load_dataset(str(tmp_path), image_size=(32, 32))
    assert data.info.input_shape == (32, 32, 3)
    default = load_dataset(str(tmp_path))
    assert default.info.input_shape == (160, 160, 3)
    assert default.info.preprocessing["image_size"] == [160, 160]


@pytest.mark.parametrize("extension", [".png", ".bmp", ".gif", ".jpg"])
def test_every_supported_format_loads(tmp_path, extension):
    write_image_folder(tmp_path, per_class=6, extension=extension, channels=3 if extension == ".jpg" else 1)
    data = load_dataset(str(tmp_path))
    assert sum(data.info.counts.values()) == 12
    assert data.info.skipped_files == []


def test_grayscale_folder_gives_one_channel(tmp_path):
    write_image_folder(tmp_path, per_class=6, channels=1)
    assert load_dataset(str(tmp_path)).info.input_shape == (20, 24, 1)


def test_corrupt_files_are_skipped_counted_and_listed(tmp_path):
    write_image_folder(tmp_path, per_class=8)
    broken = write_corrupt_files(tmp_path / "bees")
    (tmp_path / "ants" / "readme.txt").write_text("notes")
    data = load_dataset(str(tmp_path))
    skipped = {item["path"]: item["reason"] for item in data.info.skipped_files}
    assert set(skipped) == {str(p) for p in broken} | {str(tmp_path / "ants" / "readme.txt")}
    assert sum(data.info.counts.values()) == 16
    assert all(reason for reason in skipped.values())


def test_class_folder_with_only_broken_files_is_an_error(tmp_path):
    write_image_folder(tmp_path, per_class=5, classes=("ants",))
    write_corrupt_files(tmp_path / "bees")
    with pytest.raises(ValueError, match="bees: class folder has no usable image"):
        load_dataset(str(tmp_path))


def test_empty_class_folder_is_an_error(tmp_path):
    write_image_folder(tmp_path, per_class=5)
    (tmp_path / "wasps").mkdir()
    with pytest.raises(ValueError, match="wasps: class folder has no usable image"):
        load_dataset(str(tmp_path))


def test_single_class_is_an_error(tmp_path):
    write_image_folder(tmp_path, per_class=5, classes=("ants",))
    with pytest.raises(ValueError, match="at least two classes"):
        load_dataset(str(tmp_path))


def test_folder_without_class_folders_is_an_error(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "lonely.png")
    with pytest.raises(ValueError, match="no class subfolders"):
        load_dataset(str(tmp_path))


def test_missing_path_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(str(tmp_path / "nowhere"))


def test_idx_folder_uses_its_own_test_files(tmp_path):
    write_idx_folder(tmp_path, train=40, test=20)
    data = load_dataset(str(tmp_path))
    assert data.info.input_shape == (12, 12, 1)
    assert data.info.counts["test"] == 20
    assert data.info.counts["train"] + data.info.counts["validation"] == 40
    assert "t10k" in data.info.test_split


def test_idx_label_count_mismatch_is_an_error(tmp_path):
    write_idx_folder(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(7, np.uint8))
    with pytest.raises(ValueError, match="do not match"):
        load_dataset(str(tmp_path))


def test_truncated_idx_file_is_an_error(tmp_path):
    write_idx_folder(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(ValueError, match="train-images"):
        load_dataset(str(tmp_path))


@pytest.mark.parametrize(
    "name, shape",
    [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3)), ("fashion_mnist", (28, 28, 1))],
)
def test_tfds_name_loads_with_its_own_splits(name, shape, tmp_path):
    with mock_tfds(tmp_path, num_examples=24):
        data = load_dataset(name)
    assert data.info.input_shape == shape
    assert data.info.test_split == "the tfds 'test' split"
    assert data.info.counts["test"] == 24


def test_tfds_photos_of_large_size_keep_their_size_or_resize(tmp_path):
    with mock_tfds(tmp_path, num_examples=12):
        data = load_dataset("beans", image_size=(64, 64))
    assert data.info.input_shape == (64, 64, 3)
    assert data.info.class_names == ["angular_leaf_spot", "bean_rust", "healthy"]


def test_tfds_download_tries_three_times_then_gives_tfds_its_own_setting_back(tmp_path, monkeypatch):
    """Offline, tfds's ten tries with a doubling back-off took 3.5 minutes to fail."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import downloader

    from bigmodels.data.sources import DOWNLOAD_TRIES, load_tfds_arrays

    tries_during_download = []

    def unreachable(builder, *args, **kwargs):
        tries_during_download.append(downloader.MAX_RETRIES)
        raise ConnectionError("storage.googleapis.com: name resolution failed")

    before = downloader.MAX_RETRIES
    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", unreachable)
    with pytest.raises(ValueError, match=r"'mnist' could not be downloaded or prepared \(ConnectionError\)"):
        load_tfds_arrays("mnist", data_dir=str(tmp_path))
    assert tries_during_download == [DOWNLOAD_TRIES] and before > DOWNLOAD_TRIES
    assert before == downloader.MAX_RETRIES


def test_unknown_tfds_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown dataset 'not_a_dataset_xyz'"):
        load_dataset("not_a_dataset_xyz")
