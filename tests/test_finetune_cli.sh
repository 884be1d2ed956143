#!/usr/bin/env bash
# test_finetune_cli.sh - what a user sees from `embtune finetune` (static model2vec fixture,
# fast):
#   1. the training-data format is detected for llama-index JSON, pairs/triplets JSONL,
#      FlagEmbedding JSONL and BEIR folders (checked by the rows each run logs), --format
#      overrides it, a wrong --format is a clear error with the line number
#   2. bad data: malformed lines name file:line, empty texts are skipped and counted
#   3. the progress line shows step/total, epoch, loss, lr, pairs/s and ETA
#   4. validation: metrics logged per interval, the best step reported, and the model
#      written is the best one (`embtune eval` on it gives the logged best MRR@10), or the
#      last one with --save-last
#   5. `embtune embed --adapter`: a query-only adapter changes --query embeddings only
#      (documents keep the base embedding, bit for bit); an --adapter-both one changes
#      both; values against a NumPy evaluation of the saved adapter tensors (1e-5)
set -u
cd "$(dirname "$0")/.."
FIX=$SHARED/fixtures/model2vec-bge-base-q128
T=$PWD/$BUILD/test-out/finetune_cli
rm -rf "$T"; mkdir -p "$T"
export EMBTUNE_CACHE_DIR=$T/cache
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
ft() { "$EMBTUNE" finetune -m "$FIX" --no-cache "$@"; }

pdftotext -f 20 -l 30 "$SHARED/corpus/R-intro.pdf" "$T/r.txt" || { echo "pdftotext failed"; exit 1; }
"$TORCH_PY" - "$T/r.txt" "$T" <<'EOF' || exit 1
# 30 chunks of 40 words, one query per chunk (a word window of it), in every format;
# FlagEmbedding and triplets carry the next chunk as a hard negative
import json, os, random, re, sys
words = [w for w in re.sub(r"\s+", " ", open(sys.argv[1], errors="replace").read()).split(" ") if re.search("[A-Za-z]", w)]
out = sys.argv[2]
rnd = random.Random(5)
chunks = [" ".join(words[i:i + 40]) for i in range(0, 40 * 45, 40)]
def query(c):
    w = c.split(" "); s = rnd.randrange(0, len(w) - 8); return " ".join(w[s:s + 6])
rows = [(query(c), c, chunks[(i + 1) % 30]) for i, c in enumerate(chunks[:30])]
ds = {"queries": {f"q{i}": r[0] for i, r in enumerate(rows)}, "corpus": {f"n{i}": r[1] for i, r in enumerate(rows)},
      "relevant_docs": {f"q{i}": [f"n{i}"] for i in range(30)}, "mode": "text"}
json.dump(ds, open(os.path.join(out, "train.json"), "w"))
val = {"queries": {}, "corpus": {}, "relevant_docs": {}, "mode": "text"}
for i, c in enumerate(chunks[30:45]):
    val["corpus"][f"v{i}"] = c
    val["queries"][f"vq{i}"] = query(c)
    val["relevant_docs"][f"vq{i}"] = [f"v{i}"]
json.dump(val, open(os.path.join(out, "val.json"), "w"))
with open(os.path.join(out, "triplets.jsonl"), "w") as f:
    for q, p, n in rows:
        f.write(json.dumps({"anchor": q, "positive": p, "negative": n}) + "\n")
with open(os.path.join(out, "flag.jsonl"), "w") as f:
    for q, p, n in rows:
        f.write(json.dumps({"query": q, "pos": [p], "neg": [n]}) + "\n")
os.makedirs(os.path.join(out, "beir", "qrels"), exist_ok=True)
with open(os.path.join(out, "beir", "corpus.jsonl"), "w") as f:
    for i, (q, p, n) in enumerate(rows):
        f.write(json.dumps({"_id": f"n{i}", "title": "", "text": p}) + "\n")
with open(os.path.join(out, "beir", "queries.jsonl"), "w") as f:
    for i, (q, p, n) in enumerate(rows):
        f.write(json.dumps({"_id": f"q{i}", "text": q}) + "\n")
