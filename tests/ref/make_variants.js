// make_variants.js - tokenizer.json files derived from the ../shared fixtures that exercise
// every component embtune supports (normalizers, pre-tokenizers with all behaviors, models,
// post-processors, added tokens, a SentencePiece Precompiled charsmap), plus a vocab.txt +
// tokenizer_config.json model directory. Written to OUTDIR at test time, never committed.
//
//   node make_variants.js FIXTURES_DIR OUTDIR
//
// Prints one line per variant: "NAME MAXLENS OURS MODES": the golden is computed from
// OUTDIR/NAME.json; OURS ('-' = the same file) is what embtune loads; MODES the compared modes.
'use strict';
const fs = require('fs');
const path = require('path');

const [fixtures, outdir] = process.argv.slice(2);
fs.mkdirSync(outdir, {recursive: true});
const bge = JSON.parse(fs.readFileSync(path.join(fixtures, 'bge-wordpiece/tokenizer.json')));
const m2v = JSON.parse(fs.readFileSync(path.join(fixtures, 'model2vec-bge-base-q128/tokenizer.json')));
const clone = (o) => JSON.parse(JSON.stringify(o));
const lines = [];

function emit(name, tok, lens = '2,9,64', ours = '-', modes = 'snt') {
  fs.writeFileSync(path.join(outdir, name + '.json'), JSON.stringify(tok));
  lines.push(`${name} ${lens} ${ours} ${modes}`);
}
function wp(extra) {
  const t = clone(bge);
  t.added_tokens = [];
  t.normalizer = null; t.pre_tokenizer = null; t.post_processor = null;
  return Object.assign(t, extra);
}
function uni(extra) {
  const t = clone(m2v);
  t.normalizer = null; t.pre_tokenizer = null; t.post_processor = null;
  return Object.assign(t, extra);
}
const V = bge.model.vocab;
const cls = ['[CLS]', V['[CLS]']], sep = ['[SEP]', V['[SEP]']];
const tpl = (single, specials) => ({type: 'TemplateProcessing', single, pair: single.concat([]),
  special_tokens: specials});
const seqA = (type_id = 0) => ({Sequence: {id: 'A', type_id}});
const sp = (id, type_id = 0) => ({SpecialToken: {id, type_id}});
const stok = (id, ids, tokens) => ({[id]: {id, ids, tokens}});
const addedTok = (content, o = {}) => Object.assign({id: 0, content, single_word: false, lstrip: false,
  rstrip: false, normalized: false, special: false}, o);

// -- WordPiece (bge vocabulary) with other normalizers / pre-tokenizers / post-processors --
emit('wp-nfd-stripaccents', wp({
  normalizer: {type: 'Sequence', normalizers: [{type: 'NFD'}, {type: 'StripAccents'}, {type: 'Lowercase'}]},
  pre_tokenizer: {type: 'Whitespace'},
  post_processor: {type: 'BertProcessing', sep, cls}}));
emit('wp-nfkc-digits', wp({
  normalizer: {type: 'Sequence', normalizers: [{type: 'NFKC'}, {type: 'Lowercase'}]},
  pre_tokenizer: {type: 'Sequence', pretokenizers: [{type: 'WhitespaceSplit'},
    {type: 'Punctuation', behavior: 'Isolated'}, {type: 'Digits', individual_digits: true}]},
  post_processor: tpl([sp('[CLS]'), seqA(1), sp('[SEP]', 1), sp('[TWO]', 2)],
    Object.assign(stok('[CLS]', [cls[1]], ['[CLS]']), stok('[SEP]', [sep[1]], ['[SEP]']),
      stok('[TWO]', [7, 8], ['a', 'b'])))}), '5,9,64');
