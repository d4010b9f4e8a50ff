// A bundle's .tflite on LiteRT.js (WebAssembly, CPU), called like bigmodels.lite.TFLiteModel:
// real values in, float32 values out, the file's input quantized and its output dequantized here.

import {loadLiteRt, loadAndCompile, Tensor} from '@litertjs/core';
import {readTfliteFile} from './tflite_file.js';

const ARRAYS = {float32: Float32Array, int32: Int32Array, uint8: Uint8Array, int8: Int8Array};
const LIMITS = {uint8: [0, 255], int8: [-128, 127], int32: [-2147483648, 2147483647]};
let runtime = null;

// numpy's np.round: halves go to the even neighbour.
export function roundHalfEven(value) {
  const floor = Math.floor(value);
  const difference = value - floor;
  if (difference > 0.5) return floor + 1;
  if (difference < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

export function loadRuntime(wasmFolder) {
  runtime ??= loadLiteRt(wasmFolder);
  return runtime;
}

export class PageModel {
  constructor(compiled, file) {
    this.compiled = compiled;
    this.input = file.input;
    this.output = file.output;
  }

  // Compiles verified model bytes; a file LiteRT.js cannot run gives one message naming why.
  static async create(content, wasmFolder) {
    await loadRuntime(wasmFolder);
    const file = readTfliteFile(content);
    for (const [which, spec] of [['input', file.input], ['output', file.output]]) {
      if (!(spec.dtype in ARRAYS)) throw new Error(`LiteRT.js cannot run this model: its ${which} is ${spec.dtype}`);
    }
    try {
      return new PageModel(await loadAndCompile(file.bytes, {accelerator: 'wasm'}), file);
    } catch (error) {
      throw new Error(`LiteRT.js cannot run this model (${error.message ?? error})`);
    }
  }

  // bigmodels.lite.runtime's _quantize_input: raw integers stay raw, real values are quantized.
  quantize(values) {
    const {dtype, scale, zeroPoint} = this.input;
    const Type = ARRAYS[dtype];
    if (dtype === 'float32' || scale === 0 || values instanceof Type) return Type.from(values);
    const [low, high] = LIMITS[dtype];
    return Type.from(values, (value) => Math.min(high, Math.max(low, roundHalfEven(value / scale + zeroPoint))));
  }

  dequantize(values) {
    const {scale, zeroPoint} = this.output;
    if (scale === 0) return Float32Array.from(values);
    return Float32Array.from(values, (value) => Math.fround(Math.fround(value - zeroPoint) * scale));
  }

  // The outputs of one example (the file's batch is fixed at 1: see tflite_file.js).
  async predictOne(values) {
    const input = new Tensor(this.quantize(values), [1, ...this.input.shape.slice(1)]);
    let outputs;
    try {
      outputs = await this.compiled.run([input]);
      return this.dequantize(outputs[0].toTypedArray());
    } finally {
      input.delete();
      outputs?.forEach((tensor) => tensor.delete());
    }
  }

  async predict(rows) {
    const results = [];
    for (const row of rows) results.push(await this.predictOne(row));
    return results;
  }
}
