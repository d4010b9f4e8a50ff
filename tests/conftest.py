import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402


def pytest_collection_modifyitems(items):
    """The long tests, longest first (``@pytest.mark.long(seconds)``), then the notebooks, then
    the rest: a stable sort, the same in every xdist worker. Started last, the ants/bees run
    (about 6 minutes) kept one worker busy while the other sat idle at the end of the suite."""

    def order(item):
        long = item.get_closest_marker("long")
        if long:
            return (0, -(long.args[0] if long.args else 60))  # no figure: about a minute
        return (1 if item.path.suffix == ".ipynb" else 2, 0)

    items.sort(key=order)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """One short real training run on the embedded digits, shared by the export/app tests."""
    from bigmodels.workflows.train import train_run

    out = tmp_path_factory.mktemp("runs") / "digits"
    run_dir, _ = train_run("cnn_classifier", "digits", out, epochs=3, learning_rate=5e-3, verbose=0)
    return run_dir


@pytest.fixture(scope="session")
def text_run(tmp_path_factory):
    """A short Transformer run on a multilingual CSV (two text columns joined), shared by tests."""
    from helpers import write_reviews_csv

    from bigmodels.workflows.train import train_run

    folder = tmp_path_factory.mktemp("text")
    data = write_reviews_csv(folder / "reviews.csv", 160)
    run_dir, _ = train_run(
        None,
        str(data),
        folder / "run",
        epochs=12,
        learning_rate=3e-3,
        batch_size=16,
        model_args={"width": 16, "feedforward_size": 32},
        data_options={"text_columns": ["title", "body"], "label_column": "sentiment"},
        verbose=0,
    )
    return run_dir


@pytest.fixture(scope="session")
def text_export(text_run):
    from bigmodels.workflows.export import export_run

    return export_run(text_run, latency_repeats=20)


@pytest.fixture(scope="session")
def gan_run(tmp_path_factory):
    """A two-epoch DCGAN run on the embedded digits (with its own scoring classifier and a
    code learned from the labels, so the run covers the labelled pipeline and the export the
    code layer's ops)."""
    from bigmodels.workflows.train import train_run

    run_dir, _ = train_run(
        "dcgan",
        "digits",
        tmp_path_factory.mktemp("gan") / "run",
        epochs=2,
        learning_rate=1e-3,
        model_args={"latent_size": 16, "base_filters": 8, "code_from_labels": True},
        verbose=0,
    )
    return run_dir
