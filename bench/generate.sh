#!/usr/bin/env bash
# bench/generate.sh - speed of `embtune generate` (called by bench/run.sh; runs alone too).
#  1. the embedded generator: chunks/s over the shared corpus (R-intro + R-data, chunks
#     replicated x20 so the run is long enough to time);
#  2. the LLM path: requests/s against tests/llm_server.py with a fixed 200 ms latency per
#     request, with 1 and 16 requests in flight.
# The peer (llama-index generate_qa_embedding_pairs) sends one request at a time: ~2.2 s per
# chunk with a hosted LLM (PEERS.md; quoted as context, not measured here). At equal server
# latency a sequential client is our 1-in-flight row, so the 16/1 ratio is the speedup.
# Writes bench/out/generate.json.
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
EMBTUNE=$PWD/$BUILD/embtune
SHARED=${SHARED:-$(cd .. && pwd)/shared}
PY=${PYTHON:-/usr/bin/python3}
OUT=$BUILD/bench-generate
rm -rf "$OUT"; mkdir -p "$OUT" bench/out
[ -x "$EMBTUNE" ] || { echo "bench/generate.sh: build first (make)"; exit 1; }

# chunks: ~180-word paragraphs groups of the corpus text (pdftotext), deterministic
for d in R-intro R-data; do pdftotext "$SHARED/corpus/$d.pdf" "$OUT/$d.txt"; done
$PY - "$OUT" <<'PYEOF'
import hashlib, json, sys
out = sys.argv[1]
rows = []
for doc in ["R-intro", "R-data"]:
    paras = [p.strip() for p in open("%s/%s.txt" % (out, doc), encoding="utf-8", errors="replace").read().split("\n\n") if p.strip()]
    cur, n = [], 0
    for p in paras:
        cur.append(p); n += len(p.split())
        if n >= 180:
            rows.append((doc + ".pdf", "\n\n".join(cur), n)); cur, n = [], 0
def write(path, reps):
    with open(path, "w") as f:
        for r in range(reps):
            for doc, text, n in rows:
                t = text if r == 0 else "%s\n(copy %d)" % (text, r)
                cid = "c" + hashlib.sha256((doc + "\0" + t).encode()).hexdigest()[:16]
                f.write(json.dumps({"id": cid, "doc": doc, "page_start": 0, "page_end": 0, "text": t, "n_tokens": n}) + "\n")
write(out + "/chunks.jsonl", 1)
write(out + "/chunks20.jsonl", 20)
PYEOF
n1=$(wc -l < "$OUT/chunks.jsonl"); n20=$(wc -l < "$OUT/chunks20.jsonl")

now() { date +%s.%N; }
t0=$(now); /usr/bin/time -f "%U %S" -o "$OUT/cpu" "$EMBTUNE" generate -i "$OUT/chunks20.jsonl" -o "$OUT/local.json" -q; t1=$(now)
local_s=$(echo "$t1 - $t0" | bc -l)
local_cpu=$(awk '{print $1 + $2}' "$OUT/cpu")
local_rate=$(echo "$n20 / $local_s" | bc -l)
local_cpu_rate=$(echo "$n20 / $local_cpu" | bc -l)
printf 'generate (embedded)   %6d chunks in %6.2fs wall (%.2fs CPU): %6.0f chunks/s wall, %6.0f per CPU-second\n' \
    "$n20" "$local_s" "$local_cpu" "$local_rate" "$local_cpu_rate"

# the local OpenAI-compatible server, 200 ms per request
pf="$OUT/port"
$PY tests/llm_server.py --port-file "$pf" --scenario bench --latency 0.2 --max-seconds 300 2>/dev/null &
spid=$!
trap 'kill $spid 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s "$pf" ] && break; sleep 0.05; done
url="http://127.0.0.1:$(cat "$pf")"
declare -A rate
for c in 1 16; do
    m=$([ $c = 1 ] && echo 30 || echo 160)
    head -n $m "$OUT/chunks20.jsonl" > "$OUT/c$c.jsonl"
    before=$(curl -s "$url/stats" | $PY -c "import json,sys; print(json.load(sys.stdin)['requests'])")
    t0=$(now); "$EMBTUNE" generate -i "$OUT/c$c.jsonl" -o "$OUT/llm$c.json" --llm-url "$url" --concurrency $c -q; t1=$(now)
    after=$(curl -s "$url/stats" | $PY -c "import json,sys; print(json.load(sys.stdin)['requests'])")
    s=$(echo "$t1 - $t0" | bc -l); req=$((after - before))
    rate[$c]=$(echo "$req / $s" | bc -l)
    printf 'generate (LLM, %2d in flight) %4d requests in %6.2fs  %6.2f req/s  (server latency 0.2 s)\n' "$c" "$req" "$s" "${rate[$c]}"
done
speedup=$(echo "${rate[16]} / ${rate[1]}" | bc -l)
peer=$(echo "1 / 2.2" | bc -l)
printf 'generate: 16 vs 1 in flight: %.1fx; peer (sequential, ~2.2 s/chunk hosted, PEERS.md) ~%.2f chunks/s\n' "$speedup" "$peer"
cat > bench/out/generate.json <<JSON
{"embedded_chunks": $n20, "embedded_seconds": $(printf %.4f "$local_s"), "embedded_cpu_seconds": $local_cpu,
 "embedded_chunks_per_s": $(printf %.1f "$local_rate"), "embedded_chunks_per_cpu_s": $(printf %.1f "$local_cpu_rate"),
 "llm_latency_s": 0.2, "llm_req_per_s_1": $(printf %.3f "${rate[1]}"), "llm_req_per_s_16": $(printf %.3f "${rate[16]}"),
 "speedup_16_vs_1": $(printf %.2f "$speedup"), "peer_quoted_s_per_chunk": 2.2}
JSON
