#!/usr/bin/env bash
# test_generate.sh - `embtune generate` end to end: the embedded generator, and a
# real HTTP exchange with tests/llm_server.py (faults, retries, resume after kill -9,
# concurrency, API-key hygiene, formats, validation split, journal checks).
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-/usr/bin/python3}
OUT=$BUILD/test-out/generate
rm -rf "$OUT"; mkdir -p "$OUT"
KEY="sk-embtune-test-9f8e7d6c5b4a-SECRET"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails+1)); }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; }
trap cleanup EXIT

# 40 chunks over two documents, deterministic prose
$PY - "$OUT/chunks.jsonl" <<'EOF'
import json, random, sys
rnd = random.Random(7)
nouns = ["vector", "matrix", "data frame", "factor", "list", "function", "argument", "package", "array",
         "workspace", "formula", "model", "plot", "graphics device", "loop", "index", "attribute", "object",
         "histogram", "regression", "variance", "quantile", "distribution", "character string", "environment"]
verbs = ["creates", "returns", "stores", "modifies", "describes", "combines", "evaluates", "prints", "sorts"]
with open(sys.argv[1], "w") as f:
    for i in range(40):
        doc = "manual-a.pdf" if i < 24 else "manual-b.pdf"
        sents = []
        for s in range(6):
            a, b = rnd.sample(nouns, 2)
            sents.append("The %s %s a %s with %d elements, named %s%d." % (a, rnd.choice(verbs), b, rnd.randint(2, 99), a.split()[0], i * 10 + s))
        f.write(json.dumps({"id": "c%016x" % (i * 7919 + 1), "doc": doc, "page_start": i + 1, "page_end": i + 1,
                            "text": " ".join(sents), "n_tokens": 80}) + "\n")
EOF

start_server() { # args...; sets PORT
    local pf="$OUT/port.$RANDOM"
    LLM_SERVER_KEY="$KEY" $PY tests/llm_server.py --port-file "$pf" --max-seconds 300 "$@" 2>>"$OUT/server.log" &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$pf" ] && break; sleep 0.05; done
    PORT=$(cat "$pf")
}
count_queries() { $PY -c "import json,sys; print(len(json.load(open(sys.argv[1]))['queries']))" "$1"; }

# ---- embedded generator --------------------------------------------------------------------
$EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$OUT/local.json" --seed 3 --keep-journal 2>"$OUT/local.err" || fail "local run: $(cat "$OUT/local.err")"
[ -s "$OUT/local.json.journal" ] || fail "--keep-journal: the journal of a complete run was deleted"
$EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$OUT/local2.json" --seed 3 -q || fail "local run 2"
cmp -s "$OUT/local.json" "$OUT/local2.json" || fail "embedded generator is not deterministic"
# a complete run deletes its journal (the output holds everything); no failures file either
[ -e "$OUT/local2.json.journal" ] && fail "the journal of a complete run was left behind"
[ -e "$OUT/local2.json.failures.jsonl" ] && fail "a failures file was written for a complete run"
n=$(count_queries "$OUT/local.json"); [ "$n" = 80 ] || fail "local: $n queries, expected 80"
$PY - "$OUT/local.json" "$OUT/chunks.jsonl" <<'EOF' || fail "local dataset check"
import json, sys
d = json.load(open(sys.argv[1]))
chunks = {json.loads(l)["id"]: json.loads(l)["text"] for l in open(sys.argv[2])}
assert d["mode"] == "text" and set(d["corpus"]) == set(chunks), "corpus ids must be the chunk ids"
for qid, q in d["queries"].items():
    (cid,) = d["relevant_docs"][qid]
    assert qid.startswith(cid + "-q") and q.endswith("?"), (qid, q)
    assert q not in chunks[cid], "verbatim copy: " + q
per = {}
for qid, q in d["queries"].items():
    per.setdefault(d["relevant_docs"][qid][0], set()).add(q.lower())
