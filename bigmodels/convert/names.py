"""Shorter tensor names in a TFLite flatbuffer, rewritten in place.

The converter names every tensor after the TensorFlow ops fused into it
("cnn_classifier_compact_1/stage1_0_relu_1/Relu;cnn_classifier_compact_1/stage1_0_bn_1/..."):
2.5 KB of debugging text in the MNIST CNN, about 300 bytes once gzipped, which every phone
downloads. Nothing reads them at run time: runtimes find inputs and outputs by signature or index.
"""

import struct

from tensorflow.lite.python import schema_py_generated as schema

TENSOR_NAME_FIELD = 10  # Tensor.name's vtable slot in the TFLite schema (shape 4, type 6, buffer 8)


def shorten_tensor_names(flatbuffer: bytes) -> bytes:
    """Renames every tensor but the subgraphs' inputs and outputs to t<index>, in place.

    Each name's length prefix shrinks and the rest of its bytes become zeros, so the file keeps its
    size, every offset and every buffer's alignment (TFLite Micro reads the file from flash as
    it is); only its compressed size drops. A name already as short is left as it is.
    """
    data = bytearray(flatbuffer)
    model = schema.Model.GetRootAs(data, 0)
    for graph_index in range(model.SubgraphsLength()):
        graph = model.Subgraphs(graph_index)
        named = {graph.Inputs(i) for i in range(graph.InputsLength())}
        named |= {graph.Outputs(i) for i in range(graph.OutputsLength())}
        for index in range(graph.TensorsLength()):
            if index not in named:
                _shorten(data, graph.Tensors(index)._tab, f"t{index}".encode())
    return bytes(data)


def _shorten(data: bytearray, table, short: bytes) -> None:
    field = table.Offset(TENSOR_NAME_FIELD)
    if not field:
        return
    reference = table.Pos + field
    start = reference + struct.unpack_from("<I", data, reference)[0]  # the string: length, bytes, 0
    length = struct.unpack_from("<I", data, start)[0]
    if len(short) >= length:
        return
    struct.pack_into("<I", data, start, len(short))
    data[start + 4 : start + 5 + length] = short + bytes(length + 1 - len(short))
