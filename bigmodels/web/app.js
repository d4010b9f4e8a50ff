// The page: find a bundle (served beside the page, or a .zip picked from disk), verify it, compile
// its model on LiteRT.js, and wire the task's controls. `?selftest=1` runs the bundle's self-test
// and writes {"passed": N, "total": N} into #selftest. `window.bigmodels` lets a test or a script
// call the same paths the controls use.

import {loadServedBundle, loadZipBundle} from './bundle.js';
import {PageModel, roundHalfEven} from './model.js';
import {WordPieceTokenizer, parseVocabulary} from './tokenizer.js';
import {readSelftest, runSelftest} from './selftest.js';
import {drawGrid, latentsForClass, pixelsFrom, pixelsFromFile, seededLatents} from './images.js';
import tables from './runtime/unicode_tables.js';

const WASM_FOLDER = new URL('./runtime/litert/wasm/', import.meta.url).href;
const element = (id) => document.getElementById(id);
const parameters = new URLSearchParams(location.search);
const started = performance.now();
const api = {ready: false, timings: {}};
window.bigmodels = api;

function showStatus(text) {
  element('status').textContent = text;
}

function showError(error) {
  const box = element('error');
  box.textContent = String(error.message ?? error);
  box.hidden = false;
  showStatus('Not loaded.');
  api.error = box.textContent;
}

function argmaxOrder(scores) {
  return Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b);
}

class Page {
  constructor(bundle, model) {
    this.metadata = bundle.metadata;
    this.contents = bundle.contents;
    this.model = model;
    this.classNames = bundle.metadata.class_names;
    this.tokenizer = null;
    if (this.metadata.task === 'text_classification') {
      const names = this.metadata.tokenizer;
      const decode = (name) => new TextDecoder('utf-8', {fatal: true}).decode(this.contents[names[name]]);
      this.tokenizer = new WordPieceTokenizer(parseVocabulary(decode('vocabulary_file')), JSON.parse(decode('settings_file')), tables);
    }
    this.checkAgainstModel();
  }

  // As _check_against_model in bigmodels/lite/bundle.py: metadata must describe this model.
  checkAgainstModel() {
    const takes = this.model.input.shape.slice(1);
    const gives = this.model.output.shape.slice(1);
    if (JSON.stringify(this.metadata.input.shape.slice(1)) !== JSON.stringify(takes)) {
      throw new Error(`metadata.json key 'input.shape' says ${JSON.stringify(this.metadata.input.shape)} but the model takes [null, ${takes}]; export the bundle again`);
    }
    if (this.metadata.task !== 'image_generation' && gives[gives.length - 1] !== this.classNames.length) {
      throw new Error(`metadata.json key 'class_names' has ${this.classNames.length} names but the model gives ${gives[gives.length - 1]} scores; export the bundle again`);
    }
    if (this.tokenizer && this.tokenizer.sequenceLength !== takes[0]) {
      throw new Error(`the tokenizer gives ${this.tokenizer.sequenceLength} ids per text but the model takes ${takes}; export the bundle again`);
    }
  }

  labelled(scores) {
    const order = argmaxOrder(scores);
    return {label: this.classNames[order[0]], score: scores[order[0]], scores: Object.fromEntries(order.map((i) => [this.classNames[i], scores[i]]))};
  }

  async classify(rows) {
    return (await this.model.predict(rows)).map((scores) => this.labelled(scores));
  }

  async imagesFromLatents(latents) {
    const outputs = await this.model.predict(latents);
    return outputs.map((image) => Uint8Array.from(image, (value) => Math.min(255, Math.max(0, roundHalfEven(value)))));
  }
}

function showResults(results) {
  api.results = results;
  const list = element('results');
  list.replaceChildren(...results.map((result) => {
    const item = document.createElement('li');
    const top = Object.entries(result.scores).slice(0, 3).map(([name, score]) => `${name} ${score.toFixed(3)}`);
    item.textContent = `${result.label} (${top.join(', ')})`;
    return item;
  }));
}

function wireImage(page) {
  const [height, width, channels] = page.metadata.input.shape.slice(1);
  element('photo').addEventListener('change', async (event) => {
    try {
      const rows = [];
      for (const file of event.target.files) rows.push(await pixelsFromFile(file, height, width, channels));
      showResults(await page.classify(rows));
    } catch (error) {
      showError(error);
    }
  });
  element('camera').addEventListener('click', async () => {
    const video = element('video');
    try {
      video.srcObject = await navigator.mediaDevices.getUserMedia({video: {facingMode: 'environment'}});
      video.hidden = false;
      await video.play();
      element('snap').hidden = false;
    } catch (error) {
      showError(new Error(`the camera cannot be opened (${error.message}); pick a photo instead`));
    }
  });
  element('snap').addEventListener('click', () => {
    const video = element('video');
    page.classify([pixelsFrom(video, video.videoWidth, video.videoHeight, height, width, channels)]).then(showResults, showError);
  });
}

function wireText(page) {
  element('classify').addEventListener('click', () => {
    const texts = element('text').value.split('\n').filter((line) => line.trim());
    page.classify(texts.map((text) => page.tokenizer.encode(text))).then(showResults, showError);
  });
}

