#!/usr/bin/env bash
# test_eval.sh - `embtune eval` end to end on a hand-checked BM25 dataset
# (llama-index JSON and the same data as a BEIR folder), the output files,
# and the rejection of malformed datasets and options.
set -u
OUT=$BUILD/test-out/eval
rm -rf "$OUT"; mkdir -p "$OUT"
fail=0
check() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; fi; }

# Corpus d1..d4 (indices 0..3). BM25 (stop words dropped) scores only documents
# sharing a term with the query; the others score 0 and follow in corpus order.
#   q1 "red apples"     rel d1      -> d1 first                       rank 1
#   q2 "yellow bananas" rel d2      -> d2 first                       rank 1
#   q3 "blue sky"       rel d4      -> d3, then d1 d2 d4 (score 0)    rank 4
#   q4 "green"          rel d4, d1  -> d4, then d1 (score 0)          ranks 1, 2
# accuracy@1 = accuracy@3 = 3/4, accuracy@5 = 1; MRR@10 = (1 + 1 + 1/4 + 1)/4 = 0.8125
# recall@1 = (1 + 1 + 0 + 1/2)/4 = 0.625
# NDCG@10 = (1 + 1 + 1/log2(5) + 1)/4 = 0.8576691395
# MAP@100 = (1 + 1 + 1/4 + (1/1 + 2/2)/2)/4 = 0.8125
cat > "$OUT/ds.json" <<'EOF'
{"queries": {"q1": "red apples", "q2": "yellow bananas", "q3": "blue sky", "q4": "green"},
 "corpus": {"d1": "apples are red fruit", "d2": "bananas are yellow", "d3": "the sky is blue",
            "d4": "grass is green"},
 "relevant_docs": {"q1": ["d1"], "q2": ["d2"], "q3": ["d4"], "q4": ["d4", "d1"]},
 "mode": "text"}
EOF
"$EMBTUNE" eval -d "$OUT/ds.json" --bm25 -o "$OUT/r1" >"$OUT/r1.txt" 2>"$OUT/r1.err"
check "[ $? = 0 ]" "eval --bm25 exit code ($(cat "$OUT/r1.err"))"
cat "$OUT/r1.txt"
check "grep -q '^bm25 *0.7500 *0.7500 *1.0000 *1.0000 *0.8125 *0.8577 *0.8125' '$OUT/r1.txt'" "stdout table row"
for f in metrics.json ranks.jsonl report.md report.html metrics.svg accuracy_at_k.svg; do
    check "[ -s '$OUT/r1/$f' ]" "$f written"
done
check "! ls '$OUT/r1' | grep -q '\.tmp\.'" "no temporary files left"
"$TORCH_PY" - "$OUT/r1" <<'EOF' || fail=1
import json, sys, xml.etree.ElementTree as ET
d = sys.argv[1]
m = json.load(open(d + "/metrics.json"))
r = m["runs"][0]["metrics"]
want = {"accuracy@1": 0.75, "accuracy@3": 0.75, "accuracy@5": 1.0, "mrr@10": 0.8125,
        "recall@1": 0.625, "ndcg@10": 0.8576691395, "map@100": 0.8125, "precision@3": 1/3}
bad = [(k, r[k], v) for k, v in want.items() if abs(r[k] - v) > 1e-9]
ranks = [json.loads(l) for l in open(d + "/ranks.jsonl")]
got = {x["query_id"]: x["rank"] for x in ranks}
if got != {"q1": 1, "q2": 1, "q3": 4, "q4": 1}: bad.append(("ranks", got, None))
if ranks[2]["top"] != ["d3", "d1", "d2", "d4"]: bad.append(("top q3", ranks[2]["top"], None))
for f in ("metrics.svg", "accuracy_at_k.svg"):
    ET.parse(d + "/" + f)  # well-formed XML
html = open(d + "/report.html").read()
if html.count("<svg") != 2 or "src=" in html or "href=" in html: bad.append(("html", None, None))
print("metrics.json / ranks.jsonl / svg checks:", "ok" if not bad else bad)
sys.exit(1 if bad else 0)
EOF