with open(os.path.join(out, "beir", "qrels", "train.tsv"), "w") as f:
    f.write("query-id\tcorpus-id\tscore\n")
    for i in range(30):
        f.write(f"q{i}\tn{i}\t1\n")
# bad data: a malformed 3rd line; an empty query on line 2
lines = open(os.path.join(out, "flag.jsonl")).read().splitlines()
open(os.path.join(out, "bad_flag.jsonl"), "w").write("\n".join(lines[:2] + ['{"query": "x", "pos": ["y"'] + lines[3:]) + "\n")
lines[1] = json.dumps({"query": "", "pos": [rows[1][1]], "neg": [rows[1][2]]})
open(os.path.join(out, "empty_text.jsonl"), "w").write("\n".join(lines) + "\n")
EOF

# ---- 1. format detection ----------------------------------------------------------------------
# $1 = name, $2 = expected rows, $3 = expected columns per logged row; rest = args
fmt_run() {
    local name=$1 rows=$2 cols=$3; shift 3
    if ! ft -o "$T/$name" --epochs 1 --batch-size 8 --log-batches -q "$@" >"$T/$name.out" 2>&1; then
        cat "$T/$name.out"; fail "format $name: run failed"; return
    fi
    "$TORCH_PY" - "$T/$name/train_log.jsonl" "$rows" "$cols" <<'EOF' && ok "format $name: $rows rows of $cols columns" || fail "format $name"
import json, sys
log = [json.loads(l) for l in open(sys.argv[1])]
rows = [r for e in log if "rows" in e for r in e["rows"]]
want_n, want_c = int(sys.argv[2]), int(sys.argv[3])
cols = {len(r) for r in rows}
nonnull = all(all(x is not None for x in r) for r in rows)
print(f"{len(rows)} rows, columns {sorted(cols)}, pairs in the start line {log[0]['pairs']}, all present: {nonnull}")
sys.exit(0 if len(rows) == want_n == log[0]["pairs"] and cols == {want_c} and nonnull else 1)
EOF
}
fmt_run llama 30 2 -t "$T/train.json"
fmt_run triplets 30 3 -t "$T/triplets.jsonl"
fmt_run flag 30 3 -t "$T/flag.jsonl"
fmt_run beir 30 2 -t "$T/beir"
cp "$T/flag.jsonl" "$T/flag.data"
fmt_run flag-forced 30 3 -t "$T/flag.data" --format flag
# a wrong --format: triplets read as FlagEmbedding, JSONL read as llama-index JSON
out=$(ft -t "$T/triplets.jsonl" --format flag -o "$T/wrongfmt" -q 2>&1) && fail "--format flag on triplets accepted"
echo "$out" | grep -q "triplets.jsonl:1: missing field 'query'" && ok "wrong --format: $out" || fail "wrong --format message: $out"
out=$(ft -t "$T/flag.jsonl" --format llama -o "$T/wrongfmt2" -q 2>&1) && fail "--format llama on JSONL accepted"
echo "$out" | grep -q "flag.jsonl: missing field 'queries'" && ok "wrong --format: $out" || fail "wrong --format message: $out"
out=$(ft -t "$T/flag.jsonl" --format xml -o "$T/badfmt" -q 2>&1) && fail "--format xml accepted"
echo "$out" | grep -q "unknown dataset format 'xml'" && ok "unknown --format: $out" || fail "--format xml message: $out"

# ---- 2. bad data ------------------------------------------------------------------------------
out=$(ft -t "$T/bad_flag.jsonl" -o "$T/bad" -q 2>&1) && fail "malformed line accepted"
echo "$out" | grep -q "bad_flag.jsonl:3\|bad_flag.jsonl: line 3" && ok "malformed line: $out" || fail "malformed line message: $out"
if ft -t "$T/empty_text.jsonl" -o "$T/skip" --epochs 1 --log-batches >"$T/skip.out" 2>&1; then
    grep -q "skipped 1 rows" "$T/skip.out" && grep -q '"pairs": 29' "$T/skip/train_log.jsonl" \
        && ok "empty text skipped and counted: $(grep skipped "$T/skip.out")" || fail "skip not reported: $(cat "$T/skip.out")"
