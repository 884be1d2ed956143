// unicode_props.js - the Unicode character properties the real HF tokenizers (Rust) uses,
// probed through its public components for every Unicode scalar value.
//
//   node unicode_props.js OUT.json
//
// OUT.json: {"<predicate>": [[lo, hi], ...], "<mapping>": [[cp, "result"], ...]} with
//   punct       BertPreTokenizer/Punctuation punctuation (ASCII punct or unicode_categories P*)
//   control     BertNormalizer clean_text removal (is_control, NUL, U+FFFD)
//   bert_ws     BertNormalizer clean_text: mapped to ' ' (\t \n \r + char::is_whitespace)
//   mn          BertNormalizer strip_accents removal after NFD (Mn), NFD-stable chars only
//   combining   StripAccents normalizer removal (is_combining_mark)
//   word, space regex crate \w and \s (Whitespace pre-tokenizer)
//   numeric     char::is_numeric (Digits pre-tokenizer)
//   whitespace  char::is_whitespace (WhitespaceSplit pre-tokenizer)
//   onig_w, onig_s, onig_d  \w \s \d of the Oniguruma build inside the reference (Split regex)
//   lower, nfd, nfkd, nfc, nfkc: per-char results that differ from the char itself
'use strict';
const fs = require('fs');
const tk = require('@anush008/tokenizers');

const CHUNK = 2048;
const all = [];
for (let c = 0; c <= 0x10FFFF; c++) if (c < 0xD800 || c > 0xDFFF) all.push(c);
const chunks = [];
for (let i = 0; i < all.length; i += CHUNK) chunks.push(all.slice(i, i + CHUNK));
// (chunks never consist only of separators)
const S = (c) => String.fromCodePoint(c);

function toRanges(set) {
  const a = [...set].sort((x, y) => x - y), r = [];
  for (const c of a) {
    if (r.length && r[r.length - 1][1] === c - 1) r[r.length - 1][1] = c;
    else r.push([c, c]);
  }
  return r;
}

// pre-tokenizer probe: text = sep c sep c ... ; returns for each c the split "class":
// 'alone' (a split that is exactly c), 'gone' (not covered by any split), 'merged'
function probePretok(pt, sep, cs) {
  const parts = [];
  for (const c of cs) parts.push(sep, S(c));
  const text = parts.join('');
  const splits = pt.preTokenizeString(text); // [[str, [start, end]]] in chars
  const n = 2 * cs.length;
  const cover = new Int32Array(n).fill(-1);
  splits.forEach(([s, [a, b]], k) => { for (let i = a; i < b; i++) cover[i] = k; });
  return cs.map((c, i) => {
    const k = cover[2 * i + 1];
    if (k < 0) return 'gone';
    const [, [a, b]] = splits[k];
    return b - a === 1 ? 'alone' : 'merged';
  });
}

// normalizer probe: sep-joined, result split on sep (sep must map to itself and stay apart)
function probeNorm(nz, sep, cs) {
  if (!cs.length) return [];
  const out = nz.normalizeString(cs.map(S).join(sep) + sep).split(sep);
  if (out.length !== cs.length + 1) throw new Error('separator not preserved near U+' + cs[0].toString(16) + ' ' + out.length + ' ' + cs.length);
  return out.slice(0, cs.length);
}

const res = {};
const sets = {punct: new Set(), control: new Set(), bert_ws: new Set(), mn: new Set(), combining: new Set(),
  word: new Set(), space: new Set(), numeric: new Set(), whitespace: new Set(),
  onig_w: new Set(), onig_s: new Set(), onig_d: new Set()};
function regexPretok(re, behavior) {
  const j = {version: '1.0', added_tokens: [], normalizer: null, post_processor: null, decoder: null,
    pre_tokenizer: {type: 'Split', pattern: {Regex: re}, behavior, invert: false},
    model: {type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##',
      max_input_chars_per_word: 100, vocab: {'[UNK]': 0}}};
  return tk.Tokenizer.fromString(JSON.stringify(j)).getPreTokenizer();
}
const reW = regexPretok('\\w', 'Isolated'), reS = regexPretok('\\s', 'Removed'), reD = regexPretok('\\d', 'Isolated');
const maps = {lower: [], nfd: [], nfkd: [], nfc: [], nfkc: []};

