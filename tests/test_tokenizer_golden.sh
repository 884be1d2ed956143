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

# vocab.txt + tokenizer_config.json of the bge vocabulary = bge's tokenizer.json without special
# tokens (with them the ids differ by design: this fixture's post-processor uses 101/102)
if ! "$T" --golden "$OUT/variants/vocab-txt-lower" "$BIG" "$OUT/bge-wordpiece.$(cat "$OUT/bge-wordpiece.key").golden" \
        --props "$PROPS" --modes n | grep -v '^regex '; then
    echo "FAIL golden vocab.txt vs bge tokenizer.json"; fail=1
fi

# -- the CLI: same ids as the reference, exit codes ----------------------------------------------
E=${EMBTUNE:-$BUILD/embtune}
BGE=$SHARED/fixtures/bge-wordpiece/tokenizer.json
got=$(printf 'Hello, world!\r\nfoo bar\n' | "$E" tokenize --tokenizer "$BGE")
want='{"ids":[101,6598,16,1094,5,102],"tokens":["[CLS]","hello",",","world","!","[SEP]"],"type_ids":[0,0,0,0,0,0],"offsets":[[0,0],[0,5],[5,6],[7,12],[12,13],[0,0]]}'
[ "$(echo "$got" | head -n 1)" = "$want" ] || { echo "FAIL cli: $got"; fail=1; }
[ "$(echo "$got" | wc -l)" = 2 ] || { echo "FAIL cli: expected 2 lines"; fail=1; }
got=$(echo "Hello, world!" | "$E" tokenize --tokenizer "$BGE" --no-special --max-length 2)
[ "$got" = '{"ids":[6598,16],"tokens":["hello",","],"type_ids":[0,0],"offsets":[[0,5],[5,6]]}' ] || { echo "FAIL cli no-special: $got"; fail=1; }
mkdir -p "$OUT/cli_model"
cp "$BGE" "$OUT/cli_model/tokenizer.json"
echo "Hello" > "$OUT/cli_in.txt"
got=$("$E" tokenize -m "$OUT/cli_model" -i "$OUT/cli_in.txt")
case $got in '{"ids":[101,6598,102]'*) ;; *) echo "FAIL cli -m -i: $got"; fail=1;; esac
set +e
"$E" tokenize --tokenizer /nonexistent.json < /dev/null 2> "$OUT/cli_err.txt"; rc=$?
grep -q "/nonexistent.json" "$OUT/cli_err.txt" && [ $rc = 1 ] || { echo "FAIL cli missing file: rc $rc"; fail=1; }
"$E" tokenize --bogus 2> /dev/null; rc=$?
[ $rc = 2 ] || { echo "FAIL cli usage error: rc $rc"; fail=1; }
"$E" tokenize --tokenizer "$BGE" --max-length 1 <<< "hi" 2> "$OUT/cli_err.txt"; rc=$?
grep -q "special" "$OUT/cli_err.txt" && [ $rc = 1 ] || { echo "FAIL cli max-length 1: rc $rc"; fail=1; }
set -e

[ $fail = 0 ] && echo "tokenizer golden: $n tokenizers, all encodings equal the reference" || exit 1
