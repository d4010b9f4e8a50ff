"""TensorFlow Lite Micro files for an export's int8 model: EXPORT/micro/ with the model as a C array,
a ready op resolver, and micro.json with the flash and the tensor arena it needs.

The arena is measured, not estimated: ``bigmodels.lite.micro`` tries arena sizes on tflite-micro's
interpreter in a process of its own (a too small arena can crash TFLM, and this process has
TensorFlow's threads, which forking would copy). The same process runs every example the export
checks, and its outputs are compared with ai-edge-litert's on the same file.
"""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bigmodels.lite.micro import ARENA_METHOD
from bigmodels.lite.runtime import TFLiteModel
from bigmodels.run_folder import write_json

MICRO_FOLDER = "micro"
MODEL_ARRAY = "g_model_data"
# MicroMutableOpResolver's Add* methods are the op's name in CamelCase, except these.
RESOLVER_METHODS = {
    "BATCH_MATMUL": "AddBatchMatMul",
    "CUMSUM": "AddCumSum",
    "PADV2": "AddPadV2",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
}
ARENA_NOTE = (
    "measured on the host with TFLM's reference kernels; a 32-bit build needs the same or a little "
    "less (smaller pointers), optimized kernels (CMSIS-NN) may ask for scratch buffers on top"
)
CHECK_TIMEOUT_SECONDS = 3600
NEEDS_INT8 = "export with --quantization int8"


