#!/usr/bin/env bash
# test_demo.sh - `make demo`'s run (scripts/demo.sh with the binary under test):
# R-intro.pdf to train on, R-data.pdf to validate on, the model2vec fixture as
# base model. demo.sh fails unless the fine-tuned model beats its base on
# accuracy@5 and MRR@10 of the validation document; here we also check that
# the table and the report came out, and the package step (shimmed dpkg-query,
# id, apt-get).
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

# The package step, with shims for dpkg-query (libonig-dev "missing"), id and apt-get:
# not root -> prints the apt-get line naming the missing package and stops before building;
# root -> runs apt-get install with it (then the build: MAKE=false stops the script there).
S=$T/shim; mkdir -p "$S"
printf '#!/bin/sh\nfor a; do p=$a; done\n[ "$p" = libonig-dev ] && exit 1\necho "install ok installed"\n' >"$S/dpkg-query"
printf '#!/bin/sh\necho "apt-get $*" >>"%s/apt.log"\n' "$T" >"$S/apt-get"
printf '#!/bin/sh\necho 1000\n' >"$S/id"
chmod +x "$S"/*
env -u EMBTUNE PATH="$S:$PATH" MAKE=false scripts/demo.sh >"$T/pkg.out" 2>"$T/pkg.err"; rc=$?
[ $rc != 0 ] && grep -q "apt-get install .*libonig-dev" "$T/pkg.out" && ! grep -q "libcjson-dev" "$T/pkg.out" &&
    ! grep -q building "$T/pkg.err" && [ ! -e "$T/apt.log" ] ||
    { echo "FAIL: not root, a package missing: rc $rc, $(cat "$T/pkg.out" "$T/pkg.err")"; fails=1; }
printf '#!/bin/sh\necho 0\n' >"$S/id"
env -u EMBTUNE PATH="$S:$PATH" MAKE=false scripts/demo.sh >"$T/pkg2.out" 2>"$T/pkg2.err"; rc=$?
[ $rc != 0 ] && grep -q "^apt-get install .*libonig-dev" "$T/apt.log" && ! grep -q "libcjson-dev" "$T/apt.log" &&
    grep -q building "$T/pkg2.err" ||
    { echo "FAIL: root, a package missing: rc $rc, apt: $(cat "$T/apt.log" 2>/dev/null), $(cat "$T/pkg2.err")"; fails=1; }
[ $fails = 0 ] && echo "demo package step: missing package named (not root) / installed (root)"
[ $fails = 0 ]
