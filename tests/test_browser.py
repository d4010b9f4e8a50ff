"""The browser page in headless Chromium (Debian's chromium, driven by Playwright): for each family
the page's self-test passes and its outputs on the same inputs equal the Python runtime's; a
tampered bundle is refused with a visible message, served or picked as a .zip, and never run; the
page works offline after its first load; apps/serve.py refuses what the Python runtime refuses."""

import json
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_bundle import exported_copy
from test_selftest import gan_bundle, text_bundle  # noqa: F401  (fixtures: the same bundles)
from web_helpers import ROOT, chromium_path, missing

from bigmodels.lite import latents_for_class, load_bundle
from bigmodels.lite.selftest import decode_array
from bigmodels.web.server import check_runtime, make_server

TEXTS = [
    "what a lovely film",
    "Ìlera ní Yorùbá pè ní oògùn",
    "这部电影非常精彩",
    "STRASSE ﬁnance 😀 !!",
    "",
    "x" * 300,
]
PAGE_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    try:
        check_runtime()
        from playwright.sync_api import sync_playwright
    except (ValueError, ImportError) as error:
        missing(f"{error} (the browser tests need make web and the dev extra's playwright)")
    executable = chromium_path()
    with sync_playwright() as playwright:
        # Chromium's fake camera (a test pattern) stands in for a phone's
        fake_camera = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
        chromium = playwright.chromium.launch(executable_path=executable, args=fake_camera)
        yield chromium
        chromium.close()


class Served:
    """The page and a bundle on a free port of 127.0.0.1, served from a thread."""

    def __init__(self, bundle: Path | None):
        self.server = make_server(bundle, port=0, quiet=True)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def open_page(browser, url: str, *, context=None):
    """A new page at ``url`` once it is ready or has shown an error; the wasm requests it made."""
    page = (context or browser.new_context()).new_page()
    requests = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(url)
    page.wait_for_function(
        "window.bigmodels && (window.bigmodels.ready || window.bigmodels.error || window.bigmodels.waiting)",
        timeout=PAGE_TIMEOUT_MS,
    )
    return page, requests


@pytest.fixture(scope="module")
def digits_bundle(digits_run, tmp_path_factory):
    """A full-integer (int8 in, int8 out) image bundle: the page quantizes pixels itself."""
    run_dir, _ = exported_copy(digits_run, tmp_path_factory.mktemp("web_digits"), quantization=["int8"])
    return run_dir / "export" / "bundle"


def selftest_document(bundle: Path) -> dict:
    return json.loads((bundle / "selftest.json").read_text(encoding="utf-8"))


def compare_classifier(page, bundle: Path) -> dict:
    python = load_bundle(bundle)
    document = selftest_document(bundle)
    tolerance = document["tolerance"]["score"] * (1 + 1e-5)
    if python.tokenizer is None:
        shape = [document["examples"], *python.metadata["input"]["shape"][1:]]
        pixels = decode_array(document["inputs"]["pixels"], "", "inputs.pixels", "uint8", shape)
        browser_scores = np.asarray(
            page.evaluate("rows => bigmodels.classify(rows)", pixels.reshape(len(pixels), -1).tolist())
        )
        expected = python.model.predict(python.prepare(pixels))
    else:
        texts = document["inputs"]["texts"] + TEXTS
        answer = page.evaluate("texts => bigmodels.classifyTexts(texts)", texts)
        assert answer["ids"] == python.prepare(texts).tolist()  # the JavaScript tokenizer's ids
        browser_scores, expected = np.asarray(answer["scores"]), python.model.predict(python.prepare(texts))
    assert browser_scores.shape == expected.shape
    assert np.abs(browser_scores - expected).max() <= tolerance
    assert (browser_scores.argmax(axis=1) == expected.argmax(axis=1)).all()
    return {"examples": len(expected), "identical": int((browser_scores == expected).all(axis=1).sum())}


def compare_generator(page, bundle: Path) -> dict:
    python = load_bundle(bundle)
    document = selftest_document(bundle)
    latents = decode_array(
        document["inputs"]["latents"],
        "",
        "inputs.latents",
        "float32",
        [document["examples"], python.metadata["latent_size"]],
    )
    entries = python.metadata["class_code"]["latent_entries"]
    latents = np.concatenate([latents, latents_for_class(latents[:4], entries - 1, entries)])
    images = np.asarray(page.evaluate("rows => bigmodels.generate(rows)", latents.tolist()))
    expected = python.images_from_latents(latents).reshape(len(latents), -1)
    differences = np.abs(images - expected.astype(np.int64)).mean(axis=1)
    assert (differences <= document["tolerance"]["mean_abs_pixel_difference"]).all()
    return {"examples": len(latents), "identical": int((images == expected).all(axis=1).sum())}


