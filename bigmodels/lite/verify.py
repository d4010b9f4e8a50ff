"""Reading a bundle's files once, within caps, and checking each against its sha256.

Nothing reaches the interpreter or the tokenizer before it is verified (``load_bundle`` reads
through ``FolderFiles`` or ``ArchiveFiles``, then ``read_metadata`` and ``read_listed_files``):

- ``metadata.json`` (at most ``MAX_METADATA_BYTES``) must match the schema that
  ``validate_metadata`` checks: types, required keys, every file the runtime opens (model,
  vocabulary, tokenizer settings, self-test) listed in the sha256 table ``files`` under a bare file name
  (no folder, ``..`` or absolute path). Each problem is one ``ValueError`` naming the bundle and
  the key.
- Each listed file must be a regular file (not a link, folder or device) whose size, taken from
  its directory entry before a byte is read, equals its recorded ``size_bytes`` and is at most
  ``MAX_MEMBER_BYTES``; all of them together at most ``MAX_BUNDLE_BYTES``. It is read once, and
  the bytes that were hashed are the bytes the interpreter and the tokenizer get.
- A .zip is checked from its directory before anything is decompressed: at most
  ``MAX_MEMBERS`` members, a declared expanded size of at most ``MAX_BUNDLE_BYTES`` (each
  member at most ``MAX_MEMBER_BYTES``), no links, absolute paths, ``..`` or folders below the one
  bundle folder. Members are read into memory (never extracted), a read stops one byte past the
  declared size, and only a verified bundle is copied to a temporary folder (``Bundle.folder``).

The sha256s catch corruption, truncated copies and files mixed up between bundles. They do not
stop someone who can rewrite ``metadata.json`` as well: compare the bundle's own sha256 (e.g.
``sha256sum bundle.zip``) with one published somewhere else for that.
"""

import hashlib
import json
import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path

from bigmodels.lite.bundle_format import (
    AGAIN,
    MAX_BUNDLE_BYTES,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    MAX_METADATA_BYTES,
    MAX_ZIP_DIRECTORY_BYTES,
    METADATA_FILE,
)
from bigmodels.lite.metadata import validate_metadata

_END_OF_ZIP_DIRECTORY = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _size_check(label: str, name: str, size: int, expected: int | None, limit: int) -> None:
    """Refuses a file from its recorded or declared size, before a byte of it is read."""
    if size > limit:
        raise ValueError(
            f"{label}: {name} is {size:,} bytes, more than the {limit:,} a bundle file may have; refused"
        )
    if expected is not None and size != expected:
        raise ValueError(
            f"{label}: {name} does not match its entry in {METADATA_FILE}'s sha256 table: it is "
            f"{size:,} bytes, the table records {expected:,} (a truncated or changed copy); "
            "copy the bundle again"
        )


class FolderFiles:
    """A bundle folder's files: plain files only, sized by their directory entry before reading."""

    _FLAGS = (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)  # a link swapped in after lstat is not followed
        | getattr(os, "O_NONBLOCK", 0)  # nor does a FIFO swapped in block the open
        | getattr(os, "O_BINARY", 0)
    )

    def __init__(self, folder: Path, label: str):
        self.folder, self.label = folder, label

    def read(self, name: str, expected: int | None, limit: int, *, missing: str) -> bytes:
        path = self.folder / name
        try:
            entry = os.lstat(path)
            self._check(name, entry, expected, limit)
            descriptor = os.open(path, self._FLAGS)
        except FileNotFoundError:
            raise ValueError(f"{self.label}: {name} {missing}") from None
        except OSError as error:
            raise ValueError(
                f"{self.label}: {name} cannot be read ({error.strerror}); check its permissions"
            ) from error
        with os.fdopen(descriptor, "rb") as handle:
            self._check(name, os.fstat(handle.fileno()), expected, limit)  # the file opened
            data = handle.read(entry.st_size + 1)
        if len(data) != entry.st_size:
            raise ValueError(f"{self.label}: {name} changed while it was read; load the bundle again")
        return data

    def _check(self, name: str, entry: os.stat_result, expected: int | None, limit: int) -> None:
        if not stat.S_ISREG(entry.st_mode):
            raise ValueError(
                f"{self.label}: {name} is not a plain file (a link, folder or device); a bundle holds "
                "plain files only; copy the bundle again"
            )
        _size_check(self.label, name, entry.st_size, expected, limit)

    def close(self) -> None:
        pass


