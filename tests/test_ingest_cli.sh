#!/usr/bin/env bash
# test_ingest_cli.sh - `embtune ingest` end to end: a folder with good and bad
# files (corrupt, encrypted, image-only and truncated PDFs, a binary file, an
# empty file), the warnings and summary, determinism, --strict leaving the old
# output untouched, --include/--exclude, usage errors, and the chunk budget
# checked with the real Hugging Face tokenizer (bge WordPiece) on the corpus,
# with the estimate and with -m (exact counts, max length cap).
set -u
cd "$(dirname "$0")/.."
OUT=$BUILD/test-out/ingest_cli
rm -rf "$OUT"
mkdir -p "$OUT/in/sub" "$OUT/in/.hidden"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() { if eval "$1"; then :; else fail "$2"; fi; }

python3 tests/make_test_pdfs.py "$OUT/in" || { echo "FAIL: make_test_pdfs.py"; exit 1; }
: > "$OUT/in/empty.txt"
printf 'ELF\x00\x01\x02\x03binary\x00\x00\xff\xfe' > "$OUT/in/data.txt"
printf 'caf\xe9 cr\xe8me br\xfbl\xe9e is a dessert. It is sweet.\n' > "$OUT/in/sub/notes.txt"
cat > "$OUT/in/sub/guide.md" <<'EOF'
# Install guide

