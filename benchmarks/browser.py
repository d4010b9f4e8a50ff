"""Benchmark: each family's bundle in the browser page (headless Chromium, LiteRT.js) beside Python.

Usage:
    make web chromium
    python benchmarks/browser.py --image RUN/export/bundle.zip --text RUN/export/bundle.zip \\
        --generator RUN/export/bundle.zip

For each bundle, served by apps/serve.py's server on 127.0.0.1:

- page load: from navigation to the model compiled and ready (the page, LiteRT.js's WebAssembly,
  the bundle's files and their sha256s, the compile), cold (a fresh browser context, nothing
  cached), median of --loads;
- per-example latency in the page: one example (the self-test's first input) through the
  model on LiteRT.js's CPU (WebAssembly) backend, median and p90 over blocks of runs;
- the same bundle's Python figures (apps/benchmark.py, ai-edge-litert, 1 thread);
- the page's self-test, and how many of its outputs were bit-identical to the stored ones
  (ai-edge-litert's at export), with the largest difference.

Merges {"browser": {...}} into benchmarks/results/bundles.json (other keys are kept) and prints a
Markdown table for the README. Figures, not pass/fail: the tests check correctness.
"""

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from bigmodels.cli import bundle_server

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("image", "text", "generator")


def python_figures(bundle: str, repeats: int) -> dict:
    command = [sys.executable, str(ROOT / "apps" / "benchmark.py"), "--bundle", bundle, "--threads", "1"]
    command += ["--repeats", str(repeats)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"error: {bundle}: {result.stderr.strip()}")
    figures = json.loads(result.stdout)
    return {
        "family": figures["family"],
        "quantization": figures["quantization"],
        "load_seconds": figures["load_seconds"],
        **figures["latency_per_example"]["1"],
    }


def load_page(browser, url: str) -> tuple[object, float]:
    context = browser.new_context(service_workers="block")  # cold: nothing kept from a last visit
    page = context.new_page()
    started = time.perf_counter()
    page.goto(url)
    ready = "window.bigmodels && (window.bigmodels.ready || window.bigmodels.error)"
    page.wait_for_function(ready, timeout=120_000)
    seconds = time.perf_counter() - started
    if page.evaluate("window.bigmodels.error"):
        raise SystemExit(f"error: {url}: {page.evaluate('window.bigmodels.error')}")
    return page, seconds


def browser_figures(browser, bundle: str, loads: int, blocks: int) -> dict:
    server = bundle_server(bundle, port=0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/?selftest=1"
    try:
        seconds = []
        for _ in range(loads):
            page, load = load_page(browser, url)
            seconds.append(load)
            page.wait_for_function("window.bigmodels.selftest", timeout=120_000)
            selftest = page.evaluate("window.bigmodels.selftest")
            if len(seconds) < loads:
                page.context.close()
        timings = page.evaluate("([blocks, perBlock]) => bigmodels.latency(blocks, perBlock)", [blocks, 20])
        page.context.close()
    finally:
        server.shutdown()
        server.server_close()
    return {
        "page_load_seconds": round(statistics.median(seconds), 3),
        "page_load_seconds_each": [round(value, 3) for value in seconds],
        "p50_ms": round(statistics.median(timings), 4),
        "p90_ms": round(statistics.quantiles(timings, n=10)[-1], 4),
        "selftest": {key: selftest[key] for key in ("passed", "total", "identical", "max_difference")},
    }


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for family in FAMILIES:
        parser.add_argument(f"--{family}", required=True, help=f"{family} bundle (folder or .zip)")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--loads", type=int, default=3, help="cold page loads per bundle")
    parser.add_argument("--blocks", type=int, default=25, help="latency blocks of 20 runs each")
    parser.add_argument("--repeats", type=int, default=500, help="Python latency repeats")
    parser.add_argument("--out", default="benchmarks/results/bundles.json")
    parser.add_argument("--note", default="", help="what the bundles are, recorded with the figures")
    args = parser.parse_args()
    rows = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium)
        version = browser.version
        for family in FAMILIES:
            bundle = getattr(args, family)
            rows[family] = {
                "bundle": bundle,
                "browser": browser_figures(browser, bundle, args.loads, args.blocks),
                "python": python_figures(bundle, args.repeats),
            }
        browser.close()
    print("| family | page load (cold) | browser p50 / p90 | Python p50 / p90 | self-test | identical |")
    print("|---|---:|---:|---:|---|---|")
    for family, row in rows.items():
        page, python, test = row["browser"], row["python"], row["browser"]["selftest"]
        print(
            f"| {family} | {page['page_load_seconds']:.2f} s | "
            f"{page['p50_ms']:.3f} / {page['p90_ms']:.3f} ms | "
            f"{python['p50_ms']:.3f} / {python['p90_ms']:.3f} ms | {test['passed']}/{test['total']} | "
            f"{test['identical']}/{test['total']} |"
        )
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    results["browser"] = {
        "chromium": version,
        "runtime": "LiteRT.js (@litertjs/core 2.5.3), WebAssembly CPU backend (XNNPACK)",
        "python_runtime": "ai-edge-litert, 1 thread (apps/benchmark.py)",
        "note": args.note,
        "bundles": rows,
    }
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written: {out}")


if __name__ == "__main__":
    main()
