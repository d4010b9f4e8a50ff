// Pictures in and out of the page: a photo or camera frame to the uint8 pixels a bundle's model
// takes, and generated images onto a canvas grid.
//
// bigmodels/lite/images.py's rule: EXIF orientation applied (createImageBitmap's imageOrientation),
// transparency composited on white, grayscale with Pillow's weights and fixed-point rounding, then
// Pillow's centre crop and bilinear resize (resize.js, the same arithmetic as Pillow). Where the
// page can differ from Python: the browser decodes the file with its own decoders (a PNG gives the
// same pixels; a JPEG may differ by a level or so, and colour profiles are ignored on both sides),
// a semi-transparent pixel is composited by the canvas (it may differ by one level), and for a few
// crops Pillow 13 runs its two resize passes in the other order (one level at most).

import {fitBilinear} from './resize.js';

function context(width, height) {
  const canvas = new OffscreenCanvas(width, height);
  return canvas.getContext('2d', {willReadFrequently: true});
}

// uint8 pixels (height * width * channels) of an ImageBitmap, video frame or image element.
export function pixelsFrom(source, sourceWidth, sourceHeight, height, width, channels) {
  const drawing = context(sourceWidth, sourceHeight);
  drawing.fillStyle = '#ffffff';
  drawing.fillRect(0, 0, sourceWidth, sourceHeight);
  drawing.drawImage(source, 0, 0);
  const rgba = drawing.getImageData(0, 0, sourceWidth, sourceHeight).data;
  const pixels = new Uint8Array(sourceWidth * sourceHeight * channels);
  for (let i = 0, j = 0; i < rgba.length; i += 4) {
    if (channels === 1) pixels[j++] = (rgba[i] * 19595 + rgba[i + 1] * 38470 + rgba[i + 2] * 7471 + 0x8000) >> 16;
    else {
      pixels[j++] = rgba[i];
      pixels[j++] = rgba[i + 1];
      pixels[j++] = rgba[i + 2];
    }
  }
  return fitBilinear(pixels, sourceHeight, sourceWidth, channels, height, width);
}

export async function pixelsFromFile(file, height, width, channels) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, {imageOrientation: 'from-image', premultiplyAlpha: 'none', colorSpaceConversion: 'none'});
  } catch {
    throw new Error(`${file.name}: not a readable image`);
  }
  try {
    return pixelsFrom(bitmap, bitmap.width, bitmap.height, height, width, channels);
  } finally {
    bitmap.close();
  }
}

// Draws uint8 images of (height, width, channels) in a square-ish grid, each scaled up to `cell`.
export function drawGrid(canvas, images, height, width, channels, cell = 64) {
  const columns = Math.ceil(Math.sqrt(images.length));
  const rows = Math.ceil(images.length / columns);
  canvas.width = columns * cell;
  canvas.height = rows * cell;
  const drawing = canvas.getContext('2d');
  drawing.imageSmoothingEnabled = false;
  const tile = context(width, height);
  images.forEach((image, index) => {
    const data = tile.createImageData(width, height);
    for (let p = 0; p < height * width; p += 1) {
      for (let k = 0; k < 3; k += 1) data.data[4 * p + k] = image[p * channels + (channels === 1 ? 0 : k)];
      data.data[4 * p + 3] = 255;
    }
    tile.putImageData(data, 0, 0);
    drawing.drawImage(tile.canvas, (index % columns) * cell, Math.floor(index / columns) * cell, cell, cell);
  });
}

// Seeded standard-normal latent vectors (the page's own generator: numpy's cannot be reproduced
// in a browser, so a seed here draws other vectors than the same seed in Python).
export function seededLatents(count, size, seed) {
  let state = seed >>> 0 || 0x9e3779b9;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  };
  return Array.from({length: count}, () => Float32Array.from({length: size}, () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform())));
}

// bigmodels.lite.latents.latents_for_class: the largest code entry swaps with the class's entry.
export function latentsForClass(latents, classIndex, codeEntries) {
  return latents.map((latent) => {
    const row = latent.slice();
    let largest = 0;
    for (let i = 1; i < codeEntries; i += 1) if (row[i] > row[largest]) largest = i;
    [row[classIndex], row[largest]] = [row[largest], row[classIndex]];
    return row;
  });
}
