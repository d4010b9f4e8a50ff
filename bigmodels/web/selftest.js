// A bundle's self-test in the page, by the rules of bigmodels/lite/selftest.py: the stored
// examples go through the page's own path (pixels to the model, texts through the JavaScript
// tokenizer, whose ids must equal the stored ones, latent vectors through the generator), and
// each output is compared with what ai-edge-litert gave at export, within the stored tolerance.

const ARRAYS = {uint8: Uint8Array, int32: Int32Array, float32: Float32Array};
const RELATIVE_SLACK = 1e-5; // as RELATIVE_SLACK in selftest.py

function malformed(key, problem) {
  return new Error(`selftest.json key '${key}' ${problem}; export the bundle again`);
}

// The rows of an array stored as {dtype, shape, base64} (little-endian, C order).
export function decodeRows(value, key, dtype, shape) {
  if (!value || value.dtype !== dtype || JSON.stringify(value.shape) !== JSON.stringify(shape)) {
    throw malformed(key, `must be a ${dtype} array of shape ${JSON.stringify(shape)}`);
  }
  const binary = atob(value.base64 ?? '');
  const bytes = Uint8Array.from(binary, (character) => character.charCodeAt(0));
  const Type = ARRAYS[dtype];
  const rowLength = shape.slice(1).reduce((a, b) => a * b, 1);
  if (bytes.length !== shape[0] * rowLength * Type.BYTES_PER_ELEMENT) throw malformed(`${key}.base64`, 'holds the wrong number of bytes');
  const all = new Type(bytes.buffer);
  return Array.from({length: shape[0]}, (_, i) => all.slice(i * rowLength, (i + 1) * rowLength));
}

export function readSelftest(bytes, metadata) {
  const document = JSON.parse(new TextDecoder().decode(bytes));
  if (document.format !== 'bigmodels-selftest' || document.format_version !== 1) {
    throw new Error('selftest.json is of a format this page does not read; export the run again');
  }
  if (document.model_file !== metadata.model_file) throw malformed('model_file', `names ${document.model_file}, not the bundle's model`);
  if (!Number.isInteger(document.examples) || document.examples < 1 || document.examples > 64) throw malformed('examples', 'must be 1 to 64');
  return document;
}

function argmax(values) {
  let best = 0;
  for (let i = 1; i < values.length; i += 1) if (values[i] > values[best]) best = i;
  return best;
}

async function classifierFailures(page, document) {
  const count = document.examples;
  const shape = [count, ...page.metadata.input.shape.slice(1)];
  const names = page.classNames;
  const tolerance = document.tolerance.score;
  let rows;
  let storedIds = null;
  if (page.tokenizer) {
    storedIds = decodeRows(document.inputs.token_ids, 'inputs.token_ids', 'int32', shape);
    rows = document.inputs.texts.map((text) => page.tokenizer.encode(text));
  } else {
    rows = decodeRows(document.inputs.pixels, 'inputs.pixels', 'uint8', shape);
  }
  const scores = await page.model.predict(rows);
  page.lastInputs = rows;
  const failures = [];
  let identical = 0;
  let largest = 0;
  for (let index = 0; index < count; index += 1) {
    const stored = document.expected.scores[index];
    const got = argmax(scores[index]);
    const wanted = names.indexOf(document.expected.labels[index]);
    const difference = Math.max(...Array.from(scores[index], (score, i) => Math.abs(score - stored[i])));
    identical += difference === 0;
    largest = Math.max(largest, difference);
    const problems = [];
    const differingIds = storedIds ? rows[index].filter((id, i) => id !== storedIds[index][i]).length : 0;
    if (differingIds) problems.push(`the tokenizer gives other ids at ${differingIds} position(s)`);
    if (got !== wanted && Math.abs(stored[wanted] - stored[got]) > tolerance) problems.push(`label '${names[got]}', expected '${names[wanted]}'`);
    if (!(difference <= tolerance * (1 + RELATIVE_SLACK))) problems.push(`scores differ by up to ${difference} (tolerance ${tolerance})`);
    if (problems.length) failures.push({example: index, label: names[got], max_score_difference: difference, problems});
  }
  return {failures, identical, maxDifference: largest};
}

async function generatorFailures(page, document) {
  const count = document.examples;
  const latents = decodeRows(document.inputs.latents, 'inputs.latents', 'float32', [count, page.metadata.latent_size]);
  const images = await page.imagesFromLatents(latents);
  page.lastInputs = latents;
  const shape = [count, ...page.metadata.output.shape.slice(1)];
  const stored = decodeRows(document.expected.images, 'expected.images', 'uint8', shape);
  const tolerance = document.tolerance.mean_abs_pixel_difference;
  const failures = [];
  let identical = 0;
  let largest = 0;
  images.forEach((image, index) => {
    let sum = 0;
    for (let i = 0; i < image.length; i += 1) sum += Math.abs(image[i] - stored[index][i]);
    const mean = sum / image.length;
    identical += sum === 0;
    largest = Math.max(largest, mean);
    if (!(mean <= tolerance)) failures.push({example: index, mean_abs_pixel_difference: mean, problems: [`the image differs by ${mean.toFixed(3)} pixel levels on average (tolerance ${tolerance})`]});
  });
  return {failures, identical, maxDifference: largest};
}

// {passed, total, failures} of the bundle's stored examples on this page, and how many outputs
// were bit-identical to the stored ones (ai-edge-litert's at export) and the largest difference
// (of a score, or of an image's mean pixel level).
export async function runSelftest(page, document) {
  const check = page.metadata.task === 'image_generation' ? generatorFailures : classifierFailures;
  const {failures, identical, maxDifference} = await check(page, document);
  return {passed: document.examples - failures.length, total: document.examples, failures, identical, max_difference: maxDifference};
}