# The same dataset as a BEIR folder gives the same numbers.
mkdir -p "$OUT/beir/qrels"
printf '%s\n' '{"_id": "d1", "title": "", "text": "apples are red fruit"}' \
    '{"_id": "d2", "title": "", "text": "bananas are yellow"}' \
    '{"_id": "d3", "title": "", "text": "the sky is blue"}' \
    '{"_id": "d4", "title": "", "text": "grass is green"}' > "$OUT/beir/corpus.jsonl"
printf '%s\n' '{"_id": "q1", "text": "red apples"}' '{"_id": "q2", "text": "yellow bananas"}' \
    '{"_id": "q3", "text": "blue sky"}' '{"_id": "q4", "text": "green"}' > "$OUT/beir/queries.jsonl"
printf 'query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td4\t1\nq4\td4\t1\nq4\td1\t1\n' \
    > "$OUT/beir/qrels/test.tsv"
"$EMBTUNE" eval -d "$OUT/beir" --bm25 -k 5,1 >"$OUT/r2.txt" 2>"$OUT/r2.err"
check "[ $? = 0 ]" "BEIR eval exit code ($(cat "$OUT/r2.err"))"
check "grep -q '^bm25 *0.7500 *1.0000 *0.8125 *0.8577 *0.8125 *1.0000' '$OUT/r2.txt'" "BEIR table row (k 1,5)"

# Malformed datasets and options: non-zero exit, message naming the problem.
expect_fail() { # $1 = expected exit code, $2 = message regex, rest = args
    local code=$1 re=$2; shift 2
    "$EMBTUNE" eval "$@" >"$OUT/f.out" 2>"$OUT/f.err"
    local rc=$?
    if [ $rc != "$code" ] || ! grep -qE -e "$re" "$OUT/f.err"; then
        echo "FAIL: eval $* -> exit $rc, stderr: $(cat "$OUT/f.err")"; fail=1
    fi
}
echo '{"queries": {"q1": "x"}, "corpus": {"d1": "y"}, "relevant_docs": {"q1": ["d9"]}}' > "$OUT/bad1.json"
expect_fail 1 "bad1.json.*d9.*not in the corpus" -d "$OUT/bad1.json" --bm25
echo '{"queries": {"q1": "x"}, "relevant_docs": {"q1": ["d1"]}}' > "$OUT/bad2.json"
expect_fail 1 "bad2.json.*corpus" -d "$OUT/bad2.json" --bm25
echo '{"queries": {"q1": "x"}, "corpus": {"d1": "y"}, "relevant_docs": {"q1": ["d1"]' > "$OUT/bad3.json"
expect_fail 1 "bad3.json" -d "$OUT/bad3.json" --bm25
echo '{"queries": {"q1": 5}, "corpus": {"d1": "y"}, "relevant_docs": {"q1": ["d1"]}}' > "$OUT/bad4.json"
expect_fail 1 "bad4.json.*q1.*string" -d "$OUT/bad4.json" --bm25
echo '{"queries": {"q1": "x"}, "corpus": {"d1": "y"}, "relevant_docs": {"q1": []}}' > "$OUT/bad5.json"
expect_fail 1 "no usable queries" -d "$OUT/bad5.json" --bm25
expect_fail 1 "nonexistent" -d "$OUT/nonexistent.json" --bm25
expect_fail 2 "-d DATASET is required" --bm25
expect_fail 2 "nothing to evaluate" -d "$OUT/ds.json"
expect_fail 2 "-k" -d "$OUT/ds.json" --bm25 -k 1,,3
expect_fail 2 "-k" -d "$OUT/ds.json" --bm25 -k 0
expect_fail 2 "-k" -d "$OUT/ds.json" --bm25 -k 1,2,3,4,5,6,7,8,9
expect_fail 2 "unknown option" -d "$OUT/ds.json" --bm25 --frobnicate
"$EMBTUNE" eval --help | grep -q "usage: embtune eval" || { echo "FAIL: --help"; fail=1; }

[ $fail = 0 ] && echo "test_eval: ok" || { echo "test_eval: FAILED"; exit 1; }
