// gen_texts.js - the deterministic text set for the tokenizer golden tests.
//
//   node gen_texts.js OUT.jsonl [R-intro.txt]
//
// One JSON object per line: {"t": "hex of the UTF-8 text"} or {"b": "hex bytes"} (raw bytes,
// may be invalid UTF-8; the reference decodes them with Node's lossy UTF-8 decoder, which replaces maximal
// invalid subparts with U+FFFD exactly as Rust's String::from_utf8_lossy does).
// Categories: accents and combining marks, CJK, emoji (ZWJ, skin tones, flags), control
// and zero-width characters, every Unicode space, words over 100 characters, texts over
// 10k tokens, real text (pdftotext of R-intro.pdf), punctuation soup, digits, added-token
// look-alikes, seeded random Unicode strings and random bytes.
'use strict';
const fs = require('fs');

let seed = 0x5eed1234;
function rnd() { // mulberry32
  seed = (seed + 0x6D2B79F5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ri = (n) => Math.floor(rnd() * n);
const pick = (a) => a[ri(a.length)];
const cp = (c) => String.fromCodePoint(c);

const out = [];
const T = (s) => out.push({t: s});

// -- fixed cases -------------------------------------------------------------------------
const SPACES = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x2001, 0x2002,
  0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F,
  0x3000];
const ZW = [0x200B, 0x200C, 0x200D, 0xFEFF, 0x2060, 0x00AD, 0x180E];
const CONTROLS = [0x00, 0x01, 0x07, 0x08, 0x1B, 0x1F, 0x7F, 0x80, 0x9F, 0xFFFD, 0xE000, 0xF8FF,
  0x0600, 0x061C, 0x200E, 0x200F, 0x202A, 0x202E, 0xFFF9, 0x110BD, 0xE0001, 0xE0041, 0xF0000];
for (const s of SPACES) { T('a' + cp(s) + 'b'); T(cp(s)); T('Hello' + cp(s) + cp(s) + 'World' + cp(s)); }
T(SPACES.map(cp).join(''));
T('x' + SPACES.map(cp).join('y') + 'z');
for (const z of ZW) { T('zero' + cp(z) + 'width'); T(cp(z) + 'start'); T('end' + cp(z)); }
for (const c of CONTROLS) { T('ctl' + cp(c) + 'char'); T(cp(c)); T(cp(c) + ' x ' + cp(c)); }
T('');
T(' ');
T('   leading and trailing   ');
T('\t\ttabs\tand\nnewlines\r\n');

const ACCENTS = ['café', 'naïve', 'résumé', 'Ångström', 'Crème Brûlée', 'Ærøskøbing', 'ÉTÉ',
  'İstanbul', 'ŞİŞLİ', 'straße', 'STRASSE', 'Ǆemal', 'ǅ', 'ﬁnance ﬂow', 'Ⅻ', '①②③', '㎏ ㍿',
  'e\u0301 e\u0300\u0301 a\u0308\u0304', 'o\u0302\u0323 vs \u1ED9', '\u1E9B\u0323',
  'Cụ thể, bạn sẽ tham gia một nhóm các giám đốc điều hành tổ chức…',
  'ำน\u0E49ำ3ลำ', 'ậ…', 'e\u0304\u0304\u0304o', '\u0915\u094D\u0937 क्षत्रिय', 'Ελληνικά ΆΈΉ',
  'Ωμέγα ὥρα ᾯ', 'русский ЁЖЗ ё', 'עִבְרִית', 'العَرَبِيَّة', '한국어 한글 각', 'ＦＵＬＬ ｗｉｄｔｈ ＡＢＣ１２３',
  'ｶﾀｶﾅ ﾊﾟﾋﾟ', 'Ⓐⓑⓒ 🄰🄱', 'ℌℍℎ ℵ', 'ΣΑΣ σας ς', 'ᾼ ᾳ ῼ', 'K Å Ω (compat)', 'ǰ̌', '\u0344\u0340'];
for (const a of ACCENTS) { T(a); T(a.toUpperCase()); T('[' + a + ']'); }
const CJK = ['東京', '北京大学', '日本語のテキスト', '中文分词测试，标点符号。', '𠀀𠀁𪚲 ext-B', '𱍐 ext-G',
  '豈 更 compat', '㐀㐁 ext-A', 'かなカナ漢字混在', 'Mixed 中文 and English 123', '⺀⻳ radicals'];
for (const c of CJK) T(c);
const EMOJI = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇫🇷🇯🇵', '❤️', '🧑🏿‍💻', 'a😀b', '🥰🫠🪿', '#️⃣ 1️⃣',
  '👩🏻‍❤️‍💋‍👨🏼', '☺︎ vs ☺️', 'emoji😀inside😀words', '🏴󠁧󠁢󠁳󠁣󠁴󠁿 flag tag'];
