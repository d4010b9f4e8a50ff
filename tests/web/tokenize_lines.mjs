// Runs bigmodels/web/tokenizer.js under node for tests/test_web_tokenizer.py, one JSON line per
// request: {"vocabulary": [...], "settings": {...}} sets the tokenizer up (answered {"ok": true}
// or {"error": "..."}), {"texts": [...]} answers {"ids": [[...], ...]} (each padded or cut to the
// sequence length, as the page gives them to the model).
import {createInterface} from 'node:readline';
import {pathToFileURL} from 'node:url';
import {WordPieceTokenizer} from '../../bigmodels/web/tokenizer.js';

const tables = (await import(pathToFileURL(process.argv[2]).href)).default;
let tokenizer = null;
for await (const line of createInterface({input: process.stdin, crlfDelay: Infinity})) {
  const request = JSON.parse(line);
  let answer;
  try {
    if (request.vocabulary) {
      tokenizer = new WordPieceTokenizer(request.vocabulary, request.settings, tables);
      answer = {ok: true};
    } else {
      answer = {ids: request.texts.map((text) => Array.from(tokenizer.encode(text)))};
    }
  } catch (error) {
    answer = {error: String(error.message)};
  }
  process.stdout.write(JSON.stringify(answer) + '\n');
}
