#!/usr/bin/env bash
# bench/serve.sh - `embtune serve` under load (called by bench/run.sh; runs alone too):
# requests/s and p50/p99 latency with wrk at 1, 8 and 64 connections, for 1-text and
# 16-text requests, next to the throughput of batch `embtune embed` on the same texts
# measured in the same run (the bound that dynamic batching should approach; process
# start-up and model loading are subtracted from it).
# Models: the model2vec fixture on sentences of R-intro.pdf, and a bge-small-shaped BERT
# with random weights (tests/ref/make_models.py bench) on query-length texts (the first
# 12 words), unless SERVE_BENCH_BERT=0.
# Env: SECONDS_PER_RUN (default 5 for model2vec, 3x that for BERT). Writes bench/out/serve.json.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
EMBTUNE=${EMBTUNE:-$PWD/$BUILD/embtune}
SHARED=${SHARED:-$(cd .. && pwd)/shared}
TORCH_PY=${TORCH_PY:-/usr/bin/python3}
DUR=${SECONDS_PER_RUN:-5}
OUT=$PWD/$BUILD/bench-out/serve
mkdir -p "$OUT" bench/out
command -v wrk >/dev/null || { echo "bench/serve.sh: wrk is not installed (apt-get install wrk)"; exit 1; }
[ -x "$EMBTUNE" ] || make -s -j2 >/dev/null

if [ ! -s "$OUT/sentences.txt" ]; then
    pdftotext -q "$SHARED/corpus/R-intro.pdf" - | tr '\n' ' ' | sed 's/\. /.\n/g' |
        awk 'NF >= 10 && NF <= 60' >"$OUT/sentences.txt"
fi
awk '{ s = $1; for (i = 2; i <= 12 && i <= NF; i++) s = s " " $i; print s }' "$OUT/sentences.txt" >"$OUT/queries.txt"

models=("$SHARED/fixtures/model2vec-bge-base-q128")
texts=("$OUT/sentences.txt")
durs=("$DUR")
embed_n=(4096)
if [ "${SERVE_BENCH_BERT:-1}" != 0 ] && [ -f tests/ref/make_models.py ]; then
    if [ -z "$(ls -d "$OUT"/bert/*/ 2>/dev/null)" ]; then
        mkdir -p "$OUT/bert"
        "$TORCH_PY" tests/ref/make_models.py bench "$OUT/bert" "$SHARED" >/dev/null
    fi
    for d in "$OUT"/bert/*/; do
        [ -f "$d/config.json" ] || continue
        models+=("${d%/}"); texts+=("$OUT/queries.txt"); durs+=($((DUR * 3))); embed_n+=(256)
    done
fi

# seconds to embed the first n lines of a file, minus start-up (a 1-line run)
embed_time() { # model file n
    head -n "$3" "$2" | awk '{ print }' >"$OUT/embed_in.txt"
    while [ "$(wc -l <"$OUT/embed_in.txt")" -lt "$3" ]; do cat "$OUT/embed_in.txt" "$OUT/embed_in.txt" | head -n "$3" >"$OUT/e2" && mv "$OUT/e2" "$OUT/embed_in.txt"; done
    head -n 1 "$2" >"$OUT/embed_one.txt"
    local t0 t1 t2
    t0=$(date +%s.%N); "$EMBTUNE" embed -q -m "$1" -i "$OUT/embed_one.txt" -o "$OUT/e.npy"
    t1=$(date +%s.%N); "$EMBTUNE" embed -q -m "$1" -i "$OUT/embed_in.txt" -o "$OUT/e.npy"
    t2=$(date +%s.%N)
    echo "($t2 - $t1) - ($t1 - $t0)" | bc -l
}

results="[]"
for k in "${!models[@]}"; do
    model=${models[$k]} tx=${texts[$k]} dur=${durs[$k]} n=${embed_n[$k]}
    name=$(basename "$model")
    secs=$(embed_time "$model" "$tx" "$n")
    embed_tps=$(echo "$n / $secs" | bc -l)
    "$TORCH_PY" - "$tx" "$OUT" <<'PY'
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
    for _ in $(seq 400); do
        port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$OUT/serve.err")
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { cat "$OUT/serve.err"; kill $SRV; exit 1; }
    rows="[]"
    for per in 1 16; do
        for c in 1 8 64; do
            t=$([ $c = 1 ] && echo 1 || echo 2)
            line=$(wrk -t$t -c$c -d${dur}s --timeout 120s -s bench/serve_wrk.lua "http://127.0.0.1:$port" \
                   -- "$OUT/bodies$per.jsonl" | grep '^{"requests"')
            rows=$("$TORCH_PY" -c "import json,sys; r=json.loads(sys.argv[1]); r.update(conns=$c, texts_per_request=$per); print(json.dumps(json.loads(sys.argv[2]) + [r]))" "$line" "$rows")
            sleep 1 # let requests abandoned by wrk at the end of the run drain
        done
    done
    kill -TERM $SRV
    wait $SRV || { echo "bench/serve.sh: the server did not exit 0 after SIGTERM"; cat "$OUT/serve.err"; exit 1; }
    results=$("$TORCH_PY" -c "import json,sys; print(json.dumps(json.loads(sys.argv[1]) + [{'model': sys.argv[2], 'texts': sys.argv[3], 'embed_texts_per_s': float(sys.argv[4]), 'runs': json.loads(sys.argv[5])}]))" \
              "$results" "$name" "$(basename "$tx")" "$embed_tps" "$rows")
done

"$TORCH_PY" - "$results" "$(nproc)" <<'PY'
import json, sys
res = json.loads(sys.argv[1])
print(f"serve: wrk on the same {sys.argv[2]} cores as the server, POST /v1/embeddings; "
      "'vs embed' = texts/s over batch `embtune embed` texts/s on the same texts")
for m in res:
    print(f"  {m['model']} ({m['texts']}): batch embed {m['embed_texts_per_s']:.0f} texts/s")
    print(f"    {'texts/req':>9s} {'conns':>5s} {'req/s':>9s} {'texts/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>6s} {'vs embed':>8s}")
    for r in m["runs"]:
        s = r["duration_us"] / 1e6
        rps = r["requests"] / s
        tps = rps * r["texts_per_request"]
        r.update(req_per_s=rps, texts_per_s=tps, ratio_vs_embed=tps / m["embed_texts_per_s"])
        print(f"    {r['texts_per_request']:9d} {r['conns']:5d} {rps:9.1f} {tps:9.0f} {r['p50_us']/1e3:8.2f} "
              f"{r['p99_us']/1e3:8.2f} {r['socket_errors'] + r['non2xx']:6d} {tps / m['embed_texts_per_s']:7.2f}x")
json.dump(res, open("bench/out/serve.json", "w"), indent=1)
PY
