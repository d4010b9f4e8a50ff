"""Serve the browser page and a bundle: predict, classify text or generate in a browser, offline.

Usage:
    make web                                                    # once: LiteRT.js beside the page
    python apps/serve.py --bundle saved_models/demo/export/bundle.zip
    python apps/serve.py --bundle saved_models/reviews/export/bundle --port 8080
    python apps/serve.py --bundle saved_models/cgan/export/bundle.zip --host 0.0.0.0   # phones on the network

Then open http://127.0.0.1:8000/ (http://127.0.0.1:8000/?selftest=1 runs the bundle's self-test in
the page and writes {"passed": N, "total": N} into the element with id "selftest"). The bundle is
verified before anything is served; a bad bundle, or LiteRT.js not copied beside the page (run
make web), is one line on stderr and exit code 2. Serves read-only, on 127.0.0.1 unless --host.
"""

import sys

from bigmodels.cli import ArgumentParser, bundle_server, run_app


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="bundle folder or .zip written by apps/export.py")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (0: any free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 for other devices")
    return parser.parse_args(argv)


def main(args) -> int:
    server = bundle_server(args.bundle, host=args.host, port=args.port)
    host, port = server.server_address[:2]
    shown = "127.0.0.1" if host == "0.0.0.0" else host
    url = f"http://{shown}:{port}/"
    print(f"serving {args.bundle} at {url} (self-test: {url}?selftest=1); Ctrl+C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args, tensorflow=False))
