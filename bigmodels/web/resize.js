// Pillow's ImageOps.fit(image, size, method=BILINEAR), the resize of bigmodels/lite/images.py, in
// JavaScript, so that a photo resized in the page has the pixels Python gives it: the same crop box
// (a centre crop to the target aspect ratio, in fractional pixels), the same two-pass bilinear
// filter whose support widens with the reduction (Pillow's precompute_coeffs), and the same
// fixed-point arithmetic (coefficients in 22 bits, a horizontal pass over the rows the vertical
// pass needs, then the vertical pass, each rounded and clipped to 0-255).

const PRECISION_BITS = 22;

function bilinear(x) {
  const distance = Math.abs(x);
  return distance < 1 ? 1 - distance : 0;
}

// [bounds (first input index, count) per output index, fixed-point coefficients, kernel size].
function coefficients(inSize, in0, in1, outSize) {
  const scale = Math.fround(in1 - in0) / outSize; // Pillow subtracts the float box ends in single precision
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the bilinear filter's support is 1
  const kernel = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * kernel);
  for (let out = 0; out < outSize; out += 1) {
    const center = in0 + (out + 0.5) * scale;
    const first = Math.max(0, Math.trunc(center - support + 0.5));
    const count = Math.min(inSize, Math.trunc(center + support + 0.5)) - first;
    const row = new Float64Array(count);
    let total = 0;
    for (let x = 0; x < count; x += 1) {
      row[x] = bilinear((x + first - center + 0.5) / filterScale);
      total += row[x];
    }
    for (let x = 0; x < count; x += 1) {
      const weight = total !== 0 ? row[x] / total : row[x];
      weights[out * kernel + x] = Math.trunc(weight < 0 ? -0.5 + weight * (1 << PRECISION_BITS) : 0.5 + weight * (1 << PRECISION_BITS));
    }
    bounds[2 * out] = first;
    bounds[2 * out + 1] = count;
  }
  return {bounds, weights, kernel};
}

function clip8(value) {
  if (value >= 2 ** (PRECISION_BITS + 8)) return 255;
  return value <= 0 ? 0 : Math.floor(value / 2 ** PRECISION_BITS);
}

// One pass of the filter along `lines` lines (rows, or columns), each read from `input` at
// inOffset + line * lineStride + sample * inStep and written at line * outLineStride + out * outStep.
function pass(input, output, lines, outSize, channels, {bounds, weights, kernel}, {inOffset, lineStride, inStep, outLineStride, outStep}) {
  for (let line = 0; line < lines; line += 1) {
    for (let out = 0; out < outSize; out += 1) {
      const first = bounds[2 * out];
      const count = bounds[2 * out + 1];
      for (let channel = 0; channel < channels; channel += 1) {
        let sum = 2 ** (PRECISION_BITS - 1);
        for (let i = 0; i < count; i += 1) {
          sum += input[inOffset + line * lineStride + (first + i) * inStep + channel] * weights[out * kernel + i];
        }
        output[line * outLineStride + out * outStep + channel] = clip8(sum);
      }
    }
  }
  return output;
}

// uint8 pixels (inHeight, inWidth, channels) -> (height, width, channels), as ImageOps.fit does.
export function fitBilinear(pixels, inHeight, inWidth, channels, height, width) {
  if (inHeight === height && inWidth === width) return pixels;
  const liveRatio = inWidth / inHeight;
  const outputRatio = width / height;
  let cropWidth = inWidth;
  let cropHeight = inHeight;
  if (liveRatio !== outputRatio) {
    if (liveRatio >= outputRatio) cropWidth = outputRatio * inHeight;
    else cropHeight = inWidth / outputRatio;
  }
  // Pillow hands the crop box to its C code as single-precision floats
  const left = Math.fround((inWidth - cropWidth) * 0.5);
  const top = Math.fround((inHeight - cropHeight) * 0.5);
  const right = Math.fround((inWidth - cropWidth) * 0.5 + cropWidth);
  const bottom = Math.fround((inHeight - cropHeight) * 0.5 + cropHeight);
  const horizontal = coefficients(inWidth, left, right, width);
  const vertical = coefficients(inHeight, top, bottom, height);
  const needHorizontal = width !== inWidth || left !== 0 || right !== width;
  const needVertical = height !== inHeight || top !== 0 || bottom !== height;
  let image = pixels;
  let rows = inHeight;
  let rowLength = inWidth;
  if (needHorizontal) {
    // only the input rows the vertical pass reads, as Pillow does
    const firstRow = vertical.bounds[0];
    const lastRow = vertical.bounds[2 * height - 2] + vertical.bounds[2 * height - 1];
    for (let out = 0; out < height; out += 1) vertical.bounds[2 * out] -= firstRow;
    rows = lastRow - firstRow;
    image = pass(pixels, new Uint8Array(rows * width * channels), rows, width, channels, horizontal, {
      inOffset: firstRow * inWidth * channels, lineStride: inWidth * channels, inStep: channels, outLineStride: width * channels, outStep: channels,
    });
    rowLength = width;
  }
  if (needVertical) {
    const stride = rowLength * channels; // columns are the lines: one pixel apart, samples a row apart
    return pass(image, new Uint8Array(height * stride), rowLength, height, channels, vertical, {
      inOffset: 0, lineStride: channels, inStep: stride, outLineStride: channels, outStep: stride,
    });
  }
  return image;
}
