// The WordPiece tokenizer of bigmodels/lite/tokenizer.py, in JavaScript, giving the same ids.
//
// Same steps in the same order (see the Python module's docstring): a NUL ends the text; CJK
// ideographs get spaces around them; accents are stripped (NFD, then combining marks dropped);
// the text is split on ASCII whitespace, control and format characters (dropped) and on
// punctuation and CJK ideographs (kept as words); each word is case-folded with NFKC_Casefold;
// then greedy longest-match WordPiece, a word over 100 UTF-8 bytes being one unknown token.
//
// Every Unicode fact comes from `tables` (unicode_tables.js, written from the serving Python's
// unicodedata), never from the browser's own tables, which are of another Unicode version: code
// points Python does not know are left alone, exactly as Python leaves them.

function inRanges(code, ranges) {
  let low = 0;
  let high = ranges.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    if (code < ranges[middle][0]) high = middle - 1;
    else if (code > ranges[middle][1]) low = middle + 1;
    else return true;
  }
  return false;
}

const SETTING_TYPES = {
  lowercase: 'boolean',
  strip_accents: 'boolean',
  split: 'boolean',
  split_on_cjk: 'boolean',
  suffix_indicator: 'string',
  oov_token: 'string',
  sequence_length: 'integer',
};

// The accepted settings after checking each one's type, as bigmodels.lite.tokenizer.check_settings.
export function checkSettings(settings, maxSequenceLength) {
  if (settings === null || typeof settings !== 'object' || Array.isArray(settings)) {
    throw new Error('tokenizer settings must be a JSON object; export the run again');
  }
  const accepted = {};
  for (const [key, kind] of Object.entries(SETTING_TYPES)) {
    if (!(key in settings)) continue;
    const value = settings[key];
    const ok = kind === 'integer' ? Number.isInteger(value) || (key === 'sequence_length' && value === null)
      : typeof value === kind;
    if (!ok) throw new Error(`tokenizer setting '${key}' must be ${kind}, got ${JSON.stringify(value)}; export the run again`);
    accepted[key] = value;
  }
  const length = accepted.sequence_length;
  if (length !== undefined && length !== null && !(length >= 1 && length <= maxSequenceLength)) {
    throw new Error(`tokenizer setting 'sequence_length' must be between 1 and ${maxSequenceLength}, got ${length}`);
  }
  return accepted;
}

// Tokens of a vocabulary file's text, one per line (\n, \r\n or \r), id = line.
export function parseVocabulary(text) {
  const lines = text.replace(/\r\n/g, '\n').replace(/\r/g, '\n').split('\n');
  return lines[lines.length - 1] === '' ? lines.slice(0, -1) : lines;
}

function utf8Length(codePoints) {
  let bytes = 0;
  for (const character of codePoints) {
    const code = character.codePointAt(0);
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
  }
  return bytes;
}

export class WordPieceTokenizer {
  constructor(vocabulary, settings, tables) {
    const options = checkSettings(settings ?? {}, tables.max_sequence_length);
    this.tables = tables;
    this.lowercase = options.lowercase ?? false;
    this.stripAccents = options.strip_accents ?? false;
    this.split = options.split ?? true;
    this.splitOnCjk = options.split_on_cjk ?? true;
    this.suffixIndicator = options.suffix_indicator ?? '##';
    this.oovToken = options.oov_token ?? '[UNK]';
    this.sequenceLength = options.sequence_length ?? null;
    this.tokenToId = new Map(vocabulary.map((token, index) => [token, index]));
    if (!this.tokenToId.has(this.oovToken)) {
      throw new Error(`the vocabulary has no out-of-vocabulary token '${this.oovToken}'; add it`);
    }
  }

  static fromText(vocabularyText, settingsText, tables) {
    return new WordPieceTokenizer(parseVocabulary(vocabularyText), settingsText ? JSON.parse(settingsText) : {}, tables);
  }

  isCjk(code) {
    return inRanges(code, this.tables.cjk);
  }

  isPunctuation(code) {
    if ((code >= 33 && code <= 47) || (code >= 58 && code <= 64) || (code >= 91 && code <= 96) || (code >= 123 && code <= 126)) {
      return true;
    }
    return inRanges(code, this.tables.punctuation);
  }

