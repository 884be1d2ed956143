#!/usr/bin/env bash
# test_finetune_traj.sh - the weight trajectory of full BERT fine-tuning against PyTorch
# (tests/ref/finetune_traj_ref.py, float64), step by step:
#   1. 10 steps: FlagEmbedding data with a hard-negative column, gradient accumulation 2
#      (batches of 4), warm-up 3 steps then linear decay, clipping at 0.5 (active), weight
#      decay, dropout on. The run is stopped twice with SIGTERM at a random step and resumed;
#      the parameters in each checkpoint are compared with PyTorch's after the same step,
#      and the final model with PyTorch's after step 10. Per step: loss (rel 1e-5), pre-clip
#      gradient norm (rel 1e-4), learning rate (rel 1e-6); parameters max abs diff 2e-5.
#   2. GISTEmbed (guide = the base model) wrapped in Matryoshka (dims 32, 16), and
#      symmetric MNRL without dropout: same checks.
set -u
cd "$(dirname "$0")/.."
TOK=$SHARED/fixtures/bge-wordpiece/tokenizer.json
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    T=$(mktemp -d /dev/shm/embtune-fttraj.XXXXXX); [ -n "${KEEP:-}" ] && echo "keeping $T" || trap 'umount "$T/small" 2>/dev/null; rm -rf "$T"' EXIT
else
    T=$PWD/$BUILD/test-out/finetune_traj; rm -rf "$T"; mkdir -p "$T"
fi
export EMBTUNE_CACHE_DIR=$T/cache
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
"$TORCH_PY" tests/ref/finetune_bert_ref.py make "$T" "$TOK" || exit 1
"$TORCH_PY" tests/ref/finetune_traj_ref.py data "$T" || exit 1
"$TORCH_PY" -c "import json,sys; json.dump(json.load(open(sys.argv[1])) + json.load(open(sys.argv[2])), open(sys.argv[3], 'w'))" \
    "$T/texts.json" "$T/flag_texts.json" "$T/all_texts.json" || exit 1
(cd "$NODE_REF" && node tok_ids.js "$TOK" "$T/all_texts.json" "$T/ids_only.json" special) || exit 1
"$TORCH_PY" -c "import json,sys; json.dump({'texts': json.load(open(sys.argv[1])), 'ids': json.load(open(sys.argv[2]))}, open(sys.argv[3], 'w'))" \
    "$T/all_texts.json" "$T/ids_only.json" "$T/ids.json" || exit 1
M=$T/model

# ---- 1. 10 steps, accumulation, negatives, clipping, schedule, two SIGTERM + resume -------
A=(-m "$M" -t "$T/train_flag.jsonl" --epochs 2 --batch-size 4 --grad-accum 2 --negatives 1 --lr 1e-3
   --warmup 3 --max-grad-norm 0.5 --weight-decay 0.01 --seed 5 --log-batches --save-steps 1 -q -o "$T/a")
steps_done() { local n; n=$(grep -c '"grad_norm"' "$T/a/train_log.jsonl" 2>/dev/null); echo "${n:-0}"; }
stop_at() { # $1 = stop once this many steps are logged; $2 = checkpoint copy; rest = extra args
    local at=$1 copy=$2 i=0; shift 2
    "$EMBTUNE" finetune "${A[@]}" "$@" >>"$T/a.out" 2>&1 &
    local pid=$!
    while [ "$(steps_done)" -lt "$at" ] && kill -0 $pid 2>/dev/null && [ $i -lt 3000 ]; do sleep 0.01; i=$((i + 1)); done
    kill -TERM $pid 2>/dev/null
    wait $pid
    local rc=$?
    if [ $rc = 0 ]; then fail "the run finished before SIGTERM"; return; fi
    grep -q "interrupted at step" "$T/a.out" || fail "SIGTERM did not checkpoint: $(tail -2 "$T/a.out")"
    cp "$T/a/checkpoint/state.bin" "$copy" && echo "stopped at step $(steps_done)/10"
}
stop_at $((2 + RANDOM % 2)) "$T/ck1.bin"
stop_at $((6 + RANDOM % 2)) "$T/ck2.bin" --resume
if "$EMBTUNE" finetune "${A[@]}" --resume >>"$T/a.out" 2>&1; then
    "$TORCH_PY" tests/ref/finetune_traj_ref.py traj "$M" "$T/train_flag.jsonl" "$T/ids.json" "$T/a" \
        '{"seed": 5, "loss": "mnrl", "clip": 0.5, "wd": 0.01, "expect_clipped": true}' "$T/ck1.bin" "$T/ck2.bin" \
        && ok "10-step trajectory (accumulation, negatives, clipping, dropout, 2 resumes) equals PyTorch" \
        || fail "10-step trajectory"
else
    tail -5 "$T/a.out"; fail "resumed run"
fi

# ---- 2. GISTEmbed + Matryoshka; symmetric MNRL ------------------------------------------------
if "$EMBTUNE" finetune -m "$M" -t "$T/train.json" -o "$T/gist" --epochs 1 --batch-size 6 --lr 1e-3 --warmup 1 \
        --seed 8 --loss gist --guide "$M" --matryoshka-dims 32,16 --matryoshka-weights 1,0.5 --log-batches -q \
        >"$T/gist.out" 2>&1; then
    "$TORCH_PY" tests/ref/finetune_traj_ref.py traj "$M" "$T/train.json" "$T/ids.json" "$T/gist" \
        '{"seed": 8, "loss": "gist", "guide": true, "temperature": 0.01, "dims": [32, 16], "weights": [1, 0.5], "clip": 1.0, "wd": 0.01}' \
        && ok "GISTEmbed + Matryoshka trajectory equals PyTorch" || fail "gist trajectory"
