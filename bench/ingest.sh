#!/usr/bin/env bash
# bench/ingest.sh - ingest speed on ../shared/corpus (pages/s), next to
# poppler-utils' pdftotext measured in the same run (text extraction only: no
# cleanup, no chunking - the floor for any poppler-based pipeline). The peer
# the users run (llama-index SimpleDirectoryReader + pypdf + SentenceSplitter)
# is not installable here (no PyPI), so it is not measured.
# Called by bench/run.sh; standalone: bench/ingest.sh [BUILD]. Writes
# bench/out/ingest.json. Best of RUNS (default 5) wall-clock runs each.
set -eu
cd "$(dirname "$0")/.."
BUILD=${1:-${BUILD:-build}}
EMBTUNE=$PWD/$BUILD/embtune
SHARED=${SHARED:-$(cd .. && pwd)/shared}
RUNS=${RUNS:-5}
OUT=bench/out
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

pages=0
for f in "$SHARED"/corpus/*.pdf; do
    p=$(pdfinfo "$f" | awk '/^Pages:/ {print $2}')
    pages=$((pages + p))
done

best() { # best wall time of RUNS runs of "$@"
    local b=
    for _ in $(seq "$RUNS"); do
        local t0 t1 d
        t0=$(date +%s.%N)
        "$@" >/dev/null 2>&1
        t1=$(date +%s.%N)
        d=$(echo "$t1 - $t0" | bc -l)
        if [ -z "$b" ] || [ "$(echo "$d < $b" | bc -l)" = 1 ]; then b=$d; fi
    done
    echo "$b"
}

pdftotext_all() { for f in "$SHARED"/corpus/*.pdf; do pdftotext "$f" "$TMP/out.txt"; done; }

t_et2=$(ET_THREADS=2 best "$EMBTUNE" ingest "$SHARED/corpus" -o "$TMP/c.jsonl" -q)
t_et1=$(ET_THREADS=1 best "$EMBTUNE" ingest "$SHARED/corpus" -o "$TMP/c.jsonl" -q)
t_ptt=$(best pdftotext_all)
chunks=$(wc -l < "$TMP/c.jsonl")

rate() { echo "scale=1; $pages / $1" | bc -l; }
r2=$(rate "$t_et2"); r1=$(rate "$t_et1"); rp=$(rate "$t_ptt")
printf 'ingest (%d pages, %d chunks, best of %d):\n' "$pages" "$chunks" "$RUNS"
printf '  embtune ingest, 2 threads   %7.1f pages/s  (%.3f s)  %.2fx pdftotext\n' "$r2" "$t_et2" "$(echo "$t_ptt / $t_et2" | bc -l)"
printf '  embtune ingest, 1 thread    %7.1f pages/s  (%.3f s)  %.2fx pdftotext\n' "$r1" "$t_et1" "$(echo "$t_ptt / $t_et1" | bc -l)"
printf '  pdftotext (extraction only) %7.1f pages/s  (%.3f s)\n' "$rp" "$t_ptt"
cat > "$OUT/ingest.json" <<JSON
{"pages": $pages, "chunks": $chunks, "runs": $RUNS,
 "embtune_2t_s": $t_et2, "embtune_1t_s": $t_et1, "pdftotext_s": $t_ptt,
 "embtune_2t_pages_per_s": $r2, "embtune_1t_pages_per_s": $r1, "pdftotext_pages_per_s": $rp}
JSON
