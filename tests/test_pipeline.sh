#!/usr/bin/env bash
# test_pipeline.sh - `embtune pipeline` end to end on small documents written
# here, with the real model2vec fixture as base model:
#   1. run directory layout; manifest: stages, statuses, hashes of inputs and
#      outputs equal to sha256sum of the files, keys; validation and training
#      data come from their own documents only
#   2. a rerun skips every stage: outputs byte-identical with unchanged mtimes,
#      manifest timings unchanged, every stage "up to date"
#   3. changing an option reruns exactly the stages it affects
#   4. kill -9 (and Ctrl-C) during generate (LLM mode, tests/llm_server.py) and during
#      finetune; the rerun resumes that stage and ends with the same outputs as
#      an uninterrupted run (datasets, weights, rankings)
#   5. bad inputs: missing docs, docs with no text, a validation set without
#      queries, a document in both sets, a second pipeline on the same run
#      directory, a corrupt or hostile manifest
set -u
cd "$(dirname "$0")/.."
FIX=$SHARED/fixtures/model2vec-bge-base-q128
PY=/usr/bin/python3
if [ -d /dev/shm ] && [ -w /dev/shm ]; then # checkpoints fsync: RAM is faster on a busy disk
    T=$(mktemp -d /dev/shm/embtune-pipeline.XXXXXX); echo "T=$T"
else
    T=$PWD/$BUILD/test-out/pipeline
    rm -rf "$T"; mkdir -p "$T"