  isSeparator(character, code) {
    return this.tables.ascii_whitespace.includes(character) || inRanges(code, this.tables.control_or_format);
  }

  // Unicode normalization as Python's unicodedata does it: runs of characters Python knows are
  // normalized by the browser (their results are stable across Unicode versions); a character
  // Python does not know, or a lone surrogate, is kept as it is and ends the run.
  normalize(text, form) {
    let result = '';
    let run = '';
    for (const character of text) {
      const code = character.codePointAt(0);
      if (inRanges(code, this.tables.unassigned) || (code >= 0xd800 && code <= 0xdfff)) {
        result += run.normalize(form) + character;
        run = '';
      } else {
        run += character;
      }
    }
    return result + run.normalize(form);
  }

  casefold(text) {
    let result = '';
    for (const character of text) {
      result += this.tables.case_folding[character.codePointAt(0).toString(16)] ?? character;
    }
    return result;
  }

  // NFKC_Casefold as bigmodels.lite.tokenizer.nfkc_casefold computes it.
  nfkcCasefold(text) {
    const folded = this.normalize(this.casefold(this.normalize(text, 'NFKC')), 'NFKC');
    let result = '';
    for (const character of folded) {
      if (!inRanges(character.codePointAt(0), this.tables.default_ignorable)) result += character;
    }
    return result;
  }

  strip(text) {
    if (!this.stripAccents) return text;
    let result = '';
    for (const character of this.normalize(text, 'NFD')) {
      if (!inRanges(character.codePointAt(0), this.tables.nonspacing_mark)) result += character;
    }
    return result;
  }

  spaceAroundCjk(text) {
    let result = '';
    for (const character of text) result += this.isCjk(character.codePointAt(0)) ? ` ${character} ` : character;
    return result;
  }

  splitWords(text) {
    let result = '';
    for (const character of text) {
      const code = character.codePointAt(0);
      if (this.isPunctuation(code) || (this.splitOnCjk && this.isCjk(code))) result += ` ${character} `;
      else result += this.isSeparator(character, code) ? ' ' : character;
    }
    return result;
  }

  // The words of a text, as keras-hub splits them before WordPiece.
  *words(text) {
    const nul = text.indexOf('\0');
    if (nul >= 0) text = text.slice(0, nul); // tensorflow-text stops reading at a NUL
    if (!this.split) {
      const stripped = this.strip(text);
      yield this.lowercase ? this.nfkcCasefold(stripped) : stripped;
      return;
    }
    if (this.splitOnCjk) text = this.spaceAroundCjk(text);
    for (const word of this.splitWords(this.strip(text)).split(' ')) {
      if (word) yield this.lowercase ? this.nfkcCasefold(word) : word;
    }
  }

  wordPieces(word) {
    if (!word) return [];
    const characters = Array.from(word);
    const unknown = this.tokenToId.get(this.oovToken);
    if (characters.length > this.tables.max_bytes_per_word || utf8Length(characters) > this.tables.max_bytes_per_word) {
      return [unknown];
    }
    const pieces = [];
    let start = 0;
    while (start < characters.length) {
      let end = characters.length;
      let found;
      while (start < end) {
        const piece = characters.slice(start, end).join('');
        const candidate = start === 0 ? piece : this.suffixIndicator + piece;
        found = this.tokenToId.get(candidate);
        if (found !== undefined) break;
        end -= 1;
      }
      if (found === undefined) return [unknown];
      pieces.push(found);
      start = end;
    }
    return pieces;
  }

  // Token ids of one text, unpadded; with `limit`, only the first `limit` ids.
  tokenize(text, limit = null) {
    let ids = [];
    for (const word of this.words(text)) {
      ids = ids.concat(this.wordPieces(word));
      if (limit !== null && ids.length >= limit) return ids.slice(0, limit);
    }
    return ids;
  }

  // Int32Array ids of one text, padded with 0 (or truncated) to sequence_length.
  encode(text) {
    const ids = this.tokenize(text, this.sequenceLength || null);
    const row = new Int32Array(this.sequenceLength || ids.length);
    row.set(ids.slice(0, row.length));
    return row;
  }
}
