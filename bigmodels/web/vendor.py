"""``make web``: copies LiteRT.js (installed by npm from package-lock.json) beside the page, and
writes the tokenizer's Unicode tables from this Python's unicodedata.

    python -m bigmodels.web.vendor      # after: npm ci --prefix bigmodels/web

The copy is bigmodels/web/runtime/ (git-ignored): litert/core/index.js, litert/wasm-utils/index.js,
litert/wasm/*.{js,wasm} and unicode_tables.js. One change is made to LiteRT.js 2.5's core: its
table of tensor types lacks int8 (it lists float32, int32 and uint8 only), so a full-integer model
(int8 input or output, what export chooses when it is the smallest file within the gate) could
not even be compiled; the copy adds int8 as Int8Array, the type the WebAssembly runtime already
runs. The patch is checked: a LiteRT.js whose source no longer has that table fails here.
"""

import shutil
import sys
from pathlib import Path

from bigmodels.web.unicode_tables import unicode_tables_js

WEB = Path(__file__).resolve().parent
RUNTIME = WEB / "runtime"
PACKAGES = WEB / "node_modules" / "@litertjs"
UINT8_ENTRY = """  {
    dtype: "uint8",
    typedArrayConstructor: Uint8Array,
    elementType: ElementType.UINT8
  }
]);"""
INT8_ENTRY = (
    UINT8_ENTRY.removesuffix("\n]);")
    + """,
  {
    dtype: "int8",
    typedArrayConstructor: Int8Array,
    elementType: ElementType.INT8
  }
]);"""
)


def patched_core(source: str) -> str:
    if source.count(UINT8_ENTRY) != 1:
        raise SystemExit(
            "error: @litertjs/core's DATATYPES table is not where vendor.py expects it; "
            "check the int8 patch against this LiteRT.js version"
        )
    return source.replace(UINT8_ENTRY, INT8_ENTRY)


def main() -> int:
    if not (PACKAGES / "core" / "dist" / "index.js").is_file():
        print(f"error: {PACKAGES} is missing; run npm ci --prefix {WEB} (make web does)", file=sys.stderr)
        return 2
    staging = RUNTIME.with_name("runtime.partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "litert" / "core").mkdir(parents=True)
    (staging / "litert" / "wasm-utils").mkdir(parents=True)
    core = (PACKAGES / "core" / "dist" / "index.js").read_text(encoding="utf-8")
    (staging / "litert" / "core" / "index.js").write_text(patched_core(core), encoding="utf-8")
    shutil.copy(PACKAGES / "wasm-utils" / "dist" / "index.js", staging / "litert" / "wasm-utils" / "index.js")
    shutil.copytree(PACKAGES / "core" / "wasm", staging / "litert" / "wasm")
    for name in ("LICENSE", "package.json"):
        if (PACKAGES / "core" / name).is_file():
            shutil.copy(PACKAGES / "core" / name, staging / "litert" / name)
    (staging / "unicode_tables.js").write_text(unicode_tables_js(), encoding="utf-8")
    shutil.rmtree(RUNTIME, ignore_errors=True)
    staging.rename(RUNTIME)
    print(f"LiteRT.js and the Unicode tables are in {RUNTIME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
