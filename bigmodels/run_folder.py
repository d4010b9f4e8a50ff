"""The on-disk folders this package writes, and the one rule for replacing them.

Every folder bigmodels writes (a run, an export, a folder of generated samples) carries a
marker file, ``.bigmodels.json``, naming the package, the folder's kind, the format version and
the entries it wrote. A folder is replaced (``--overwrite``, exporting again) only when it
carries that marker and holds nothing else at its top level, so a mistyped ``--out ~/project``
or ``--out ..`` can never empty a folder of the user's.

Writing is staged: the new folder is built beside the target (``OUT.partial``, or a fresh
unique ``OUT.partial-XXXX`` when a folder of the user's already has that name), and it replaces
the target only when complete. The old folder is first renamed aside, so a crash at any moment
leaves either the previous folder or the new one, byte-identical, never half of each.
"""

import contextlib
import json
import os
import shutil
import tempfile
import uuid
import warnings
import zipfile
from pathlib import Path

from bigmodels import __version__
from bigmodels.run_records import ExportReport, ParityGate, RunConfig, RunMetrics  # noqa: F401  the format's records

MARKER_FILE = ".bigmodels.json"
MARKER_FORMAT_VERSION = 1
PACKAGE_NAME = "bigmodels"
STAGING_KIND = "staging"
RUN_FILES = ("model.keras", "config.json", "metrics.json")


def write_json(path: Path, data: dict) -> None:
    """Writes JSON through a temporary file, so a reader never sees half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    temporary.replace(path)


def read_marker(folder: Path) -> dict | None:
    """The folder's marker when bigmodels wrote it, else None (never raises for a user's folder)."""
    path = Path(folder) / MARKER_FILE
    if path.is_symlink() or not path.is_file() or path.stat().st_size > 1 << 20:
        return None
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(marker, dict) or marker.get("written_by") != PACKAGE_NAME:
        return None
    if not isinstance(marker.get("entries"), list):
        return None
    return marker


def write_marker(folder: Path, kind: str, *, target: str | None = None) -> None:
    """Marks ``folder`` as written by bigmodels, recording its current top-level entries."""
    folder = Path(folder)
    entries = sorted(path.name for path in folder.iterdir() if path.name != MARKER_FILE)
    marker = {
        "written_by": PACKAGE_NAME,
        "kind": kind,
        "format_version": MARKER_FORMAT_VERSION,
        "bigmodels_version": __version__,
        "entries": entries,
    }
    if target is not None:
        marker["target"] = target
    write_json(folder / MARKER_FILE, marker)


def record_entries(folder: Path) -> None:
    """Re-records a marked folder's entries after bigmodels added one (evaluation, export)."""
    marker = read_marker(folder)
    if marker is not None:
        write_marker(folder, marker["kind"], target=marker.get("target"))


def check_output_folder(
    out_dir: Path, kind: str, *, overwrite: bool, flag: str = "--out", can_overwrite: bool = True
) -> None:
    """Raises ValueError unless ``out_dir`` may be written: absent, an empty folder, or (with
    ``overwrite``) a folder of this kind that bigmodels wrote and that holds nothing else."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink() and not out_dir.exists():
        raise ValueError(f"{flag} '{out_dir}' is a broken symbolic link; choose another {flag}")
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ValueError(f"{flag} '{out_dir}' is a file, not a folder; choose another {flag}")
    if not any(out_dir.iterdir()):
        return
    if not overwrite:
        remedy = f"choose another {flag} or pass --overwrite" if can_overwrite else f"choose another {flag}"
        raise ValueError(f"output folder '{out_dir}' already exists; {remedy}")
    marker = read_marker(out_dir)
    if marker is None or marker.get("kind") != kind:
        raise ValueError(
            f"'{out_dir}' is not a {kind} folder written by bigmodels (no {MARKER_FILE} marker), so it "
            f"is not replaced even with --overwrite; choose another {flag} or empty that folder yourself"
        )
    foreign = sorted(set(_entries(out_dir)) - set(marker["entries"]))
    if foreign:
        raise ValueError(
            f"'{out_dir}' holds files bigmodels did not write ({', '.join(foreign[:5])}); "
            f"move them out or choose another {flag}"
        )


def check_derived_run_folder(out_dir, source_dir, *, overwrite: bool) -> None:
    """Early check of a run made from another (pruned, distilled): ``out_dir`` may be written
    and is not the source run itself, which the new run reads from until it is done."""
    if os.path.abspath(out_dir) == os.path.abspath(source_dir):
        raise ValueError(f"--out '{out_dir}' is the run being read; choose another --out")
    check_output_folder(Path(out_dir), "run", overwrite=overwrite)


def _entries(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir() if path.name != MARKER_FILE]


def _staging_candidates(out_dir: Path) -> list[Path]:
    """Folders beside ``out_dir`` that may stage it: OUT.partial, then OUT.partial-* (newest first)."""
    unique = sorted(
        out_dir.parent.glob(f"{out_dir.name}.partial-*"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    return [out_dir.with_name(out_dir.name + ".partial"), *unique]


def _is_our_staging(folder: Path, out_dir: Path) -> bool:
    marker = read_marker(folder) if folder.is_dir() and not folder.is_symlink() else None
    return marker is not None and marker["kind"] == STAGING_KIND and marker.get("target") == out_dir.name


def open_staging(out_dir: Path, *, resume: bool) -> Path:
    """The staging folder for ``out_dir``: a killed run's own (when ``resume``), else a fresh one.

    A folder named OUT.partial that bigmodels did not make is left alone; a fresh unique name is
    used instead.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for candidate in _staging_candidates(out_dir):
        if _is_our_staging(candidate, out_dir):
            if resume:
                return candidate
            shutil.rmtree(candidate)  # a killed run's staging: ours, and not wanted
    preferred = out_dir.with_name(out_dir.name + ".partial")
    try:
        preferred.mkdir()
        staging = preferred
    except FileExistsError:
        staging = Path(tempfile.mkdtemp(prefix=f"{out_dir.name}.partial-", dir=out_dir.parent))
    write_marker(staging, STAGING_KIND, target=out_dir.name)
    return staging


