#!/usr/bin/env bash
# test_embed_errors.sh - `embtune embed` / `info` on bad input: non-zero exit, a
# message naming the file and field, and no partial output file (atomic
# output: a failure after blocks were already written leaves nothing, and an
# existing output file is left untouched).
set -u
OUT=$BUILD/test-out/embed-errors
rm -rf "$OUT"; mkdir -p "$OUT"
M=$SHARED/fixtures/model2vec-bge-base-q128
fails=0
expect_fail() { # name expected-substring command...
    local name=$1 want=$2; shift 2
    "$@" > "$OUT/stdout" 2> "$OUT/stderr"
    local rc=$?
    if [ $rc = 0 ]; then echo "FAIL $name: exit 0"; fails=$((fails+1)); return; fi
    if ! grep -q -- "$want" "$OUT/stderr"; then
        echo "FAIL $name: stderr lacks '$want':"; cat "$OUT/stderr"; fails=$((fails+1)); return
    fi
    echo "ok   $name (exit $rc): $(head -c 200 "$OUT/stderr" | head -n 1)"
}
no_file() { # name path
    if ls "$2"* >/dev/null 2>&1; then echo "FAIL $1: output left behind: $(ls "$2"*)"; fails=$((fails+1)); fi
}

printf 'hello\nworld\n' > "$OUT/in.txt"
expect_fail "missing model" "not found" "$EMBTUNE" embed -m "$OUT/nope" -i "$OUT/in.txt" -o "$OUT/a.npy"
no_file "missing model" "$OUT/a.npy"
expect_fail "missing input" "in.missing" "$EMBTUNE" embed -m "$M" -i "$OUT/in.missing" -o "$OUT/b.npy"
no_file "missing input" "$OUT/b.npy"
expect_fail "bad output ext" ".npy or .jsonl" "$EMBTUNE" embed -m "$M" -i "$OUT/in.txt" -o "$OUT/c.csv"
expect_fail "bad pooling" "--pooling" "$EMBTUNE" embed -m "$M" -i "$OUT/in.txt" -o "$OUT/d.npy" --pooling sum
expect_fail "static + cls" "mean" "$EMBTUNE" embed -m "$M" -i "$OUT/in.txt" -o "$OUT/d.npy" --pooling cls
no_file "bad pooling" "$OUT/d.npy"
expect_fail "unknown prompt" "no prompt named 'query'" "$EMBTUNE" embed -m "$M" -i "$OUT/in.txt" -o "$OUT/e.npy" --prompt-name query
no_file "unknown prompt" "$OUT/e.npy"

# a bad JSONL record after the first 4096-text block was already written
{ for i in $(seq 1 5000); do echo "{\"text\": \"text number $i\"}"; done; echo '{"txt": "x"}'; } > "$OUT/big.jsonl"
expect_fail "bad jsonl line 5001" "big.jsonl: line 5001" "$EMBTUNE" embed -q -m "$M" -i "$OUT/big.jsonl" -o "$OUT/f.npy"
no_file "bad jsonl after first block" "$OUT/f.npy"
# an existing output survives a failed run
echo "old" > "$OUT/g.jsonl"
expect_fail "keeps old output" "line 5001" "$EMBTUNE" embed -q -m "$M" -i "$OUT/big.jsonl" -o "$OUT/g.jsonl"
[ "$(cat "$OUT/g.jsonl")" = "old" ] || { echo "FAIL old output was modified"; fails=$((fails+1)); }
[ "$(ls "$OUT" | grep -c tmp)" = 0 ] || { echo "FAIL temp files left: $(ls "$OUT")"; fails=$((fails+1)); }
# bad --ids input
printf '101 abc 102\n' > "$OUT/ids.txt"
expect_fail "bad ids" "ids.txt: line 1" "$EMBTUNE" embed -m "$M" --ids -i "$OUT/ids.txt" -o "$OUT/h.npy"
no_file "bad ids" "$OUT/h.npy"

# broken model directories
mkdir -p "$OUT/m1"; cp "$M"/* "$OUT/m1/" 2>/dev/null
head -c 100 "$M/model.safetensors" > "$OUT/m1/model.safetensors"
expect_fail "truncated safetensors" "m1/model.safetensors" "$EMBTUNE" embed -m "$OUT/m1" -i "$OUT/in.txt" -o "$OUT/i.npy"
no_file "truncated safetensors" "$OUT/i.npy"
expect_fail "info on truncated" "m1/model.safetensors" "$EMBTUNE" info -m "$OUT/m1"
mkdir -p "$OUT/m2"; cp "$M"/* "$OUT/m2/"; echo '{"model_type": "t5"}' > "$OUT/m2/config.json"
echo '[]' > "$OUT/m2/modules.json"
expect_fail "unknown architecture" "'t5'" "$EMBTUNE" embed -m "$OUT/m2" -i "$OUT/in.txt" -o "$OUT/j.npy"
mkdir -p "$OUT/m3"; cp "$M"/* "$OUT/m3/"; rm "$OUT/m3/tokenizer.json"
expect_fail "no tokenizer" "m3" "$EMBTUNE" embed -m "$OUT/m3" -i "$OUT/in.txt" -o "$OUT/k.npy"
no_file "no tokenizer" "$OUT/k.npy"

# empty input -> a valid empty matrix
: > "$OUT/empty.txt"
"$EMBTUNE" embed -q -m "$M" -i "$OUT/empty.txt" -o "$OUT/empty.npy" || { echo "FAIL empty input"; fails=$((fails+1)); }
$TORCH_PY -c "import numpy as np; v = np.load('$OUT/empty.npy'); assert v.shape == (0, 64), v.shape" ||
    { echo "FAIL empty npy shape"; fails=$((fails+1)); }
echo "$fails failed"
[ $fails = 0 ]