def _check_zip_directory(archive: Path, label: str) -> None:
    """Refuses, from the end record alone, a .zip with too many members or a huge directory,
    before ``zipfile`` parses the directory (it would build one object per entry first)."""
    with open(archive, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        tail_length = min(size, 22 + 0xFFFF)  # the end record, then a comment of up to 64 KiB
        handle.seek(size - tail_length)
        tail = handle.read(tail_length)
    at = tail.rfind(_END_OF_ZIP_DIRECTORY)
    if at < 0 or at + 22 > len(tail):
        return  # not a zip at all: zipfile says so below
    entries, directory_bytes = struct.unpack("<HI", tail[at + 10 : at + 16])
    zip64 = at >= 20 and tail[at - 20 : at - 16] == _ZIP64_LOCATOR  # a count too large for 16 bits
    if zip64 or entries > MAX_MEMBERS:
        raise ValueError(f"{label}: the archive holds more than {MAX_MEMBERS} members; not a bundle; refused")
    if directory_bytes > MAX_ZIP_DIRECTORY_BYTES:
        raise ValueError(
            f"{label}: the archive's directory is {directory_bytes:,} bytes, more than the "
            f"{MAX_ZIP_DIRECTORY_BYTES:,} a bundle's may have; refused"
        )


def _unsafe_member(name: str, is_folder: bool) -> str | None:
    """Why a .zip member name is refused, or None."""
    parts = name.rstrip("/").split("/") if is_folder else name.split("/")
    if name.startswith("/") or "\\" in name or ":" in name or any(ord(c) < 32 for c in name):
        return "an absolute or unusual path"
    if any(part in ("", ".", "..") for part in parts):
        return "a path with '..' or an empty or '.' part"
    if len(parts) > 2 or (is_folder and len(parts) > 1):
        return "a folder below the bundle folder"
    return None


class ArchiveFiles:
    """A bundle .zip's members, read into memory after the archive's directory passed every cap;
    nothing is extracted."""

    def __init__(self, archive: Path, label: str):
        self.label = label
        try:
            _check_zip_directory(archive, label)
            self.zip = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as error:
            raise ValueError(
                f"{archive}: not a bundle archive ({error}); pass the .zip or the bundle folder"
            ) from error
        try:
            self.members = self._check_directory(self.zip.infolist())
        except ValueError:
            self.zip.close()
            raise

    def _check_directory(self, members: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
        """Every cap and path rule, from the directory alone; returns the bundle folder's files."""
        if len(members) > MAX_MEMBERS:
            raise ValueError(
                f"{self.label}: the archive holds {len(members)} members, more than {MAX_MEMBERS}; refused"
            )
        declared = sum(member.file_size for member in members)
        if declared > MAX_BUNDLE_BYTES:
            raise ValueError(
                f"{self.label}: the archive expands to {declared:,} bytes, more than the "
                f"{MAX_BUNDLE_BYTES:,} a bundle may have; refused before extracting anything"
            )
        names = set()
        for member in members:
            problem = _unsafe_member(member.filename, member.is_dir())
            if stat.S_ISLNK(member.external_attr >> 16):
                problem = "a symbolic link"
            elif member.filename in names:
                problem = "a second member of the same name"
            elif member.flag_bits & 0x1:
                problem = "an encrypted member"
            if problem:
                raise ValueError(f"{self.label}: the archive holds {problem} ({member.filename!r}); refused")
            _size_check(self.label, member.filename, member.file_size, None, MAX_MEMBER_BYTES)
            names.add(member.filename)
        files = [member for member in members if not member.is_dir()]
        folders = {member.filename.split("/")[0] for member in files if "/" in member.filename}
        prefix = "" if METADATA_FILE in names else (f"{folders.pop()}/" if len(folders) == 1 else None)
        if prefix is None or f"{prefix}{METADATA_FILE}" not in names:
            raise ValueError(f"{self.label}: no {METADATA_FILE}; this is not a bigmodels bundle")
        return {
            member.filename[len(prefix) :]: member
            for member in files
            if member.filename.startswith(prefix) and "/" not in member.filename[len(prefix) :]
        }

    def read(self, name: str, expected: int | None, limit: int, *, missing: str) -> bytes:
        member = self.members.get(name)
        if member is None:
            raise ValueError(f"{self.label}: {name} {missing}")
        _size_check(self.label, name, member.file_size, expected, limit)
        try:
            with self.zip.open(member) as handle:
                data = handle.read(member.file_size + 1)  # stops past the declared size
        except (
            zipfile.BadZipFile,
            zlib.error,
            EOFError,
            OSError,
            NotImplementedError,
            RuntimeError,
        ) as error:
            raise ValueError(
                f"{self.label}: {name} cannot be decompressed ({error}); copy the bundle again"
            ) from error
        if len(data) != member.file_size:
            raise ValueError(
                f"{self.label}: {name} expands to a size other than the {member.file_size:,} bytes its "
                "header declares; refused"
            )
        return data

    def close(self) -> None:
        self.zip.close()


def read_metadata(files: FolderFiles | ArchiveFiles, label: str) -> tuple[dict, bytes]:
    """metadata.json, parsed and checked against the schema, and the bytes it was parsed from."""
    raw = files.read(
        METADATA_FILE, None, MAX_METADATA_BYTES, missing="is missing; this is not a bigmodels bundle"
    )
    try:
        metadata = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"{label}: {METADATA_FILE} is unreadable ({error}); {AGAIN}") from error
    return validate_metadata(metadata, label), raw


def read_listed_files(files: FolderFiles | ArchiveFiles, metadata: dict, label: str) -> dict[str, bytes]:
    """Each file of the sha256 table, read once and hashed; the bytes returned are those hashed."""
    contents = {}
    for name, entry in metadata["files"].items():
        data = files.read(
            name,
            entry["size_bytes"],
            MAX_MEMBER_BYTES,
            missing="is missing from the bundle; copy the whole bundle",
        )
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise ValueError(
                f"{label}: {name} does not match its sha256 in {METADATA_FILE} (changed or corrupted); "
                "refusing to load it; copy the bundle again"
            )
        contents[name] = data
    return contents


def read_verified_metadata(folder: Path) -> dict:
    """metadata.json of a bundle folder, after checking its schema and every file's size and sha256."""
    files = FolderFiles(Path(folder), str(folder))
    metadata, _ = read_metadata(files, str(folder))
    read_listed_files(files, metadata, str(folder))
    return metadata