Run the *installer* and follow [the docs](http://example.org). It takes e.g. two minutes.

```sh
./configure --prefix=/usr
make install
```
EOF
cat > "$OUT/in/sub/page.html" <<'EOF'
<html><head><script>var secret = "SCRIPTTEXT";</script><style>p{}</style></head>
<body><nav>NAVTEXT Home About</nav><h1>Widget &amp; Co.</h1><p>Widgets are small devices.</p>
<footer>FOOTERTEXT 2024</footer></body></html>
EOF
echo "should not be read" > "$OUT/in/sub/ignored.xyz"
echo "hidden text" > "$OUT/in/.hidden/secret.txt"

# 1. default run: bad files skipped with a warning naming them, counted in the summary
"$EMBTUNE" ingest "$OUT/in" -o "$OUT/chunks.jsonl" 2> "$OUT/err1.txt"
rc=$?
cat "$OUT/err1.txt"
check "[ $rc = 0 ]" "ingest of a mixed folder exited $rc"
for f in image.pdf encrypted.pdf corrupt.pdf truncated.pdf empty.txt data.txt; do
    check "grep -q 'skipped .*$f' '$OUT/err1.txt'" "no warning naming $f"
done
check "grep -q 'skipped 6 files: 1 empty, 1 binary, 1 encrypted, 2 corrupt, 1 no text' '$OUT/err1.txt'" \
    "summary of skipped files missing or wrong"
check "grep -q 'ingest: 4 files, 6 pages' '$OUT/err1.txt'" "summary: expected 4 files, 6 pages"

python3 - "$OUT/chunks.jsonl" <<'EOF' || fails=$((fails + 1))
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
docs = {r["doc"] for r in rows}
text = "\n".join(r["text"] for r in rows)
bad = []
want_docs = {"text.pdf", "sub/guide.md", "sub/page.html", "sub/notes.txt"}
if docs != want_docs: bad.append("docs %s != %s" % (sorted(docs), sorted(want_docs)))
for needle in ["ACME Corp Annual Report", "Page 1 of 6", "docu-", "SCRIPTTEXT", "NAVTEXT", "FOOTERTEXT",
               "should not be read", "hidden text", "*installer*", "http://example.org"]:
    if needle in text: bad.append("found %r" % needle)
for needle in ["presented the document to the board", "Widget & Co.", "Widgets are small devices.",
               "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e", "./configure --prefix=/usr\nmake install",
               "Run the installer and follow the docs."]:
    if needle not in text: bad.append("missing %r" % needle)
for r in rows:
    if not r["text"].strip(): bad.append("empty chunk " + r["id"])
    if r["n_tokens"] > 256: bad.append("chunk over budget " + r["id"])
    if r["doc"] == "text.pdf" and not (1 <= r["page_start"] <= r["page_end"] <= 6): bad.append("pages %r" % r)
    if r["doc"] != "text.pdf" and (r["page_start"], r["page_end"]) != (0, 0): bad.append("pages %r" % r)
if len({r["id"] for r in rows}) != len(rows): bad.append("duplicate ids")
for b in bad: print("FAIL:", b)
print("chunks: %d from %d documents" % (len(rows), len(docs)))
sys.exit(1 if bad else 0)
EOF

# 2. deterministic: a second run is byte-identical
"$EMBTUNE" ingest "$OUT/in" -o "$OUT/chunks2.jsonl" -q
check "cmp -s '$OUT/chunks.jsonl' '$OUT/chunks2.jsonl'" "second run differs"

# 3. --strict: fails on the first bad file, the previous output stays as it was
cp "$OUT/chunks.jsonl" "$OUT/before.jsonl"
"$EMBTUNE" ingest "$OUT/in" -o "$OUT/chunks.jsonl" --strict 2> "$OUT/err3.txt"
rc=$?
check "[ $rc = 1 ]" "--strict exited $rc, want 1"
check "grep -q 'strict mode' '$OUT/err3.txt' && grep -Eq '(corrupt|encrypted|image|truncated)\.pdf|data\.txt|empty\.txt' '$OUT/err3.txt'" \
    "--strict error does not name the file: $(cat "$OUT/err3.txt")"
check "cmp -s '$OUT/chunks.jsonl' '$OUT/before.jsonl'" "--strict failure changed the existing output"
check "[ -z \"\$(ls '$OUT' | grep '\.tmp\.')\" ]" "temporary file left behind"

# 4. only bad inputs: an error, and no output file at all
"$EMBTUNE" ingest "$OUT/in/corrupt.pdf" "$OUT/in/empty.txt" -o "$OUT/none.jsonl" 2> "$OUT/err4.txt"
rc=$?
check "[ $rc = 1 ] && [ ! -e '$OUT/none.jsonl' ]" "only bad inputs: rc $rc, output exists: $(ls "$OUT")"

# 5. --include / --exclude
"$EMBTUNE" ingest "$OUT/in" -o "$OUT/md.jsonl" --include '*.md' -q
check "[ \"\$(python3 -c 'import json,sys; print(sorted({json.loads(l)[\"doc\"] for l in open(sys.argv[1])}))' '$OUT/md.jsonl')\" = \"['sub/guide.md']\" ]" \
    "--include '*.md' selected other files"
"$EMBTUNE" ingest "$OUT/in" -o "$OUT/nosub.jsonl" --exclude sub --exclude '*.txt' -q
check "! grep -q '\"doc\": \"sub/' '$OUT/nosub.jsonl' && grep -q '\"doc\": \"text.pdf\"' '$OUT/nosub.jsonl'" "--exclude sub failed"
"$EMBTUNE" ingest "$OUT/in" -o "$OUT/xyz.jsonl" --include '*.xyz' -q
check "grep -q 'should not be read' '$OUT/xyz.jsonl'" "--include '*.xyz' did not select the unknown extension"

# 5b. the same file reached twice (argument, directory walk, symlink) is read once
ln -sf guide.md "$OUT/in/sub/link.md"
"$EMBTUNE" ingest "$OUT/in/sub/guide.md" "$OUT/in/sub" -o "$OUT/dup.jsonl" 2> "$OUT/err5.txt"
check "grep -q 'ingest: 3 files' '$OUT/err5.txt'" "duplicate inputs not collapsed: $(tail -1 "$OUT/err5.txt")"
check "[ \"\$(grep -c 'Install guide' '$OUT/dup.jsonl')\" = 1 ]" "guide.md ingested more than once"
rm -f "$OUT/in/sub/link.md"

# 6. usage errors exit 2; a missing path exits 1 and names it
"$EMBTUNE" ingest "$OUT/in" 2>/dev/null; rc=$?
check "[ $rc = 2 ]" "missing -o: rc $rc"
"$EMBTUNE" ingest "$OUT/in" -o x --chunk-size 10 --chunk-overlap 10 2>/dev/null; rc=$?
check "[ $rc = 2 ]" "overlap >= size: rc $rc"
"$EMBTUNE" ingest "$OUT/in" -o x --bogus 2>/dev/null; rc=$?
check "[ $rc = 2 ]" "unknown option: rc $rc"
"$EMBTUNE" ingest "$OUT/does-not-exist" -o "$OUT/x.jsonl" 2> "$OUT/err6.txt"; rc=$?
check "[ $rc = 1 ] && grep -q does-not-exist '$OUT/err6.txt'" "missing path: rc $rc"

# 7. the corpus with the word-based estimate: no chunk over budget by the real bge tokenizer
"$EMBTUNE" ingest "$SHARED/corpus" -o "$OUT/corpus.jsonl" -q --chunk-size 128 --chunk-overlap 16
node - "$NODE_REF" "$SHARED/fixtures/bge-wordpiece/tokenizer.json" "$OUT/corpus.jsonl" 128 <<'EOF' || fails=$((fails + 1))
const [ref, tokPath, file, budget] = process.argv.slice(2);
const { Tokenizer } = require(ref + "/node_modules/@anush008/tokenizers");
const fs = require("fs");
(async () => {
  const tok = Tokenizer.fromFile(tokPath);
  const rows = fs.readFileSync(file, "utf8").split("\n").filter((l) => l).map((l) => JSON.parse(l));
  let max = 0, sum = 0, est = 0, over = 0;
  for (const r of rows) {
    const n = (await tok.encode(r.text, null, { addSpecialTokens: false })).getIds().length;
    sum += n; est += r.n_tokens; if (n > max) max = n; if (n > +budget) over++;
  }
  console.log(`bge WordPiece on ${rows.length} chunks (estimate budget ${budget}): max ${max} tokens, ` +
              `mean ${(sum / rows.length).toFixed(1)} (estimate mean ${(est / rows.length).toFixed(1)}), over budget: ${over}`);
  process.exit(over ? 1 : 0);
})();
EOF

# 8. -m: counts are the model tokenizer's, exactly (checked with Hugging Face tokenizers), and
#    the budget is capped at the model's max length minus its special tokens
mkdir -p "$OUT/m64"
ln -sf "$SHARED/fixtures/bge-wordpiece/tokenizer.json" "$OUT/m64/tokenizer.json"
echo '{"max_seq_length": 64, "do_lower_case": true}' > "$OUT/m64/sentence_bert_config.json"
"$EMBTUNE" ingest "$SHARED/corpus/R-data.pdf" -o "$OUT/bge.jsonl" -q -m "$SHARED/fixtures/bge-wordpiece"
"$EMBTUNE" ingest "$SHARED/corpus/R-data.pdf" -o "$OUT/m64.jsonl" -m "$OUT/m64" 2> "$OUT/err8.txt"
check "grep -q 'capped at 62 tokens' '$OUT/err8.txt'" "no note about the capped chunk size: $(cat "$OUT/err8.txt")"
"$EMBTUNE" ingest "$OUT/in/sub" -o "$OUT/m2v.jsonl" -q -m "$SHARED/fixtures/model2vec-bge-base-q128" --chunk-size 16 --chunk-overlap 4
node - "$NODE_REF" "$SHARED" "$OUT" <<'EOF2' || fails=$((fails + 1))
const [ref, shared, out] = process.argv.slice(2);
const { Tokenizer } = require(ref + "/node_modules/@anush008/tokenizers");
const fs = require("fs");
const runs = [[shared + "/fixtures/bge-wordpiece/tokenizer.json", out + "/bge.jsonl", 256, 258],  /* no model limit: 256 + [CLS] [SEP] */
              [shared + "/fixtures/bge-wordpiece/tokenizer.json", out + "/m64.jsonl", 62, 64],
              [shared + "/fixtures/model2vec-bge-base-q128/tokenizer.json", out + "/m2v.jsonl", 16, 16]];
(async () => {
  let bad = 0;
  for (const [tokPath, file, budget, maxlen] of runs) {
    const tok = Tokenizer.fromFile(tokPath);
    const rows = fs.readFileSync(file, "utf8").split("\n").filter((l) => l).map((l) => JSON.parse(l));
    let max = 0, maxSpecial = 0, mismatch = 0, over = 0;
    for (const r of rows) {
      const n = (await tok.encode(r.text, null, { addSpecialTokens: false })).getIds().length;
      const ns = (await tok.encode(r.text, null, { addSpecialTokens: true })).getIds().length;
      if (n !== r.n_tokens) mismatch++;
      if (n > budget || ns > maxlen) over++;
      max = Math.max(max, n); maxSpecial = Math.max(maxSpecial, ns);
    }
    console.log(file.split("/").pop() + ": " + rows.length + " chunks, max " + max + " tokens (" + maxSpecial +
                " with special tokens; limit " + maxlen + "), n_tokens != Hugging Face count: " + mismatch +
                ", over: " + over);
    if (mismatch || over || !rows.length) bad++;
  }
  process.exit(bad ? 1 : 0);
})();
EOF2

if [ $fails != 0 ]; then echo "test_ingest_cli: $fails failure(s)"; exit 1; fi
echo "test_ingest_cli: ok"
