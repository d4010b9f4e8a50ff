"""The reference bundles shipped with the package (``saved_models/<name>/bundle`` in a source
checkout; ``bigmodels/reference/<name>/bundle`` inside an installed wheel)."""

from pathlib import Path

# bigmodels/reference is a link to ../saved_models in the source tree; the wheel holds copies.
REFERENCE_ROOT = Path(__file__).resolve().parents[1] / "reference"
REFERENCE_NAMES = ("cifar10_tiny", "mnist_cnn", "mnist_cgan", "sst2_text")


def reference_bundles() -> dict[str, Path]:
    """The shipped reference bundles, by name: {"cifar10_tiny": Path(".../bundle"), ...}.

    Each is a bundle folder for ``load_bundle``; its ``bundle.zip`` and ``README.md`` (figures
    and the command that made it) sit beside it.
    """
    root = REFERENCE_ROOT.resolve()
    return {
        name: root / name / "bundle"
        for name in REFERENCE_NAMES
        if (root / name / "bundle" / "metadata.json").is_file()
    }


def resolve_bundle_path(path: Path) -> Path:
    """A bundle's own folder or .zip for what a user may pass: the bundle itself, a folder that
    holds ``bundle/`` (a reference folder, a run's export/), a run folder (``export/bundle``),
    or a reference bundle's name ("cifar10_tiny") when no such path exists."""
    if not path.exists():
        shipped = reference_bundles()
        return shipped.get(str(path), path)
    if path.is_dir() and not (path / "metadata.json").exists():
        for inner in (path / "bundle", path / "export" / "bundle"):
            if (inner / "metadata.json").is_file():
                return inner
    return path
