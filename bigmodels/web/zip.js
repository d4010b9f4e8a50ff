// Reading a bundle .zip in the page, with the caps and path rules of bigmodels/lite/verify.py:
// the archive's directory is checked before any member is decompressed (member count, declared
// sizes, no absolute or '..' paths, no links, no folders below the bundle folder, no encrypted
// member), and a member must expand to exactly its declared size. Deflate goes through the
// browser's own DecompressionStream, so no library is needed.

export const CAPS = {
  metadataBytes: 1 << 20,
  memberBytes: 256 << 20,
  bundleBytes: 512 << 20,
  members: 64,
  directoryBytes: 1 << 20,
};

const END_OF_DIRECTORY = 0x06054b50;
const DIRECTORY_ENTRY = 0x02014b50;
const LOCAL_HEADER = 0x04034b50;
const ZIP64_LOCATOR = 0x07064b50;
const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

function refuse(label, problem) {
  return new Error(`${label}: ${problem}; refused`);
}

function unsafeName(name, isFolder) {
  const parts = isFolder ? name.replace(/\/+$/, '').split('/') : name.split('/');
  if (name.startsWith('/') || name.includes('\\') || name.includes(':') || /[\x00-\x1f]/.test(name)) {
    return 'an absolute or unusual path';
  }
  if (parts.some((part) => part === '' || part === '.' || part === '..')) return "a path with '..' or an empty or '.' part";
  if (parts.length > 2 || (isFolder && parts.length > 1)) return 'a folder below the bundle folder';
  return null;
}

function endRecord(view, label) {
  const start = Math.max(0, view.byteLength - (22 + 0xffff));
  for (let at = view.byteLength - 22; at >= start; at -= 1) {
    if (view.getUint32(at, true) === END_OF_DIRECTORY) {
      if (at >= 20 && view.getUint32(at - 20, true) === ZIP64_LOCATOR) {
        throw refuse(label, `the archive holds more than ${CAPS.members} members; not a bundle`);
      }
      return {entries: view.getUint16(at + 10, true), size: view.getUint32(at + 12, true), offset: view.getUint32(at + 16, true)};
    }
  }
  throw new Error(`${label}: not a bundle archive (no zip directory); pick the bundle's .zip`);
}

function readDirectory(view, label) {
  const end = endRecord(view, label);
  if (end.entries > CAPS.members) throw refuse(label, `the archive holds more than ${CAPS.members} members; not a bundle`);
  if (end.size > CAPS.directoryBytes) throw refuse(label, `the archive's directory is ${end.size} bytes, more than ${CAPS.directoryBytes}`);
  const decoder = new TextDecoder('utf-8', {fatal: false});
  const members = [];
  let at = end.offset;
  for (let index = 0; index < end.entries; index += 1) {
    if (at + 46 > view.byteLength || view.getUint32(at, true) !== DIRECTORY_ENTRY) {
      throw new Error(`${label}: not a bundle archive (a damaged zip directory); copy the bundle again`);
    }
    const nameLength = view.getUint16(at + 28, true);
    const skip = nameLength + view.getUint16(at + 30, true) + view.getUint16(at + 32, true);
    members.push({
      flags: view.getUint16(at + 8, true),
      method: view.getUint16(at + 10, true),
      compressedSize: view.getUint32(at + 20, true),
      size: view.getUint32(at + 24, true),
      mode: view.getUint32(at + 38, true) >>> 16,
      localOffset: view.getUint32(at + 42, true),
      name: decoder.decode(new Uint8Array(view.buffer, view.byteOffset + at + 46, nameLength)),
    });
    at += 46 + skip;
  }
  return members;
}

function checkMembers(members, label) {
  const declared = members.reduce((sum, member) => sum + member.size, 0);
  if (declared > CAPS.bundleBytes) {
    throw refuse(label, `the archive expands to ${declared} bytes, more than the ${CAPS.bundleBytes} a bundle may have`);
  }
  const names = new Set();
  for (const member of members) {
    const isFolder = member.name.endsWith('/');
    let problem = unsafeName(member.name, isFolder);
    if ((member.mode & S_IFMT) === S_IFLNK) problem = 'a symbolic link';
    else if (names.has(member.name)) problem = 'a second member of the same name';
    else if (member.flags & 1) problem = 'an encrypted member';
    if (problem) throw refuse(label, `the archive holds ${problem} (${JSON.stringify(member.name)})`);
    if (member.size > CAPS.memberBytes) throw refuse(label, `${member.name} is ${member.size} bytes, more than ${CAPS.memberBytes}`);
    names.add(member.name);
  }
}

// Inflates at most `limit` + 1 bytes: a member that expands past its declared size is stopped
// there, never held whole in memory.
async function inflate(bytes, limit) {
  const reader = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate-raw')).getReader();
  const chunks = [];
  let total = 0;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    chunks.push(value);
    total += value.length;
    if (total > limit) {
      await reader.cancel();
      break;
    }
  }
  const data = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    data.set(chunk, at);
    at += chunk.length;
  }
  return data;
}

// The bundle folder's files of a .zip: {name: member}, and read(name) -> Uint8Array.
export class ZipBundleFiles {
  constructor(buffer, label) {
    this.view = new DataView(buffer);
    this.label = label;
    const members = readDirectory(this.view, label);
    checkMembers(members, label);
    const files = members.filter((member) => !member.name.endsWith('/'));
    const folders = new Set(files.filter((member) => member.name.includes('/')).map((member) => member.name.split('/')[0]));
    const all = new Set(members.map((member) => member.name));
    const prefix = all.has('metadata.json') ? '' : folders.size === 1 ? `${[...folders][0]}/` : null;
    if (prefix === null || !all.has(`${prefix}metadata.json`)) throw new Error(`${label}: no metadata.json; this is not a bigmodels bundle`);
    this.members = new Map();
    for (const member of files) {
      const rest = member.name.slice(prefix.length);
      if (member.name.startsWith(prefix) && !rest.includes('/')) this.members.set(rest, member);
    }
  }

  size(name) {
    return this.members.get(name)?.size;
  }

  async read(name) {
    const member = this.members.get(name);
    if (!member) return null;
    const at = member.localOffset;
    if (at + 30 > this.view.byteLength || this.view.getUint32(at, true) !== LOCAL_HEADER) {
      throw new Error(`${this.label}: ${name} cannot be read (a damaged zip); copy the bundle again`);
    }
    const start = at + 30 + this.view.getUint16(at + 26, true) + this.view.getUint16(at + 28, true);
    const raw = new Uint8Array(this.view.buffer, this.view.byteOffset + start, Math.min(member.compressedSize, this.view.byteLength - start));
    let data;
    if (member.method === 0) data = raw.slice();
    else if (member.method === 8) {
      try {
        data = await inflate(raw, member.size);
      } catch (error) {
        throw new Error(`${this.label}: ${name} cannot be decompressed (${error.message}); copy the bundle again`);
      }
    } else throw new Error(`${this.label}: ${name} uses a compression this page does not read (method ${member.method})`);
    if (data.length !== member.size) {
      throw refuse(this.label, `${name} expands to a size other than the ${member.size} bytes its header declares`);
    }
    return data;
  }
}
