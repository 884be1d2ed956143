#!/usr/bin/env bash
# test_tokenizer_golden.sh - our tokenizer against the real Hugging Face tokenizers (Rust,
# npm @anush008/tokenizers) on a deterministic text set: ids, type ids, special-tokens mask
# and offsets, with and without special tokens and with truncation; for both ../shared
# fixtures and tokenizers derived from them at test time (tests/ref/make_variants.js).
# Also checks 14 Unicode properties for every code point against the reference.
# Reference outputs are cached in $BUILD/test-out/tok keyed by the hash of their inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SHARED=${SHARED:-../shared}
NODE_REF=${NODE_REF:-tests/ref}
OUT=$BUILD/test-out/tok
mkdir -p "$OUT"
T=$BUILD/tests/test_tokenizer
fail=0

key_of() { cat "$@" | sha256sum | cut -c1-16; }

# -- text set ------------------------------------------------------------------------------
if [ ! -s "$OUT/R-intro.txt" ]; then
    pdftotext "$SHARED/corpus/R-intro.pdf" "$OUT/R-intro.txt"
fi
node "$NODE_REF/gen_texts.js" "$OUT/texts.jsonl" "$OUT/R-intro.txt" >/dev/null
head -n 1100 "$OUT/texts.jsonl" > "$OUT/texts_small.jsonl"
# the random strings and random bytes are at the end: keep them in the small set too
tail -n 700 "$OUT/texts.jsonl" >> "$OUT/texts_small.jsonl"

# Under the sanitizers (make check: 10x slower) the fixtures get the small set and the derived
# tokenizers a tiny one (the first 300 texts + the last 300: random strings and bytes).
BIG=$OUT/texts.jsonl SMALL=$OUT/texts_small.jsonl
case $BUILD in *asan*)
    head -n 300 "$OUT/texts.jsonl" > "$OUT/texts_tiny.jsonl"
    tail -n 300 "$OUT/texts.jsonl" >> "$OUT/texts_tiny.jsonl"
    BIG=$OUT/texts_small.jsonl SMALL=$OUT/texts_tiny.jsonl ;;
esac

# -- Unicode properties ----------------------------------------------------------------------
k=$(key_of "$NODE_REF/unicode_props.js" "$NODE_REF/package-lock.json")
if [ ! -s "$OUT/uprops.$k.json" ]; then
    node "$NODE_REF/unicode_props.js" "$OUT/uprops.$k.json"
fi
PROPS="$OUT/uprops.$k.json"
if ! "$T" --unicode "$PROPS" > "$OUT/unicode.log"; then
    cat "$OUT/unicode.log"; fail=1
fi
tail -n 4 "$OUT/unicode.log"

# -- golden encodings -----------------------------------------------------------------------
# Jobs: NAME REFERENCE_JSON TEXTS MAXLENS OURS MODES. The references of all jobs whose inputs
# changed are computed in one node process, then each job is compared.
jobs=$OUT/jobs.txt
: > "$jobs"
add_job() { echo "$*" >> "$jobs"; }
add_job bge-wordpiece "$SHARED/fixtures/bge-wordpiece/tokenizer.json" "$BIG" 3,16,128 - snt
add_job model2vec-unigram "$SHARED/fixtures/model2vec-bge-base-q128/tokenizer.json" "$BIG" 1,16,128 - snt
node "$NODE_REF/make_variants.js" "$SHARED/fixtures" "$OUT/variants" > "$OUT/variants.list"
while read -r name lens ours modes; do
    add_job "$name" "$OUT/variants/$name.json" "$SMALL" "$lens" "$ours" "$modes"
done < "$OUT/variants.list"

todo=$OUT/todo.txt
: > "$todo"
while read -r name tj texts lens ours modes; do
    k=$(key_of "$tj" "$texts" "$NODE_REF/golden_tokens.js" "$NODE_REF/package-lock.json")
    echo "$k" > "$OUT/$name.key"
    [ -s "$OUT/$name.$k.golden" ] || echo "$tj $texts $OUT/$name.$k.golden $lens" >> "$todo"
done < "$jobs"
if [ -s "$todo" ]; then
    node "$NODE_REF/golden_tokens.js" --list "$todo" > "$OUT/golden_tokens.log"
fi

n=0
while read -r name tj texts lens ours modes; do
    [ "$ours" = - ] && ours=$tj
    k=$(cat "$OUT/$name.key")
    if ! "$T" --golden "$ours" "$texts" "$OUT/$name.$k.golden" --props "$PROPS" --modes "$modes" | grep -v '^regex '; then
        echo "FAIL golden $name"; fail=1
    fi
    n=$((n+1))
done < "$jobs"

[ $fail = 0 ] && echo "tokenizer golden: $n tokenizers, all encodings equal the reference" || exit 1