def finish_staging(staging: Path, out_dir: Path, kind: str, *, overwrite: bool) -> None:
    """Marks ``staging`` as a finished ``kind`` folder and moves it to ``out_dir``.

    The folder being replaced is checked again (it may have changed while the run trained) and
    renamed aside before the new one takes its name, so a crash between the two renames still
    leaves the previous folder whole (under OUT.replaced-XXXX).
    """
    check_output_folder(out_dir, kind, overwrite=overwrite)
    write_marker(staging, kind)
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    if not any(out_dir.iterdir()):
        out_dir.rmdir()
        staging.rename(out_dir)
        return
    aside = out_dir.with_name(f"{out_dir.name}.replaced-{uuid.uuid4().hex[:8]}")
    out_dir.rename(aside)
    try:
        staging.rename(out_dir)
    except BaseException:
        aside.rename(out_dir)
        raise
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def staged_folder(out_dir, kind: str, *, overwrite: bool, resume: bool = False, keep_on=()):
    """Yields a staging folder; it becomes ``out_dir`` only if the block succeeds.

    Args:
        out_dir: the folder to create or replace.
        kind: "run", "export" or "samples"; only a folder of the same kind is replaced.
        overwrite: whether an existing folder of that kind may be replaced.
        resume: reuse the staging folder a killed run of the same ``out_dir`` left.
        keep_on: exception types after which the staging folder is kept (the caller tidies it).

    Raises:
        ValueError: ``out_dir`` is a file, or a folder bigmodels may not replace.

    Example:
        with staged_folder("runs/digits", "run", overwrite=False) as staging:
            write_json(staging / "config.json", config)
    """
    check_output_folder(Path(out_dir), kind, overwrite=overwrite)  # the path as the user gave it
    out_dir = Path(os.path.abspath(out_dir))  # "--out .." names the parent, not an empty name
    staging = open_staging(out_dir, resume=resume)
    try:
        yield staging
        finish_staging(staging, out_dir, kind, overwrite=overwrite)
    except tuple(keep_on):
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def read_run(run_dir: str | Path) -> tuple[Path, RunConfig]:
    """Checks that ``run_dir`` is a finished run folder and returns (path, config)."""
    run_dir = Path(run_dir)
    advice = "pass the --out folder of apps/train.py"
    if not run_dir.is_dir():
        if run_dir.exists():
            raise ValueError(f"'{run_dir}' is a file, not a run folder; {advice}")
        raise FileNotFoundError(f"run folder '{run_dir}' does not exist; {advice}")
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        raise ValueError(
            f"'{run_dir}' is not a run folder (missing {', '.join(missing)}); "
            "pass the --out folder of a finished apps/train.py run"
        )
    config_path = run_dir / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_path} is not readable JSON ({error}); train the run again") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), str):
        raise ValueError(f"{config_path} names no model; train the run again")
    return run_dir, config


def load_model(path: str | Path):
    """Loads a run's model (a run folder or its model.keras) in Keras safe mode.

    Safe mode means a model file cannot run code: a Lambda layer or a config naming a Python
    function is refused. The package's own layers are registered first, and keras-hub's for a
    text run.

    Example:
        model = bigmodels.load_model("saved_models/digits")
    """
    path = Path(path)
    run_dir = path if path.is_dir() else path.parent
    if path.is_dir():
        path = path / "model.keras"
    if not path.is_file():
        raise FileNotFoundError(f"no model file at '{path}'; pass a run folder or its model.keras")
    return load_run_model(run_dir, path)