else
    cat "$T/gist.out"; fail "gist run"
fi
if "$EMBTUNE" finetune -m "$M" -t "$T/train.json" -o "$T/sym" --epochs 1 --batch-size 8 --lr 1e-3 --warmup 0 \
        --seed 2 --loss mnrl-sym --scale 10 --no-dropout --log-batches -q >"$T/sym.out" 2>&1; then
    "$TORCH_PY" tests/ref/finetune_traj_ref.py traj "$M" "$T/train.json" "$T/ids.json" "$T/sym" \
        '{"seed": 2, "loss": "mnrl-sym", "scale": 10, "clip": 1.0, "wd": 0.01, "dropout": false}' \
        && ok "symmetric MNRL trajectory equals PyTorch" || fail "mnrl-sym trajectory"
else
    cat "$T/sym.out"; fail "mnrl-sym run"
fi
# ---- 3. the fine-tuned directory reloaded by an independent torch.nn BERT ---------------------
# (tests/ref/st_bert_reload.py: modules.json, pooling config, max_seq_length, strict state
# dict), tokenized by Hugging Face tokenizers from the directory's own tokenizer.json; one
# text is longer than max_seq_length (48)
reload_check() { # $1 = model directory, $2 = label
    "$TORCH_PY" -c "
import json, sys
t = json.load(open(sys.argv[1]))[:12]
t.append(' '.join(t[1:8]))
json.dump(t, open(sys.argv[2], 'w')); open(sys.argv[3], 'w').write('\n'.join(t) + '\n')" \
        "$T/flag_texts.json" "$T/re_texts.json" "$T/re_texts.txt" || return 1
    (cd "$NODE_REF" && node tok_ids.js "$1/tokenizer.json" "$T/re_texts.json" "$T/re_ids.json" special) || return 1
    "$EMBTUNE" embed -m "$1" -i "$T/re_texts.txt" -o "$T/re.npy" -q || return 1
    "$TORCH_PY" tests/ref/st_bert_reload.py "$1" "$T/re_ids.json" "$T/re.npy" 1e-5
}
reload_check "$T/a" && ok "fine-tuned directory reloaded by an independent torch.nn BERT = embtune embed" \
    || fail "reload of the fine-tuned directory"

# ---- 4. NaN loss; full disk -------------------------------------------------------------------
out=$("$EMBTUNE" finetune -m "$M" -t "$T/train.json" -o "$T/nan" --epochs 2 --batch-size 8 --lr 1e38 --warmup 0 \
      --save-steps 1 -q 2>&1) && fail "lr 1e38 succeeded"
# the kept checkpoint is the step the message names, with finite parameters
ck_ok() { "$TORCH_PY" - "$1" "$2" <<'PY'
import sys
sys.path.insert(0, "tests/ref")
import finetune_traj_ref as r
step, p = r.read_ckpt(sys.argv[1])
import torch
print(f"checkpoint: step {step}, {p.numel()} parameters, all finite: {bool(torch.isfinite(p).all())}")
sys.exit(0 if step == int(sys.argv[2]) and bool(torch.isfinite(p).all()) else 1)
PY
}
good=$(echo "$out" | sed -n 's/.*last good checkpoint (step \([0-9]*\)).*/\1/p')
if echo "$out" | grep -q "not finite" && [ -n "$good" ] && ck_ok "$T/nan/checkpoint/state.bin" "$good" \
        && [ ! -e "$T/nan/model.safetensors" ]; then
    ok "BERT: NaN stops the run, the last good checkpoint is kept: $out"
else
    fail "BERT NaN handling: $out; $(ls "$T/nan" "$T/nan/checkpoint" 2>&1 | tr '\n' ' ')"
fi
mnt=$T/small
mkdir -p "$mnt" "$T/ck-elsewhere"
if mount -t tmpfs -o size=1m tmpfs "$mnt" 2>/dev/null; then
    # the 3.9 MB model cannot be written to the 1 MB disk; the checkpoint lives elsewhere
    mkdir -p "$mnt/out"; ln -s "$T/ck-elsewhere" "$mnt/out/checkpoint"
    out=$("$EMBTUNE" finetune -m "$M" -t "$T/train.json" -o "$mnt/out" --epochs 1 --batch-size 8 --lr 1e-3 -q 2>&1) \
        && fail "BERT: writing to a full disk succeeded"
    left=$(ls -A "$mnt/out" | grep -v -e '^checkpoint$' -e '^train_log.jsonl$' | tr '\n' ' ')
    if [ -z "$left" ] && [ -f "$T/ck-elsewhere/state.bin" ]; then
        ok "BERT, full disk: nothing half-written in OUT_DIR ($out)"
    else
        fail "BERT, full disk left: '$left' ($out)"
    fi
    umount "$mnt"
    mount -t tmpfs -o size=64m tmpfs "$mnt"
    mkdir -p "$mnt/out"; ln -s "$T/ck-elsewhere" "$mnt/out/checkpoint"
    if "$EMBTUNE" finetune -m "$M" -t "$T/train.json" -o "$mnt/out" --epochs 1 --batch-size 8 --lr 1e-3 -q --resume \
           >/dev/null 2>"$T/disk.err"; then
        reload_check "$mnt/out" && ok "BERT: after freeing space, --resume writes a model that reloads" \
            || fail "model written after a full disk"
    else
        cat "$T/disk.err"; fail "BERT: resume after a full disk"
    fi
    umount "$mnt"
else
    echo "note: cannot mount a tmpfs here; full-disk check not run"
fi
echo "test_finetune_traj: $fails failures"
[ $fails = 0 ]
