// tok_ids.js - token ids from the real Hugging Face tokenizers (@anush008/tokenizers), for the
// fine-tuning reference scripts.
//
//   node tok_ids.js TOKENIZER.json TEXTS.json OUT.json [special]
//
// TEXTS.json: a JSON array of strings. OUT.json: a JSON array of id arrays, without special
// tokens unless the 4th argument is "special".
'use strict';
const fs = require('fs');
const {Tokenizer} = require('@anush008/tokenizers');

async function main() {
  const [tokPath, inPath, outPath, mode] = process.argv.slice(2);
  const tok = Tokenizer.fromFile(tokPath);
  const texts = JSON.parse(fs.readFileSync(inPath, 'utf8'));
  const out = [];
  for (let i = 0; i < texts.length; i += 256) {
    const encs = await tok.encodeBatch(texts.slice(i, i + 256), {addSpecialTokens: mode === 'special'});
    for (const e of encs) out.push(Array.from(e.getIds()));
  }
  fs.writeFileSync(outPath, JSON.stringify(out));
}
main().catch((e) => { console.error('tok_ids:', e); process.exit(1); });
