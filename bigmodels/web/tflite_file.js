// What the page needs from a .tflite flatbuffer that LiteRT.js does not tell it: the quantization
// (scale, zero point) of the model's input and output, and a copy of the file whose batch
// dimension is fixed. The exported files have a dynamic batch (shape_signature [-1, ...]);
// LiteRT.js 2.5 compiles such a model but then refuses any input of a real size, and has no
// resize. Each -1 of a shape_signature becomes the static size the file itself records (1 for the
// batch), the shape ai-edge-litert allocates by default, so the page runs one example at a time.
//
// The file is read with the TFLite schema's field numbers: Model.subgraphs = 2; SubGraph.tensors
// = 0, inputs = 1, outputs = 2; Tensor.shape = 0, type = 1, quantization = 4, shape_signature = 7;
// QuantizationParameters.scale = 2, zero_point = 3.

const TYPES = {0: 'float32', 2: 'int32', 3: 'uint8', 7: 'int16', 9: 'int8'};

class Table {
  constructor(view, position) {
    this.view = view;
    this.position = position;
    this.vtable = position - view.getInt32(position, true);
  }

  field(index) {
    const entry = 4 + 2 * index;
    if (entry >= this.view.getUint16(this.vtable, true)) return 0;
    const offset = this.view.getUint16(this.vtable + entry, true);
    return offset ? this.position + offset : 0;
  }

  target(index) {
    const at = this.field(index);
    return at ? at + this.view.getUint32(at, true) : 0;
  }

  // [start of the elements, count] of a vector field, or null.
  vector(index) {
    const at = this.target(index);
    return at ? [at + 4, this.view.getUint32(at, true)] : null;
  }

  tables(index) {
    const vector = this.vector(index);
    if (!vector) return [];
    const [start, count] = vector;
    return Array.from({length: count}, (_, i) => new Table(this.view, start + 4 * i + this.view.getUint32(start + 4 * i, true)));
  }

  ints(index) {
    const vector = this.vector(index);
    return vector ? Array.from({length: vector[1]}, (_, i) => this.view.getInt32(vector[0] + 4 * i, true)) : [];
  }
}

function describe(tensor) {
  const view = tensor.view;
  const typeAt = tensor.field(1);
  const quantization = tensor.target(4) ? new Table(view, tensor.target(4)) : null;
  const scales = quantization?.vector(2);
  const zeros = quantization?.vector(3);
  return {
    dtype: TYPES[typeAt ? view.getInt8(typeAt) : 0] ?? 'unsupported',
    shape: tensor.ints(0),
    scale: scales && scales[1] ? view.getFloat32(scales[0], true) : 0,
    zeroPoint: zeros && zeros[1] ? Number(view.getBigInt64(zeros[0], true)) : 0,
  };
}

// {input, output: {dtype, shape, scale, zeroPoint}, bytes: a copy with every batch fixed}.
export function readTfliteFile(content) {
  const bytes = content.slice();
  const view = new DataView(bytes.buffer);
  const subgraph = new Table(view, view.getUint32(0, true)).tables(2)[0];
  if (!subgraph) throw new Error('the model file has no subgraph');
  const tensors = subgraph.tables(0);
  for (const tensor of tensors) {
    const signature = tensor.vector(7);
    const shape = tensor.ints(0);
    if (!signature) continue;
    for (let i = 0; i < signature[1]; i += 1) {
      const at = signature[0] + 4 * i;
      if (view.getInt32(at, true) === -1 && shape[i] > 0) view.setInt32(at, shape[i], true);
    }
  }
  return {
    input: describe(tensors[subgraph.ints(1)[0]]),
    output: describe(tensors[subgraph.ints(2)[0]]),
    bytes,
  };
}
