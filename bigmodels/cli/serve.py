"""The browser page's server for ``apps/serve.py`` and ``benchmarks/browser.py``."""

from pathlib import Path


def bundle_server(bundle: str | Path, *, host: str = "127.0.0.1", port: int = 8000, quiet: bool = False):
    """An HTTP server (not yet serving: call ``serve_forever``) for the page and a verified bundle.

    The bundle is loaded with the Python runtime first (``bigmodels.lite.load_bundle``: schema,
    sizes, sha256s, the model loads), so the server refuses whatever the Python side refuses.

    Raises:
        FileNotFoundError: the bundle does not exist.
        ValueError: a bad bundle, LiteRT.js not copied beside the page (run make web), or a
            host/port that cannot be opened.

    Example:
        server = bundle_server("saved_models/demo/export/bundle.zip", port=0)
        print(server.server_address)  # ('127.0.0.1', 45123)
    """
    from bigmodels.lite import load_bundle
    from bigmodels.web.server import check_runtime, make_server

    check_runtime()
    load_bundle(bundle)
    return make_server(Path(bundle), host, port, quiet=quiet)