fi
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; [[ $T == /dev/shm/* && -z ${KEEP:-} ]] && rm -rf "$T"; }
trap cleanup EXIT
export EMBTUNE_CACHE_DIR=$T/cache
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $* [${SECONDS}s]"; }

# ---- documents: a product manual (training) and its admin guide (validation) ----------------
$PY - "$T/docs" <<'EOF' || exit 1
import os, random, sys
root = sys.argv[1]
rnd = random.Random(11)
things = ["scheduler", "cache layer", "index builder", "ingest queue", "query planner", "snapshot store",
          "replication log", "access token", "billing export", "audit trail", "webhook relay", "metrics agent",
          "backup vault", "shard balancer", "rate limiter", "schema registry", "search facet", "tenant quota"]
verbs = ["compacts", "rotates", "throttles", "validates", "replicates", "encrypts", "archives", "indexes",
         "partitions", "rebuilds", "aggregates", "expires"]
props = ["retention window", "batch interval", "failure threshold", "priority class", "checksum mode",
         "memory budget", "region tag", "compression level", "timeout budget", "ownership label"]
def para(topic, n):
    s = []
    for _ in range(n):
        a = rnd.choice(things); v = rnd.choice(verbs); p = rnd.choice(props)
        s.append("The %s %s every %s entry according to its %s of %d units." % (topic, v, a, p, rnd.randint(2, 900)))
    return " ".join(s)
def doc(path, title, topics, md):
    with open(path, "w") as f:
        f.write(("# %s\n\n" % title) if md else (title + "\n\n"))
        for t in topics:
            f.write(("## The %s\n\n" % t) if md else ("The %s\n\n" % t))
            for _ in range(3):
                f.write(para(t, 5) + "\n\n")
os.makedirs(root + "/train/part2")
os.makedirs(root + "/val")
doc(root + "/train/manual.md", "Operations manual", things[:6], True)
doc(root + "/train/tuning.txt", "Tuning notes", things[6:12], False)
doc(root + "/train/part2/reference.md", "Reference", things[12:], True)
doc(root + "/val/guide.md", "Administration guide", ["rate limiter", "backup vault", "query planner", "audit trail"], True)
EOF
D=$T/docs
common=(--train-docs "$D/train" --val-docs "$D/val/guide.md" -m "$FIX" --epochs 1 -q)
pipe() { "$EMBTUNE" pipeline "${common[@]}" "$@"; }
# what a run directory holds: relative path, size, mtime, sha256 (manifest and lock excluded)
snapshot() {
    (cd "$1" && find . -type f ! -name manifest.json ! -name .lock -printf '%P %s %T@\n' | sort &&
        find . -type f ! -name manifest.json ! -name .lock -print0 | sort -z | xargs -0 sha256sum)
}
# "stage=action" for every stage of a manifest
actions() {
    $PY -c "import json,sys; print(' '.join('%s=%s' % (s['name'], s['action']) for s in json.load(open(sys.argv[1]))['stages']))" "$1/manifest.json"
}

# ---- 1. layout and manifest -------------------------------------------------------------------
R=$T/run
if pipe -o "$R" >"$T/run.out" 2>"$T/run.err"; then
    for f in chunks-train.jsonl chunks-val.jsonl train.json val.json model/model.safetensors model/config.json \
             model/tokenizer.json model/train_log.jsonl report/report.html report/report.md report/metrics.json \
             report/ranks.jsonl manifest.json; do
        [ -s "$R/$f" ] || fail "run directory lacks $f"
    done
    grep -q "^fine-tuned " "$T/run.out" && grep -q "^bm25 " "$T/run.out" && grep -q "^model2vec-bge-base-q128 " "$T/run.out" \
        || fail "comparison table missing: $(cat "$T/run.out")"
    grep -q "^report: $R/report/report.html" "$T/run.out" || fail "report path not printed"
    $PY - "$R" <<'EOF' && ok "layout, manifest hashes and keys, train/val separation" || fail "manifest / datasets check"
import hashlib, json, os, sys
r = sys.argv[1]
m = json.load(open(r + "/manifest.json"))
assert m["format"] == "embtune-pipeline" and m["version"] == 1
names = [s["name"] for s in m["stages"]]
assert names == ["ingest-val", "ingest-train", "generate-val", "generate-train", "finetune", "eval"], names
sha = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()
for s in m["stages"]:
    assert s["status"] == "done" and s["action"] == "ran", s["name"]
    assert len(s["key"]) == 64 and s["seconds"] >= 0 and s["finished"] >= s["started"]
    assert s["outputs"], s["name"]
    for f in s["inputs"] + s["outputs"]:
        assert f["sha256"] == sha(f["file"]), (s["name"], f["file"])
        assert f["size"] == os.path.getsize(f["file"])
    for f in s["outputs"]:
        assert os.path.realpath(os.path.join(r, f["path"])) == f["file"]
by = {s["name"]: s for s in m["stages"]}
roles = lambda n: sorted({f["role"] for f in by[n]["inputs"]})
assert roles("ingest-train") == ["doc", "tokenizer"] and len([f for f in by["ingest-train"]["inputs"] if f["role"] == "doc"]) == 3
assert roles("generate-val") == ["chunks"] and roles("finetune") == ["model", "train", "val"]
assert roles("eval") == ["model", "tuned", "val"]
# outputs of a stage are the inputs of the next, by hash
out = lambda n: {f["path"]: f["sha256"] for f in by[n]["outputs"]}
inp = lambda n, role: {f["path"]: f["sha256"] for f in by[n]["inputs"] if f["role"] == role}
assert inp("generate-train", "chunks") == out("ingest-train") and inp("finetune", "train") == out("generate-train")
assert inp("eval", "tuned") == out("finetune")
# validation queries are about validation chunks only; the corpora are disjoint
cv = {json.loads(l)["id"] for l in open(r + "/chunks-val.jsonl")}
ct = {json.loads(l)["id"] for l in open(r + "/chunks-train.jsonl")}
docs = {json.loads(l)["doc"] for l in open(r + "/chunks-val.jsonl")}
assert docs == {"guide.md"}, docs
v, t = json.load(open(r + "/val.json")), json.load(open(r + "/train.json"))
assert set(v["corpus"]) == cv and set(t["corpus"]) == ct and not (cv & ct)
assert len(v["queries"]) > 10 and all(d in cv for ds in v["relevant_docs"].values() for d in ds)
met = json.load(open(r + "/report/metrics.json"))
assert [x["name"] for x in met["runs"]] == ["model2vec-bge-base-q128", "fine-tuned", "bm25"], met["runs"]
assert met["n_queries"] == len(v["queries"])
EOF
else
    cat "$T/run.err"; fail "first pipeline run"
fi

# ---- 2. a rerun skips every stage and touches nothing ---------------------------------------------
snapshot "$R" >"$T/snap1"
cp "$R/manifest.json" "$T/manifest1.json"
sleep 0.05
if pipe -o "$R" >"$T/rerun.out" 2>"$T/rerun.err"; then
    snapshot "$R" >"$T/snap2"
    cmp -s "$T/snap1" "$T/snap2" && ok "rerun: every output byte-identical, mtimes unchanged" \
        || { diff "$T/snap1" "$T/snap2" | head; fail "rerun changed outputs"; }
    $PY - "$T/manifest1.json" "$R/manifest.json" <<'EOF' && ok "rerun: every stage up to date, timings kept" || fail "rerun manifest"
import json, sys
a, b = (json.load(open(p))["stages"] for p in sys.argv[1:])
for x, y in zip(a, b):
    assert y["action"] == "up to date" and y["status"] == "done", (y["name"], y["action"])
    for k in ("key", "started", "finished", "seconds", "summary", "inputs", "outputs", "result"):
        assert x[k] == y[k], (x["name"], k)
EOF
    cmp -s <(grep -v "queries/s\|^report\|^manifest" "$T/run.out" | sed -n '/^model /,$p') \
           <(grep -v "queries/s\|^report\|^manifest" "$T/rerun.out" | sed -n '/^model /,$p') \
        || fail "rerun did not print the same comparison"
else
    cat "$T/rerun.err"; fail "rerun"
fi

# ---- 3. an option reruns exactly the stages it affects ----------------------------------------------
cp -r "$R" "$T/r3"
R3=$T/r3
expect() { # label, expected actions, pipeline args...
    local label=$1 want=$2; shift 2
    if pipe -o "$R3" "$@" >"$T/r3.out" 2>"$T/r3.err"; then
        local got; got=$(actions "$R3")
        [ "$got" = "$want" ] && ok "$label: $got" || fail "$label: got '$got', expected '$want'"
    else
        cat "$T/r3.err"; fail "$label: run failed"
    fi
}
U="up to date"
# (the copied run directory has other inodes: every file is hashed again, nothing reruns)
expect "copied run dir" "ingest-val=$U ingest-train=$U generate-val=$U generate-train=$U finetune=$U eval=$U"
expect "--epochs 2" "ingest-val=$U ingest-train=$U generate-val=$U generate-train=$U finetune=ran eval=ran" --epochs 2
expect "-k 1,5" "ingest-val=$U ingest-train=$U generate-val=$U generate-train=$U finetune=$U eval=ran" --epochs 2 -k 1,5
expect "-n 1" "ingest-val=$U ingest-train=$U generate-val=ran generate-train=ran finetune=ran eval=ran" --epochs 2 -k 1,5 -n 1
expect "--chunk-size 96" "ingest-val=ran ingest-train=ran generate-val=ran generate-train=ran finetune=ran eval=ran" \
    --epochs 2 -k 1,5 -n 1 --chunk-size 96
# a document touched, not changed: hashed again, the same bytes, nothing reruns
touch "$D/val/guide.md"
expect "touched document" "ingest-val=$U ingest-train=$U generate-val=$U generate-train=$U finetune=$U eval=$U" \
    --epochs 2 -k 1,5 -n 1 --chunk-size 96
echo "The rate limiter expires every billing export entry according to its memory budget of 77 units." >>"$D/val/guide.md"
expect "edited validation document" "ingest-val=ran ingest-train=$U generate-val=ran generate-train=$U finetune=ran eval=ran" \
    --epochs 2 -k 1,5 -n 1 --chunk-size 96
expect "--rerun finetune" "ingest-val=$U ingest-train=$U generate-val=$U generate-train=$U finetune=ran eval=ran" \
    --epochs 2 -k 1,5 -n 1 --chunk-size 96 --rerun finetune
rm "$R3/val.json"
expect "deleted output" "ingest-val=$U ingest-train=$U generate-val=resumed generate-train=$U finetune=$U eval=$U" \
    --epochs 2 -k 1,5 -n 1 --chunk-size 96
expect "--mode adapter" "ingest-val=$U ingest-train=$U generate-val=$U generate-train=$U finetune=ran eval=ran" \
    --epochs 2 -k 1,5 -n 1 --chunk-size 96 --mode adapter
[ -f "$R3/adapter/adapter.safetensors" ] && [ ! -e "$R3/model" ] || fail "adapter mode: adapter/ expected, model/ removed"
grep -q "+adapter " "$T/r3.out" || fail "adapter row missing: $(cat "$T/r3.out")"
sed -i '$d' "$D/val/guide.md" # restore the validation document

# ---- 4. kill -9 (and Ctrl-C) during generate and during finetune, then resume ------------------------------------
start_server() {
    local pf=$T/port.$RANDOM
    $PY tests/llm_server.py --port-file "$pf" --max-seconds 300 "$@" 2>>"$T/server.log" &
    pids+=($!)
    for _ in $(seq 200); do [ -s "$pf" ] && break; sleep 0.05; done
    PORT=$(cat "$pf")
}
# waits until file $1 has at least $2 lines, or the process $3 ended; 0 if the lines came
wait_lines() {
    for _ in $(seq 1200); do
        [ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ] && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}
compare_runs() { # label, reference run, resumed run
    local f bad=0
    for f in chunks-val.jsonl chunks-train.jsonl val.json train.json model/model.safetensors report/ranks.jsonl; do
        cmp -s "$2/$f" "$3/$f" || { fail "$1: $f differs from the uninterrupted run"; bad=1; }
    done
    $PY - "$2" "$3" <<'EOF' || { fail "$1: metrics differ"; bad=1; }
import json, sys
a, b = (json.load(open(p + "/report/metrics.json"))["runs"] for p in sys.argv[1:])
assert [x["metrics"] for x in a] == [x["metrics"] for x in b]
EOF
    [ $bad = 0 ] && ok "$1: same datasets, weights, rankings and metrics as the uninterrupted run"
}
start_server --scenario clean --latency 0.02
llm=(--llm-url "http://127.0.0.1:$PORT" --llm-model test-model --concurrency 2)
pipe -o "$T/gen-ref" "${llm[@]}" >/dev/null 2>"$T/gen-ref.err" || { cat "$T/gen-ref.err"; fail "LLM reference run"; }
"$EMBTUNE" pipeline "${common[@]}" -o "$T/gen-kill" "${llm[@]}" >/dev/null 2>&1 & cpid=$!
if wait_lines "$T/gen-kill/train.json.journal" 4 $cpid; then
    kill -9 $cpid; wait $cpid 2>/dev/null
    st=$($PY -c "import json,sys; print([s['status'] for s in json.load(open(sys.argv[1]))['stages'] if s['name']=='generate-train'][0])" "$T/gen-kill/manifest.json")
    [ "$st" = running ] || fail "generate-train should be 'running' in the manifest after kill -9, is '$st'"
    [ -e "$T/gen-kill/train.json" ] && fail "train.json exists before generate finished"
    if pipe -o "$T/gen-kill" "${llm[@]}" >/dev/null 2>"$T/gen-kill.err"; then
        a=$(actions "$T/gen-kill")
        [[ $a == *"generate-train=resumed"* && $a == *"generate-val=up to date"* ]] || fail "after kill in generate: $a"
        compare_runs "kill -9 in generate" "$T/gen-ref" "$T/gen-kill"
    else
        cat "$T/gen-kill.err"; fail "rerun after kill -9 in generate"
    fi
else
    wait $cpid; fail "generate finished before the kill (no journal lines seen)"
fi
# Ctrl-C during generate: a clean stop (manifest "interrupted", journal kept), then the rerun resumes
"$EMBTUNE" pipeline "${common[@]}" -o "$T/gen-int" "${llm[@]}" >/dev/null 2>"$T/gen-int.err" & cpid=$!
if wait_lines "$T/gen-int/train.json.journal" 4 $cpid; then
    kill -INT $cpid
    wait $cpid; rc=$?
    [ $rc != 0 ] || fail "Ctrl-C in generate: exit status 0"
    grep -q "generate-train: .*interrupted: [0-9]* of [0-9]* chunks are done.*rerun the same command to continue" \
        "$T/gen-int.err" || fail "Ctrl-C in generate: message: $(tail -3 "$T/gen-int.err")"
    st=$($PY -c "import json,sys; print([s['status'] for s in json.load(open(sys.argv[1]))['stages'] if s['name']=='generate-train'][0])" "$T/gen-int/manifest.json")
    [ "$st" = interrupted ] || fail "generate-train should be 'interrupted' in the manifest after Ctrl-C, is '$st'"
    [ -e "$T/gen-int/train.json" ] && fail "train.json exists after Ctrl-C in generate"
    if pipe -o "$T/gen-int" "${llm[@]}" >/dev/null 2>"$T/gen-int2.err"; then
        a=$(actions "$T/gen-int")
        [[ $a == *"generate-train=resumed"* && $a == *"generate-val=up to date"* ]] || fail "after Ctrl-C in generate: $a"
        compare_runs "Ctrl-C in generate" "$T/gen-ref" "$T/gen-int"
    else
        cat "$T/gen-int2.err"; fail "rerun after Ctrl-C in generate"
    fi
else
    wait $cpid; fail "generate finished before the Ctrl-C (no journal lines seen)"
fi
ft=(--epochs 3 --batch-size 2)
pipe -o "$T/ft-ref" "${ft[@]}" >/dev/null 2>"$T/ft-ref.err" || { cat "$T/ft-ref.err"; fail "finetune reference run"; }
"$EMBTUNE" pipeline "${common[@]}" -o "$T/ft-kill" "${ft[@]}" >/dev/null 2>&1 & cpid=$!
# a checkpoint is written at every epoch end: kill after a few epochs
if wait_lines "$T/ft-kill/model/train_log.jsonl" 60 $cpid; then
    kill -9 $cpid; wait $cpid 2>/dev/null
    [ -f "$T/ft-kill/model/checkpoint/state.bin" ] || fail "no checkpoint after kill -9 in finetune"
    if pipe -o "$T/ft-kill" "${ft[@]}" >/dev/null 2>"$T/ft-kill.err"; then
        a=$(actions "$T/ft-kill")
        [[ $a == *"generate-train=up to date finetune=resumed eval=ran" ]] || fail "after kill in finetune: $a"
        compare_runs "kill -9 in finetune" "$T/ft-ref" "$T/ft-kill"
    else
        cat "$T/ft-kill.err"; fail "rerun after kill -9 in finetune"
    fi
else
    wait $cpid; fail "finetune finished before the kill"
fi

# ---- 5. bad inputs ------------------------------------------------------------------------------------
bad() { # label, expected exit code, message regex, pipeline args...
    local label=$1 code=$2 re=$3; shift 3
    "$EMBTUNE" pipeline "$@" >"$T/bad.out" 2>"$T/bad.err"
    local rc=$?
    if [ $rc != "$code" ]; then fail "$label: exit $rc, expected $code ($(tail -n 2 "$T/bad.err"))"
    elif ! grep -Eq -e "$re" "$T/bad.err"; then fail "$label: message: $(cat "$T/bad.err")"
    else ok "$label: $(grep -E -e "$re" "$T/bad.err" | head -n 1 | cut -c1-150)"; fi
}
mkdir -p "$T/empty" "$T/blank" "$T/codeonly"
: >"$T/blank/empty.txt"
printf '```\nx <- 1\ny <- c(x, 2)\n```\n' >"$T/codeonly/cmds.md" # code only: the embedded generator asks nothing
bad "missing training docs" 1 "training documents.*nope.*No such file" \
    --train-docs "$T/nope" --val-docs "$D/val" -m "$FIX" -o "$T/b1"
bad "missing validation docs" 1 "validation documents.*missing.md.*No such file" \
    --train-docs "$D/train" --val-docs "$T/missing.md" -m "$FIX" -o "$T/b1"
bad "no document files" 1 "validation documents.*no document files in" \
    --train-docs "$D/train" --val-docs "$T/empty" -m "$FIX" -o "$T/b1"
bad "documents without text" 1 "ingest-val: validation documents: .*(could be ingested|no text)" \
    --train-docs "$D/train" --val-docs "$T/blank" -m "$FIX" -o "$T/b2"
bad "validation set without queries" 1 "generate-val: .*no questions were generated" \
    --train-docs "$D/train" --val-docs "$T/codeonly" -m "$FIX" -o "$T/b3"
$PY -c "import json,sys; s=[s for s in json.load(open(sys.argv[1]))['stages'] if s['name']=='generate-val'][0]; assert s['status']=='failed' and 'no questions' in s['error']" \
    "$T/b3/manifest.json" || fail "failed stage not recorded in the manifest"
bad "a document in both sets" 1 "guide.md \(validation\) and .*same document" \
    --train-docs "$D/train" "$D/val" --val-docs "$D/val/guide.md" -m "$FIX" -o "$T/b4"
bad "missing base model" 1 "base model.*nomodel" --train-docs "$D/train" --val-docs "$D/val" -m "$T/nomodel" -o "$T/b5"
bad "no --val-docs" 2 "both --train-docs" --train-docs "$D/train" -m "$FIX" -o "$T/b5"
bad "unknown option" 2 "unknown option '--bogus'" --bogus --train-docs "$D/train" --val-docs "$D/val" -m "$FIX" -o "$T/b5"
bad "bad --rerun" 1 "--rerun 'sometimes'" "${common[@]}" -o "$T/b5" --rerun sometimes
bad "bad --mode" 1 "--mode 'half'" "${common[@]}" -o "$T/b5" --mode half
# another pipeline holds the run directory
cp -r "$R" "$T/locked"
( exec 9>"$T/locked/.lock"; flock 9; sleep 3 ) & lpid=$!
sleep 0.3
bad "run directory in use" 1 "another embtune pipeline is running" "${common[@]}" -o "$T/locked"
kill $lpid 2>/dev/null; wait $lpid 2>/dev/null
# a corrupt manifest is ignored with a warning (stages run again, by their hashes)
cp -r "$R" "$T/corrupt"
echo '{"format": "embtune-pipeline", "version": 1, "stages": [{"name": "eval", "outputs": 7' >"$T/corrupt/manifest.json"
if pipe -o "$T/corrupt" >/dev/null 2>"$T/corrupt.err"; then
    grep -q "warning: ignoring .*manifest.json" "$T/corrupt.err" || fail "no warning for a corrupt manifest"
    [ "$(actions "$T/corrupt")" = "ingest-val=ran ingest-train=ran generate-val=ran generate-train=ran finetune=ran eval=ran" ] \
        && ok "corrupt manifest: warning, every stage runs again" || fail "corrupt manifest: $(actions "$T/corrupt")"
else
    cat "$T/corrupt.err"; fail "run with a corrupt manifest"
fi
# a hostile manifest: recorded outputs outside the run directory are never deleted
cp -r "$R" "$T/hostile"
echo keep >"$T/victim"
$PY - "$T/hostile/manifest.json" "$T/victim" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
for s in m["stages"]:
    s["key"] = "0" * 64  # forces a rerun, which deletes the recorded outputs first
    s["outputs"] = [{"path": p, "file": "/x", "size": 5, "stat": "1:2:3:4", "sha256": "a" * 64}
                    for p in ("../victim", sys.argv[2], "report/../../victim", "model/../../victim")]
json.dump(m, open(sys.argv[1], "w"))
EOF
pipe -o "$T/hostile" >/dev/null 2>"$T/hostile.err" || { cat "$T/hostile.err"; fail "run with a hostile manifest"; }
[ "$(cat "$T/victim" 2>/dev/null)" = keep ] && ok "hostile manifest: nothing outside the run directory deleted" \
    || fail "a file outside the run directory was deleted"

echo "pipeline tests: $fails failure(s)"
[ $fails = 0 ]