emit('wp-nfc-bert', wp({
  normalizer: {type: 'Sequence', normalizers: [{type: 'NFC'},
    {type: 'BertNormalizer', clean_text: true, handle_chinese_chars: false, strip_accents: false, lowercase: true}]},
  pre_tokenizer: {type: 'Sequence', pretokenizers: [{type: 'Digits', individual_digits: false},
    {type: 'BertPreTokenizer'}]}}));
emit('wp-nfkd-bert-noclean', wp({
  normalizer: {type: 'Sequence', normalizers: [{type: 'NFKD'},
    {type: 'BertNormalizer', clean_text: false, handle_chinese_chars: true, strip_accents: true, lowercase: false},
    {type: 'Lowercase'}]},
  pre_tokenizer: {type: 'BertPreTokenizer'}}));
for (const b of ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous']) {
  emit('wp-punct-' + b, wp({
    normalizer: bge.normalizer,
    pre_tokenizer: {type: 'Sequence', pretokenizers: [{type: 'WhitespaceSplit'}, {type: 'Punctuation', behavior: b}]}}),
  '5', '-', 'sn');
  for (const invert of [false, true])
    emit(`wp-split-${b}-${invert ? 'inv' : 'fwd'}`, wp({
      normalizer: {type: 'Lowercase'},
      pre_tokenizer: {type: 'Sequence', pretokenizers: [
        {type: 'Split', pattern: {Regex: invert ? "\\w+|[^\\w\\s]+" : "\\s+|(?<=\\d)(?=\\D)"}, behavior: b, invert},
        {type: 'Split', pattern: {String: '-'}, behavior: b, invert: false}]}}), '5', '-', 'sn');
}
emit('wp-replace-prepend-strip', wp({
  normalizer: {type: 'Sequence', normalizers: [
    {type: 'Strip', strip_left: true, strip_right: true},
    {type: 'Replace', pattern: {Regex: '\\s+'}, content: ' '},
    {type: 'Replace', pattern: {String: 'ß'}, content: 'ss'},
    {type: 'Replace', pattern: {Regex: '[0-9]+'}, content: '#'},
    {type: 'Replace', pattern: {String: 'ab'}, content: ''},
    {type: 'Prepend', prepend: '>'},
    {type: 'Lowercase'}]},
  pre_tokenizer: {type: 'Whitespace'}}), '4');
emit('wp-strip-left', wp({
  normalizer: {type: 'Sequence', normalizers: [{type: 'Strip', strip_left: true, strip_right: false},
    {type: 'Lowercase'}, {type: 'Strip', strip_left: false, strip_right: true}]},
  pre_tokenizer: {type: 'Split', pattern: {String: ' '}, behavior: 'MergedWithNext', invert: false}}), '4');
{ // another continuing-subword prefix and a small max_input_chars_per_word
  const t = wp({normalizer: bge.normalizer, pre_tokenizer: {type: 'BertPreTokenizer'}});
  const v = {};
  for (const [k, id] of Object.entries(t.model.vocab)) v[k.startsWith('##') ? '@@' + k.slice(2) : k] = id;
  t.model.vocab = v;
  t.model.continuing_subword_prefix = '@@';
  t.model.max_input_chars_per_word = 7;
  emit('wp-prefix-maxchars', t, '4', '-', 'sn');
}
// added tokens with every flag (WordPiece)
emit('wp-added', wp({
  normalizer: bge.normalizer, pre_tokenizer: {type: 'BertPreTokenizer'},
  post_processor: {type: 'BertProcessing', sep, cls},
  added_tokens: [
    addedTok('[PAD]', {special: true}), addedTok('[UNK]', {special: true}), addedTok('[CLS]', {special: true}),
    addedTok('[SEP]', {special: true}), addedTok('[MASK]', {special: true, lstrip: true}),
    addedTok('<mask>', {special: true, lstrip: true, rstrip: true, single_word: true}),
    addedTok('TODO', {normalized: true, single_word: true}), addedTok('FIXME', {normalized: false}),
    addedTok('ony', {normalized: true, single_word: true}), addedTok('<sep>', {rstrip: true}),
    addedTok('hello world', {normalized: true}), addedTok('東京', {normalized: true}),
    addedTok('new_token_xyz', {}), addedTok('another_one', {special: true})]}));

