// encode_ids.js TOKENIZER_JSON TEXTS_JSON MAX_LEN ADD_SPECIAL
// Golden token ids from Hugging Face tokenizers (@anush008/tokenizers, Rust):
// prints a JSON array with one id array per text. MAX_LEN > 0 truncates as
// HF does (special tokens included in the budget); ADD_SPECIAL 1/0.
const fs = require('fs');
const { Tokenizer } = require('@anush008/tokenizers');
async function main() {
  const [tokPath, textsPath, maxLen, addSpecial] = process.argv.slice(2);
  const tok = Tokenizer.fromFile(tokPath);
  if (parseInt(maxLen) > 0) tok.setTruncation(parseInt(maxLen));
  const texts = JSON.parse(fs.readFileSync(textsPath, 'utf8'));
  const out = [];
  for (const t of texts) {
    const enc = await tok.encode(t, null, { addSpecialTokens: addSpecial === '1' });
    out.push(enc.getIds());
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}
main().catch((e) => { console.error(e); process.exit(1); });