def model_ops(content: bytes) -> list[str]:
    """The builtin ops a TFLite flatbuffer uses, by name (from its operator codes); custom ops as
    ``CUSTOM:name``."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.python.schema_util import get_builtin_code_from_operator_code

    model = schema.Model.GetRootAs(content, 0)
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    used = set()
    for subgraph_index in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(subgraph_index)
        for operator_index in range(subgraph.OperatorsLength()):
            code = model.OperatorCodes(subgraph.Operators(operator_index).OpcodeIndex())
            builtin = get_builtin_code_from_operator_code(code)
            custom = builtin == schema.BuiltinOperator.CUSTOM
            used.add(f"CUSTOM:{code.CustomCode().decode()}" if custom else names[builtin])
    return sorted(used)


def resolver_method(op: str) -> str:
    """``MAX_POOL_2D`` -> ``AddMaxPool2D``: the MicroMutableOpResolver method that registers it."""
    parts = (part if part[0].isdigit() else part.capitalize() for part in op.split("_"))
    return RESOLVER_METHODS.get(op, "Add" + "".join(parts))


def c_array_source(content: bytes, header: str, source_name: str) -> str:
    rows = [", ".join(f"0x{byte:02x}" for byte in content[i : i + 12]) for i in range(0, len(content), 12)]
    body = ",\n    ".join(rows)
    return (
        f"// {source_name} as a C array, written by bigmodels: regenerate it, do not edit it.\n"
        f'#include "{header}"\n\n'
        "// 16-byte aligned: TFLite Micro reads the flatbuffer in place, from flash.\n"
        f"alignas(16) const unsigned char {MODEL_ARRAY}[] = {{\n    {body}\n}};\n"
        f"const unsigned int {MODEL_ARRAY}_len = {len(content)};\n"
    )


def c_header(content: bytes, source_name: str, sha256: str, arena_bytes: int) -> str:
    return (
        f"// {source_name} (sha256 {sha256}), written by bigmodels.\n"
        "#ifndef BIGMODELS_MODEL_DATA_H_\n#define BIGMODELS_MODEL_DATA_H_\n\n"
        f"// The int8 model: {len(content)} bytes of flash.\n"
        f"extern const unsigned char {MODEL_ARRAY}[];\n"
        f"extern const unsigned int {MODEL_ARRAY}_len;\n\n"
        "// The smallest tensor arena it runs in, measured with tflite-micro's interpreter\n"
        "// (see micro.json); declare it as: alignas(16) static uint8_t arena[kTensorArenaBytes];\n"
        f"constexpr unsigned int kTensorArenaBytes = {arena_bytes};\n\n"
        "#endif  // BIGMODELS_MODEL_DATA_H_\n"
    )


def op_resolver_header(ops: list[str], source_name: str) -> str:
    builtin = [op for op in ops if not op.startswith("CUSTOM:")]
    lines = [f"  if (resolver.{resolver_method(op)}() != kTfLiteOk) return kTfLiteError;" for op in builtin]
    custom = [op for op in ops if op not in builtin]
    lines += [f"  // {op}: register your kernel with resolver.AddCustom(...)" for op in custom]
    return (
        f"// The {len(ops)} op(s) {source_name} uses, written by bigmodels.\n"
        "#ifndef BIGMODELS_OP_RESOLVER_H_\n#define BIGMODELS_OP_RESOLVER_H_\n\n"
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n\n'
        f"using ModelOpResolver = tflite::MicroMutableOpResolver<{len(ops)}>;\n\n"
        "// ModelOpResolver resolver; RegisterModelOps(resolver);\n"
        "// tflite::MicroInterpreter interpreter(tflite::GetModel(g_model_data), resolver, arena,\n"
        "//                                      kTensorArenaBytes);\n"
        "inline TfLiteStatus RegisterModelOps(ModelOpResolver& resolver) {\n"
        + "\n".join(lines)
        + "\n  return kTfLiteOk;\n}\n\n#endif  // BIGMODELS_OP_RESOLVER_H_\n"
    )


def run_on_micro(path: Path, examples: np.ndarray) -> tuple[dict, np.ndarray | None]:
    """``bigmodels.lite.micro``'s measurement of ``path`` in a process of its own, and its outputs
    on ``examples`` (None when TFLM cannot run the file)."""
    package_root = str(Path(__file__).resolve().parents[2])  # the folder that holds bigmodels/
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])),
        # one thread: the measurement forks a child per arena size
        **{name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }
    with tempfile.TemporaryDirectory(prefix="bigmodels-micro-") as folder:
        inputs, outputs = Path(folder) / "inputs.npy", Path(folder) / "outputs.npy"
        np.save(inputs, np.asarray(examples), allow_pickle=False)
        command = "import sys; from bigmodels.lite.micro import main; sys.exit(main())"
        arguments = ["measure", str(path), "--inputs", str(inputs), "--outputs", str(outputs)]
        result = subprocess.run(
            [sys.executable, "-c", command, *arguments],
            capture_output=True,
            text=True,
            env=environment,
            timeout=CHECK_TIMEOUT_SECONDS,
        )
        lines = result.stdout.strip().splitlines()
        if result.returncode != 0 or not lines:
            detail = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[-1]
            return {"error": f"the TFLite Micro check failed: {detail}"}, None
        measured = json.loads(lines[-1])
        return measured, (np.load(outputs, allow_pickle=False) if outputs.is_file() else None)


def compare_with_litert(content: bytes, examples: np.ndarray, micro_outputs: np.ndarray) -> dict:
    """TFLM's outputs against ai-edge-litert's builtin kernels (the same integer arithmetic) and
    against its default XNNPACK kernels (which round int8 differently)."""
    builtin = TFLiteModel(content, xnnpack=False)
    scale = builtin.output_detail["quantization"][0] or 1.0
    fields = {"compared": int(len(examples))}
    for key, runner in (("litert", builtin), ("litert_xnnpack", TFLiteModel(content))):
        difference = np.abs(runner.predict(examples).astype(np.float64) - micro_outputs)
        differing = difference.reshape(len(difference), -1).max(axis=1) > 0
        fields[f"equal_to_{key}"] = not differing.any()
        if differing.any():
            fields[f"{key}_difference"] = {
                "examples": int(differing.sum()),
                "max": float(difference.max()),
                "max_steps": int(round(difference.max() / scale)),
            }
    fields["litert_kernels"] = "builtin, XNNPACK off (TFLiteModel(path, xnnpack=False))"
    return fields


def write_micro_folder(folder: Path, name: str, content: bytes, ops: list[str], run: dict, fields: dict):
    """Writes model_data.cc, model_data.h, op_resolver.h and micro.json into ``folder``."""
    folder.mkdir()
    sha256 = hashlib.sha256(content).hexdigest()
    (folder / "model_data.cc").write_text(c_array_source(content, "model_data.h", name), encoding="utf-8")
    header = c_header(content, name, sha256, run["arena_bytes"])
    (folder / "model_data.h").write_text(header, encoding="utf-8")
    (folder / "op_resolver.h").write_text(op_resolver_header(ops, name), encoding="utf-8")
    description = {
        "model_file": name,
        "sha256": sha256,
        "flash_bytes": len(content),
        "arena_bytes": run["arena_bytes"],
        "arena_measurement": {
            "method": ARENA_METHOD,
            "probes": run["probes"],
            "smaller_arena_fails": run["smaller_arena_fails"],
            "note": ARENA_NOTE,
            "tflite_micro_version": run["tflite_micro_version"],
        },
        "ops": ops,
        "op_resolver": {"file": "op_resolver.h", "methods": [resolver_method(op) for op in ops]},
        "input": run["input"],
        "output": run["output"],
        **fields,
        "files": ["model_data.cc", "model_data.h", "op_resolver.h"],
    }
    write_json(folder / "micro.json", description)


def export_micro(staging: Path, artifacts: list[dict], examples: np.ndarray) -> dict:
    """Writes STAGING/micro/ for the export's int8 file, when TFLite Micro runs it.

    Returns:
        The report's "micro" entry: file, flash_bytes, arena_bytes, ops, ops_supported, the
        comparison with ai-edge-litert, and "skipped" (one line) when micro/ was not written.
    """
    int8 = next((a for a in artifacts if a["format"] == "tflite" and a["quantization"] == "int8"), None)
    if int8 is None:
        return {"folder": None, "skipped": f"no int8 file for TFLite Micro: {NEEDS_INT8}"}
    path = staging / int8["file"]
    content = path.read_bytes()
    entry = {"file": int8["file"], "flash_bytes": len(content), "ops": model_ops(content)}
    run, outputs = run_on_micro(path, examples)
    failure = run.get("unavailable") or run.get("error")
    if failure or outputs is None:
        unsupported = run.get("unsupported", {})
        reason = failure or unsupported.get("message", "TFLite Micro cannot run it")
        return {
            **entry,
            "folder": None,
            "arena_bytes": None,
            "ops_supported": None if failure else False,
            "unsupported_ops": unsupported.get("ops", []),
            "skipped": f"{reason}; {MICRO_FOLDER}/ skipped",
        }
    fields = compare_with_litert(content, examples, outputs)
    write_micro_folder(staging / MICRO_FOLDER, int8["file"], content, entry["ops"], run, fields)
    return {
        **entry,
        "folder": MICRO_FOLDER,
        "arena_bytes": run["arena_bytes"],
        "ops_supported": True,
        "unsupported_ops": [],
        **fields,
    }
