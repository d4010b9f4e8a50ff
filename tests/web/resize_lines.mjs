// Runs bigmodels/web/resize.js under node for tests/test_web_images.py: each JSON line
// {"pixels": [...], "shape": [h, w, c], "size": [height, width]} is answered with the resized
// pixels as a JSON list.
import {createInterface} from 'node:readline';
import {fitBilinear} from '../../bigmodels/web/resize.js';

for await (const line of createInterface({input: process.stdin, crlfDelay: Infinity})) {
  const {pixels, shape, size} = JSON.parse(line);
  const resized = fitBilinear(Uint8Array.from(pixels), shape[0], shape[1], shape[2], size[0], size[1]);
  process.stdout.write(JSON.stringify(Array.from(resized)) + '\n');
}