function wireGenerator(page) {
  const picker = element('class-picker');
  const code = page.metadata.class_code;
  picker.hidden = !code;
  element('class-label').hidden = !code;
  if (code) picker.replaceChildren(new Option('any class', ''), ...page.classNames.map((name, i) => new Option(name, String(i))));
  const [height, width, channels] = page.metadata.output.shape.slice(1);
  const draw = async () => {
    let latents = seededLatents(16, page.metadata.latent_size, Number(element('seed').value) || 0);
    if (code && picker.value !== '') latents = latentsForClass(latents, Number(picker.value), code.latent_entries);
    drawGrid(element('grid'), await page.imagesFromLatents(latents), height, width, channels);
  };
  element('generate').addEventListener('click', () => draw().catch(showError));
  return draw();
}

async function use(bundle) {
  element('error').hidden = true;
  showStatus(`Verified ${bundle.label}; compiling its model…`);
  const page = new Page(bundle, await PageModel.create(bundle.contents[bundle.metadata.model_file], WASM_FOLDER));
  const task = page.metadata.task;
  for (const [id, shown] of [['image-section', 'image_classification'], ['text-section', 'text_classification'], ['generator-section', 'image_generation']]) {
    element(id).hidden = task !== shown;
  }
  if (task === 'image_classification') wireImage(page);
  else if (task === 'text_classification') wireText(page);
  else await wireGenerator(page);
  api.timings.loadMs = performance.now() - started;
  Object.assign(api, {
    ready: true,
    task,
    classify: async (rows) => (await page.model.predict(rows.map((row) => Uint8Array.from(row)))).map((values) => Array.from(values)),
    classifyTexts: async (texts) => {
      const ids = texts.map((text) => page.tokenizer.encode(text));
      return {ids: ids.map((values) => Array.from(values)), scores: (await page.model.predict(ids)).map((values) => Array.from(values))};
    },
    // Milliseconds per one-example run of the first self-test input (after ?selftest=1), the model
    // alone as apps/benchmark.py times it in Python: one figure per block of `perBlock` runs, since
    // a browser's clock is coarsened to 0.1 ms, more than one run of a small model takes.
    latency: async (blocks, perBlock) => {
      const [example] = page.lastInputs;
      const timings = [];
      for (let block = 0; block < blocks; block += 1) {
        const start = performance.now();
        for (let i = 0; i < perBlock; i += 1) await page.model.predictOne(example);
        timings.push((performance.now() - start) / perBlock);
      }
      return timings;
    },
    generate: async (latents) => (await page.imagesFromLatents(latents.map((row) => Float32Array.from(row)))).map((values) => Array.from(values)),
  });
  showStatus(`Ready: ${page.metadata.family}, ${task}, ${page.metadata.model_file} (${page.metadata.quantization}).`);
  if (parameters.get('selftest') === '1') await selftest(page);
}

async function selftest(page) {
  const file = page.metadata.selftest?.file;
  if (!file) throw new Error('this bundle has no self-test (no selftest.json); export the run again to add a self-test');
  const result = await runSelftest(page, readSelftest(page.contents[file], page.metadata));
  element('selftest').textContent = `{"passed": ${result.passed}, "total": ${result.total}}`;
  element('selftest-failures').textContent = result.failures.length ? JSON.stringify(result.failures) : '';
  api.selftest = result;
}

// The bundle served beside the page: ?bundle=PATH, else bundle/ (a folder), else bundle.zip.
async function servedBundle() {
  const named = parameters.get('bundle');
  const path = named ?? 'bundle/';
  if (path.endsWith('.zip') || (!named && !(await fetch('bundle/metadata.json', {cache: 'no-cache'})).ok)) {
    const zip = named ?? 'bundle.zip';
    const response = await fetch(zip);
    if (!response.ok) return null;
    return loadZipBundle(await response.arrayBuffer(), zip);
  }
  return loadServedBundle(path);
}

element('bundle-file').addEventListener('change', async (event) => {
  const [file] = event.target.files;
  if (!file) return;
  try {
    showStatus(`Checking ${file.name}…`);
    await use(await loadZipBundle(await file.arrayBuffer(), file.name));
  } catch (error) {
    showError(error);
  }
});

// Offline use: once the page is ready, the service worker keeps a copy of everything it loaded
// (the LiteRT.js WebAssembly variant this browser picked, the bundle), so the next visit works
// without the server. A browser without service workers (or a page not in a secure context:
// http:// from another machine) just stays online-only.
async function keepForOffline() {
  if (!('serviceWorker' in navigator)) return;
  try {
    await navigator.serviceWorker.register('./sw.js');
    const registration = await navigator.serviceWorker.ready;
    const urls = [location.href, ...performance.getEntriesByType('resource').map((entry) => entry.name)]
      .filter((url) => new URL(url).origin === location.origin);
    const reply = new MessageChannel();
    const done = new Promise((resolve) => { reply.port1.onmessage = (event) => resolve(event.data); });
    registration.active.postMessage({keep: urls}, [reply.port2]);
    api.offline = await done;
  } catch (error) {
    api.offline = {error: String(error.message ?? error)};
  }
}

try {
  showStatus('Looking for a bundle…');
  const bundle = await servedBundle();
  if (bundle) await use(bundle);
  else {
    showStatus('No bundle served here: pick a bundle .zip.');
    api.waiting = true;
  }
  await keepForOffline();
} catch (error) {
  showError(error);
}
