// Loading a bundle in the page: from the folder served beside it, or from its .zip picked from
// disk. As in bigmodels/lite/verify.py, metadata.json is checked against the schema first, then
// every file of its sha256 table is read once, its size and sha256 checked, and only those
// checked bytes are handed to LiteRT.js and the tokenizer. A bundle that fails any check is
// refused whole, with one message, before the model is compiled.

import {CAPS, ZipBundleFiles} from './zip.js';
import {sha256Hex} from './sha256.js';

const FORMAT = 'bigmodels-bundle';
const FORMAT_VERSION = 1;
const TASKS = ['image_classification', 'text_classification', 'image_generation'];
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const AGAIN = 'export the bundle again';

function metadataError(label, key, problem) {
  return new Error(`${label}: metadata.json key '${key}' ${problem}; ${AGAIN}`);
}

function checkListedName(value, files, label, key) {
  if (typeof value !== 'string' || !FILE_NAME.test(value)) throw metadataError(label, key, 'must be a bare file name inside the bundle');
  if (!(value in files)) throw metadataError(label, key, `names ${value}, which the sha256 table 'files' does not list`);
}

function isShape(value) {
  return Array.isArray(value) && value.length >= 2 && (value[0] === null || Number.isInteger(value[0]))
    && value.slice(1).every((size) => Number.isInteger(size) && size >= 1);
}

function checkFileTable(metadata, label) {
  const files = metadata.files;
  if (!files || typeof files !== 'object' || Array.isArray(files)) throw metadataError(label, 'files', 'must be an object of file name -> {sha256, size_bytes}');
  const names = Object.keys(files);
  if (names.length < 1 || names.length > CAPS.members) throw metadataError(label, 'files', `must list between 1 and ${CAPS.members} files`);
  let total = 0;
  for (const name of names) {
    const entry = files[name];
    if (!FILE_NAME.test(name) || name === 'metadata.json') throw metadataError(label, 'files', `lists ${JSON.stringify(name)}, which is not a bare file name of the bundle`);
    if (!entry || typeof entry.sha256 !== 'string' || !SHA256.test(entry.sha256)) throw metadataError(label, `files.${name}.sha256`, 'must be 64 lowercase hexadecimal digits');
    if (!Number.isInteger(entry.size_bytes) || entry.size_bytes < 0 || entry.size_bytes > CAPS.memberBytes) {
      throw metadataError(label, `files.${name}.size_bytes`, `must be a whole number of bytes, at most ${CAPS.memberBytes}`);
    }
    total += entry.size_bytes;
  }
  if (total > CAPS.bundleBytes) throw metadataError(label, 'files', `adds up to ${total} bytes, more than the ${CAPS.bundleBytes} allowed`);
  return files;
}

// The schema checks of bigmodels/lite/metadata.py that the page relies on.
export function validateMetadata(metadata, label) {
  if (!metadata || typeof metadata !== 'object' || Array.isArray(metadata)) throw new Error(`${label}: metadata.json is not a JSON object; ${AGAIN}`);
  if (metadata.format !== FORMAT || metadata.format_version !== FORMAT_VERSION) {
    throw new Error(`${label}: bundle format ${JSON.stringify(metadata.format)} version ${JSON.stringify(metadata.format_version)} is not supported (this page reads ${FORMAT} version ${FORMAT_VERSION}); export the run again with this bigmodels version`);
  }
  if (!TASKS.includes(metadata.task)) throw new Error(`${label}: unknown task ${JSON.stringify(metadata.task)} in metadata.json; ${AGAIN}`);
  const files = checkFileTable(metadata, label);
  checkListedName(metadata.model_file, files, label, 'model_file');
  for (const key of ['input', 'output']) {
    if (!metadata[key] || !isShape(metadata[key].shape)) throw metadataError(label, `${key}.shape`, 'must be a shape such as [null, 8, 8, 1]');
  }
  const names = metadata.class_names;
  if (!Array.isArray(names) || !names.every((name) => typeof name === 'string')) throw metadataError(label, 'class_names', 'must be a list of strings');
  if (metadata.task !== 'image_generation' && (names.length === 0 || new Set(names).size !== names.length)) {
    throw metadataError(label, 'class_names', 'must list each class once, and at least one');
  }
  if (metadata.task === 'text_classification') {
    for (const key of ['vocabulary_file', 'settings_file']) checkListedName(metadata.tokenizer?.[key], files, label, `tokenizer.${key}`);
  }
  if (metadata.task === 'image_generation' && !(Number.isInteger(metadata.latent_size) && metadata.latent_size >= 1)) {
    throw metadataError(label, 'latent_size', 'must be a positive whole number');
  }
  if (metadata.class_code !== undefined && !(Number.isInteger(metadata.class_code?.latent_entries) && metadata.class_code.latent_entries === names.length)) {
    throw metadataError(label, 'class_code.latent_entries', 'must equal the number of class names');
  }
  if (metadata.selftest !== undefined) checkListedName(metadata.selftest?.file, files, label, 'selftest.file');
  return metadata;
}