// -- Unigram (model2vec vocabulary): Metaspace variants, XLM-R style, byte fallback -----------
for (const [name, ms] of [
  ['always-split', {prepend_scheme: 'always', split: true}],
  ['first-split', {prepend_scheme: 'first', split: true}],
  ['never-split', {prepend_scheme: 'never', split: true}],
  ['first-nosplit', {prepend_scheme: 'first', split: false}],
  ['legacy-noprefix', {add_prefix_space: false, prepend_scheme: 'never'}],
  ['legacy-prefix', {add_prefix_space: true, str_rep: '▁'}]]) {
  emit('uni-metaspace-' + name, uni({
    normalizer: {type: 'Sequence', normalizers: [m2v.normalizer.normalizers[0]]},
    pre_tokenizer: Object.assign({type: 'Metaspace', replacement: '▁'}, ms),
    added_tokens: m2v.added_tokens.concat([addedTok('<x>', {special: true})])}), '2,17', '-', 'sn');
}
emit('uni-whitespace-seq', uni({
  normalizer: {type: 'Lowercase'},
  pre_tokenizer: {type: 'Sequence', pretokenizers: [{type: 'WhitespaceSplit'},
    {type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true}]}}), '3', '-', 'sn');
function xlmr(post, extraNorm) {
  const t = clone(m2v);
  const rest = m2v.model.vocab.filter(([p]) => p !== '[PAD]' && p !== '[UNK]');
  t.model = {type: 'Unigram', unk_id: 3, byte_fallback: false,
    vocab: [['<s>', 0], ['<pad>', 0], ['</s>', 0], ['<unk>', 0]].concat(rest, [['<mask>', 0]])};
  t.added_tokens = [addedTok('<s>', {special: true}), addedTok('<pad>', {special: true}),
    addedTok('</s>', {special: true}), addedTok('<unk>', {special: true}),
    addedTok('<mask>', {special: true, lstrip: true})];
  t.normalizer = {type: 'Sequence', normalizers: (extraNorm || []).concat([
    {type: 'Replace', pattern: {Regex: ' {2,}'}, content: ' '}, {type: 'Lowercase'}])};
  t.pre_tokenizer = {type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true};
  t.post_processor = post;
  return t;
}
emit('uni-xlmr-roberta', xlmr({type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 0],
  trim_offsets: true, add_prefix_space: true}));
emit('uni-xlmr-roberta-notrim', xlmr({type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 0],
  trim_offsets: false, add_prefix_space: false}), '5');
emit('uni-xlmr-template', xlmr(tpl([sp('<s>'), seqA(), sp('</s>')],
  Object.assign(stok('<s>', [0], ['<s>']), stok('</s>', [2], ['</s>'])))));
