#!/usr/bin/env bash
# bench/serve.sh - `embtune serve` under load (called by bench/run.sh; runs alone too):
# requests/s and p50/p99 latency with wrk at 1, 8 and 64 connections, single-text
# requests and 16-text requests, against the throughput of batch `embtune embed`
# on the same texts measured in the same run (the bound dynamic batching should
# approach). Models: the model2vec fixture, and a bge-small-shaped BERT
# (tests/ref/make_models.py bench) unless SERVE_BENCH_BERT=0.
# Env: SECONDS_PER_RUN (default 5), SERVE_BENCH_MODELS (extra model dirs, space-separated).
# Writes bench/out/serve.json.
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

# texts: sentences of the R manual (10..60 words), as queries and passages would be
if [ ! -s "$OUT/texts.txt" ]; then
    pdftotext -q "$SHARED/corpus/R-intro.pdf" - | tr '\n' ' ' | sed 's/\. /.\n/g' |
        awk 'NF >= 10 && NF <= 60' | head -n 4096 >"$OUT/texts.txt"
fi
"$TORCH_PY" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
texts = [l.rstrip("\n") for l in open(out + "/texts.txt", encoding="utf-8")]
with open(out + "/bodies1.jsonl", "w") as f:
    for t in texts:
        f.write(json.dumps({"input": [t], "model": "bench"}) + "\n")
with open(out + "/bodies16.jsonl", "w") as f:
    for i in range(0, len(texts) - 16, 16):
        f.write(json.dumps({"input": texts[i:i + 16], "model": "bench"}) + "\n")
PY

models=("$SHARED/fixtures/model2vec-bge-base-q128")
if [ "${SERVE_BENCH_BERT:-1}" != 0 ]; then
    if [ ! -f "$OUT/bge-small-random/config.json" ] && [ -f tests/ref/make_models.py ]; then
        "$TORCH_PY" tests/ref/make_models.py bench "$OUT" "$SHARED" >/dev/null 2>&1 || true
    fi
    for d in "$OUT"/*/; do [ -f "$d/config.json" ] && [ -f "$d/model.safetensors" ] && models+=("${d%/}"); done
fi
for m in ${SERVE_BENCH_MODELS:-}; do models+=("$m"); done

results="[]"
for model in "${models[@]}"; do
    name=$(basename "$model")
    # batch embed on the same texts: the throughput bound
    t0=$(date +%s.%N)
    "$EMBTUNE" embed -q -m "$model" -i "$OUT/texts.txt" -o "$OUT/embed.npy"
    t1=$(date +%s.%N)
    ntext=$(wc -l <"$OUT/texts.txt")
    embed_tps=$(echo "$ntext / ($t1 - $t0)" | bc -l)

    "$EMBTUNE" serve -m "$model" --port 0 --name bench 2>"$OUT/serve.err" &
    SRV=$!
    port=
    for _ in $(seq 200); do
        port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$OUT/serve.err")
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { cat "$OUT/serve.err"; kill $SRV; exit 1; }
    rows="[]"
    for per in 1 16; do
        for c in 1 8 64; do
            t=$([ $c = 1 ] && echo 1 || echo 2)
            line=$(wrk -t$t -c$c -d${DUR}s -s bench/serve_wrk.lua "http://127.0.0.1:$port" \
                   -- "$OUT/bodies$per.jsonl" | grep '^{"requests"')
            rows=$("$TORCH_PY" -c "import json,sys; r=json.loads(sys.argv[1]); r.update(conns=$c, texts_per_request=$per); print(json.dumps(json.loads(sys.argv[2]) + [r]))" "$line" "$rows")
        done
    done
    kill -TERM $SRV
    wait $SRV || { echo "bench/serve.sh: the server did not exit 0 after SIGTERM"; exit 1; }
    results=$("$TORCH_PY" -c "import json,sys; print(json.dumps(json.loads(sys.argv[1]) + [{'model': sys.argv[2], 'embed_texts_per_s': float(sys.argv[3]), 'runs': json.loads(sys.argv[4])}]))" \
              "$results" "$name" "$embed_tps" "$rows")
done

"$TORCH_PY" - "$results" <<'PY'
import json, sys
res = json.loads(sys.argv[1])
print("serve: wrk, POST /v1/embeddings on sentences of R-intro.pdf; ratio = texts/s vs batch `embtune embed` on the same texts")
for m in res:
    print(f"  {m['model']}: batch embed {m['embed_texts_per_s']:.0f} texts/s")
    print(f"    {'texts/req':>9s} {'conns':>5s} {'req/s':>9s} {'texts/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'errors':>6s} {'vs embed':>8s}")
    for r in m["runs"]:
        s = r["duration_us"] / 1e6
        rps = r["requests"] / s
        tps = rps * r["texts_per_request"]
        r.update(req_per_s=rps, texts_per_s=tps, ratio_vs_embed=tps / m["embed_texts_per_s"])
        print(f"    {r['texts_per_request']:9d} {r['conns']:5d} {rps:9.0f} {tps:9.0f} {r['p50_us']/1e3:8.2f} "
              f"{r['p99_us']/1e3:8.2f} {r['socket_errors'] + r['non2xx']:6d} {tps / m['embed_texts_per_s']:7.2f}x")
json.dump(res, open("bench/out/serve.json", "w"), indent=1)
PY
