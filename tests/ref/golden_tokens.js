// golden_tokens.js - golden encodings from the real Hugging Face tokenizers (Rust, via
// @anush008/tokenizers) for the embtune tokenizer tests.
//
//   node golden_tokens.js TOKENIZER.json TEXTS.jsonl OUT.jsonl [MAXLEN,MAXLEN,...]
//   node golden_tokens.js --list JOBS      (one "TOKENIZER TEXTS OUT MAXLENS" per line)
//
// TEXTS.jsonl: {"t": hex UTF-8} or {"b": hex bytes} per line (see gen_texts.js). For every text
// OUT.jsonl gets one line {"s": E, "n": E, "t": {"MAXLEN": E, ...}} where E is
// [ids, type_ids, special_tokens_mask, offsets] (offsets as HF's encode_char_offsets gives
// them: [start, end] in Unicode scalar values), "s" with special tokens, "n" without,
// "t" with special tokens and truncation to MAXLEN. An encode error is {"err": message}.
'use strict';
const fs = require('fs');
const {Tokenizer} = require('@anush008/tokenizers');

const textCache = new Map();
function loadTexts(p) {
  if (!textCache.has(p))
    textCache.set(p, fs.readFileSync(p, 'utf8').split('\n').filter((l) => l.length).map((l) => {
      const o = JSON.parse(l);
      return Buffer.from(o.b !== undefined ? o.b : o.t, 'hex').toString('utf8');
    }));
  return textCache.get(p);
}

async function job(tokPath, textsPath, outPath, lens) {
  const maxLens = lens ? lens.split(',').map(Number) : [];
  const tok = Tokenizer.fromFile(tokPath);
  const texts = loadTexts(textsPath);
  const flat = (e) => [e.getIds(), e.getTypeIds(), e.getSpecialTokensMask(), e.getOffsets().flat()];
  async function run(addSpecial) {
    // batches keep memory bounded; a failing batch is retried text by text
    const res = [];
    for (let i = 0; i < texts.length; i += 256) {
      const chunk = texts.slice(i, i + 256);
      try {
        const encs = await tok.encodeBatch(chunk, {addSpecialTokens: addSpecial});
        for (const e of encs) res.push(flat(e));
      } catch (err) {
        for (const t of chunk) {
          try { res.push(flat(await tok.encode(t, null, {addSpecialTokens: addSpecial}))); }
          catch (e2) { res.push({err: String(e2.message || e2)}); }
        }
      }
    }
    return res;
  }
  const s = await run(true);
  const n = await run(false);
  const t = {};
  for (const L of maxLens) {
    tok.setTruncation(L);
    t[L] = await run(true);
  }
  tok.disableTruncation();
  const lines = texts.map((_, i) => {
    const tt = {};
    for (const L of maxLens) tt[L] = t[L][i];
    return JSON.stringify({s: s[i], n: n[i], t: tt});
  });
  fs.writeFileSync(outPath + '.tmp', lines.join('\n') + '\n');
  fs.renameSync(outPath + '.tmp', outPath);
  console.log(`golden_tokens: ${texts.length} texts x ${2 + maxLens.length} modes <- ${tokPath}`);
}

async function main() {
  const a = process.argv.slice(2);
  if (a[0] === '--list') {
    for (const line of fs.readFileSync(a[1], 'utf8').split('\n').filter((l) => l.trim())) {
      const [t, x, o, l] = line.split(' ');
      await job(t, x, o, l);
    }
  } else {
    await job(a[0], a[1], a[2], a[3]);
  }
}
main().catch((e) => { console.error('golden_tokens:', e); process.exit(1); });