for (const e of EMOJI) { T(e); T('Text with ' + e + ' emoji.'); }
const long1 = 'a'.repeat(100), long2 = 'b'.repeat(101);
T(long1); T(long2); T('x ' + long2 + ' y'); T('é'.repeat(100)); T('é'.repeat(101));
T('supercalifragilisticexpialidocious'.repeat(4));
T('東'.repeat(150));
T('antidisestablishmentarianism'.repeat(5) + ' short');
T('😀'.repeat(120));
const PUNCT = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~¡¿«»‹›“”‘’„‟–—―…‰′″‴§¶†‡•‣⁂※‽⁇⁈⁉、。〃〈〉《》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰・｡｢｣､･！＂＃％＆＇（）＊，－．／：；？＠［＼］＿｛｝⸮⸰⹂⹏⹐';
T(PUNCT); T(PUNCT.split('').join(' ')); T('a' + PUNCT + 'b');
for (let i = 0; i < 40; i++) { let s = ''; for (let k = 0; k < 30; k++) s += pick([...PUNCT, ' ', 'a', '1']); T(s); }
T('0123456789'); T('3.14159 2,718 1e-10 -42 +7 ١٢٣ ۴۵۶ ०१२ ๑๒๓ ⅓ ½ ² ³ ₁₂ ⑳ 〇 Ⅷ');
T('Phone: +1 (555) 123-4567, ZIP 90210, IP 192.168.0.1, v1.2.3-beta');
for (let i = 0; i < 20; i++) { let s = ''; for (let k = 0; k < 20; k++) s += pick(['1', '22', '333', ' ', '.', ',', '٣', '½', 'a']); T(s); }
// added-token look-alikes (special tokens of the fixtures and the derived tokenizers)
for (const s of ['[CLS] hello [SEP]', '[CLS][SEP][PAD][MASK][UNK]', 'x[MASK]y', '[mask] lower', '[ CLS ]',
  '<s> hi </s>', '<mask>', 'a <mask> b', 'a<mask>b', 'Hi <mask> there\t<mask>\t<mask>\u2000', '<pad><unk>',
  '<s><s></s>', '[UNK]', 'my name is ony', 'Anthony ony', 'ony', ' <mask> ', 'TODO: fixme', 'todo fixme',
  'hello world HELLO WORLD', 'a<sep>b <SEP> c', 'foo__bar', '<|endoftext|>', '[CLS]東京[SEP]'])
  { T(s); T(s.toUpperCase()); }

// -- real text: lines of R-intro.pdf -------------------------------------------------------
if (process.argv[3] && fs.existsSync(process.argv[3])) {
  const lines = fs.readFileSync(process.argv[3], 'utf8').split('\n').filter((l) => l.trim().length);
  const step = Math.max(1, Math.floor(lines.length / 1500));
  for (let i = 0; i < lines.length; i += step) T(lines[i]);
  // texts over 10k tokens: big chunks of the manual, with its layout whitespace
  T(lines.slice(0, 2500).join('\n'));
  T(lines.slice(2500, 5000).join(' '));
  T(lines.slice(1000, 1400).join('\n\n'));
}
// a long synthetic text (over 10k tokens for every tokenizer)
{ let s = ''; for (let i = 0; i < 12000; i++) s += pick(['the', 'data', 'frame', 'R', 'is', 'a', 'language', ',', '.', '東', 'é', '😀', '42']) + ' '; T(s); }