assert all(len(v) == 2 for v in per.values()), "two distinct questions per chunk"
print("local dataset ok:", len(d["queries"]), "queries")
EOF
# a rerun resumes from the journal (nothing to do) and gives the same bytes
$EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$OUT/local.json" --seed 3 --keep-journal 2>"$OUT/resume.err" || fail "local resume"
grep -q "40 of 40 chunks already done" "$OUT/resume.err" || fail "resume not reported: $(cat "$OUT/resume.err")"
cmp -s "$OUT/local.json" "$OUT/local2.json" || fail "resumed output differs"
# a torn last line (kill -9 during a write) is ignored; the chunk is redone
head -c -40 "$OUT/local.json.journal" > "$OUT/torn" && mv "$OUT/torn" "$OUT/local.json.journal"
$EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$OUT/local.json" --seed 3 --keep-journal -q || fail "resume after a torn line"
cmp -s "$OUT/local.json" "$OUT/local2.json" || fail "output after a torn journal line differs"
[ "$(tail -c 1 "$OUT/local.json.journal" | od -An -c | tr -d ' ')" = '\n' ] || fail "journal does not end with a newline"
# another seed or -n: the journal does not match and we say so
$EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$OUT/local.json" --seed 4 2>"$OUT/mismatch.err" && fail "journal mismatch accepted"
grep -q -- "--restart" "$OUT/mismatch.err" || fail "mismatch message: $(cat "$OUT/mismatch.err")"
$EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$OUT/local.json" --seed 4 --restart -q || fail "--restart"
# formats
for f in pairs flag; do
    $EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$OUT/ds.$f.jsonl" -f $f -q || fail "format $f"
    [ "$(wc -l < "$OUT/ds.$f.jsonl")" = 80 ] || fail "format $f: $(wc -l < "$OUT/ds.$f.jsonl") rows"
done
head -1 "$OUT/ds.flag.jsonl" | grep -q '"pos"' || fail "flag rows"
$EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$OUT/beir" -f beir -q || fail "format beir"
[ -f "$OUT/beir/corpus.jsonl" ] && [ -f "$OUT/beir/queries.jsonl" ] && [ -f "$OUT/beir/qrels/test.tsv" ] || fail "beir files"
# validation split by document
$EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$OUT/train.json" --val-docs 'manual-b*' --val-output "$OUT/val.json" -q || fail "--val-docs"
$PY - "$OUT/train.json" "$OUT/val.json" <<'EOF' || fail "val split"
import json, sys
t, v = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert len(t["corpus"]) == 24 and len(v["corpus"]) == 16, (len(t["corpus"]), len(v["corpus"]))
assert not set(t["corpus"]) & set(v["corpus"]) and len(v["queries"]) == 32
EOF
$EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$OUT/train2.json" --val-fraction 0.3 --val-output "$OUT/val2.json" -q || fail "--val-fraction"
$PY -c "
import json,sys
t,v=json.load(open('$OUT/train2.json')),json.load(open('$OUT/val2.json'))
docs=lambda d:{c for c in d['corpus']}
assert len(t['corpus'])+len(v['corpus'])==40 and len(v['corpus']) in (16,24), len(v['corpus'])" || fail "val fraction split"
# usage errors
$EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$OUT/x.json" --val-docs 'nomatch*' --val-output "$OUT/v.json" 2>/dev/null && fail "--val-docs without match accepted"
$EMBTUNE generate -i "$OUT/nope.jsonl" -o "$OUT/x.json" 2>"$OUT/err.txt" && fail "missing input accepted"
grep -q "nope.jsonl" "$OUT/err.txt" || fail "missing input message: $(cat "$OUT/err.txt")"

# ---- LLM: faults, retries, failures list, key hygiene ---------------------------------------
start_server --scenario mixed --slow 1.5
export EMBTUNE_BACKOFF_BASE=0.05
EMBTUNE_API_KEY=$KEY $EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$OUT/llm.json" --llm-url "http://127.0.0.1:$PORT" \
    --timeout 0.8 --retries 3 --concurrency 8 2>"$OUT/llm.err" || fail "LLM run: $(cat "$OUT/llm.err")"
