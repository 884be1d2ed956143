#!/usr/bin/env bash
# bench/serve.sh - `embtune serve` under load (called by bench/run.sh; runs alone too):
# requests/s and p50/p99 latency with wrk at 1, 8 and 64 connections, for 1-text and
# 16-text requests, next to the throughput of batch `embtune embed` on the same texts
# measured in the same run (the bound that dynamic batching should approach; process
# start-up and model loading are subtracted from it).
# Models: the model2vec fixture on sentences of R-intro.pdf, and a bge-small-shaped BERT
# with random weights (tests/ref/make_models.py bench) on query-length texts (the first
# 12 words), unless SERVE_BENCH_BERT=0.
# Fails soft: a missing tool, a model that cannot be made or a server that does not start
# prints "serve: SKIPPED ..." for that part and the rest still runs; the exit code is 0
# unless SERVE_BENCH_STRICT=1 (then 1 when anything was skipped or failed).
# Env: SECONDS_PER_RUN (default 5 for model2vec, 3x that for BERT). Writes bench/out/serve.json.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
EMBTUNE=${EMBTUNE:-$PWD/$BUILD/embtune}
SHARED=${SHARED:-$(cd .. && pwd)/shared}
TORCH_PY=${TORCH_PY:-/usr/bin/python3}
PY=$TORCH_PY
[ -x "$PY" ] || PY=python3
DUR=${SECONDS_PER_RUN:-5}
OUT=$PWD/$BUILD/bench-out/serve
mkdir -p "$OUT" bench/out
rm -f bench/out/serve.json # never leave an older run's numbers for bench/run.sh to pick up
problems=0
skip() { echo "serve: SKIPPED $*"; problems=$((problems + 1)); }
finish() { [ "${SERVE_BENCH_STRICT:-0}" = 1 ] && [ $problems -gt 0 ] && exit 1; exit 0; }
SRV=
trap '[ -n "$SRV" ] && kill -9 $SRV 2>/dev/null' EXIT

command -v wrk >/dev/null || { skip "(wrk is not installed: apt-get install wrk)"; finish; }
[ -x "$EMBTUNE" ] || make -s -j2 >/dev/null || { skip "(cannot build $EMBTUNE)"; finish; }

if [ ! -s "$OUT/sentences.txt" ]; then
    pdftotext -q "$SHARED/corpus/R-intro.pdf" - | tr '\n' ' ' | sed 's/\. /.\n/g' |
        awk 'NF >= 10 && NF <= 60' >"$OUT/sentences.txt"
fi
[ -s "$OUT/sentences.txt" ] || { skip "(no sentences from $SHARED/corpus/R-intro.pdf)"; finish; }
awk '{ s = $1; for (i = 2; i <= 12 && i <= NF; i++) s = s " " $i; print s }' "$OUT/sentences.txt" >"$OUT/queries.txt"

