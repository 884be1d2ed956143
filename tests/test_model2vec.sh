#!/usr/bin/env bash
# test_model2vec.sh - the real model2vec fixture (../shared/fixtures/model2vec-
# bge-base-q128): `embtune embed` must reproduce model2vec's formula
# (tests/ref/model2vec_ref.py on Hugging Face token ids) to 1e-5, including an
# empty text (zero vector), a text of UNK-only tokens and a text over 512 tokens.
set -eu
OUT=$BUILD/test-out/model2vec
rm -rf "$OUT"; mkdir -p "$OUT"
M=$SHARED/fixtures/model2vec-bge-base-q128
{
    cat tests/ref/texts.txt
    echo ""
    echo "🙂🙂 ☃"
    for i in $(seq 1 120); do printf 'statistical computing with R and data frames %d, ' $i; done; echo
} > "$OUT/texts.txt"
$TORCH_PY -c "import json,sys; print(json.dumps(open('$OUT/texts.txt', encoding='utf-8').read().split('\n')[:-1], ensure_ascii=False))" > "$OUT/texts.json"
node "$NODE_REF/encode_ids.js" "$M/tokenizer.json" "$OUT/texts.json" 0 0 > "$OUT/ids.json"
$TORCH_PY tests/ref/model2vec_ref.py "$M" "$OUT/ids.json" "$OUT/ref.npy"
"$EMBTUNE" embed -q -m "$M" -i "$OUT/texts.txt" -o "$OUT/got.npy"
$TORCH_PY tests/ref/compare_npy.py 1e-5 "model2vec fixture" "$OUT/got.npy" "$OUT/ref.npy"
"$EMBTUNE" embed -q -m "$M" -i "$OUT/texts.txt" --batch-size 1 -o "$OUT/got-b1.npy"
$TORCH_PY tests/ref/compare_npy.py 1e-5 "model2vec fixture, batch 1" "$OUT/got-b1.npy" "$OUT/ref.npy"
# --max-length 7 truncates the (UNK-free) ids as model2vec's max_length does
$TORCH_PY tests/ref/model2vec_ref.py "$M" "$OUT/ids.json" "$OUT/ref7.npy" 7
"$EMBTUNE" embed -q -m "$M" -i "$OUT/texts.txt" --max-length 7 -o "$OUT/got7.npy"
$TORCH_PY tests/ref/compare_npy.py 1e-5 "model2vec --max-length 7" "$OUT/got7.npy" "$OUT/ref7.npy"
$TORCH_PY -c "
import numpy as np, json
v = np.load('$OUT/got.npy'); ids = json.load(open('$OUT/ids.json'))
n = len(open('$OUT/texts.txt', encoding='utf-8').read().split(chr(10))) - 1
assert v.shape == (n, 64), v.shape
assert np.all(v[-3] == 0), 'empty text must give a zero vector'
print('rows', n, 'empty-text row zero: ok; UNK-only ids:', [i for i in ids[-2]])
"
"$EMBTUNE" info -m "$M" | grep -q "table         128 rows for 29524 tokens" || { echo "info: quantized table"; exit 1; }
echo "test_model2vec: ok"
