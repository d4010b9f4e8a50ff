"""Predict with a bundle: JSON lines out. Needs only numpy, Pillow and ai-edge-litert (no TensorFlow).

Usage:
    python apps/predict.py --bundle saved_models/demo/export/bundle.zip photo.jpg more_photos/
    python apps/predict.py --bundle reviews/export/bundle.zip reviews.txt     # one text per line
    echo "what a lovely film" | python apps/predict.py --bundle reviews/export/bundle.zip -
    python apps/predict.py --bundle gan/export/bundle.zip --count 16 --seed 0 --out samples/
    python apps/predict.py --bundle gan/export/bundle.zip --count 16 --label 7 --out sevens/   # conditioned
    python apps/predict.py --bundle saved_models/demo/export/bundle.zip --selftest
    python apps/predict.py --bundle digits/export/bundle.zip --runtime tflm photo.png  # TFLite Micro, int8

Image bundles take image files and folders of them (or, with -, paths on stdin); text bundles
take text files (one text per line), -, or the texts themselves. Each input gives one JSON line:
{"input", "label", "score", "scores"} or {"input", "error"}, where "input" is the input cut to
200 characters (then ending in "… (N characters)"). An unreadable input is reported and the
others go on; the exit code is then 1 (2 when the bundle itself cannot be used). ``--runtime tflm``
runs the bundle's int8 model on TensorFlow Lite Micro's interpreter (the tflite-micro package), as a
microcontroller would, with the same inputs and outputs.

--selftest runs the examples stored in the bundle (selftest.json) and prints one JSON line,
{"passed", "total", "failures", "model_file"}; the exit code is 0 only when every example gives
the output the model gave at export (1 when some differ, 2 when the bundle cannot be used).
"""

import json
import sys
from pathlib import Path

from bigmodels.cli import ArgumentParser, run_app

EXIT_SOME_INPUTS_FAILED = 1
EXIT_SELFTEST_FAILED = 1
MAX_ECHO_CHARACTERS = 200  # of each input, in its JSON line: a 20 MB text is not printed back


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="bundle folder or .zip written by apps/export.py")
    parser.add_argument("inputs", nargs="*", help="image files or folders, text files, texts, or - for stdin")
    parser.add_argument("--top-k", dest="top_k", type=int, default=3, help="scores to print per input")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--runtime",
        choices=("litert", "tflm"),
        default="litert",
        help="ai-edge-litert, or TensorFlow Lite Micro (int8 bundles) as a microcontroller runs it",
    )
    parser.add_argument("--count", type=int, default=16, help="images to generate (generator bundles)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent vectors (generator bundles)")
    parser.add_argument("--out", default=None, help="folder for generated PNGs (generator bundles)")
    parser.add_argument(
        "--label", default=None, help="class to generate (generators trained with --code-from-labels)"
    )
    parser.add_argument(
        "--selftest",
        action="store_true",
        help="run the bundle's stored examples against their expected outputs",
    )
    return parser.parse_args(argv)


def is_a(kind: str, argument: str) -> bool:
    """``Path(argument).is_dir()`` / ``.is_file()``; False for a text too long to be a path."""
    try:
        return getattr(Path(argument), f"is_{kind}")()
    except (OSError, ValueError):  # ENAMETOOLONG: a 10,000-character text given as an argument
        return False


def image_inputs(arguments: list[str]) -> list[str]:
    from bigmodels.lite import IMAGE_EXTENSIONS

    paths = []
    for argument in arguments:
        if argument == "-":
            paths += [line.strip() for line in sys.stdin if line.strip()]
        elif is_a("dir", argument):
            paths += sorted(
                str(p)
                for p in Path(argument).rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
        else:
            paths.append(argument)
    return paths


def text_inputs(arguments: list[str]) -> list[str]:
    texts = []
    for argument in arguments:
        if argument == "-":
            lines = sys.stdin.buffer.read().decode("utf-8", errors="replace").splitlines()
        elif is_a("file", argument):
            lines = Path(argument).read_bytes().decode("utf-8", errors="replace").splitlines()
        else:
            lines = [argument]
        texts += [line for line in lines if line.strip()]
    return texts


def echo(item: str) -> str:
    """The input as its JSON line shows it: at most MAX_ECHO_CHARACTERS, and how long it was."""
    text = str(item)
    if len(text) <= MAX_ECHO_CHARACTERS:
        return text
    return f"{text[:MAX_ECHO_CHARACTERS]}… ({len(text):,} characters)"


def emit(record: dict) -> None:
    # json.dumps escapes control characters; a lone surrogate (an undecodable byte of a file
    # name or argument) is written as its \uXXXX JSON escape instead of failing the print.
    line = json.dumps(record, ensure_ascii=False)
    print(line.encode("utf-8", "backslashreplace").decode("utf-8"), flush=True)


def generate(bundle, args) -> int:
    from bigmodels.lite import safe_file_part, save_samples

    if args.out is None:
        raise ValueError("a generator bundle writes images: pass --out FOLDER")
    images = bundle.generate(args.count, seed=args.seed, label=args.label)  # a bad request writes nothing
    label = "" if args.label is None else f"{safe_file_part(args.label)}_"
    prefix = f"sample_{label}{args.seed}"
    for index, path in enumerate(save_samples(images, args.out, prefix)):
        emit({"file": str(path), "seed": args.seed, "index": index, "label": args.label})
    return 0


def selftest(bundle, args) -> int:
    if args.inputs:
        raise ValueError("--selftest runs the bundle's own examples; leave out the inputs")
    result = bundle.selftest()
    emit(result)
    if result["passed"] != result["total"]:
        print(
            f"error: self-test failed: {result['total'] - result['passed']} of {result['total']} example(s) "
            "differ from the outputs the model gave at export; see the JSON line",
            file=sys.stderr,
        )
        return EXIT_SELFTEST_FAILED
    return 0


def main(args) -> int:
    from bigmodels.lite import load_bundle

    bundle = load_bundle(args.bundle, num_threads=args.threads, runtime=args.runtime)
    if args.selftest:
        return selftest(bundle, args)
    if bundle.task == "image_generation":
        return generate(bundle, args)
    if not args.inputs:
        raise ValueError("give inputs to predict on: files, folders, texts, or - for stdin")
    inputs = text_inputs(args.inputs) if bundle.task == "text_classification" else image_inputs(args.inputs)
    if not inputs:
        raise ValueError(f"no inputs found in {', '.join(args.inputs)}")
    failed = 0
    for item in inputs:  # one at a time, so one bad file costs only its own line
        try:
            result = bundle.predict([item], top_k=args.top_k)[0]
        except (ValueError, OSError) as error:  # ImageDecodeError (Pillow's failures) is a ValueError
            result = {"error": str(error)}
        except Exception as error:  # noqa: BLE001  whatever one input raises, the others still run
            result = {"error": f"{type(error).__name__}: {error}"}
        failed += "error" in result
        emit({"input": echo(item), **result})
    if failed:
        print(
            f"error: {failed} of {len(inputs)} input(s) could not be read; see their JSON lines",
            file=sys.stderr,
        )
    return EXIT_SOME_INPUTS_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(run_app(main, parse_args, tensorflow=False))
