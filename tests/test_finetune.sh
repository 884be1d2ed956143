#!/usr/bin/env bash
# test_finetune.sh - `embtune finetune` end to end on the real model2vec fixture:
#   1. trajectory: a static run and an adapter run replayed in PyTorch from the
#      logged batches (tests/ref/finetune_ref.py; losses rel 1e-4, final
#      parameters max abs diff 1e-5)
#   2. the output model directory reloaded by an independent PyTorch
#      implementation equals `embtune embed` on it (1e-5)
#   3. validation, best checkpoint, the adapter embedding cache
#   4. kill -9 at three points (and SIGTERM once), --resume: final weights equal
#      an uninterrupted run's (max abs diff <= 1e-6)
#   5. NaN loss stops with a message and keeps the checkpoint; bad data and
#      bad options give clear errors
#   6. a full disk (tmpfs) leaves no corrupt model directory; --resume finishes
#   7. every loss (mnrl-sym, gist, matryoshka, cached-mnrl) and data format runs
set -u
cd "$(dirname "$0")/.."
FIX=$SHARED/fixtures/model2vec-bge-base-q128
# runs checkpoint often and fsync each checkpoint: work in RAM when we can (fast on a
# busy disk), else under $BUILD/test-out
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    T=$(mktemp -d /dev/shm/embtune-finetune.XXXXXX)
    trap 'rm -rf "$T"' EXIT
else
    T=$PWD/$BUILD/test-out/finetune
    rm -rf "$T"; mkdir -p "$T"
fi
export EMBTUNE_CACHE_DIR=$T/cache
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
ft() { "$EMBTUNE" finetune "$@"; }

pdftotext "$SHARED/corpus/R-intro.pdf" "$T/r-intro.txt" || { echo "pdftotext failed"; exit 1; }
"$TORCH_PY" tests/ref/make_ft_data.py "$T/r-intro.txt" "$T/data" || exit 1
D=$T/data
# token ids of every text from the real HF tokenizer
"$TORCH_PY" - "$D" <<'EOF' || exit 1
import json, sys
d = sys.argv[1]
json.dump(json.load(open(d + "/texts.json")), open(d + "/texts_in.json", "w"))
EOF
(cd "$NODE_REF" && node tok_ids.js "$FIX/tokenizer.json" "$D/texts_in.json" "$D/ids_only.json") || exit 1
"$TORCH_PY" - "$D" <<'EOF' || exit 1
import json, sys
d = sys.argv[1]
texts = json.load(open(d + "/texts_in.json"))
ids = json.load(open(d + "/ids_only.json"))
json.dump({"texts": texts, "ids": ids}, open(d + "/ids.json", "w"))
json.dump({"texts": texts[:40], "ids": ids[:40]}, open(d + "/ids40.json", "w"))
EOF

# ---- 1. trajectories -------------------------------------------------------------------
if ft -m "$FIX" -t "$D/train.json" -o "$T/traj" --epochs 2 --batch-size 8 --lr 5e-3 --warmup 0.2 \
      --seed 3 --log-batches -q >"$T/traj.out" 2>&1; then
    "$TORCH_PY" tests/ref/finetune_ref.py traj "$FIX" "$D/train.json" "$D/ids.json" "$T/traj" \
        && ok "static trajectory equals PyTorch" || fail "static trajectory"
else
    cat "$T/traj.out"; fail "static run"
fi
if ft -m "$FIX" -t "$D/train.json" -o "$T/adapter" --mode adapter --epochs 2 --batch-size 8 --lr 1e-2 \
      --seed 3 --log-batches >"$T/adapter.out" 2>&1; then
    "$TORCH_PY" tests/ref/finetune_ref.py traj "$FIX" "$D/train.json" "$D/ids.json" "$T/adapter" adapter \
        && ok "adapter trajectory equals PyTorch" || fail "adapter trajectory"
    grep -q "0 from the cache" "$T/adapter.out" || fail "first adapter run should embed everything"
    [ -f "$T/adapter/config.json" ] && [ -f "$T/adapter/adapter.safetensors" ] || fail "adapter files"
else
    cat "$T/adapter.out"; fail "adapter run"
fi
# a second adapter run takes every base embedding from the cache
if ft -m "$FIX" -t "$D/train.json" -o "$T/adapter2" --mode adapter --epochs 1 --adapter mlp >"$T/adapter2.out" 2>&1; then
    grep -Eq "embeddings: ([0-9]+) texts, \1 from the cache" "$T/adapter2.out" \
        && ok "adapter epochs reuse cached embeddings" || { cat "$T/adapter2.out"; fail "cache not used"; }
else
    cat "$T/adapter2.out"; fail "mlp adapter run"
fi

# ---- 2. reload by an independent implementation ----------------------------------------
for f in config.json model.safetensors tokenizer.json modules.json config_sentence_transformers.json train_log.jsonl; do
    [ -f "$T/traj/$f" ] || fail "output lacks $f"
