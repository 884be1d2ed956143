#!/usr/bin/env bash
# bench/bert_train.sh - one full fine-tuning step of a bge-small-shaped BERT
# (random weights; 12 layers, hidden 384), batch B pairs of a Tq-token query
# and a Tp-token passage (default 16 x 32 / 128): forward of both columns,
# MNRL loss, backward, AdamW. embtune (bench/bench_bert_step.c) against
# PyTorch (bench/bert_step_torch.py, the same model in plain torch, 1 torch
# thread + OpenBLAS with all threads: its fastest setting here), run
# alternately ROUNDS times in the same session, with dropout off and on
# (DROPOUTS). Prints seconds per step (median over rounds of each run's
# median), pairs/s, CPU seconds per step and peak RSS, and the ratios.
# Called by bench/run.sh; runs alone too. Writes bench/out/bert_train.json.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
B=${B:-16} TQ=${TQ:-32} TP=${TP:-128} STEPS=${STEPS:-3} ROUNDS=${ROUNDS:-2}
DROPOUTS=${DROPOUTS:-"0 0.1"}
THREADS=${ET_THREADS:-$(nproc)}
TORCH_PY=${TORCH_PY:-/usr/bin/python3}
SHARED=${SHARED:-$(cd .. && pwd)/shared}
make -s "$BUILD/bench/bench_bert_step" >/dev/null
MODEL=$BUILD/bench-out/bge-small-random
mkdir -p "$BUILD/bench-out" bench/out
[ -f "$MODEL/model.safetensors" ] ||
    "$TORCH_PY" bench/make_bge_small.py "$MODEL" "$SHARED/fixtures/bge-wordpiece/tokenizer.json" >/dev/null
LOG=$BUILD/bench-out/bert_train.jsonl
: >"$LOG"
for p in $DROPOUTS; do
    for r in $(seq "$ROUNDS"); do
        ET_THREADS=$THREADS "$BUILD/bench/bench_bert_step" "$MODEL" "$B" "$TQ" "$TP" "$STEPS" "$p" >>"$LOG"
        OPENBLAS_NUM_THREADS=$THREADS "$TORCH_PY" bench/bert_step_torch.py "$B" "$TQ" "$TP" "$STEPS" 1 "$p" >>"$LOG"
    done
done
"$TORCH_PY" - "$LOG" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out = {}
for p in sorted({r["dropout"] for r in rows}):
    res = {}
    for impl in ("embtune", "pytorch"):
        rs = [r for r in rows if r["impl"].split("-")[0] == impl and r["dropout"] == p]
        res[impl] = {k: statistics.median(r[k] for r in rs) for k in ("step_s", "cpu_s", "peak_rss_mb")}
        res[impl]["pairs_per_s"] = rs[0]["B"] / res[impl]["step_s"]
    e, t = res["embtune"], res["pytorch"]
    r0 = rows[0]
    print(f"fine-tuning step, bge-small shape, {r0['B']} pairs x ({r0['Tq']} + {r0['Tp']}) tokens, MNRL + AdamW, "
          f"dropout {p}, {r0['threads']} threads")
    print(f"  {'':10s} {'s/step':>8s} {'pairs/s':>8s} {'cpu s':>8s} {'peak RSS MB':>12s}")
    for name, x in (("embtune", e), ("pytorch", t)):
        print(f"  {name:10s} {x['step_s']:8.2f} {x['pairs_per_s']:8.2f} {x['cpu_s']:8.2f} {x['peak_rss_mb']:12.0f}")
    print(f"  embtune vs pytorch: {t['step_s'] / e['step_s']:.2f}x speed, "
          f"{e['peak_rss_mb'] / t['peak_rss_mb']:.2f}x peak memory")
    out[str(p)] = res
json.dump({"runs": rows, "summary": out}, open("bench/out/bert_train.json", "w"), indent=1)
PY