// The files of a bundle folder served over HTTP (beside the page, or anywhere same-origin).
class ServedFiles {
  constructor(base) {
    this.base = base.endsWith('/') ? base : `${base}/`;
  }

  async read(name, limit) {
    const response = await fetch(this.base + name, {cache: 'no-cache'});
    if (response.status === 404) return null;
    if (!response.ok) throw new Error(`${this.base}${name}: the server answered ${response.status}`);
    const declared = Number(response.headers.get('content-length'));
    if (declared > limit) throw new Error(`${name} is ${declared} bytes, more than the ${limit} a bundle file may have; refused`);
    const data = new Uint8Array(await response.arrayBuffer());
    if (data.length > limit) throw new Error(`${name} is more than the ${limit} bytes a bundle file may have; refused`);
    return data;
  }
}

async function verify(files, label) {
  const raw = await files.read('metadata.json', CAPS.metadataBytes);
  if (raw === null) throw new Error(`${label}: metadata.json is missing; this is not a bigmodels bundle`);
  let metadata;
  try {
    metadata = JSON.parse(new TextDecoder('utf-8', {fatal: true}).decode(raw));
  } catch (error) {
    throw new Error(`${label}: metadata.json is unreadable (${error.message}); ${AGAIN}`);
  }
  validateMetadata(metadata, label);
  const contents = {};
  for (const [name, entry] of Object.entries(metadata.files)) {
    const data = await files.read(name, CAPS.memberBytes);
    if (data === null) throw new Error(`${label}: ${name} is missing from the bundle; copy the whole bundle`);
    if (data.length !== entry.size_bytes) {
      throw new Error(`${label}: ${name} does not match its entry in metadata.json's sha256 table: it is ${data.length} bytes, the table records ${entry.size_bytes} (a truncated or changed copy); copy the bundle again`);
    }
    if ((await sha256Hex(data)) !== entry.sha256) {
      throw new Error(`${label}: ${name} does not match its sha256 in metadata.json (changed or corrupted); refusing to load it; copy the bundle again`);
    }
    contents[name] = data;
  }
  return {metadata, contents, label};
}

// A verified bundle served as a folder at `base`: {metadata, contents: {name: Uint8Array}, label}.
export function loadServedBundle(base) {
  return verify(new ServedFiles(base), base);
}

// A verified bundle from a .zip's bytes (a file the user picked, or one served beside the page).
export async function loadZipBundle(buffer, label) {
  const archive = new ZipBundleFiles(buffer, label);
  const files = {
    read: async (name, limit) => {
      const size = archive.size(name);
      if (size === undefined) return null;
      if (size > limit) throw new Error(`${label}: ${name} is ${size} bytes, more than the ${limit} a bundle file may have; refused`);
      return archive.read(name);
    },
  };
  return verify(files, label);
}