done
[ -d "$T/traj/checkpoint" ] && fail "checkpoint directory left after a finished run"
if "$EMBTUNE" embed -m "$T/traj" -i "$D/texts.txt" -o "$T/emb.npy" -q; then
    "$TORCH_PY" tests/ref/finetune_ref.py reload "$T/traj" "$D/ids40.json" "$T/emb.npy" \
        && ok "reloaded model = embtune embed" || fail "reload"
else
    fail "embtune embed on the fine-tuned model"
fi

# ---- 3. validation and the best checkpoint ---------------------------------------------
if ft -m "$FIX" -t "$D/train.json" -v "$D/val.json" -o "$T/val" --epochs 3 >"$T/val.out" 2>"$T/val.err"; then
    grep -q "validation: base acc@1" "$T/val.out" || fail "no validation summary"
    n_eval=$(grep -c '"eval"' "$T/val/train_log.jsonl")
    [ "$n_eval" = 4 ] || fail "expected 4 eval lines (base + 3 epochs), got $n_eval"
    grep -q "base model on validation" "$T/val.err" || fail "base metrics not reported"
    ok "validation: $(grep validation: "$T/val.out")"
else
    cat "$T/val.err"; fail "validated run"
fi

# ---- 4. kill -9 and resume ---------------------------------------------------------------
COMMON=(-m "$FIX" -t "$D/train.json" --epochs 2 --batch-size 4 --lr 5e-3 --seed 9 --save-last -q)
ft "${COMMON[@]}" -o "$T/ref" >/dev/null 2>&1 || fail "reference run"
steps_done() { local n; n=$(grep -c '"grad_norm"' "$T/kill/train_log.jsonl" 2>/dev/null); echo "${n:-0}"; }
total=$(grep -o '"steps": [0-9]*' "$T/ref/train_log.jsonl" | head -1 | grep -o '[0-9]*$')
kill_at() { # $1 = step to wait for, $2 = signal, $3.. = extra args
    local at=$1 sig=$2; shift 2
    "$EMBTUNE" finetune "${COMMON[@]}" -o "$T/kill" --save-steps 2 "$@" >>"$T/kill.out" 2>&1 &
    local pid=$! i=0
    while [ "$(steps_done)" -lt "$at" ] && kill -0 $pid 2>/dev/null && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
    kill -"$sig" $pid 2>/dev/null
    wait $pid 2>/dev/null
    echo "killed with SIG$sig at step $(steps_done)/$total"
}
kill_at 0 9   # before the first checkpoint: --resume starts over
kill_at 5 9 --resume
kill_at 15 9 --resume
kill_at 24 TERM --resume
grep -q "interrupted at step" "$T/kill.out" || fail "SIGTERM did not checkpoint and stop"
kill_at 37 9 --resume
if ft "${COMMON[@]}" -o "$T/kill" --resume >>"$T/kill.out" 2>&1; then
    "$TORCH_PY" - "$T/ref/model.safetensors" "$T/kill/model.safetensors" <<'EOF' && ok "resumed run equals the uninterrupted one" || fail "resume equality"
import sys
sys.path.insert(0, "tests/ref")
import st_io
a = st_io.load(sys.argv[1])["embeddings"]
b = st_io.load(sys.argv[2])["embeddings"]
d = float((a - b).abs().max())
print(f"resume: max abs diff {d:.3g} (tol 1e-6)")
sys.exit(0 if d <= 1e-6 else 1)
EOF
    n=$(grep -c '"grad_norm"' "$T/kill/train_log.jsonl")
    [ "$n" = "$total" ] || fail "log of the resumed run has $n step lines, expected $total"
else
    tail -5 "$T/kill.out"; fail "final resume"
fi
# resume with other options is refused
"$EMBTUNE" finetune "${COMMON[@]}" -o "$T/kill2" --save-steps 1 >/dev/null 2>&1 &
pid=$!; sleep 0.5; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
if [ -f "$T/kill2/checkpoint/state.bin" ]; then
    out=$(ft "${COMMON[@]}" -o "$T/kill2" --resume --lr 1e-3 2>&1) && fail "resume with another lr accepted"
    echo "$out" | grep -q "other training options" && ok "resume with other options refused" || fail "message: $out"
    out=$(ft "${COMMON[@]}" -o "$T/kill2" 2>&1) && fail "run into a directory with a checkpoint accepted"
    echo "$out" | grep -q -- "--resume" || fail "message: $out"
fi