emit('uni-xlmr-sequence-post', xlmr({type: 'Sequence', processors: [
  {type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 0], trim_offsets: true, add_prefix_space: true},
  tpl([seqA(1), sp('</s>')], stok('</s>', [2], ['</s>']))]}), '5');
{ // byte fallback
  const t = uni({normalizer: {type: 'Lowercase'},
    pre_tokenizer: {type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true}});
  for (let b = 0; b < 256; b++) t.model.vocab.push([`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, -20]);
  t.model.byte_fallback = true;
  emit('uni-byte-fallback', t, '4', '-', 'sn');
}

// -- Precompiled (SentencePiece charsmap) ---------------------------------------------------------
// A darts-clone double array as sentencepiece serializes it (charsmap.js); rules: NFKC of a range of
// compat characters, removal of zero-width and control characters, a few multi-char graphemes.
const {buildCharsmap} = require('./charsmap.js');
{
  const rules = [];
  const seen = new Set();
  const add = (f, t) => { if (!seen.has(f)) { seen.add(f); rules.push([f, t]); } };
  for (const [lo, hi] of [[0xA0, 0x17F], [0x2000, 0x2BFF], [0x3000, 0x33FF], [0xFB00, 0xFB4F], [0xFE30, 0xFFEF],
    [0x1D400, 0x1D7FF], [0x1F100, 0x1F1FF]]) {
    for (let c = lo; c <= hi; c++) {
      const s = String.fromCodePoint(c), k = s.normalize('NFKC');
      if (k !== s) add(s, k);
    }
  }
  for (const z of [0x200B, 0x200C, 0x200D, 0xFEFF, 0x00AD, 0x0000, 0x0001, 0x007F, 0x200E]) add(String.fromCodePoint(z), '');
  for (const c of [0x09, 0x0A, 0x0D]) add(String.fromCodePoint(c), ' ');
  add('e\u0301', 'é'); add('a\u0308', 'ä'); add('\u0915\u094D', 'K'); add('👍🏽', '👍');
  add('Ǆ', 'DŽ'); add('…', '...'); add('ﬁ', 'fi');
  const cm = buildCharsmap(rules);
  for (const [name, pre] of [['uni-precompiled', 'Metaspace'], ['wp-precompiled', 'Bert']]) {
    const norm = {type: 'Sequence', normalizers: [{type: 'Precompiled', precompiled_charsmap: cm},
      {type: 'Replace', pattern: {Regex: ' {2,}'}, content: ' '}]};
    if (pre === 'Metaspace')
      emit(name, uni({normalizer: norm, pre_tokenizer: {type: 'Metaspace', replacement: '▁',
        prepend_scheme: 'always', split: true}}), '3,40', '-', 'sn');
    else
      emit(name, wp({normalizer: {type: 'Sequence', normalizers: [norm, {type: 'Lowercase'}]},
        pre_tokenizer: {type: 'BertPreTokenizer'}}), '3,40', '-', 'sn');
  }
}

// -- vocab.txt + tokenizer_config.json (BertTokenizerFast) ----------------------------------------
// The golden comes from the tokenizer.json transformers' BertConverter would build.
function vocabDir(name, cfg) {
  const dir = path.join(outdir, name);
  fs.mkdirSync(dir, {recursive: true});
  const byId = [];
  for (const [k, id] of Object.entries(V)) byId[id] = k;
  fs.writeFileSync(path.join(dir, 'vocab.txt'), byId.join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
  const lower = cfg.do_lower_case !== undefined ? cfg.do_lower_case : true;
  const t = wp({
    normalizer: {type: 'BertNormalizer', clean_text: true,
      handle_chinese_chars: cfg.tokenize_chinese_chars !== undefined ? cfg.tokenize_chinese_chars : true,
      strip_accents: cfg.strip_accents !== undefined ? cfg.strip_accents : null, lowercase: lower},
    pre_tokenizer: {type: 'BertPreTokenizer'},
    post_processor: tpl([sp('[CLS]'), seqA(), sp('[SEP]')],
      Object.assign(stok('[CLS]', [V['[CLS]']], ['[CLS]']), stok('[SEP]', [V['[SEP]']], ['[SEP]']))),
    added_tokens: ['[UNK]', '[SEP]', '[PAD]', '[CLS]', '[MASK]'].map((c) => addedTok(c, {special: true}))});
  emit(name, t, '2,9,64', dir, 'snt');
}
vocabDir('vocab-txt-lower', {do_lower_case: true, cls_token: '[CLS]', model_max_length: 512});
vocabDir('vocab-txt-cased', {do_lower_case: false, tokenize_chinese_chars: false, strip_accents: true,
  mask_token: {content: '[MASK]', lstrip: false, rstrip: false, normalized: false}});

process.stdout.write(lines.join('\n') + '\n');