cat "$OUT/llm.err"
curl -s "http://127.0.0.1:$PORT/stats" > "$OUT/stats.json"
$PY - "$OUT/llm.json" "$OUT/llm.json.failures.jsonl" "$OUT/chunks.jsonl" "$OUT/stats.json" <<'EOF' || fail "LLM dataset check"
import json, sys
d = json.load(open(sys.argv[1]))
failed = {json.loads(l)["id"]: json.loads(l) for l in open(sys.argv[2])}
chunks = [json.loads(l) for l in open(sys.argv[3])]
stats = json.load(open(sys.argv[4]))
per = {}
for qid, q in d["queries"].items():
    per.setdefault(d["relevant_docs"][qid][0], []).append(q)
for c in chunks:
    qs = per.get(c["id"], [])
    assert len(qs) == 2 or c["id"] in failed, "chunk %s has %d questions and is not in the failure list" % (c["id"], len(qs))
    assert len({q.lower() for q in qs}) == len(qs), "duplicate questions: %s" % qs
    for q in qs:
        assert q.endswith("?") and not q.lower().startswith(("here", "sure", "**", "1.", "-", "question")), q
assert failed and all(f["status"] == "failed" and "500" in f["error"] for f in failed.values()), failed
faults = stats["by_fault"]
for f in ["429", "429-date", "500", "slow", "cut", "truncated-json", "drop", "html", "always-500", "too-few", "chatty", "too-many"]:
    assert faults.get(f, 0) > 0, "fault %s never exercised: %s" % (f, faults)
assert stats["bad_auth"] == 0
print("LLM dataset ok: %d queries, %d failed chunks, faults %s" % (len(d["queries"]), len(failed), faults))
EOF
nf=$(wc -l < "$OUT/llm.json.failures.jsonl")
# failed chunks: the journal stays, so that a rerun asks again for those only
[ "$nf" -gt 0 ] && [ -s "$OUT/llm.json.journal" ] || fail "the journal of a run with $nf failed chunks is missing"
grep -q "40 chunks: .* $nf failed" "$OUT/llm.err" || fail "summary does not count the $nf failed chunks"
for f in "$OUT/llm.err" "$OUT/llm.json" "$OUT/llm.json.journal" "$OUT/llm.json.failures.jsonl"; do
    grep -q "$KEY" "$f" && fail "the API key appears in $f"
done

# wrong key: a clean error; the server echoes the header it got, we must not print it
EMBTUNE_API_KEY="sk-wrong-$KEY" $EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$OUT/bad.json" --llm-url "http://127.0.0.1:$PORT/v1" \
    --llm-model test-model 2>"$OUT/bad.err" && fail "a wrong key was accepted"
grep -q "401" "$OUT/bad.err" || fail "401 not reported: $(cat "$OUT/bad.err")"
grep -q "sk-wrong" "$OUT/bad.err" && fail "the wrong key was printed"
# nothing listening: fail fast with a clear message
$EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$OUT/down.json" --llm-url "http://127.0.0.1:9" --timeout 2 2>"$OUT/down.err" && fail "unreachable server accepted"
grep -q "cannot reach" "$OUT/down.err" || fail "unreachable message: $(cat "$OUT/down.err")"
# prompt file placeholders
printf 'Write questions about:\n{context}\n' > "$OUT/p1.txt"
$EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$OUT/p.json" --llm-url "http://127.0.0.1:$PORT" --prompt-file "$OUT/p1.txt" 2>"$OUT/p.err" && fail "prompt without {n} accepted"
grep -q "{n}" "$OUT/p.err" || fail "prompt message: $(cat "$OUT/p.err")"

