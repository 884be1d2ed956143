// bench_tokens.js - the reference tokenizer's throughput on the same input as
// bench/bench_tokenizer.c: one text per line (sequential encode calls, and encodeBatch, which
// HF runs on all cores with rayon) and the whole file as one text. Best of REPEAT runs.
//
//   node bench_tokens.js TOKENIZER.json TEXT_FILE [REPEAT]
'use strict';
const fs = require('fs');
const {Tokenizer} = require('@anush008/tokenizers');
(async () => {
  const [tp, fp, rep] = process.argv.slice(2);
  const repeat = Number(rep || 3);
  const tok = Tokenizer.fromFile(tp);
  const text = fs.readFileSync(fp, 'utf8');
  const lines = text.split('\n');
  let best = {seq: 1e30, batch: 1e30, whole: 1e30}, tokens = {};
  for (let r = 0; r < repeat; r++) {
    let t0 = process.hrtime.bigint(), n = 0;
    for (const l of lines) n += (await tok.encode(l, null, {addSpecialTokens: true})).getLength();
    best.seq = Math.min(best.seq, Number(process.hrtime.bigint() - t0) / 1e9);
    tokens.seq = n;
    t0 = process.hrtime.bigint(); n = 0;
    for (const e of await tok.encodeBatch(lines, {addSpecialTokens: true})) n += e.getLength();
    best.batch = Math.min(best.batch, Number(process.hrtime.bigint() - t0) / 1e9);
    tokens.batch = n;
    t0 = process.hrtime.bigint();
    n = (await tok.encode(text, null, {addSpecialTokens: false})).getLength();
    best.whole = Math.min(best.whole, Number(process.hrtime.bigint() - t0) / 1e9);
    tokens.whole = n;
  }
  console.log(JSON.stringify({bytes: Buffer.byteLength(text), tokens, seconds: best}));
})();
