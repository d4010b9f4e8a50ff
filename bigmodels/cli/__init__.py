"""What every app shares: quiet TensorFlow logs, one-line errors with exit code 2, the training
and export flags, and the export tables.

Importing this package loads no TensorFlow (apps/predict.py runs on devices without it): the
functions that need it import it when called.
"""

import argparse
import contextlib
import csv
import errno
import os
import sys

from bigmodels.cli.data_flags import add_text_column_flags, text_column_options
from bigmodels.cli.export import (
    EXIT_PARITY_FAILED,
    add_export_flags,
    check_export_flags,
    export_and_report,
    export_from_args,
    print_export_table,
    print_stage_table,
)
from bigmodels.cli.serve import bundle_server
from bigmodels.cli.training import add_training_flags, parse_model_arguments, train_from_args

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_PARITY_FAILED",
    "ArgumentParser",
    "add_export_flags",
    "add_text_column_flags",
    "add_training_flags",
    "bundle_server",
    "check_export_flags",
    "describe_failure",
    "export_and_report",
    "export_from_args",
    "import_tensorflow_quietly",
    "parse_model_arguments",
    "print_export_table",
    "print_stage_table",
    "run_app",
    "text_column_options",
    "train_from_args",
]

EXIT_BAD_INPUT = 2


# TensorFlow's C++ start-up chatter (CPU features, missing CUDA) would bury the one line a
# user needs; real failures still surface as Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a single-line error (no usage dump) and exit code 2."""

    def error(self, message: str):
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with file descriptor 2 muted for the duration.

    TensorFlow's C++ start-up lines (oneDNN, missing CUDA) reach stderr before its logging is
    configured, so no environment variable silences them, and they would bury the one line a
    user needs. An import error still raises (and is shown) as usual.
    """
    from bigmodels.lite.runtime import quiet_stderr

    with quiet_stderr():
        import tensorflow  # noqa: F401


def run_app(main, parse_args, argv=None, *, tensorflow: bool = True) -> int:
    """Runs ``main(parse_args(argv))``; bad input becomes one stderr line and exit code 2.

    Every expected failure is bad input or a full or read-only disk: a bad value, path, file,
    image, table, bundle or model file, and the OSErrors (no space left, permission denied, not
    a folder). The writers stage their output, so nothing half-written is left behind.
    ``tensorflow=False`` is for the device apps (predict, benchmark), which must run where only
    numpy, Pillow and ai-edge-litert are installed.
    """
    args = parse_args(argv)
    if tensorflow:
        import_tensorflow_quietly()
    try:
        with quiet_cleanup_errors():
            return int(main(args) or 0)
    except Exception as error:  # noqa: BLE001  classified below; anything else is re-raised
        message = describe_failure(error)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            # h5py's handles left mid-write are freed later, some at interpreter exit, where each
            # prints a traceback and the shutdown can crash (SIGSEGV seen): an app run as a script
            # ends here, its one line printed and nothing half-written kept (writers stage).
            sys.excepthook = sys.unraisablehook = lambda *arguments: None
            if main.__module__ == "__main__":
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(EXIT_BAD_INPUT)
        return EXIT_BAD_INPUT


@contextlib.contextmanager
def quiet_cleanup_errors():
    """Silences errors raised while objects are freed, for the duration.

    After a full disk, h5py's half-written file handles raise as they are freed; Cython prints
    those through ``sys.excepthook`` and ``sys.unraisablehook`` ("Exception ignored in ..."),
    pages of tracebacks for a failure that gets its own one line. An exception that leaves the
    block is not affected: the hooks are restored before it reaches the interpreter.
    """
    saved = sys.excepthook, sys.unraisablehook
    sys.excepthook = sys.unraisablehook = lambda *arguments: None
    try:
        yield
    finally:
        sys.excepthook, sys.unraisablehook = saved


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


# What a user can act on, by errno: the one line names the file and the remedy.
OS_ERROR_ADVICE = {
    errno.ENOSPC: "no space left on the device; free some space and run again",
    errno.EDQUOT: "disk quota exceeded; free some space and run again",
    errno.EACCES: "permission denied; choose a folder you may write to",
    errno.EPERM: "operation not permitted; choose a folder you may write to",
    errno.EROFS: "read-only file system; choose a folder on a writable disk",
    errno.ENOTDIR: "a part of this path is a file, not a folder; check the path",
    errno.EISDIR: "this is a folder, not a file; check the path",
    errno.ENAMETOOLONG: "the file name is too long; choose a shorter path",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) and run again",
}


def describe_failure(error: BaseException) -> str | None:
    """The one line for an expected failure, or None for a bug (which keeps its traceback)."""
    if isinstance(error, (ValueError, FileNotFoundError)):
        return str(error).splitlines()[0] if str(error) else type(error).__name__
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        advice = OS_ERROR_ADVICE.get(error.errno, error.strerror or str(error))
        return f"{where}{advice}"
    if isinstance(error, csv.Error):
        return f"unreadable table ({error}); check the file's quoting and delimiter"
    if type(error).__name__ == "DecompressionBombError":  # Pillow's, without importing Pillow here
        return f"image refused as a decompression bomb ({error})"
    return None
