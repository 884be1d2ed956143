#!/usr/bin/env bash
# test_demo.sh - `make demo`'s run (scripts/demo.sh with the binary under test):
# R-intro.pdf to train on, R-data.pdf to validate on, the model2vec fixture as
# base model. demo.sh fails unless the fine-tuned model beats its base on
# accuracy@5 and MRR@10 of the validation document; here we also check that
# the table and the report came out.
set -u
cd "$(dirname "$0")/.."
T=$PWD/$BUILD/test-out/demo
rm -rf "$T"; mkdir -p "$T"
export EMBTUNE_CACHE_DIR=$T/cache
EMBTUNE=$EMBTUNE RUN=$T/run SHARED=$SHARED scripts/demo.sh >"$T/out" 2>"$T/err" || { cat "$T/out" "$T/err"; exit 1; }
fails=0
grep -q "^fine-tuned " "$T/out" && grep -q "^bm25 " "$T/out" || { echo "FAIL: no comparison table"; fails=1; }
grep -q "^report: $T/run/report/report.html" "$T/out" && [ -s "$T/run/report/report.html" ] || { echo "FAIL: no report"; fails=1; }
grep -E "^(fine-tuned vs|demo: )" "$T/out" "$T/err" | sed 's/^[^:]*://'
[ $fails = 0 ]