const punct = tk.punctuationPreTokenizer();
const digits = tk.digitsPreTokenizer(true);
const wsplit = tk.whitespaceSplitPreTokenizer();
const wspace = tk.whitespacePreTokenizer();
const clean = tk.bertNormalizer({cleanText: true, handleChineseChars: false, stripAccents: false, lowercase: false});
const strip = tk.bertNormalizer({cleanText: false, handleChineseChars: false, stripAccents: true, lowercase: false});
const stripAcc = tk.stripAccentsNormalizer();
const lower = tk.lowercase();
const nfs = {nfd: tk.nfdNormalizer(), nfkd: tk.nfkdNormalizer(), nfc: tk.nfcNormalizer(), nfkc: tk.nfkcNormalizer()};

for (const cs0 of chunks) {
  let cs = cs0.filter((c) => c !== 0x61);
  if (cs.length < 2) continue;
  probePretok(punct, 'a', cs).forEach((k, i) => { if (k === 'alone') sets.punct.add(cs[i]); });
  probePretok(digits, 'a', cs).forEach((k, i) => { if (k === 'alone') sets.numeric.add(cs[i]); });
  probePretok(wsplit, 'a', cs).forEach((k, i) => { if (k === 'gone') sets.whitespace.add(cs[i]); });
  // clean_text: 'a' c 'a' ...; removed chars vanish, whitespace becomes ' '
  {
    const out = [...clean.normalizeString(cs.map((c) => 'a' + S(c)).join('') + 'a')];
    let p = 0;
    for (const c of cs) {
      if (out[p] !== 'a') throw new Error('clean probe lost sync at ' + c.toString(16));
      p++;
      if (out[p] === 'a' && c !== 0x61) { sets.control.add(c); continue; }
      if (out[p] === ' ' && c !== 0x20) sets.bert_ws.add(c);
      p++;
    }
  }
  // Oniguruma classes (separator '!')
  {
    const cw = cs.filter((c) => c !== 0x21);
    probePretok(reW, '!', cw).forEach((k, i) => { if (k === 'alone') sets.onig_w.add(cw[i]); });
    probePretok(reS, '!', cw).forEach((k, i) => { if (k === 'gone') sets.onig_s.add(cw[i]); });
    probePretok(reD, '!', cw).forEach((k, i) => { if (k === 'alone') sets.onig_d.add(cw[i]); });
  }
  // \w \s: separator '!' (neither word nor space)
  {
    const cw = cs.filter((c) => c !== 0x21);
    probePretok(wspace, '!', cw).forEach((k, i) => {
      if (k === 'gone') sets.space.add(cw[i]);
      else if (k === 'alone') sets.word.add(cw[i]);
    });
  }
  // case mapping and normalization forms, separator U+0001
  cs = cs0.filter((c) => c !== 1);
  probeNorm(lower, '\u0001', cs).forEach((r, i) => { if (r !== S(cs[i])) maps.lower.push([cs[i], r]); });
  for (const f of Object.keys(nfs))
    probeNorm(nfs[f], '\u0001', cs).forEach((r, i) => { if (r !== S(cs[i])) maps[f].push([cs[i], r]); });
  // Mn among NFD-stable chars; combining marks (StripAccents)
  probeNorm(stripAcc, '\u0001', cs).forEach((r, i) => { if (r === '') sets.combining.add(cs[i]); });
  const nfdSame = new Set();
  probeNorm(nfs.nfd, '\u0001', cs).forEach((r, i) => { if (r === S(cs[i])) nfdSame.add(cs[i]); });
  const stable = cs.filter((c) => nfdSame.has(c));
  probeNorm(strip, '\u0001', stable).forEach((r, i) => { if (r === '') sets.mn.add(stable[i]); });
}
// 'a' (0x61) and '!' (0x21) and U+0001 were separators: their classes are ASCII-obvious
sets.word.add(0x61);
sets.punct.add(0x21);
sets.control.add(0x01);
sets.bert_ws.add(0x20);
for (const k of Object.keys(sets)) res[k] = toRanges(sets[k]);
for (const k of Object.keys(maps)) res[k] = maps[k];
fs.writeFileSync(process.argv[2], JSON.stringify(res));
console.log('unicode_props: ' + Object.keys(res).map((k) => `${k} ${res[k].length}`).join(', '));
