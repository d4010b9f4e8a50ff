"""A bundle is verified before any byte reaches the interpreter or the tokenizer (issue 13).

Every case tampers with a copy of a real exported bundle: files named outside the bundle or
missing from the sha256 table, devices and links, zip bombs and lying zip headers, metadata of
the wrong shape. Each is refused by ``load_bundle`` with one ValueError, and by
``apps/predict.py`` with exit code 2 and one ``error:`` line. Also: the TF-free tokenizer stops
at the sequence length, and predict's echo of an input is bounded and cannot fail to print.
"""

import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from helpers import run_app_in_process

from bigmodels.lite.bundle import MAX_MEMBERS, MAX_METADATA_BYTES, load_bundle
from bigmodels.lite.tokenizer import WordPieceTokenizer

ROOT = Path(__file__).resolve().parents[1]
MODEL = "model_float32.tflite"


@pytest.fixture(scope="module")
def image_bundle(digits_run, tmp_path_factory):
    """An image bundle of its own (a copy of the shared run, exported float32 only)."""
    from bigmodels.workflows.export import export_run

    run_dir = shutil.copytree(digits_run, tmp_path_factory.mktemp("safety") / "digits")
    shutil.rmtree(run_dir / "export", ignore_errors=True)
    export_run(run_dir, quantization=["float32"], latency_repeats=5)
    return run_dir / "export" / "bundle"


@pytest.fixture(scope="module")
def text_bundle(text_export, text_run, tmp_path_factory):
    """A snapshot of the shared text run's bundle (other tests may export that run again)."""
    return shutil.copytree(text_run / "export" / "bundle", tmp_path_factory.mktemp("safety_text") / "bundle")


def read_metadata(folder: Path) -> dict:
    return json.loads((folder / "metadata.json").read_text(encoding="utf-8"))


def write_metadata(folder: Path, metadata) -> None:
    (folder / "metadata.json").write_text(json.dumps(metadata), encoding="utf-8")


def tampered(bundle: Path, tmp_path: Path, change) -> Path:
    """A copy of ``bundle`` in tmp_path/bundle after ``change(metadata, folder)``, which edits
    the metadata in place (or returns a list to be written instead)."""
    folder = shutil.copytree(bundle, tmp_path / "bundle")
    metadata = read_metadata(folder)
    replacement = change(metadata, folder)
    write_metadata(folder, replacement if isinstance(replacement, list) else metadata)
    return folder


def outside_copy(folder: Path, name: str) -> Path:
    """A copy of one of the bundle's files next to the bundle (outside it), same bytes."""
    return Path(shutil.copy(folder / name, folder.parent / name))


