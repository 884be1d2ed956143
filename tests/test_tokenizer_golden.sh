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

# cached NAME CMD...: runs CMD (which writes $OUT/NAME) unless the inputs are unchanged
key_of() { cat "$@" | sha256sum | cut -c1-16; }

# -- text set ------------------------------------------------------------------------------
if [ ! -s "$OUT/R-intro.txt" ]; then
    pdftotext "$SHARED/corpus/R-intro.pdf" "$OUT/R-intro.txt"
fi
node "$NODE_REF/gen_texts.js" "$OUT/texts.jsonl" "$OUT/R-intro.txt" >/dev/null
head -n 1500 "$OUT/texts.jsonl" > "$OUT/texts_small.jsonl"
# the random strings and random bytes are at the end: keep them in the small set too
tail -n 800 "$OUT/texts.jsonl" >> "$OUT/texts_small.jsonl"

# -- Unicode properties ----------------------------------------------------------------------
k=$(key_of "$NODE_REF/unicode_props.js" "$NODE_REF/package-lock.json")
if [ ! -s "$OUT/uprops.$k.json" ]; then
    node "$NODE_REF/unicode_props.js" "$OUT/uprops.$k.json"
fi
if ! "$T" --unicode "$OUT/uprops.$k.json" > "$OUT/unicode.log"; then
    cat "$OUT/unicode.log"; fail=1
fi
tail -n 1 "$OUT/unicode.log"

# -- golden encodings -----------------------------------------------------------------------
# golden NAME TOKENIZER_JSON TEXTS MAXLENS [OUR_TOKENIZER] [compare options]
golden() {
    local name=$1 tj=$2 texts=$3 lens=$4 ours=${5:-$2}
    shift 5 || shift $#
    local k
    k=$(key_of "$tj" "$texts" "$NODE_REF/golden_tokens.js" "$NODE_REF/package-lock.json")
    local g="$OUT/$name.$k.golden"
    if [ ! -s "$g" ]; then
        node "$NODE_REF/golden_tokens.js" "$tj" "$texts" "$g.tmp" "$lens" >/dev/null
        mv "$g.tmp" "$g"
    fi
    if ! "$T" --golden "$ours" "$texts" "$g" "$@"; then
        echo "FAIL golden $name"; fail=1
    fi
}

golden bge-wordpiece "$SHARED/fixtures/bge-wordpiece/tokenizer.json" "$OUT/texts.jsonl" 3,16,128 ""
golden model2vec-unigram "$SHARED/fixtures/model2vec-bge-base-q128/tokenizer.json" "$OUT/texts.jsonl" 1,16,128 ""

if [ -f "$NODE_REF/make_variants.js" ]; then
    node "$NODE_REF/make_variants.js" "$SHARED/fixtures" "$OUT/variants" > "$OUT/variants.list"
    while read -r name lens; do
        golden "$name" "$OUT/variants/$name.json" "$OUT/texts_small.jsonl" "$lens" ""
    done < "$OUT/variants.list"
fi

[ $fail = 0 ] && echo "tokenizer golden: all encodings equal the reference" || exit 1
