"""Writing a generator bundle's images to a folder, without touching anyone else's files."""

from pathlib import Path

import numpy as np
from PIL import Image

from bigmodels.run_folder import check_output_folder, read_marker, record_entries, staged_folder

SAMPLES_KIND = "samples"


def safe_file_part(text: str) -> str:
    """``text`` as part of a file name: a class name such as "a/b" or ".." cannot leave the folder."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:64] or "_"


def _write_png(image: np.ndarray, path: Path) -> None:
    """Writes through a temporary name, so a full disk never leaves half a PNG under ``path``."""
    temporary = path.with_name(f".{path.name}.tmp")
    Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(temporary, format="PNG")
    temporary.replace(path)


def save_samples(images: np.ndarray, folder: str | Path, prefix: str) -> list[Path]:
    """Saves uint8 images as FOLDER/PREFIX_NNN.png and returns their paths.

    A new folder is written whole or not at all. An existing one is added to only when
    bigmodels made it for samples (its marker file), or when it is empty; a folder of the
    user's that holds anything else is refused, so no file of theirs is ever replaced.

    Raises:
        ValueError: ``folder`` is a file, or a non-empty folder bigmodels did not write.
    """
    folder = Path(folder)
    names = [f"{prefix}_{index:03d}.png" for index in range(len(images))]
    marker = read_marker(folder) if folder.is_dir() else None
    if marker is None or marker.get("kind") != SAMPLES_KIND:
        check_output_folder(folder, SAMPLES_KIND, overwrite=False, can_overwrite=False)  # absent or empty
        with staged_folder(folder, SAMPLES_KIND, overwrite=False) as staging:
            for image, name in zip(images, names, strict=True):
                _write_png(image, staging / name)
        return [folder / name for name in names]
    written = []
    try:
        for image, name in zip(images, names, strict=True):
            _write_png(image, folder / name)
            written.append(name)
    finally:
        record_entries(folder)
    return [folder / name for name in written]