models=("$SHARED/fixtures/model2vec-bge-base-q128")
texts=("$OUT/sentences.txt")
durs=("$DUR")
embed_n=(4096)
if [ "${SERVE_BENCH_BERT:-1}" != 0 ] && [ -f tests/ref/make_models.py ]; then
    if [ -z "$(ls -d "$OUT"/bert/*/ 2>/dev/null)" ]; then
        mkdir -p "$OUT/bert"
        "$TORCH_PY" tests/ref/make_models.py bench "$OUT/bert" "$SHARED" >/dev/null 2>"$OUT/make_models.err" ||
            skip "the BERT model (tests/ref/make_models.py bench failed: $(tail -1 "$OUT/make_models.err"))"
    fi
    for d in "$OUT"/bert/*/; do
        [ -f "$d/config.json" ] || continue
        models+=("${d%/}"); texts+=("$OUT/queries.txt"); durs+=($((DUR * 3))); embed_n+=(256)
    done
fi

# seconds to embed the first n lines of a file, minus start-up (a 1-line run); empty on failure
embed_time() { # model file n
    head -n "$3" "$2" >"$OUT/embed_in.txt"
    while [ "$(wc -l <"$OUT/embed_in.txt")" -lt "$3" ]; do
        cat "$OUT/embed_in.txt" "$OUT/embed_in.txt" | head -n "$3" >"$OUT/e2" && mv "$OUT/e2" "$OUT/embed_in.txt"
    done
    head -n 1 "$2" >"$OUT/embed_one.txt"
    local t0 t1 t2
    t0=$(date +%s.%N); "$EMBTUNE" embed -q -m "$1" -i "$OUT/embed_one.txt" -o "$OUT/e.npy" || return 1
    t1=$(date +%s.%N); "$EMBTUNE" embed -q -m "$1" -i "$OUT/embed_in.txt" -o "$OUT/e.npy" || return 1
    t2=$(date +%s.%N)
    "$PY" -c "print(max(1e-6, ($t2 - $t1) - ($t1 - $t0)))"
}

results="[]"
for k in "${!models[@]}"; do
    model=${models[$k]} tx=${texts[$k]} dur=${durs[$k]} n=${embed_n[$k]}
    name=$(basename "$model")
    embed_tps=null
    if secs=$(embed_time "$model" "$tx" "$n"); then
        embed_tps=$("$PY" -c "print($n / $secs)")
    else
        skip "batch embed on $name (embtune embed failed)"
    fi
    "$PY" - "$tx" "$OUT" <<'PY'
import json, sys
texts = [l.rstrip("\n") for l in open(sys.argv[1], encoding="utf-8")]
out = sys.argv[2]
with open(out + "/bodies1.jsonl", "w") as f:
    for t in texts:
        f.write(json.dumps({"input": [t], "model": "bench"}) + "\n")
with open(out + "/bodies16.jsonl", "w") as f:
    for i in range(0, max(1, len(texts) - 16), 16):
        f.write(json.dumps({"input": texts[i:i + 16], "model": "bench"}) + "\n")
PY
    "$EMBTUNE" serve -m "$model" --port 0 --name bench 2>"$OUT/serve.err" &
    SRV=$!
    port=
    for _ in $(seq 600); do
        port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$OUT/serve.err")
        [ -n "$port" ] && break
        kill -0 $SRV 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$port" ]; then
        skip "$name: the server did not start: $(tail -1 "$OUT/serve.err")"
        kill -9 $SRV 2>/dev/null; wait $SRV 2>/dev/null; SRV=
        continue
    fi
    rows="[]"
    for per in 1 16; do
        for c in 1 8 64; do
            t=$([ $c = 1 ] && echo 1 || echo 2)
            line=$(wrk -t$t -c$c -d${dur}s --timeout 120s -s bench/serve_wrk.lua "http://127.0.0.1:$port" \
                   -- "$OUT/bodies$per.jsonl" 2>"$OUT/wrk.err" | grep '^{"requests"')
            if [ -z "$line" ]; then
                skip "$name: wrk at $c connections, $per texts/request: $(tail -1 "$OUT/wrk.err")"
                continue
            fi
            rows=$("$PY" -c "import json,sys; r=json.loads(sys.argv[1]); r.update(conns=$c, texts_per_request=$per); print(json.dumps(json.loads(sys.argv[2]) + [r]))" "$line" "$rows")
            sleep 1 # let requests abandoned by wrk at the end of the run drain
        done
    done
    kill -TERM $SRV
    if ! wait $SRV; then skip "(not a measurement) $name: the server did not exit 0 after SIGTERM"; fi
    SRV=
    results=$("$PY" -c "import json,sys; print(json.dumps(json.loads(sys.argv[1]) + [{'model': sys.argv[2], 'texts': sys.argv[3], 'embed_texts_per_s': json.loads(sys.argv[4]), 'runs': json.loads(sys.argv[5])}]))" \
              "$results" "$name" "$(basename "$tx")" "$embed_tps" "$rows")
done

"$PY" - "$results" "$(nproc)" <<'PY' || skip "(summary failed)"
import json, sys
res = json.loads(sys.argv[1])
print(f"serve: wrk on the same {sys.argv[2]} cores as the server, POST /v1/embeddings; "
      "'vs embed' = texts/s over batch `embtune embed` texts/s on the same texts")
for m in res:
    e = m["embed_texts_per_s"]
    print(f"  {m['model']} ({m['texts']}): batch embed " + (f"{e:.0f} texts/s" if e else "n/a"))
    print(f"    {'texts/req':>9s} {'conns':>5s} {'req/s':>9s} {'texts/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>6s} {'vs embed':>8s}")
    for r in m["runs"]:
        s = r["duration_us"] / 1e6
        rps = r["requests"] / s if s > 0 else 0.0
        tps = rps * r["texts_per_request"]
        r.update(req_per_s=rps, texts_per_s=tps, ratio_vs_embed=tps / e if e else None)
        ratio = f"{tps / e:7.2f}x" if e else "     n/a"
        print(f"    {r['texts_per_request']:9d} {r['conns']:5d} {rps:9.1f} {tps:9.0f} {r['p50_us']/1e3:8.2f} "
              f"{r['p99_us']/1e3:8.2f} {r['socket_errors'] + r['non2xx']:6d} {ratio}")
json.dump(res, open("bench/out/serve.json", "w"), indent=1)
PY
finish