@pytest.fixture(params=["digits_bundle", "text_bundle", "gan_bundle"])
def family(request):
    """(fixture name, bundle folder) of each family; the bundle is made during set-up."""
    return request.param, request.getfixturevalue(request.param)


def test_the_page_passes_the_selftest_and_equals_python(browser, family):
    family, bundle = family
    with Served(bundle) as served:
        page, _ = open_page(browser, served.url + "?selftest=1")
        page.wait_for_function("window.bigmodels.selftest || window.bigmodels.error", timeout=PAGE_TIMEOUT_MS)
        assert page.evaluate("window.bigmodels.error") is None
        result = json.loads(page.text_content("#selftest"))
        assert result == {"passed": result["total"], "total": selftest_document(bundle)["examples"]}
        compare = compare_generator if family == "gan_bundle" else compare_classifier
        print(family, compare(page, bundle))  # how many outputs were bit-identical to Python's
        use_the_controls(page, bundle, family)
        page.context.close()


def use_the_controls(page, bundle: Path, family: str) -> None:
    """The text box's labels are Python's; a conditioned generator's class picker lists its
    classes and draws a new grid."""
    python = load_bundle(bundle)
    if family == "text_bundle":
        page.fill("#text", "\n".join(TEXTS[:3]))
        page.click("#classify")
        page.wait_for_function("window.bigmodels.results && window.bigmodels.results.length === 3")
        labels = [result["label"] for result in page.evaluate("window.bigmodels.results")]
        assert labels == [result["label"] for result in python.predict(TEXTS[:3])]
        assert page.locator("#results li").count() == 3
    elif family == "gan_bundle":
        options = page.eval_on_selector_all("#class-picker option", "all => all.map(o => o.textContent)")
        assert options[1:] == python.class_names
        before = page.evaluate("document.getElementById('grid').toDataURL()")
        page.select_option("#class-picker", label=python.class_names[-1])
        page.click("#generate")
        page.wait_for_function(f"document.getElementById('grid').toDataURL() !== {json.dumps(before)}")


def test_photos_picked_in_the_page_give_pythons_labels_and_scores(browser, digits_bundle, tmp_path):
    """Photos of other sizes and modes than the model's are decoded, cropped and resized by the
    page (resize.js: Pillow's arithmetic) and give the scores Python gives for the same files."""
    generator = np.random.default_rng(3)
    photos = []
    kinds = [((8, 8), "L"), ((13, 20), "RGB"), ((40, 31), "RGBA"), ((64, 48), "L")]
    for index, (size, mode) in enumerate(kinds):
        pixels = generator.integers(0, 256, size=(*size, len(mode)), dtype=np.uint8)
        if mode == "RGBA":
            pixels[..., 3] = 255  # opaque: a semi-transparent pixel is composited by the canvas
        photos.append(tmp_path / f"photo_{index}.png")
        Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels, mode).save(photos[-1])
    with Served(digits_bundle) as served:
        page, _ = open_page(browser, served.url)
        page.set_input_files("#photo", [str(path) for path in photos])
        page.wait_for_function("window.bigmodels.results && window.bigmodels.results.length === 4")
        results = page.evaluate("window.bigmodels.results")
        assert page.locator("#results li").count() == len(photos)
        page.context.close()
    python = load_bundle(digits_bundle)
    expected = python.model.predict(python.prepare([str(path) for path in photos]))
    names = python.class_names
    for result, scores in zip(results, expected, strict=True):
        assert result["label"] == names[int(np.argmax(scores))]
        assert [result["scores"][name] for name in names] == pytest.approx(scores.tolist(), abs=1e-6)


def test_a_camera_frame_is_classified(browser, digits_bundle):
    context = browser.new_context(permissions=["camera"])
    with Served(digits_bundle) as served:
        page, _ = open_page(browser, served.url, context=context)
        page.click("#camera")
        page.wait_for_function("document.getElementById('video').readyState >= 2", timeout=PAGE_TIMEOUT_MS)
        page.click("#snap")
        page.wait_for_function("window.bigmodels.results && window.bigmodels.results.length === 1")
        result = page.evaluate("window.bigmodels.results[0]")
        assert result["label"] in load_bundle(digits_bundle).class_names
        assert sum(result["scores"].values()) == pytest.approx(1.0, abs=0.05)
        assert not page.is_visible("#error")
    context.close()


