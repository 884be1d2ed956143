#!/usr/bin/env bash
# test_embed.sh - `embtune embed` against a plain PyTorch BERT / XLM-R forward
# (tests/ref/make_models.py) on random-weight models in the HF layout: F32,
# F16, BF16, sharded and not, bert./roberta. prefixes or none, every pooling
# mode, with and without modules.json, prompts. Token ids come from Hugging
# Face tokenizers (node); embtune runs once on those ids (--ids) and once on
# the texts (its own tokenizer), with two batch sizes (padding + bucketing).
# Tolerance: max abs error <= 1e-4 on every vector (normalized or not) for
# every dtype (the reference uses the same bf16/f16-rounded weights in fp32).
set -eu
OUT=$BUILD/test-out/embed
rm -rf "$OUT"; mkdir -p "$OUT"
TOL=1e-4
fails=0
# TEMPORARY until the tokenizer lands on main: text input needs it.
HAVE_TOK=1
"$EMBTUNE" info -m "$SHARED/fixtures/model2vec-bge-base-q128" 2>/dev/null | grep -Eq "tokenizer +(none|pending)" && HAVE_TOK=0
[ $HAVE_TOK = 1 ] || echo "SKIP text-input checks: the tokenizer is not on main yet (ids checks run)"
$TORCH_PY tests/ref/make_models.py models "$OUT" "$SHARED" >/dev/null
$TORCH_PY -c "import json,sys; print(json.dumps(open('tests/ref/texts.txt', encoding='utf-8').read().split('\n')[:-1], ensure_ascii=False))" > "$OUT/texts.json"
check() { # name got ref
    if ! $TORCH_PY tests/ref/compare_npy.py "$2" "$3" $TOL "$1"; then fails=$((fails+1)); fi
}
for d in "$OUT"/*/; do
    d=${d%/}; name=$(basename "$d")
    maxlen=$($TORCH_PY -c "import json; print(json.load(open('$d/spec.json'))['max_length'])")
    node "$NODE_REF/encode_ids.js" "$d/tokenizer.json" "$OUT/texts.json" "$maxlen" 1 > "$d/ids.json"
    $TORCH_PY tests/ref/make_models.py ref "$d" "$d/ids.json" "$d/ref.npy"
    $TORCH_PY -c "import json; [print(' '.join(map(str, x))) for x in json.load(open('$d/ids.json'))]" > "$d/ids.txt"
    "$EMBTUNE" embed -q -m "$d" -i "$d/ids.txt" --ids -o "$d/got-ids.npy"
    check "$name ids" "$d/got-ids.npy" "$d/ref.npy"
    "$EMBTUNE" embed -q -m "$d" -i "$d/ids.txt" --ids --batch-size 3 -o "$d/got-ids-b3.npy"
    check "$name ids batch 3" "$d/got-ids-b3.npy" "$d/ref.npy"
    [ $HAVE_TOK = 1 ] || continue
    "$EMBTUNE" embed -q -m "$d" -i tests/ref/texts.txt -o "$d/got-text.npy"
    check "$name text" "$d/got-text.npy" "$d/ref.npy"
done

if [ $HAVE_TOK = 1 ]; then
# prompts: --prompt-name query == --prompt TEXT == reference on prompt + text
d=$OUT/bert-f32-cls
$TORCH_PY -c "
import json
p = json.load(open('$d/config_sentence_transformers.json'))['prompts']['query']
print(json.dumps([p + t for t in json.load(open('$OUT/texts.json'))], ensure_ascii=False))" > "$OUT/ptexts.json"
node "$NODE_REF/encode_ids.js" "$d/tokenizer.json" "$OUT/ptexts.json" 48 1 > "$d/pids.json"
$TORCH_PY tests/ref/make_models.py ref "$d" "$d/pids.json" "$d/pref.npy"
"$EMBTUNE" embed -q -m "$d" -i tests/ref/texts.txt --prompt-name query -o "$d/got-pn.npy"
check "prompt-name query" "$d/got-pn.npy" "$d/pref.npy"
"$EMBTUNE" embed -q -m "$d" -i tests/ref/texts.txt --prompt "Represent this sentence for searching relevant passages: " --batch-size 5 -o "$d/got-p.npy"
check "prompt text" "$d/got-p.npy" "$d/pref.npy"
fi

# --pooling overrides the model's pooling (cls model, mean pooling): reference with a mean spec
d=$OUT/bert-f32-cls
cp -r "$d" "$OUT/override"
$TORCH_PY -c "
import json; s = json.load(open('$OUT/override/spec.json')); s['pooling'] = 'mean'
json.dump(s, open('$OUT/override/spec.json', 'w'))"
$TORCH_PY tests/ref/make_models.py ref "$OUT/override" "$d/ids.json" "$OUT/override/ref-mean.npy"
"$EMBTUNE" embed -q -m "$d" -i "$d/ids.txt" --ids --pooling mean -o "$OUT/override/got.npy"
check "--pooling mean override" "$OUT/override/got.npy" "$OUT/override/ref-mean.npy"

if [ $HAVE_TOK = 1 ]; then
# JSONL in and out, stdin
$TORCH_PY -c "
import json
for t in json.load(open('$OUT/texts.json')): print(json.dumps({'text': t, 'id': 1}, ensure_ascii=False))" > "$OUT/texts.jsonl"
"$EMBTUNE" embed -q -m "$OUT/xlmr-f32-mean" -i "$OUT/texts.jsonl" -o "$OUT/got.jsonl"
$TORCH_PY -c "
import json, numpy as np
v = np.array([json.loads(l)['embedding'] for l in open('$OUT/got.jsonl')], dtype=np.float32)
np.save('$OUT/got-jsonl.npy', v)"
check "jsonl in/out" "$OUT/got-jsonl.npy" "$OUT/xlmr-f32-mean/ref.npy"
"$EMBTUNE" embed -q -m "$OUT/xlmr-f32-mean" -i - -o "$OUT/got-stdin.npy" < tests/ref/texts.txt
check "stdin" "$OUT/got-stdin.npy" "$OUT/xlmr-f32-mean/ref.npy"
fi

# the notice without modules.json
"$EMBTUNE" embed -m "$OUT/bert-f32-nomodules" -i "$OUT/bert-f32-nomodules/ids.txt" --ids -o "$OUT/nm.npy" 2> "$OUT/nm.err"
grep -q "mean pooling" "$OUT/nm.err" || { echo "no mean-pooling notice on stderr"; fails=$((fails+1)); }

# info
"$EMBTUNE" info -m "$OUT/bert-bf16-sharded-mean" > "$OUT/info.txt"
tokw=WordPiece; [ $HAVE_TOK = 1 ] || tokw=none
for w in "architecture  bert" "dimension     64" "pooling       mean + normalize" "dtype         BF16" "$tokw"; do
    grep -q "$w" "$OUT/info.txt" || { echo "info: missing '$w'"; cat "$OUT/info.txt"; fails=$((fails+1)); }
done
"$EMBTUNE" info -m "$OUT/xlmr-f32-mean" | grep -q "max length    48 tokens" || { echo "info: xlmr max length"; fails=$((fails+1)); }

[ $fails = 0 ] || { echo "test_embed: $fails failures"; exit 1; }
echo "test_embed: ok"
