"""Short tensor names in a TFLite flatbuffer, and the file rebuilt without the long ones.

The converter names every tensor after the TensorFlow ops fused into it
("cnn_classifier_compact_1/stage1_0_relu_1/Relu;cnn_classifier_compact_1/stage1_0_bn_1/..."):
4.4 KB of debugging text in the 94 KB CIFAR-10 model, which a microcontroller keeps in flash and
every phone downloads. Nothing reads them at run time: runtimes find inputs and outputs by
signature or index.
"""

from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

# The TFLite schema aligns every buffer's bytes to 16 (`force_align: 16`); the Python object API
# would pack them at 1, and TFLite Micro reads weights and int32 biases from flash where they lie.
BUFFER_ALIGNMENT = 16


def shorten_tensor_names(flatbuffer: bytes) -> bytes:
    """The same model with every tensor but the subgraphs' inputs and outputs named t<index>,
    rebuilt so that the long names' bytes are gone from the file (every buffer stays aligned to
    16 bytes). Operators, tensors, buffers, signatures and metadata are otherwise unchanged."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    for graph in model.subgraphs:
        named = {*graph.inputs, *graph.outputs}
        for index, tensor in enumerate(graph.tensors):
            if index not in named:
                tensor.name = f"t{index}"
    for buffer in model.buffers:
        buffer.__class__ = _AlignedBuffer
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


class _AlignedBuffer(schema.BufferT):
    """BufferT packed as the C++ builder packs it: data aligned to BUFFER_ALIGNMENT."""

    def Pack(self, builder):
        data = None
        if self.data is not None:
            payload = bytes(self.data)
            builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
            builder.head -= len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)
