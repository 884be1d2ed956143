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
# the other static layouts, from the same numbers (so the same reference applies):
#   plain/      model2vec with a full table (no mapping, no weights): rows = weights[id] * embeddings[mapping[id]]
#   weighted/   model2vec with weights but no mapping: rows = embeddings[mapping[id]]
#   st/         sentence-transformers StaticEmbedding module (0_StaticEmbedding/, 'embedding.weight',
#               no config.json) + Normalize
#   st-nonorm/  the same without the Normalize module: the plain mean, not normalized
$TORCH_PY - "$M" "$OUT" <<'PY'
import json, os, shutil, sys
import numpy as np, torch
sys.path.insert(0, "tests/ref")
from make_models import st_read, st_write
m, out = sys.argv[1], sys.argv[2]
W = st_read(os.path.join(m, "model.safetensors"))
emb, mapping, weights = W["embeddings"].double(), W["mapping"].long(), W["weights"].double()
full = (emb[mapping] * weights[:, None]).float()
def mk(name, tensors, files, sub=""):
    d = os.path.join(out, name, sub)
    os.makedirs(d, exist_ok=True)
    st_write(os.path.join(d, "model.safetensors"), tensors)
    shutil.copy(os.path.join(m, "tokenizer.json"), d)
    for f in files:
        shutil.copy(os.path.join(m, f), os.path.join(out, name))
mk("plain", [("embeddings", full)], ["config.json", "modules.json"])
mk("weighted", [("embeddings", emb[mapping].float()), ("weights", weights)], ["config.json", "modules.json"])
for name, norm in (("st", True), ("st-nonorm", False)):
    mk(name, [("embedding.weight", full)], [], "0_StaticEmbedding")
    mods = [{"idx": 0, "name": "0", "path": "0_StaticEmbedding",
             "type": "sentence_transformers.models.StaticEmbedding"}]
    if norm:
        mods.append({"idx": 1, "name": "1", "path": "1_Normalize", "type": "sentence_transformers.models.Normalize"})
        os.makedirs(os.path.join(out, name, "1_Normalize"), exist_ok=True)
    json.dump(mods, open(os.path.join(out, name, "modules.json"), "w"))
# unnormalized reference: mean of the full table's rows of the HF ids, UNK dropped, first 512
unk = json.load(open(os.path.join(m, "tokenizer.json")))["model"]["unk_id"]
rows = []
for ids in json.load(open(os.path.join(out, "ids.json"))):
    ids = [i for i in ids if i != unk][:512]
    rows.append(full.double()[ids].mean(0).numpy() if ids else np.zeros(full.shape[1]))
np.save(os.path.join(out, "ref-nonorm.npy"), np.stack(rows).astype(np.float32))
PY
for v in plain weighted st st-nonorm; do
    "$EMBTUNE" embed -q -m "$OUT/$v" -i "$OUT/texts.txt" -o "$OUT/got-$v.npy"
done
$TORCH_PY tests/ref/compare_npy.py 1e-5 "model2vec full table" "$OUT/got-plain.npy" "$OUT/ref.npy" \
    "model2vec weights, no mapping" "$OUT/got-weighted.npy" "$OUT/ref.npy" \
    "StaticEmbedding + Normalize" "$OUT/got-st.npy" "$OUT/ref.npy" \
    "StaticEmbedding, no Normalize" "$OUT/got-st-nonorm.npy" "$OUT/ref-nonorm.npy"
"$EMBTUNE" info -m "$OUT/st" | grep -q "model2vec" || { echo "info: StaticEmbedding is not model2vec"; exit 1; }
"$EMBTUNE" info -m "$M" | grep -q "table         128 rows for 29524 tokens" || { echo "info: quantized table"; exit 1; }
echo "test_model2vec: ok"