// -- seeded random Unicode strings ------------------------------------------------------------
const RANGES = [
  [0x20, 0x7E, 30], [0x09, 0x0D, 3], [0x00, 0x1F, 1], [0x80, 0xFF, 6], [0x100, 0x24F, 4],
  [0x300, 0x36F, 6], [0x370, 0x3FF, 3], [0x400, 0x4FF, 3], [0x590, 0x5FF, 2], [0x600, 0x6FF, 3],
  [0x900, 0x97F, 3], [0xE00, 0xE7F, 2], [0x1100, 0x11FF, 2], [0x1AB0, 0x1AFF, 1], [0x1DC0, 0x1DFF, 1],
  [0x1E00, 0x1FFF, 3], [0x2000, 0x206F, 4], [0x2070, 0x2BFF, 4], [0x2E00, 0x2E7F, 2],
  [0x3000, 0x30FF, 4], [0x3400, 0x4DBF, 2], [0x4E00, 0x9FFF, 6], [0xA000, 0xABFF, 2],
  [0xAC00, 0xD7A3, 4], [0xE000, 0xF8FF, 1], [0xF900, 0xFAFF, 2], [0xFB00, 0xFDFF, 2],
  [0xFE00, 0xFE6F, 2], [0xFF00, 0xFFEF, 3], [0xFFF0, 0xFFFF, 1], [0x10000, 0x1FFFF, 3],
  [0x1F000, 0x1FAFF, 6], [0x20000, 0x2FA1F, 3], [0x30000, 0x323AF, 1], [0xE0000, 0xE01EF, 1],
  [0x0378, 0x0379, 1], [0x50000, 0x10FFFF, 1],
];
const TOTAL = RANGES.reduce((a, r) => a + r[2], 0);
function rcp() {
  let x = rnd() * TOTAL;
  for (const [lo, hi, w] of RANGES) {
    if (x < w) return lo + ri(hi - lo + 1);
    x -= w;
  }
  return 0x41;
}
for (let i = 0; i < 3000; i++) {
  const n = ri(i % 10 === 0 ? 200 : 40);
  let s = '';
  for (let k = 0; k < n; k++) s += cp(rcp());
  T(s);
}
// words of random letters with spaces (exercise WordPiece splitting)
for (let i = 0; i < 300; i++) {
  let s = '';
  const n = 1 + ri(12);
  for (let k = 0; k < n; k++) {
    const wl = 1 + ri(14);
    for (let q = 0; q < wl; q++) s += pick('abcdefghijklmnopqrstuvwxyzéèàüößABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789');
    s += pick([' ', ' ', ' ', '-', '.', ', ', '\n', "'"]);
  }
  T(s);
}
// -- random bytes (invalid UTF-8) -------------------------------------------------------------
for (let i = 0; i < 300; i++) {
  const n = ri(24);
  const b = [];
  for (let k = 0; k < n; k++) {
    const r = rnd();
    b.push(r < 0.4 ? 0x61 + ri(26) : r < 0.5 ? 0x20 : r < 0.75 ? 0x80 + ri(64) : 0xC0 + ri(64));
  }
  out.push({b: Buffer.from(b).toString('hex')});
}
for (const h of ['ff', 'c0af', 'e080af', 'eda080', 'f4908080', 'f09f98', 'e2', '61ff62', 'c3', 'efbbbf61'])
  out.push({b: h});

// hex keeps NULs and every other byte intact through any JSON parser
const enc = (o) => o.b !== undefined ? {b: o.b} : {t: Buffer.from(o.t, 'utf8').toString('hex')};
fs.writeFileSync(process.argv[2], out.map((o) => JSON.stringify(enc(o))).join('\n') + '\n');
console.log(`gen_texts: ${out.length} texts -> ${process.argv[2]}`);
