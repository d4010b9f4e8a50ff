"""Helpers of the browser tests: node and Chromium when present, and a node process that runs the
page's tokenizer.

Outside ``make test`` a missing node or Chromium skips these tests with the reason; ``make test``
installs both (``make web``, ``make chromium``) and sets BIGMODELS_REQUIRE_BROWSER=1, so there a
missing tool fails instead of skipping silently.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def missing(message: str):
    """Skips the test with ``message``, or fails it under ``make test`` (which installs everything)."""
    if os.environ.get("BIGMODELS_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


def require(tool: str, why: str):
    """The path of ``tool``, or a skip (a failure under ``make test``) saying what to run."""
    path = shutil.which(tool)
    if path:
        return path
    missing(f"{tool} is not installed ({why}); run make web chromium, or make test, which installs it")


def chromium_path() -> str:
    found = next((shutil.which(name) for name in CHROMIUM_NAMES if shutil.which(name)), None)
    return found or require("chromium", "the browser tests drive it headless")


class NodeTokenizer:
    """The page's tokenizer.js under node, kept running across requests (one JSON line each)."""

    def __init__(self, tables_path: Path):
        node = require("node", "the page's tokenizer is tested under node")
        self.process = subprocess.Popen(
            [node, str(ROOT / "tests" / "web" / "tokenize_lines.mjs"), str(tables_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def _ask(self, request: dict) -> dict:
        # ensure_ascii: a lone surrogate travels as its \\uXXXX escape, which JSON.parse keeps
        self.process.stdin.write(json.dumps(request, ensure_ascii=True) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"node exited with code {self.process.wait()}")
        return json.loads(line)

    def setup(self, vocabulary: list[str], settings: dict) -> dict:
        return self._ask({"vocabulary": vocabulary, "settings": settings})

    def ids(self, texts: list[str]) -> list[list[int]]:
        answer = self._ask({"texts": texts})
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["ids"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)