def tampered_copy(bundle: Path, folder: Path) -> Path:
    copy = shutil.copytree(bundle, folder / "bundle")
    model = copy / json.loads((copy / "metadata.json").read_text())["model_file"]
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    return copy


def assert_refused(page, requests: list[str]) -> None:
    assert page.is_visible("#error")
    assert "does not match its sha256" in page.text_content("#error")
    assert page.evaluate("window.bigmodels.ready") is False
    assert not [url for url in requests if url.endswith(".wasm")]  # LiteRT.js never even loaded


def test_a_tampered_bundle_is_refused_with_a_visible_message(browser, digits_bundle, tmp_path):
    tampered = tampered_copy(digits_bundle, tmp_path)
    with Served(tampered) as served:  # the test's own server: apps/serve.py would refuse it first
        page, requests = open_page(browser, served.url + "?selftest=1")
        assert_refused(page, requests)
        assert "not run" in page.text_content("#selftest")
        page.context.close()
    archive = tmp_path / "tampered.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for path in sorted(tampered.iterdir()):
            handle.write(path, f"bundle/{path.name}")
    with Served(None) as served:  # no bundle served: pick one from disk
        page, requests = open_page(browser, served.url)
        assert "pick a bundle" in page.text_content("#status")
        page.set_input_files("#bundle-file", str(archive))
        page.wait_for_function("window.bigmodels.error", timeout=PAGE_TIMEOUT_MS)
        assert_refused(page, requests)
        page.context.close()


def test_a_zip_picked_from_disk_runs_and_the_page_works_offline(browser, text_bundle):  # noqa: F811
    context = browser.new_context()
    with Served(None) as served:
        page, _ = open_page(browser, served.url + "?selftest=1", context=context)
        page.set_input_files("#bundle-file", str(text_bundle.with_name("bundle.zip")))
        page.wait_for_function("window.bigmodels.selftest || window.bigmodels.error", timeout=PAGE_TIMEOUT_MS)
        assert (
            json.loads(page.text_content("#selftest"))["passed"] == selftest_document(text_bundle)["examples"]
        )
    with Served(text_bundle) as served:
        page, _ = open_page(browser, served.url + "?selftest=1", context=context)
        page.wait_for_function("window.bigmodels.offline", timeout=PAGE_TIMEOUT_MS)
        assert page.evaluate("window.bigmodels.offline.kept") > 10
        context.set_offline(True)
        page.reload()
        page.wait_for_function("window.bigmodels.selftest || window.bigmodels.error", timeout=PAGE_TIMEOUT_MS)
        result = json.loads(page.text_content("#selftest"))
        assert result["passed"] == result["total"]
    context.close()


def test_serve_app_refuses_a_tampered_bundle_in_one_line(digits_bundle, tmp_path):
    tampered = tampered_copy(digits_bundle, tmp_path)
    result = subprocess.run(
        [sys.executable, str(ROOT / "apps" / "serve.py"), "--bundle", str(tampered), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not match its sha256" in lines[0], result.stderr


def test_serving_without_litert_or_on_a_busy_port_is_one_clear_error(digits_bundle, tmp_path, monkeypatch):
    from bigmodels.cli import bundle_server
    from bigmodels.web import server

    with Served(digits_bundle) as served:
        busy = int(served.url.rsplit(":", 1)[1].rstrip("/"))
        with pytest.raises(ValueError, match="pick another --port"):
            bundle_server(digits_bundle, port=busy)
    monkeypatch.setattr(server, "RUNTIME", tmp_path / "runtime")
    with pytest.raises(ValueError, match="run make web"):
        bundle_server(digits_bundle, port=0)


def test_without_webcrypto_the_page_still_checks_every_sha256(browser, digits_bundle, tmp_path):
    """A phone opening http://192.168.x.y:8000 has no WebCrypto (not a secure context): the page's
    own SHA-256 takes over, and still accepts the bundle and refuses a tampered copy."""
    for bundle, refused in ((digits_bundle, False), (tampered_copy(digits_bundle, tmp_path), True)):
        context = browser.new_context()
        context.add_init_script("Object.defineProperty(globalThis.crypto, 'subtle', {value: undefined})")
        with Served(bundle) as served:
            page, requests = open_page(browser, served.url, context=context)
            assert page.evaluate("globalThis.crypto.subtle") is None
            if refused:
                assert_refused(page, requests)
            else:
                assert page.evaluate("window.bigmodels.ready") is True
        context.close()