def listed(metadata: dict, folder: Path, name: str) -> None:
    """Records ``name``'s real size and sha256 in the table, as a careless tamperer would."""
    import hashlib

    data = (folder / name).read_bytes()
    metadata["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data)}


def link_to(path: Path, target: Path) -> None:
    path.unlink()
    path.symlink_to(target)


def set_key(key, value):
    def change(metadata, folder):
        metadata[key] = value

    return change


# (case, change, part of the message). Each one loaded before this issue, or failed with a
# traceback or a message that named neither the key nor the remedy.
IMAGE_CASES = {
    "model_file_in_parent_folder": (
        lambda m, f: (outside_copy(f, MODEL), m.update(model_file=f"../{MODEL}")),
        "key 'model_file' must be a bare file name",
    ),
    "model_file_absolute": (
        lambda m, f: m.update(model_file=str(outside_copy(f, MODEL))),
        "key 'model_file' must be a bare file name",
    ),
    "model_file_not_in_the_table": (
        lambda m, f: (shutil.copy(f / MODEL, f / "other.tflite"), m.update(model_file="other.tflite")),
        "names other.tflite, which the sha256 table 'files' does not list",
    ),
    "swapped_model_dropped_from_the_table": (
        lambda m, f: ((f / MODEL).write_bytes((f / MODEL).read_bytes()), m["files"].pop(MODEL)),
        f"names {MODEL}, which the sha256 table 'files' does not list",
    ),
    "files_as_a_string": (set_key("files", MODEL), "key 'files' must be an object"),
    "files_entry_as_a_string": (
        lambda m, f: m["files"].update({MODEL: "0" * 64}),
        f"key 'files.{MODEL}' must be",
    ),
    "size_bytes_as_a_string": (
        lambda m, f: m["files"][MODEL].update(size_bytes="1000"),
        f"key 'files.{MODEL}.size_bytes' must be a whole number",
    ),
    "size_bytes_wrong": (
        lambda m, f: m["files"][MODEL].update(size_bytes=m["files"][MODEL]["size_bytes"] - 1),
        "(a truncated or changed copy)",
    ),
    "sha256_not_hex": (
        lambda m, f: m["files"][MODEL].update(sha256="abc"),
        f"key 'files.{MODEL}.sha256' must be 64 lowercase hexadecimal digits",
    ),
    "model_file_missing": (lambda m, f: m.pop("model_file"), "key 'model_file' is missing"),
    "fewer_class_names_than_outputs": (
        lambda m, f: m.update(class_names=m["class_names"][:9]),
        "key 'class_names' has 9 names but the model gives 10 scores",
    ),
    "class_names_as_a_string": (set_key("class_names", "0123456789"), "key 'class_names' must be a list"),
    "format_version_as_a_string": (set_key("format_version", "1"), "version '1' is not supported"),
    "input_shape_not_the_model_one": (
        lambda m, f: m["input"].update(shape=[None, 9, 9, 1]),
        "key 'input.shape' says [None, 9, 9, 1] but the model takes [null, 8, 8, 1]",
    ),
    "metrics_missing": (lambda m, f: m.pop("metrics"), "key 'metrics' is missing"),
    "metadata_not_an_object": (lambda m, f: [m], "metadata.json is not a JSON object"),
    "metadata_over_its_cap": (
        lambda m, f: m.update(notes="x" * MAX_METADATA_BYTES),
        f"bytes, more than the {MAX_METADATA_BYTES:,} a bundle file may have",
    ),
    "link_leaving_the_bundle": (
        lambda m, f: link_to(f / MODEL, outside_copy(f, MODEL)),
        f"{MODEL} is not a plain file (a link, folder or device)",
    ),
}
TEXT_CASES = {
    "vocabulary_in_parent_folder": (
        lambda m, f: (
            outside_copy(f, "vocabulary.txt"),
            m["tokenizer"].update(vocabulary_file="../vocabulary.txt"),
        ),
        "key 'tokenizer.vocabulary_file' must be a bare file name",
    ),
    "vocabulary_absolute": (
        lambda m, f: m["tokenizer"].update(vocabulary_file=str(outside_copy(f, "vocabulary.txt"))),
        "key 'tokenizer.vocabulary_file' must be a bare file name",
    ),
    "settings_absolute": (
        lambda m, f: m["tokenizer"].update(settings_file=str(outside_copy(f, "tokenizer.json"))),
        "key 'tokenizer.settings_file' must be a bare file name",
    ),
    "vocabulary_not_in_the_table": (
        lambda m, f: (
            shutil.copy(f / "vocabulary.txt", f / "words.txt"),
            m["tokenizer"].update(vocabulary_file="words.txt"),
        ),
        "names words.txt, which the sha256 table 'files' does not list",
    ),
    "tokenizer_missing": (lambda m, f: m.pop("tokenizer"), "key 'tokenizer' is missing"),
    "settings_of_the_wrong_type": (
        lambda m, f: (
            (f / "tokenizer.json").write_text('{"lowercase": "yes", "sequence_length": 8}'),
            listed(m, f, "tokenizer.json"),
        ),
        "tokenizer.json: tokenizer setting 'lowercase' must be true or false",
    ),
}


def run_predict(*argv) -> tuple[int, list[str], list[str]]:
    """apps/predict.py in this process: (exit code, stdout lines, stderr lines)."""
    result = run_app_in_process("predict", *argv, tensorflow=False)
    return result.returncode, result.stdout.splitlines(), result.stderr.splitlines()


def assert_one_error_line(code: int, errors: list[str], fragment: str) -> None:
    assert code == 2, errors
    assert len(errors) == 1 and errors[0].startswith("error: "), errors
    assert fragment in errors[0] and "Traceback" not in errors[0]


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_a_tampered_image_bundle_is_refused_in_one_line(image_bundle, tmp_path, case):
    change, fragment = IMAGE_CASES[case]
    folder = tampered(image_bundle, tmp_path, change)
    with pytest.raises(ValueError) as refused:
        load_bundle(folder)
    assert fragment in str(refused.value) and str(folder) in str(refused.value)
    assert "\n" not in str(refused.value)
    (tmp_path / "gray.png").write_bytes(gray_png())
    assert_one_error_line(*run_predict("--bundle", folder, tmp_path / "gray.png")[::2], fragment)


@pytest.mark.parametrize("case", list(TEXT_CASES))
def test_a_tampered_text_bundle_is_refused_in_one_line(text_bundle, tmp_path, case):
    change, fragment = TEXT_CASES[case]
    folder = tampered(text_bundle, tmp_path, change)
    with pytest.raises(ValueError) as refused:
        load_bundle(folder)
    assert fragment in str(refused.value)
    assert_one_error_line(*run_predict("--bundle", folder, "a fine film")[::2], fragment)


def test_schema_errors_name_the_key_and_the_remedy(image_bundle, tmp_path):
    folder = tampered(image_bundle, tmp_path, set_key("class_names", "0123456789"))
    with pytest.raises(
        ValueError, match=r"key 'class_names' must be a list of strings, got str .*; export the bundle again"
    ):
        load_bundle(folder)


def test_a_refused_bundle_through_the_app_process_prints_no_traceback(image_bundle, tmp_path):
    """The same as above in a real process: before, a string in the sha256 table was a TypeError."""
    folder = tampered(image_bundle, tmp_path, IMAGE_CASES["files_entry_as_a_string"][0])
    result = subprocess.run(
        [sys.executable, str(ROOT / "apps" / "predict.py"), "--bundle", str(folder), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")


# ---------------------------------------------------------------- devices, links: never read


@contextmanager
def refusing_to_open(*paths):
    """Fails the test at once if anything opens one of ``paths`` (through any link): /dev/zero
    would otherwise be read until memory runs out."""
    targets = {os.path.realpath(path) for path in paths}
    originals = {"os": os.open, "io": io.open}

    def guard(path):
        if isinstance(path, str | bytes | os.PathLike) and os.path.realpath(path) in targets:
            raise AssertionError(f"{path} was opened")

    def guarded_os_open(path, *args, **kwargs):
        guard(path)
        return originals["os"](path, *args, **kwargs)

    def guarded_io_open(file, *args, **kwargs):
        guard(file)
        return originals["io"](file, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "open", guarded_os_open)
        patch.setattr(io, "open", guarded_io_open)
        patch.setattr("builtins.open", guarded_io_open)
        yield


def link_to_dev_zero(metadata, folder):
    link_to(folder / MODEL, Path("/dev/zero"))


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
@pytest.mark.parametrize(
    "change",
    [
        set_key("model_file", "/dev/zero"),
        link_to_dev_zero,
        lambda m, f: m["files"].update({"/dev/zero": m["files"][MODEL]}),
    ],
    ids=["model_file", "link", "table_entry"],
)
def test_dev_zero_is_refused_without_reading_it(image_bundle, tmp_path, change):
    folder = tampered(image_bundle, tmp_path, change)
    (tmp_path / "gray.png").write_bytes(gray_png())
    started = time.perf_counter()
    with refusing_to_open("/dev/zero"):
        with pytest.raises(ValueError, match="bare file name|not a plain file"):
            load_bundle(folder)
        code, _, errors = run_predict("--bundle", folder, tmp_path / "gray.png")
    assert time.perf_counter() - started < 5
    assert code == 2 and len(errors) == 1 and errors[0].startswith("error: "), errors
    assert "bare file name" in errors[0] or "not a plain file" in errors[0]


# ---------------------------------------------------------------- archives


def zip_bundle(folder: Path, archive: Path, extra=(), *, compresslevel=None) -> Path:
    """bundle.zip as the exporter writes it (bundle/<file>), plus ``extra`` (name, bytes or
    an iterable of byte blocks, streamed)."""
    with zipfile.ZipFile(
        archive, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=compresslevel
    ) as bundle_zip:
        for path in sorted(folder.iterdir()):
            bundle_zip.write(path, f"bundle/{path.name}")
        for name, content in extra:
            with bundle_zip.open(name, "w") as member:
                for block in [content] if isinstance(content, bytes) else content:
                    member.write(block)
    return archive


@contextmanager
def nothing_extracted(monkeypatch):
    """Fails if a temporary folder is made (where the old loader extracted archives) or a
    member other than metadata.json is decompressed."""
    decompressed = []
    real_open = zipfile.ZipFile.open

    def no_folder(*args, **kwargs):
        raise AssertionError("a folder was created for the archive")

    def recording_open(self, name, mode="r", *args, **kwargs):
        member = name.filename if isinstance(name, zipfile.ZipInfo) else name
        if mode == "r" and not member.endswith("metadata.json"):
            decompressed.append(member)
        return real_open(self, name, mode, *args, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", no_folder)
    monkeypatch.setattr(zipfile.ZipFile, "open", recording_open)
    yield decompressed


@pytest.fixture(scope="module")
def zip_bomb(image_bundle, tmp_path_factory):
    """A real bundle.zip plus one member of 1 GiB of zeros: a few MB on disk."""
    zeros = bytes(1 << 20)
    archive = tmp_path_factory.mktemp("bomb") / "bundle.zip"
    return zip_bundle(
        image_bundle, archive, [("bundle/padding.bin", (zeros for _ in range(1024)))], compresslevel=1
    )


def test_a_zip_bomb_is_refused_before_anything_is_extracted(zip_bomb, monkeypatch):
    assert zip_bomb.stat().st_size < 8 << 20
    refusal = r"expands to 1,07\d,\d{3},\d{3} bytes, more than the 536,870,912"
    with nothing_extracted(monkeypatch) as decompressed, pytest.raises(ValueError, match=refusal):
        load_bundle(zip_bomb)
    assert decompressed == []


def test_a_zip_with_too_many_members_is_refused(image_bundle, tmp_path, monkeypatch):
    extra = [(f"bundle/note_{index}.txt", b"hello") for index in range(MAX_MEMBERS)]
    archive = zip_bundle(image_bundle, tmp_path / "bundle.zip", extra)
    refusal = f"more than {MAX_MEMBERS}"
    with nothing_extracted(monkeypatch) as decompressed, pytest.raises(ValueError, match=refusal):
        load_bundle(archive)
    assert decompressed == []


def declare_size(archive: Path, member: str, size: int) -> None:
    """Rewrites the size a zip member's headers (local and central) declare, as a forger would."""
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as bundle_zip:
        local = bundle_zip.getinfo(member).header_offset
    struct.pack_into("<I", data, local + 22, size)
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        name_length = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46 : central + 46 + name_length] == member.encode():
            struct.pack_into("<I", data, central + 24, size)
        central = data.find(b"PK\x01\x02", central + 4)
    archive.write_bytes(bytes(data))


def test_a_zip_member_that_expands_past_its_declared_size_is_refused(image_bundle, tmp_path, monkeypatch):
    """The card's headers say 1,000 bytes (as does the table); it expands to 8 MiB."""
    folder = shutil.copytree(image_bundle, tmp_path / "bundle")
    (folder / "MODEL_CARD.md").write_bytes(bytes(8 << 20))
    metadata = read_metadata(folder)
    metadata["files"]["MODEL_CARD.md"]["size_bytes"] = 1000
    write_metadata(folder, metadata)
    archive = zip_bundle(folder, tmp_path / "bundle.zip")
    declare_size(archive, "bundle/MODEL_CARD.md", 1000)
    with zipfile.ZipFile(archive) as bundle_zip:
        assert bundle_zip.getinfo("bundle/MODEL_CARD.md").file_size == 1000  # the lie is in place
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: pytest.fail("a folder was created"))
    with pytest.raises(ValueError, match="MODEL_CARD.md cannot be decompressed|expands to a size other"):
        load_bundle(archive)


@pytest.mark.parametrize(
    "member",
    ["../evil.txt", "/tmp/evil.txt", "bundle/../../evil.txt", "bundle/deeper/evil.txt", "bundle\\evil.txt"],
)
def test_a_zip_member_path_leaving_the_bundle_is_refused(image_bundle, tmp_path, monkeypatch, member):
    archive = zip_bundle(image_bundle, tmp_path / "bundle.zip", [(member, b"x")])
    with nothing_extracted(monkeypatch), pytest.raises(ValueError, match="the archive holds"):
        load_bundle(archive)


def test_a_zip_member_that_is_a_link_is_refused(image_bundle, tmp_path, monkeypatch):
    archive = zip_bundle(image_bundle, tmp_path / "bundle.zip")
    with zipfile.ZipFile(archive, "a") as bundle_zip:
        link = zipfile.ZipInfo("bundle/outside")
        link.external_attr = 0o120777 << 16  # a symbolic link, as Info-ZIP stores one
        bundle_zip.writestr(link, "/etc/passwd")
    with nothing_extracted(monkeypatch), pytest.raises(ValueError, match="a symbolic link"):
        load_bundle(archive)


def test_a_verified_zip_still_loads_and_its_folder_holds_the_checked_bytes(image_bundle, tmp_path):
    archive = zip_bundle(image_bundle, tmp_path / "bundle.zip")
    bundle = load_bundle(archive)
    assert (bundle.folder / MODEL).read_bytes() == (image_bundle / MODEL).read_bytes()
    assert bundle.predict(np.zeros((1, 8, 8, 1), np.uint8))[0]["label"] in bundle.class_names


# ---------------------------------------------------------------- the tokenizer and predict's echo


@contextmanager
def time_limit(seconds: int):
    """Fails a test that runs past ``seconds`` instead of waiting (the old tokenizer took minutes)."""

    def expired(signum, frame):
        raise AssertionError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


VOCABULARY = ["[PAD]", "[UNK]", "the", "film", "was", "good", "!", "##s", "très", "今", "天"]


@pytest.mark.parametrize("strip_accents", [False, True])
def test_tokenizer_stops_at_the_sequence_length_on_a_20_mb_line(strip_accents):
    tokenizer = WordPieceTokenizer(
        VOCABULARY, lowercase=True, strip_accents=strip_accents, sequence_length=32
    )
    sentence = "The films was good, très good! 今天 Ìlera ní Yorùbá "
    line = (sentence * (20_000_000 // len(sentence) + 1))[:20_000_000]
    with time_limit(20):
        started = time.perf_counter()
        ids = tokenizer([line])
        elapsed = time.perf_counter() - started
    assert elapsed < 2.0, elapsed
    np.testing.assert_array_equal(ids, tokenizer([line[:2000]]))
    assert (ids != 0).all() and ids.shape == (1, 32)


def test_tokenizer_bounds_the_work_on_one_huge_word():
    """keras-hub (FastWordpiece) makes a word of over 100 UTF-8 bytes one unknown token."""
    tokenizer = WordPieceTokenizer(VOCABULARY, lowercase=True, sequence_length=4)
    with time_limit(20):
        started = time.perf_counter()
        ids = tokenizer(["x" * 20_000_000 + " film"])
        assert time.perf_counter() - started < 3.0
    assert ids.tolist() == [[1, 3, 0, 0]]
    # 100 bytes are cut into pieces; 101 bytes are one unknown token.
    assert tokenizer(["film" + "s" * 96, "film" + "s" * 97]).tolist() == [[3, 7, 7, 7], [1, 0, 0, 0]]


def gray_png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("source", ["argument", "stdin"])
def test_predict_echoes_a_long_input_bounded(text_bundle, monkeypatch, source):
    text = "a fine film " * 834  # 10,008 characters
    if source == "stdin":
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode() + b"\n")))
    code, lines, errors = run_predict("--bundle", text_bundle, text if source == "argument" else "-")
    assert code == 0, errors
    echoed = json.loads(lines[0])["input"]
    assert len(echoed) < 250 and echoed.startswith(text[:200]) and echoed.endswith("… (10,008 characters)")


def test_predict_prints_an_undecodable_argument_as_a_json_escape(text_bundle):
    """A byte that is not UTF-8 reaches Python as a lone surrogate, which print cannot encode."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "apps" / "predict.py"), "--bundle", str(text_bundle), b"caf\xe9 film"],
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    line = result.stdout.decode("utf-8").splitlines()[0]
    assert '"input": "caf\\udce9 film"' in line and json.loads(line)["input"] == "caf\udce9 film"


def bomb_png(width: int, height: int) -> bytes:
    """A PNG header claiming width x height pixels, with almost no pixel data."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00"))
        + chunk(b"IEND", b"")
    )


def test_predict_goes_on_after_a_decompression_bomb(image_bundle, tmp_path):
    (tmp_path / "a_bomb.png").write_bytes(bomb_png(20000, 12000))  # 240 megapixels
    (tmp_path / "b_good.png").write_bytes(gray_png())
    code, lines, errors = run_predict("--bundle", image_bundle, tmp_path)
    records = [json.loads(line) for line in lines]
    assert code == 1 and [Path(r["input"]).name for r in records] == ["a_bomb.png", "b_good.png"]
    assert "error" in records[0] and records[1]["label"] in [str(d) for d in range(10)]
    assert errors == ["error: 1 of 2 input(s) could not be read; see their JSON lines"]
