#!/usr/bin/env bash
# test_eval_model.sh - `embtune eval -m` against an independent computation:
# the same texts embedded with `embtune embed` (prompts given explicitly), then
# searched and scored by the sentence-transformers evaluator's algorithm in
# NumPy (tests/ref/st_ir_eval.py). Every metric must agree to 1e-9 and every
# per-query rank must match, except where two documents' scores tie within
# 1e-6 (float rounding of two different matrix products).
set -u
OUT=$BUILD/test-out/eval_model
rm -rf "$OUT"; mkdir -p "$OUT"
FIX=$SHARED/fixtures/model2vec-bge-base-q128
[ -d "$FIX" ] || { echo "missing $FIX"; exit 1; }

# the real model2vec fixture, plus prompts (files linked, not copied)
M=$OUT/m2v-prompts
mkdir -p "$M"
for f in "$FIX"/*; do ln -s "$f" "$M/"; done
cat > "$M/config_sentence_transformers.json" <<'EOF'
{"prompts": {"query": "question: ", "document": "passage: "}, "default_prompt_name": null,
 "similarity_fn_name": "cosine"}
EOF

# a validation set from a real document: ingest + embedded generator
"$EMBTUNE" ingest "$SHARED/corpus/R-data.pdf" -m "$FIX" -o "$OUT/chunks.jsonl" -q || exit 1
"$EMBTUNE" generate -i "$OUT/chunks.jsonl" -o "$OUT/ds.json" -q || exit 1

# two adapters on the plain model: linear on queries only, MLP on queries and documents
"$EMBTUNE" finetune -m "$FIX" -t "$OUT/ds.json" -o "$OUT/ad-linear" --mode adapter --epochs 3 \
    --cache "$OUT/cache.sqlite" -q || exit 1
"$EMBTUNE" finetune -m "$FIX" -t "$OUT/ds.json" -o "$OUT/ad-mlp" --mode adapter --adapter mlp --adapter-both \
    --epochs 3 --cache "$OUT/cache.sqlite" -q || exit 1

"$EMBTUNE" eval -d "$OUT/ds.json" -m "$M" -m "$FIX" --adapter "$OUT/ad-linear" --adapter "$OUT/ad-mlp" --bm25 \
    --cache "$OUT/cache.sqlite" -o "$OUT/rep" >"$OUT/table.txt" 2>"$OUT/eval.err" || { cat "$OUT/eval.err"; exit 1; }
cat "$OUT/table.txt" "$OUT/eval.err"
# the adapters name their base model, so they go on the second -m; the finetune runs cached its embeddings
grep -q "^model2vec-bge-base-q128+ad-linear " "$OUT/table.txt" || { echo "FAIL: adapter row"; exit 1; }
grep -q "model2vec-bge-base-q128: .*(321 from the cache)" "$OUT/eval.err" || { echo "FAIL: cache not used"; exit 1; }

"$TORCH_PY" - "$OUT" "$EMBTUNE" "$M" "$FIX" <<'EOF'
import json, os, subprocess, sys
import numpy as np
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "ref"))
import st_ir_eval
import st_io

out, embtune, m_prompts, m_plain = sys.argv[1:5]
ds = json.load(open(out + "/ds.json"))
qids, qtexts = list(ds["queries"]), list(ds["queries"].values())
dids, dtexts = list(ds["corpus"]), list(ds["corpus"].values())
pos = {d: i for i, d in enumerate(dids)}
relevant = [{pos[d] for d in ds["relevant_docs"][q]} for q in qids]

def embed(model, texts, prompt, name):
    src, dst = f"{out}/{name}.jsonl", f"{out}/{name}.npy"
    with open(src, "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    cmd = [embtune, "embed", "-m", model, "-i", src, "-o", dst, "-q"] + (["--prompt", prompt] if prompt else [])
    subprocess.run(cmd, check=True)
    return np.load(dst).astype(np.float64)

metrics = {r["name"]: r["metrics"] for r in json.load(open(out + "/rep/metrics.json"))["runs"]}
ranks = {}
for line in open(out + "/rep/ranks.jsonl"):
    r = json.loads(line)
    ranks[(r["model"], r["query_id"])] = r["rank"] or 0
def adapter(dirname):
    """Reference adapters in NumPy from the saved tensors (llama-index names):
    linear y = W x (+ b); mlp y = x + r * (W2 relu(W1 x + b1) + b2)."""
    cfg = json.load(open(dirname + "/config.json"))
    t = {k: np.asarray(v, dtype=np.float64) for k, v in st_io.load(dirname + "/adapter.safetensors").items()}
    def f(x):
        if "linear.weight" in t:
            y = x @ t["linear.weight"].T + (t["linear.bias"] if "linear.bias" in t else 0)
        else:
            h = np.maximum(x @ t["linear1.weight"].T + t["linear1.bias"], 0)
            y = x + t["residual_weight"].reshape(()) * (h @ t["linear2.weight"].T + t["linear2.bias"])
        return y
    return f, cfg.get("apply_to", "query") != "query"

bad = 0
cache = {}
for name, model, qp, dp, ad in (("m2v-prompts", m_prompts, "question: ", "passage: ", None),
                                ("model2vec-bge-base-q128", m_plain, None, None, None),
                                ("model2vec-bge-base-q128+ad-linear", m_plain, None, None, out + "/ad-linear"),
                                ("model2vec-bge-base-q128+ad-mlp", m_plain, None, None, out + "/ad-mlp")):
    if (model, qp) not in cache:
        cache[(model, qp)] = (embed(model, qtexts, qp, name + "-q"), embed(model, dtexts, dp, name + "-d"))
    q, d = cache[(model, qp)]
    if ad:
        f, both = adapter(ad)
        q = f(q)
        d = f(d) if both else d
    res, first = st_ir_eval.metrics(st_ir_eval.search(q, d, 100), relevant)
    got = metrics[name]
    errs = {k: abs(got[k] - v) for k, v in res.items()}
    worst = max(errs, key=errs.get)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    swaps = 0
    for i, qid in enumerate(qids):
        if ranks[(name, qid)] != first[i]:
            s = np.sort(qn[i] @ dn.T)[::-1]
            lo, hi = sorted((ranks[(name, qid)] or 101, first[i] or 101))
            gap = abs(s[lo - 1] - s[min(hi, len(s)) - 1])
            if gap > 1e-6:
                print(f"FAIL {name} {qid}: rank {ranks[(name, qid)]} vs reference {first[i]} (score gap {gap:.2e})")
                bad += 1
            swaps += 1
    print(f"{name}: {len(qids)} queries x {len(dids)} docs, max metric error {errs[worst]:.2e} ({worst}), "
          f"{swaps} rank differences at near-ties")
    if errs[worst] > 1e-9 + swaps / len(qids):  # a near-tie swap moves a mean by <= 1/n
        bad += 1
        print(f"FAIL {name}: {worst} = {got[worst]} vs reference {res[worst]}")
sys.exit(1 if bad else 0)
EOF
rc=$?
[ $rc = 0 ] && echo "test_eval_model: ok" || { echo "test_eval_model: FAILED"; exit 1; }