else
    cat "$T/skip.out"; fail "run with an empty text"
fi

# ---- 3. the progress line ---------------------------------------------------------------------
if ET_PROGRESS=all ft -t "$T/train.json" -o "$T/progress" --epochs 4 --batch-size 4 >/dev/null 2>"$T/progress.err"; then
    line=$(tr '\r' '\n' <"$T/progress.err" | grep -E '^finetune [0-9]+/[0-9]+ \([0-9]+%\) [0-9.]+ steps/s ETA [0-9hms]+ epoch [0-9.]+ loss [0-9.]+ lr [0-9.e+-]+ [0-9.]+ pairs/s' | head -1)
    [ -n "$line" ] && ok "progress: $line" || { tr '\r' '\n' <"$T/progress.err" | head; fail "no progress line with step, epoch, loss, lr, pairs/s, ETA"; }
else
    cat "$T/progress.err"; fail "progress run"
fi

# ---- 4. validation and the best model -----------------------------------------------------------
# lr high enough that the validation MRR moves; eval every 2 steps
best_check() { # $1 = run name, $2 = "best" or "last"
    local d=$T/$1
    "$EMBTUNE" eval -d "$T/val.json" -m "$d" --no-cache -q -o "$d.eval" >/dev/null || { fail "$1: eval"; return; }
    "$TORCH_PY" - "$d/train_log.jsonl" "$d.eval/metrics.json" "$2" "$T/$1.out" <<'EOF' && ok "$1: the written model is the $2 one" || fail "$1: model is not the $2 one"
import json, re, sys
log = [json.loads(l) for l in open(sys.argv[1])]
evals = [e for e in log if "eval" in e]
steps = [e for e in log if "grad_norm" in e]
m = json.load(open(sys.argv[2]))
got = next(r["metrics"] for r in m["runs"])
keys = ["accuracy@1", "accuracy@3", "accuracy@5", "accuracy@10", "mrr@10"]
scores = [e["eval"]["mrr@10"] for e in evals]
best = max(range(len(evals)), key=lambda i: (scores[i], -i))  # first maximum (strictly better replaces)
want = evals[best] if sys.argv[3] == "best" else evals[-1]
out = open(sys.argv[4]).read()
rep = re.search(r"\(step (\d+)\)", out)
diff = max(abs(got[k] - want["eval"][k]) for k in keys)
print(f"{len(evals)} evaluations (steps {[e['step'] for e in evals]}), MRR@10 {[round(s, 4) for s in scores]}; "
      f"{sys.argv[3]}: step {want['step']}; eval of the written model vs the logged metrics of that step: "
      f"max diff {diff:.1e} over {keys} (tol 1e-5); reported step {rep.group(1) if rep else None}")
ok = diff <= 1e-5
ok &= len(evals) == 1 + len(steps) // 2 + (len(steps) % 2)  # base + every 2 steps + the last
if sys.argv[3] == "best":
    ok &= bool(rep) and int(rep.group(1)) == want["step"]
open(sys.argv[4] + ".step", "w").write(str(want["step"]))
sys.exit(0 if ok else 1)
EOF
}
for mode in best last; do
    extra=(); [ $mode = last ] && extra=(--save-last)
    if ft -t "$T/train.json" -v "$T/val.json" -o "$T/val-$mode" --epochs 3 --batch-size 8 --lr 0.05 --eval-steps 2 \
          "${extra[@]}" >"$T/val-$mode.out" 2>"$T/val-$mode.err"; then
        grep -q "^validation: base acc@1" "$T/val-$mode.out" || fail "no validation summary"
        best_check "val-$mode" $mode
    else
        cat "$T/val-$mode.err"; fail "validated run ($mode)"
    fi
