#!/usr/bin/env bash
# bench/tokenizer.sh - tokenizer throughput (tokens/s, MB/s) on the text of R-intro.pdf, one
# text per line and the whole text, for both ../shared fixtures, next to Hugging Face
# tokenizers (Rust, via npm @anush008/tokenizers) measured in the same run on the same input:
# sequential encode() calls, encodeBatch() (all cores) and the whole text.
# Called by bench/run.sh; standalone: bench/tokenizer.sh [BUILD]. Writes bench/out/tokenizer.json.
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-${BUILD:-build}}
SHARED=${SHARED:-$(cd .. && pwd)/shared}
RUNS=${RUNS:-3}
OUT=bench/out
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pdftotext "$SHARED/corpus/R-intro.pdf" "$TMP/R-intro.txt"
[ -x "$BUILD/bench/bench_tokenizer" ] || make -s "$BUILD/bench/bench_tokenizer"
echo "[" > "$OUT/tokenizer.json"
first=1
for name in bge-wordpiece model2vec-bge-base-q128; do
    tj="$SHARED/fixtures/$name/tokenizer.json"
    ours=$("$BUILD/bench/bench_tokenizer" "$tj" "$TMP/R-intro.txt" "$RUNS")
    ref=$(node tests/ref/bench_tokens.js "$tj" "$TMP/R-intro.txt" "$RUNS")
    [ $first = 1 ] || echo "," >> "$OUT/tokenizer.json"
    first=0
    echo "{\"name\": \"$name\", \"embtune\": $ours, \"hf_tokenizers\": $ref}" >> "$OUT/tokenizer.json"
    node -e '
      const o = JSON.parse(process.argv[1]), r = JSON.parse(process.argv[2]), name = process.argv[3];
      const f = (b, t, s) => `${(b / s / 1e6).toFixed(2)} MB/s ${(t / s / 1e6).toFixed(2)} Mtok/s`;
      console.log(`tokenizer ${name}: lines  embtune ${f(o.lines.bytes, o.lines.tokens, o.lines.seconds)}` +
        ` | HF encode ${f(r.bytes, r.tokens.seq, r.seconds.seq)} (x${(r.seconds.seq / o.lines.seconds).toFixed(2)})` +
        ` | HF encodeBatch ${f(r.bytes, r.tokens.batch, r.seconds.batch)} (x${(r.seconds.batch / o.lines.seconds).toFixed(2)})`);
      console.log(`tokenizer ${name}: whole  embtune ${f(o.whole.bytes, o.whole.tokens, o.whole.seconds)}` +
        ` | HF ${f(r.bytes, r.tokens.whole, r.seconds.whole)} (x${(r.seconds.whole / o.whole.seconds).toFixed(2)})`);
    ' "$ours" "$ref" "$name"
done
echo "]" >> "$OUT/tokenizer.json"
