#!/usr/bin/env bash
# scripts/demo.sh - `make demo`: the whole workflow on the sample corpus.
#
#   1. checks the Debian packages the build needs (installs the missing ones
#      when run as root; otherwise prints the apt-get line and stops);
#   2. builds embtune;
#   3. runs `embtune pipeline`: R-intro.pdf to train on, R-data.pdf to
#      validate on, the embedded query generator (no LLM) and the model2vec
#      fixture as base model; prints the comparison table, the report's path
#      and the time taken (wall and CPU); fails if the fine-tuned model does
#      not beat its base on accuracy@5 and MRR@10.
#
# Overrides (environment): MODEL (a model directory or Hugging Face id),
# DOCS and VAL_DOCS (space-separated paths), RUN (run directory, default
# build/demo; a rerun with the same inputs skips every stage), DEMO_ARGS
# (pipeline options, default "--chunk-size 128 --questions-per-chunk 4": see
# README, "make demo"), SHARED (default ../shared), EMBTUNE (a built binary:
# skips the package check and the build).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
MODEL=${MODEL:-$SHARED/fixtures/model2vec-bge-base-q128}
DOCS=${DOCS:-$SHARED/corpus/R-intro.pdf}
VAL_DOCS=${VAL_DOCS:-$SHARED/corpus/R-data.pdf}
RUN=${RUN:-build/demo}
DEMO_ARGS=${DEMO_ARGS:---chunk-size 128 --questions-per-chunk 4}
say() { echo "demo: $*" >&2; }

# EMBTUNE=path: use that binary (tests/test_demo.sh), no package check or build
if [ -n "${EMBTUNE:-}" ]; then
    :
# ---- 1. packages: what the build needs (the -dev packages of .ci/packages.txt) ----------------
elif command -v dpkg-query >/dev/null 2>&1; then
    need=(build-essential pkg-config $(grep -- '-dev$' .ci/packages.txt))
    missing=()
    for p in "${need[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ]; then
            say "installing ${missing[*]}"
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
        else
            say "missing Debian packages; install them with:"
            echo "    sudo apt-get install -y --no-install-recommends ${missing[*]}"
            exit 1
        fi
    fi
else
    say "not a Debian system: make sure the packages of .ci/packages.txt (or their equivalents) are installed"
fi

# ---- 2. build ---------------------------------------------------------------------------------------
if [ -z "${EMBTUNE:-}" ]; then
    say "building"
    ${MAKE:-make} -s -j"$(nproc 2>/dev/null || echo 2)" all >/dev/null
    EMBTUNE=build/embtune
fi

# ---- 3. the pipeline -------------------------------------------------------------------------------------
for f in $DOCS $VAL_DOCS; do
    [ -e "$f" ] || { say "$f not found: put the shared/ directory beside the repository, or set SHARED=/path/to/shared (or DOCS= / VAL_DOCS=)"; exit 1; }
done
say "embtune pipeline --train-docs $DOCS --val-docs $VAL_DOCS -m $MODEL -o $RUN $DEMO_ARGS"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
TIMEFORMAT="demo: pipeline took %1Rs wall, %1Us user + %1Ss system CPU"
# shellcheck disable=SC2086 # DOCS, VAL_DOCS and DEMO_ARGS are word lists
time "$EMBTUNE" pipeline --train-docs $DOCS --val-docs $VAL_DOCS -m "$MODEL" -o "$RUN" $DEMO_ARGS | tee "$out"

# the verdict line: "<tuned> vs <base>: accuracy@5 B -> T (+D), MRR@10 B -> T (+D)"
line=$(grep -E '^[^ ]+ vs .*: accuracy@5 ' "$out" || true)
deltas=$(echo "$line" | grep -oE '\([+-][0-9.]+\)' | tr -d '()' | tr '\n' ' ')
read -r d_acc d_mrr <<<"$deltas"
if [ -z "${d_mrr:-}" ]; then
    say "could not read the comparison line from the pipeline's output"
    exit 1
fi
if awk -v a="$d_acc" -v m="$d_mrr" 'BEGIN { exit !(a > 0 && m > 0) }'; then
    say "the fine-tuned model beats its base on accuracy@5 ($d_acc) and MRR@10 ($d_mrr)"
else
    say "the fine-tuned model does NOT beat its base on both accuracy@5 ($d_acc) and MRR@10 ($d_mrr)"
    exit 1
fi
