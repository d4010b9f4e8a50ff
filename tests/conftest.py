import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """One short real training run on the embedded digits, shared by the export/app tests."""
    from bigmodels.runs import train_run

    out = tmp_path_factory.mktemp("runs") / "digits"
    run_dir, _ = train_run("cnn_classifier", "digits", out, epochs=3, learning_rate=5e-3, verbose=0)
    return run_dir
