#!/usr/bin/env bash
# test_finetune_bert.sh - full fine-tuning of a tiny random BERT through `embtune finetune`:
#   1. the run (dropout on, MNRL, AdamW, schedule, clipping) replayed in PyTorch float64
#      from the logged batches (tests/ref/finetune_bert_ref.py: losses rel 1e-4, every
#      final parameter max abs diff 2e-5)
#   2. GradCache (cached-mnrl) with --mini-batch = batch equals plain MNRL exactly (the
#      dropout draws are replayed); with smaller mini-batches and no dropout it equals
#      plain MNRL to 1e-5
#   3. kill -9 at a random moment and --resume with dropout: equal to the uninterrupted run
#   4. the output directory loads in `embtune embed` and gives the embeddings PyTorch
#      computes from its files
set -u
cd "$(dirname "$0")/.."
TOK=$SHARED/fixtures/bge-wordpiece/tokenizer.json
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    T=$(mktemp -d /dev/shm/embtune-ftbert.XXXXXX); trap 'rm -rf "$T"' EXIT
else
    T=$PWD/$BUILD/test-out/finetune_bert; rm -rf "$T"; mkdir -p "$T"
fi
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
"$TORCH_PY" tests/ref/finetune_bert_ref.py make "$T" "$TOK" || exit 1
(cd "$NODE_REF" && node tok_ids.js "$TOK" "$T/texts.json" "$T/ids_only.json" special) || exit 1
"$TORCH_PY" -c "import json,sys; json.dump({'texts': json.load(open(sys.argv[1])), 'ids': json.load(open(sys.argv[2]))}, open(sys.argv[3], 'w'))" \
    "$T/texts.json" "$T/ids_only.json" "$T/ids.json" || exit 1
M=$T/model
ft() { "$EMBTUNE" finetune -m "$M" -t "$T/train.json" --epochs 2 --batch-size 8 --lr 1e-3 --seed 7 -q "$@"; }
# max abs difference of two runs' weights, attention key biases excepted (their true
# gradient is 0: AdamW turns rounding noise into updates, see finetune_bert_ref.py);
# exit status: 0 if <= $3
maxdiff() { "$TORCH_PY" - "$1/model.safetensors" "$2/model.safetensors" "$3" <<'PY'
import sys
sys.path.insert(0, "tests/ref")
import bert_ref
a, b = bert_ref.load_safetensors(sys.argv[1]), bert_ref.load_safetensors(sys.argv[2])
d = max(float((a[k] - b[k]).abs().max()) for k in a if not k.endswith("attention.self.key.bias"))
print(f"max abs diff {d:.3g} (tol {sys.argv[3]})")
sys.exit(0 if d <= float(sys.argv[3]) else 1)
PY
}

# 1. trajectory with dropout
if ft -o "$T/run" --log-batches >/dev/null; then
    "$TORCH_PY" tests/ref/finetune_bert_ref.py traj "$M" "$T/train.json" "$T/ids.json" "$T/run" 7 \
        && ok "BERT trajectory (dropout) equals PyTorch" || fail "BERT trajectory"
else
    fail "BERT run"
fi
# 2. GradCache
if ft -o "$T/cached8" --loss cached-mnrl --mini-batch 8 >/dev/null; then
    d=$(maxdiff "$T/run" "$T/cached8" 0) && ok "GradCache, mini-batch = batch, dropout on: $d vs MNRL" \
        || fail "GradCache mini 8 differs from MNRL: $d"
else
    fail "cached run"
fi
if ft -o "$T/plain-nodrop" --no-dropout >/dev/null && ft -o "$T/cached3" --no-dropout --loss cached-mnrl --mini-batch 3 >/dev/null; then
    d=$(maxdiff "$T/plain-nodrop" "$T/cached3" 1e-5) && ok "GradCache, mini-batch 3 of 8, no dropout: $d vs MNRL" \
        || fail "GradCache mini 3 differs from MNRL: $d"
else
    fail "no-dropout runs"
fi
# 3. kill -9 + resume with dropout
"$EMBTUNE" finetune -m "$M" -t "$T/train.json" --epochs 2 --batch-size 8 --lr 1e-3 --seed 7 -q -o "$T/killed" \
    --save-steps 1 >/dev/null 2>&1 &
pid=$!
# at a random moment: after a random number of logged steps (1-4 of 6), plus 0-99 ms
at=$((1 + RANDOM % 4))
for i in $(seq 1 1500); do
    n=$(grep -c grad_norm "$T/killed/train_log.jsonl" 2>/dev/null); [ "${n:-0}" -ge $at ] && break; sleep 0.02
done
sleep "0.$(printf %02d $((RANDOM % 100)))"
killed=1
kill -9 $pid 2>/dev/null || { killed=0; echo "note: the run ended before kill -9; nothing to resume"; }
wait $pid 2>/dev/null
[ -d "$T/killed/checkpoint" ] || killed=0 # it had finished (a zombie still takes the signal)
echo "killed at step $(grep -c grad_norm "$T/killed/train_log.jsonl" 2>/dev/null)/6"
if [ $killed = 0 ] || ft -o "$T/killed" --resume >/dev/null; then
    d=$(maxdiff "$T/run" "$T/killed" 1e-6) && ok "resume with dropout: $d" || fail "resume differs: $d"
else
    fail "resume"
fi
# 4. embed the output and recompute in PyTorch from its files
"$TORCH_PY" -c "import json,sys; t=json.load(open(sys.argv[1])); open(sys.argv[2],'w').write('\n'.join(t[:10])+'\n')" \
    "$T/texts.json" "$T/texts.txt"
if "$EMBTUNE" embed -m "$T/run" -i "$T/texts.txt" -o "$T/emb.npy" -q; then
    "$TORCH_PY" - "$T/run" "$T/ids.json" "$T/emb.npy" <<'PY' && ok "fine-tuned BERT directory reloaded in PyTorch = embtune embed" || fail "reload"
import json, sys
import numpy as np, torch
sys.path.insert(0, "tests/ref")
import bert_ref
d = sys.argv[1]
cfg = json.load(open(d + "/config.json"))
mods = [m["type"].split(".")[-1] for m in json.load(open(d + "/modules.json"))]
pool = json.load(open(d + "/1_Pooling/config.json"))
assert mods == ["Transformer", "Pooling", "Normalize"], mods
assert pool["pooling_mode_cls_token"]
P = {k: v.double() for k, v in bert_ref.load_safetensors(d + "/model.safetensors").items()}
ids = json.load(open(sys.argv[2]))["ids"][:10]
x, m = bert_ref.pad_batch(ids, 0)
e = bert_ref.pool(bert_ref.encode(P, cfg, x, m), m, "cls", normalize=True)
diff = float((torch.from_numpy(np.load(sys.argv[3])).double() - e).abs().max())
print(f"reload: max abs diff {diff:.2e} (tol 1e-5)")
sys.exit(0 if diff <= 1e-5 else 1)
PY
else
    fail "embed"
fi
echo "test_finetune_bert: $fails failures"
[ $fails = 0 ]
