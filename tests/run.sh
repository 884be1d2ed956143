#!/usr/bin/env bash
# tests/run.sh - runs every test: compiled tests ($BUILD/tests/test_*) and
# script tests (tests/test_*.sh). Exits non-zero if any fails.
# Environment for tests: BUILD, EMBTUNE (the CLI), SHARED (../shared),
# TORCH_PY (Debian's python with PyTorch), NODE_REF (tests/ref with node_modules).
# TESTS="tokenizer model" runs only the tests whose names contain those words.
set -u
cd "$(dirname "$0")/.."
export BUILD=${BUILD:-build}
export EMBTUNE=$PWD/$BUILD/embtune
export SHARED=${SHARED:-$(cd .. && pwd)/shared}
export TORCH_PY=${TORCH_PY:-/usr/bin/python3}
export NODE_REF=$PWD/tests/ref
export ET_PROGRESS=0
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$BUILD/test-out"

if [ ! -d tests/ref/node_modules/@anush008/tokenizers ]; then
    echo "tests/run.sh: installing the npm reference packages (tests/ref)"
    (cd tests/ref && npm install --no-audit --no-fund >/dev/null) || {
        echo "tests/run.sh: npm install in tests/ref failed"; exit 1; }
fi

pass=0; fail=0; failed=()
run_one() {
    local name=$1; shift
    if [ -n "${TESTS:-}" ]; then
        local hit=0 w
        for w in $TESTS; do case $name in *$w*) hit=1;; esac; done
        [ $hit = 1 ] || return 0
    fi
    local t0=$(date +%s.%N)
    local log="$BUILD/test-out/$name.log"
    if "$@" >"$log" 2>&1; then
        pass=$((pass+1))
        printf 'PASS %-32s %6.1fs  %s\n' "$name" "$(echo "$(date +%s.%N) - $t0" | bc)" \
            "$(tail -n 1 "$log" | cut -c1-90)"
    else
        fail=$((fail+1)); failed+=("$name")
        printf 'FAIL %-32s (log: %s)\n' "$name" "$log"
        tail -n 30 "$log" | sed 's/^/    /'
    fi
}

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    run_one "$(basename "$t")" "$t"
done
for t in tests/test_*.sh; do
    [ -f "$t" ] || continue
    run_one "$(basename "$t" .sh)" bash "$t"
done

echo "tests: $pass passed, $fail failed"
[ $fail = 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