def load_run_model(run_dir: Path, path: Path | None = None):
    """Loads RUN_DIR/model.keras (or ``path``) in Keras safe mode (a file cannot run code)."""
    # Lazy: bigmodels.lite writes sample folders through this module and must not load TensorFlow.
    import keras

    import bigmodels.compress.quantized_layers  # noqa: F401  and those of quantization-aware runs
    import bigmodels.models  # noqa: F401  registers the package's own layers for loading

    if (run_dir / "tokenizer.json").is_file() or _has_backbone(run_dir):
        import keras_hub  # noqa: F401  registers TokenAndPositionEmbedding, TransformerEncoder, backbones

    path = path or run_dir / "model.keras"
    try:
        with warnings.catch_warnings():
            # A model saved while part of it was frozen (transfer learning's first phase) kept
            # fewer optimizer variables than the loaded, unfrozen one has; nothing resumes from them.
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            return keras.models.load_model(path, safe_mode=True)
    except ValueError as error:
        if "safe_mode" not in str(error):
            raise ValueError(f"{path} cannot be loaded ({_last_line(error)}); train the run again") from None
        raise ValueError(
            f"{path} holds code (a Lambda layer or a Python function) and is refused: models are loaded "
            "in Keras safe mode so that a file cannot run code; rebuild the model from registered layers"
        ) from None
    except (TypeError, KeyError, AttributeError, zipfile.BadZipFile) as error:
        # Keras reports a config naming an unknown function or class (e.g. os.system) as TypeError.
        raise ValueError(
            f"{path} cannot be loaded: it is damaged or names a function or class that bigmodels "
            f"does not provide ({_last_line(error)[:200]}); train the run again"
        ) from None


def _has_backbone(run_dir: Path) -> bool:
    """Whether the run was trained on a pretrained backbone (a keras-hub one needs keras_hub)."""
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and isinstance(config.get("backbone"), dict)


def _last_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[-1] if lines else type(error).__name__


@contextlib.contextmanager
def staged_run_folder(out_dir: Path, *, overwrite: bool):
    """Yields the staging folder of run ``out_dir``; it becomes ``out_dir`` only if the block succeeds.

    On an exception the staging folder is removed (on divergence only its backup, so the last
    good checkpoint stays); a process killed outright (SIGKILL, power loss) leaves
    OUT_DIR.partial, which the same command resumes from. Only a run folder bigmodels wrote is
    ever replaced (see ``bigmodels.run_folder``).
    """
    from bigmodels.training.callbacks import TrainingDiverged

    keep_on = (TrainingDiverged,)
    with staged_folder(out_dir, "run", overwrite=overwrite, resume=True, keep_on=keep_on) as staging:
        try:
            yield staging
        except TrainingDiverged:
            # Keep the last good checkpoint for the user; drop the backup so the next run (with a
            # lower learning rate) starts clean instead of resuming into the divergence.
            for backup in staging.glob("backup*"):  # backup/, and a later phase's backup_phase2/
                shutil.rmtree(backup, ignore_errors=True)
            raise


TEXT_DATA_OPTIONS = ("text_columns", "label_column", "test_source", "validation_source", "header", "encoding")
# How the splits a source lacks are carved (any kind of data); a run reloads its data with them.
SPLIT_OPTIONS = ("test_fraction", "validation_fraction", "split_seed")


def load_run_dataset(config: RunConfig, source: str | None = None, **options):
    """Loads the run's data (or ``source``) with its recorded batch size and split seed.

    ``options`` are ``load_dataset``'s shape options, which the run's task derives from the
    config (``Task.load_data``): image size and channels, or the text columns.
    """
    # Lazy: bigmodels.lite writes sample folders through this module and must not load TensorFlow.
    from bigmodels.data import load_dataset

    data = config["data"]
    splits = {k: data[k] for k in SPLIT_OPTIONS if data.get(k) is not None}  # the same test split
    return load_dataset(
        source if source is not None else data["source"],
        batch_size=data["batch_size"],
        seed=data["seed"],
        **splits,
        **options,
    )


def text_options(config: RunConfig, source: str | None = None) -> dict:
    """The text-source options recorded in config.json; other data brings its own splits."""
    data = config["data"]
    options = {k: data[k] for k in TEXT_DATA_OPTIONS if data.get(k) is not None}
    if source is not None:
        options.pop("test_source", None)
        options.pop("validation_source", None)
    return options