# ---- kill -9 mid-run, restart: the same dataset as an uninterrupted run -----------------------
start_server --scenario mixed --slow 1.0 --latency 0.15
args=(-i "$OUT/chunks.jsonl" --llm-url "http://127.0.0.1:$PORT" --timeout 0.6 --retries 3 --concurrency 4 -q --keep-journal)
export EMBTUNE_API_KEY=$KEY
$EMBTUNE generate "${args[@]}" -o "$OUT/full.json" || fail "uninterrupted run"
for delay in 0.5 1.2; do
    rm -f "$OUT/killed.json" "$OUT/killed.json.journal"
    $EMBTUNE generate "${args[@]}" -o "$OUT/killed.json" & cpid=$!
    sleep $delay; kill -9 $cpid 2>/dev/null; wait $cpid 2>/dev/null
    [ -f "$OUT/killed.json" ] && fail "output written before the run finished (delay $delay)"
    done_before=$(($(wc -l < "$OUT/killed.json.journal") - 1))
    $EMBTUNE generate "${args[@]}" -o "$OUT/killed.json" || fail "restart after kill -9"
    cmp -s "$OUT/full.json" "$OUT/killed.json" || fail "dataset after kill -9 at ${delay}s differs from the uninterrupted run"
    $PY -c "
import json,sys
ids=[json.loads(l)['i'] for l in list(open('$OUT/killed.json.journal'))[1:]]
ok=[json.loads(l) for l in list(open('$OUT/killed.json.journal'))[1:]]
final={}
for r in ok: final[r['i']]=r['status']
dup=[i for i in set(ids) if ids.count(i)>1 and not any(r['i']==i and r['status']=='failed' for r in ok)]
assert not dup, 'chunks journaled twice: %s' % dup
assert len(final)==40, len(final)" || fail "journal after kill -9 (delay $delay)"
    echo "kill -9 after ${delay}s: $done_before chunks were journaled, restart finished identically"
done

# ---- concurrency really overlaps requests --------------------------------------------------------
start_server --scenario clean --latency 0.3
$EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$OUT/conc.json" --llm-url "http://127.0.0.1:$PORT" \
    --concurrency 8 -q || fail "concurrency run"
mif=$(curl -s "http://127.0.0.1:$PORT/stats" | $PY -c "import json,sys; print(json.load(sys.stdin)['max_in_flight'])")
echo "server saw up to $mif requests in flight (--concurrency 8)"
[ "$mif" -ge 6 ] && [ "$mif" -le 8 ] || fail "max in flight $mif, expected 6..8"

# ---- Ctrl-C / SIGTERM: a clean stop (exit 130, finished chunks journaled), then resume --------
# 40 chunks, 2 in flight, 0.3 s per reply: ~6 s uninterrupted; the signal comes after 3 chunks.
for sig in INT TERM; do
    o="$OUT/sig$sig.json"
    rm -f "$o" "$o.journal"
    $EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$o" --llm-url "http://127.0.0.1:$PORT" --concurrency 2 \
        2>"$OUT/sig$sig.err" & cpid=$!
    for _ in $(seq 100); do [ "$(wc -l < "$o.journal" 2>/dev/null || echo 0)" -ge 3 ] && break; sleep 0.05; done
    kill -$sig $cpid
    # it must stop by itself (within the client's 1 s poll), not hang
    for _ in $(seq 100); do kill -0 $cpid 2>/dev/null || break; sleep 0.05; done
    kill -0 $cpid 2>/dev/null && { fail "SIG$sig: still running 5 s after the signal"; kill -9 $cpid; }
    wait $cpid; rc=$?
    [ $rc = 130 ] || fail "SIG$sig: exit code $rc, expected 130 ($(tail -2 "$OUT/sig$sig.err"))"
    n=$(grep -oE 'interrupted: [0-9]+ of 40 chunks are done' "$OUT/sig$sig.err" | grep -oE '[0-9]+' | head -1)
    [ -n "$n" ] || fail "SIG$sig: no 'interrupted: N of 40 chunks are done' message: $(cat "$OUT/sig$sig.err")"
    [ -e "$o" ] && fail "SIG$sig: the output was written by an interrupted run"
    # the journal holds exactly the N finished chunks, each once, and ends with a full line
    $PY - "$o.journal" "${n:-x}" <<'EOF' || fail "SIG$sig: journal after the signal"
