"""Serving the page, LiteRT.js and one verified bundle over HTTP (``apps/serve.py``).

Read-only: GET and HEAD of a fixed set of files, nothing else. The page is served at ``/``, its
modules beside it, LiteRT.js under ``/runtime/`` (copied there by ``make web``), the Unicode tables
the page's tokenizer needs from this Python's unicodedata at ``/runtime/unicode_tables.js``, and
the bundle as ``/bundle/NAME`` (a folder: metadata.json and the files of its sha256 table) or
``/bundle.zip``. The bundle is verified with the Python runtime before the server starts; the page
verifies every file again itself, since it can also load a .zip picked from disk.
"""

import contextlib
import json
import mimetypes
import socket
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bigmodels.web.unicode_tables import unicode_tables_js

WEB = Path(__file__).resolve().parent
RUNTIME = WEB / "runtime"
PAGE_SUFFIXES = (".html", ".js", ".webmanifest", ".svg")
TYPES = {".js": "text/javascript", ".wasm": "application/wasm", ".webmanifest": "application/manifest+json"}
MISSING_RUNTIME = (
    "LiteRT.js is not beside the page ({runtime} is missing); run make web (npm ci, then "
    "python -m bigmodels.web.vendor) first"
)


def check_runtime() -> None:
    """Raises ValueError when ``make web`` has not copied LiteRT.js beside the page."""
    if not (RUNTIME / "litert" / "core" / "index.js").is_file() or not (RUNTIME / "litert" / "wasm").is_dir():
        raise ValueError(MISSING_RUNTIME.format(runtime=RUNTIME / "litert"))


def routes(bundle: Path | None) -> dict[str, Path | bytes]:
    """URL path -> the file (or the bytes) served there; anything else is a 404. Without a
    bundle, the page alone (it then asks for a .zip from disk)."""
    table: dict[str, Path | bytes] = {"/": WEB / "index.html"}
    table.update({f"/{path.name}": path for path in WEB.iterdir() if path.suffix in PAGE_SUFFIXES})
    for path in (RUNTIME / "litert").rglob("*"):
        if path.is_file():
            table["/" + path.relative_to(WEB).as_posix()] = path
    table["/runtime/unicode_tables.js"] = unicode_tables_js().encode("utf-8")
    if bundle is None:
        return table
    if bundle.is_dir():
        metadata = json.loads((bundle / "metadata.json").read_bytes())
        for name in ["metadata.json", *metadata["files"]]:
            table[f"/bundle/{name}"] = bundle / name
    else:
        table["/bundle.zip"] = bundle
    return table


class Handler(BaseHTTPRequestHandler):
    server_version = "bigmodels"

    def __init__(self, *args, table: dict, quiet: bool, **kwargs):
        self.table, self.quiet = table, quiet
        super().__init__(*args, **kwargs)

    def _send(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        target = self.table.get(path)
        if target is None:
            self.send_error(HTTPStatus.NOT_FOUND, "not part of the page or the bundle")
            return
        data = target if isinstance(target, bytes) else target.read_bytes()
        suffix = Path(path).suffix if path != "/" else ".html"
        self.send_response(HTTPStatus.OK)
        self.send_header(
            "Content-Type",
            TYPES.get(suffix) or mimetypes.guess_type(f"x{suffix}")[0] or "application/octet-stream",
        )
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")  # the service worker keeps the offline copy
        self.end_headers()
        if body:
            # the browser may go away mid-file (a closed tab): nothing to answer then
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._send(body=True)

    def do_HEAD(self):  # noqa: N802
        self._send(body=False)

    def log_message(self, format, *args):  # noqa: A002
        if not self.quiet:
            super().log_message(format, *args)


def make_server(bundle: Path | None, host: str = "127.0.0.1", port: int = 8000, *, quiet: bool = False):
    """A ThreadingHTTPServer for the page and ``bundle`` (call ``serve_forever``); port 0 picks a free one.

    Raises:
        ValueError: LiteRT.js is not beside the page (run make web), or the port cannot be opened.
    """
    check_runtime()
    handler = partial(Handler, table=routes(None if bundle is None else Path(bundle)), quiet=quiet)
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except (OSError, socket.gaierror) as error:
        raise ValueError(
            f"cannot serve on {host}:{port} ({error.strerror or error}); pick another --port or --host"
        ) from error
    server.daemon_threads = True
    return server