done
# the best step is not the last here, so the two written models must differ
if [ "$(cat "$T/val-best.out.step" 2>/dev/null)" != "$(cat "$T/val-last.out.step" 2>/dev/null)" ]; then
    cmp -s "$T/val-best/model.safetensors" "$T/val-last/model.safetensors" \
        && fail "best (step $(cat "$T/val-best.out.step")) and last models are the same file" \
        || ok "best and last models differ (steps $(cat "$T/val-best.out.step") and $(cat "$T/val-last.out.step"))"
else
    fail "the best step is the last one: the best-model check does not discriminate (change lr or data)"
fi
# ---- 5. embed with an adapter ------------------------------------------------------------------
"$TORCH_PY" -c "import json,sys; d=json.load(open(sys.argv[1])); open(sys.argv[2],'w').write('\n'.join(list(d['queries'].values())[:10] + list(d['corpus'].values())[:5]) + '\n')" \
    "$T/train.json" "$T/emb_in.txt"
if ft -t "$T/train.json" -o "$T/ad-lin" --mode adapter --adapter-bias --epochs 2 -q >/dev/null 2>&1 &&
   ft -t "$T/train.json" -o "$T/ad-mlp" --mode adapter --adapter mlp --adapter-both --epochs 2 -q >/dev/null 2>&1; then
    E=("$EMBTUNE" embed -m "$FIX" -i "$T/emb_in.txt" -q)
    if "${E[@]}" -o "$T/e_base.npy" && "${E[@]}" -o "$T/e_lin_q.npy" --adapter "$T/ad-lin" --query &&
       "${E[@]}" -o "$T/e_lin_d.npy" --adapter "$T/ad-lin" && "${E[@]}" -o "$T/e_mlp_q.npy" --adapter "$T/ad-mlp" --query &&
       "${E[@]}" -o "$T/e_mlp_d.npy" --adapter "$T/ad-mlp"; then
        "$TORCH_PY" - "$T" <<'EOF2' && ok "embed --adapter [--query] = NumPy adapter on the base embeddings" || fail "embed --adapter"
import json, sys
import numpy as np
sys.path.insert(0, "tests/ref")
import st_io
T = sys.argv[1]
def adapter(d):  # llama-index tensor names; the base model normalizes, so the output is normalized
    t = {k: np.asarray(v, dtype=np.float64) for k, v in st_io.load(d + "/adapter.safetensors").items()}
    def f(x):
        if "linear.weight" in t:
            y = x @ t["linear.weight"].T + (t["linear.bias"] if "linear.bias" in t else 0)
        else:
            h = np.maximum(x @ t["linear1.weight"].T + t["linear1.bias"], 0)
            y = x + t["residual_weight"].reshape(()) * (h @ t["linear2.weight"].T + t["linear2.bias"])
        return y / np.linalg.norm(y, axis=1, keepdims=True)
    return f
base = np.load(T + "/e_base.npy").astype(np.float64)
lin, mlp = adapter(T + "/ad-lin"), adapter(T + "/ad-mlp")
checks = [("linear, --query", np.load(T + "/e_lin_q.npy"), lin(base), 1e-5),
          ("linear, documents (not applied)", np.load(T + "/e_lin_d.npy"), base, 0.0),
          ("mlp both, --query", np.load(T + "/e_mlp_q.npy"), mlp(base), 1e-5),
          ("mlp both, documents", np.load(T + "/e_mlp_d.npy"), mlp(base), 1e-5)]
bad = 0
for name, got, want, tol in checks:
    d = float(np.abs(got - want).max())
    print(f"  {name}: max abs diff {d:.2e} (tol {tol})")
    bad += d > tol
moved = float(np.abs(lin(base) - base).max())
print(f"  the trained linear adapter moves embeddings by up to {moved:.3f}")
sys.exit(1 if bad or moved < 1e-3 else 0)
EOF2
    else
        fail "embed with an adapter"
    fi
else
    fail "adapter training"
fi
echo "test_finetune_cli: $fails failures"
[ $fails = 0 ]