import json, sys
lines = open(sys.argv[1]).read().split("\n")
assert lines[-1] == "", "torn last line"
recs = [json.loads(l) for l in lines[1:-1]]
ids = [r["i"] for r in recs]
assert len(ids) == len(set(ids)), "a chunk journaled twice"
assert all(r["status"] == "ok" for r in recs), [r["status"] for r in recs]
assert str(len(recs)) == sys.argv[2], "journal has %d records, the message said %s" % (len(recs), sys.argv[2])
assert 0 < len(recs) < 40, len(recs)
EOF
    $EMBTUNE generate -i "$OUT/chunks.jsonl" -o "$o" --llm-url "http://127.0.0.1:$PORT" --concurrency 8 \
        2>"$OUT/sig$sig.2.err" || fail "SIG$sig: rerun"
    grep -q "resuming from .*: ${n:-x} of 40 chunks already done" "$OUT/sig$sig.2.err" ||
        fail "SIG$sig: the rerun did not resume: $(head -3 "$OUT/sig$sig.2.err")"
    cmp -s "$o" "$OUT/conc.json" || fail "SIG$sig: the resumed dataset differs from an uninterrupted run"
    [ -e "$o.journal" ] && fail "SIG$sig: journal left after the resumed run completed"
    echo "SIG$sig after $n of 40 chunks: exit 130, journal resumable, same dataset as uninterrupted"
done

# ---- the request body: model, sampling options, seed, and the prompt with the chunk and n ---------
head -2 "$OUT/chunks.jsonl" > "$OUT/two.jsonl"
body_check() { # label, bodies file, then python assertions on b (one request body)
    $PY - "$2" "$OUT/two.jsonl" "$3" <<'EOF' || fail "$1: request bodies"
import json, sys
bodies = [json.loads(l) for l in open(sys.argv[1])]
chunks = [json.loads(l) for l in open(sys.argv[2])]
assert len(bodies) >= 2, "%d requests" % len(bodies)
for b in bodies:
    assert b["messages"][-1]["role"] == "user" and b["stream"] is False, b
    exec(sys.argv[3])
for c in chunks:  # each chunk's text is in a prompt
    assert any(c["text"] in b["messages"][-1]["content"] for b in bodies), c["id"]
EOF
}
start_server --scenario clean --record "$OUT/bodies1.jsonl"
$EMBTUNE generate -i "$OUT/two.jsonl" -o "$OUT/opts1.json" --llm-url "http://127.0.0.1:$PORT" --llm-model my-model \
    -n 3 --temperature 0.25 --top-p 0.9 --max-tokens 77 --seed 5 -q || fail "options run"
body_check "options" "$OUT/bodies1.jsonl" '
assert b["model"] == "my-model" and b["temperature"] == 0.25 and b["top_p"] == 0.9, b
assert b["max_tokens"] == 77 and b["seed"] == 5, b
assert "write 3 questions" in b["messages"][-1]["content"], b'
start_server --scenario clean --record "$OUT/bodies2.jsonl"
$EMBTUNE generate -i "$OUT/two.jsonl" -o "$OUT/opts2.json" --llm-url "http://127.0.0.1:$PORT" -q || fail "defaults run"
body_check "defaults" "$OUT/bodies2.jsonl" '
assert b["model"] == "test-model", "the first model of /v1/models: %r" % b.get("model")
assert b["temperature"] == 0.7 and b["max_tokens"] == 512 and "top_p" not in b and "seed" not in b, b
assert "write 2 questions" in b["messages"][-1]["content"], b'
start_server --scenario clean --record "$OUT/bodies3.jsonl"
$EMBTUNE generate -i "$OUT/two.jsonl" -o "$OUT/opts3.json" --llm-url "http://127.0.0.1:$PORT" --llm-model m \
    --temperature -1 --max-tokens 0 -q || fail "not-sent run"
body_check "not sent" "$OUT/bodies3.jsonl" '
assert "temperature" not in b and "max_tokens" not in b and "max_completion_tokens" not in b, b'

[ $fails = 0 ] || { echo "test_generate: $fails failures"; exit 1; }
echo "test_generate: ok"