# ---- 5. NaN, bad data, bad options ---------------------------------------------------------
out=$(ft -m "$FIX" -t "$D/train.json" -o "$T/nan" --lr 1e38 --warmup 0 --epochs 2 -q 2>&1) && fail "lr 1e38 succeeded"
# the kept checkpoint holds the step the message names, and finite parameters
good=$(echo "$out" | sed -n 's/.*last good checkpoint (step \([0-9]*\)).*/\1/p')
ck_good() { "$TORCH_PY" - "$T/nan/checkpoint/state.bin" "$good" <<'PY'
import sys
sys.path.insert(0, "tests/ref")
import torch
import finetune_traj_ref as r
step, p = r.read_ckpt(sys.argv[1])
print(f"checkpoint: step {step}, all {p.numel()} parameters finite: {bool(torch.isfinite(p).all())}")
sys.exit(0 if sys.argv[2] and step == int(sys.argv[2]) and bool(torch.isfinite(p).all()) else 1)
PY
}
echo "$out" | grep -q "not finite" && ck_good && [ ! -f "$T/nan/model.safetensors" ] \
    && ok "NaN stops the run, keeps the checkpoint: $out" || fail "NaN handling: $out"
expect_err() { # $1 = needle, rest = args
    local needle=$1; shift
    local out
    if out=$(ft "$@" 2>&1); then fail "succeeded: $*"; return; fi
    echo "$out" | grep -q -- "$needle" && ok "error: $out" || fail "message lacks '$needle': $out"
}
expect_err "no usable queries" -m "$FIX" -t "$D/empty.json" -o "$T/e1"
expect_err "no-such-node" -m "$FIX" -t "$D/missing_rel.json" -o "$T/e2"
expect_err "malformed.jsonl: line 2" -m "$FIX" -t "$D/malformed.jsonl" -o "$T/e3"
expect_err "unknown loss" -m "$FIX" -t "$D/train.json" -o "$T/e5" --loss triplet
expect_err "guide" -m "$FIX" -t "$D/train.json" -o "$T/e6" --loss gist
expect_err "already holds a model" -m "$FIX" -t "$D/train.json" -o "$T/traj"
expect_err "Matryoshka dim" -m "$FIX" -t "$D/train.json" -o "$T/e7" --matryoshka-dims 128
expect_err "unknown option" -m "$FIX" -t "$D/train.json" -o "$T/e8" --bogus

# ---- 6. full disk --------------------------------------------------------------------------
mnt=$T/small
mkdir -p "$mnt" "$T/ckpt-elsewhere"
if mount -t tmpfs -o size=4m tmpfs "$mnt" 2>/dev/null; then
    # the checkpoint lives elsewhere (symlink), the 4 MB disk cannot hold the 7.5 MB model
    mkdir -p "$mnt/out"; ln -s "$(cd "$T/ckpt-elsewhere" && pwd)" "$mnt/out/checkpoint"
    out=$(ft -m "$FIX" -t "$D/train.json" -o "$mnt/out" --epochs 1 -q 2>&1) && fail "write to a full disk succeeded"
    left=$(ls -A "$mnt/out" | grep -v -e '^checkpoint$' -e '^train_log.jsonl$' | tr '\n' ' ')
    if [ -z "$left" ] && [ -f "$T/ckpt-elsewhere/state.bin" ]; then
        ok "full disk: nothing half-written in OUT_DIR ($out)"
    else
        fail "full disk left: '$left' ($out)"
    fi
    umount "$mnt"
    mount -t tmpfs -o size=64m tmpfs "$mnt"
    mkdir -p "$mnt/out"; ln -s "$(cd "$T/ckpt-elsewhere" && pwd)" "$mnt/out/checkpoint"
    if ft -m "$FIX" -t "$D/train.json" -o "$mnt/out" --epochs 1 -q --resume >/dev/null 2>"$T/disk.err"; then
        [ -f "$mnt/out/model.safetensors" ] && ok "after freeing space, --resume writes the model" || fail "no model after resume"
    else
        cat "$T/disk.err"; fail "resume after a full disk"
    fi
    umount "$mnt"
else
    echo "note: cannot mount a tmpfs here; full-disk check not run"
fi

# ---- 7. every loss and format ----------------------------------------------------------------
run_ok() { local name=$1; shift
    if ft -m "$FIX" -o "$T/$name" --epochs 1 -q "$@" >"$T/$name.out" 2>&1; then ok "$name"; else cat "$T/$name.out"; fail "$name"; fi; }
run_ok mnrl-sym -t "$D/train.json" --loss mnrl-sym
run_ok gist -t "$D/train.json" --loss gist --guide "$FIX"
run_ok matryoshka -t "$D/train.json" --loss matryoshka --matryoshka-dims 64,32,16 --matryoshka-weights 1,0.5,0.5
run_ok cached -t "$D/train.json" --loss cached-mnrl --batch-size 64 --mini-batch 8
run_ok pairs -t "$D/train_pairs.jsonl"
run_ok flag -t "$D/train_flag.jsonl" --negatives 2
run_ok adapter-both -t "$D/train.json" --mode adapter --adapter-both --adapter-bias

echo "test_finetune: $fails failures"
[ $fails = 0 ]
