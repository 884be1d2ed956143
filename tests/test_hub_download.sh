#!/usr/bin/env bash
# test_hub_download.sh - `embtune download` / -m org/name against tests/hub_server.py, a local
# stand-in for the Hugging Face Hub serving the model2vec fixture, with faults:
# dropped connections (resume), corrupted bytes (checksum), 401/403/404, offline mode.
set -u
cd "$(dirname "$0")/.."
: "${BUILD:=build}" "${EMBTUNE:=$PWD/$BUILD/embtune}" "${SHARED:=$(cd .. && pwd)/shared}"
FIX=$SHARED/fixtures/model2vec-bge-base-q128
OUT=$BUILD/test-out/hub
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
TOKEN=hf_test_token_do_not_print

fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

$PY tests/hub_server.py --fixture "$FIX" --port-file "$OUT/port" --token "$TOKEN" 2>"$OUT/server.err" &
SRV=$!
SPID=
trap 'kill $SRV ${SPID:-} 2>/dev/null; wait $SRV 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s "$OUT/port" ] && break; sleep 0.05; done
[ -s "$OUT/port" ] || { echo "hub_server did not start"; cat "$OUT/server.err"; exit 1; }
PORT=$(cat "$OUT/port")
export HF_ENDPOINT=http://127.0.0.1:$PORT
unset HF_TOKEN HUGGING_FACE_HUB_TOKEN HF_HUB_OFFLINE HF_HUB_CACHE HUGGINGFACE_HUB_CACHE HF_TOKEN_PATH
export ET_PROGRESS=0

ctl() { curl -sf -X POST ${2:+-d "$2"} "$HF_ENDPOINT/$1" >/dev/null; }
fault() { ctl _fault "$1"; }
reset() { ctl _reset; }
log() { curl -sf "$HF_ENDPOINT/_log"; }
fresh() { export HF_HOME=$OUT/home-$1; rm -rf "$HF_HOME"; }
dl() {
    local rc=0
    "$EMBTUNE" download "$@" >"$OUT/stdout" 2>"$OUT/stderr" || rc=$?
    cat "$OUT/stdout" "$OUT/stderr" >>"$OUT/all-output"
    return $rc
}
in_err() { grep -q -- "$1" "$OUT/stderr" || { echo "     stderr lacks '$1':"; sed 's/^/     | /' "$OUT/stderr"; return 1; }; }
same_files() { # snapshot dir, files...
    local d=$1; shift
    for f in "$@"; do cmp -s "$d/$f" "$FIX/$f" || { echo "     $f differs"; return 1; }; done
}

# ---- 1. a clean download -------------------------------------------------------------
fresh a; reset
check "download succeeds" dl test-org/tiny
REPO=$HF_HOME/hub/models--test-org--tiny
SNAP=$(cat "$OUT/stdout")
COMMIT=$(cat "$REPO/refs/main" 2>/dev/null)
check "refs/main holds a 40-hex commit" bash -c "[[ '$COMMIT' =~ ^[0-9a-f]{40}$ ]]"
check "stdout is the snapshot dir" test "$SNAP" = "$REPO/snapshots/$COMMIT"
check "snapshot files equal the hub's bytes" same_files "$SNAP" config.json modules.json tokenizer.json model.safetensors
SHA=$(sha256sum "$FIX/model.safetensors" | cut -d' ' -f1)
check "LFS blob named by sha256, relative symlink" \
    test "$(readlink "$SNAP/model.safetensors")" = "../../blobs/$SHA"
GITSHA=$(printf 'blob %d\0' "$(stat -c %s "$FIX/config.json")" | cat - "$FIX/config.json" | sha1sum | cut -d' ' -f1)
check "regular blob named by git sha1" test "$(readlink "$SNAP/config.json")" = "../../blobs/$GITSHA"
check "README/LICENSE not fetched" bash -c "[ ! -e '$SNAP/README.md' ] && [ ! -e '$SNAP/LICENSE' ]"
check "no .incomplete left" bash -c "! ls '$REPO/blobs' | grep -q incomplete"
check "LFS bytes came from the CDN host without Authorization" \
    bash -c "curl -sf '$HF_ENDPOINT/_log' | grep '/cdn/' | grep -q '\"auth\": false'"

# HF_HUB_CACHE wins over HF_HOME (as huggingface_hub)
reset
check "HF_HUB_CACHE: the repo lands there, not under HF_HOME" bash -c "
    HF_HUB_CACHE='$OUT/hubcache' HF_HOME='$OUT/home-unused' '$EMBTUNE' download -q test-org/tiny >/dev/null &&
    [ -L '$OUT/hubcache/models--test-org--tiny/snapshots/$COMMIT/model.safetensors' ] &&
    [ -s '$OUT/hubcache/models--test-org--tiny/refs/main' ] && [ ! -e '$OUT/home-unused/hub' ]"

# ---- 2. cached: a refresh lists the revision only; offline needs no network -----------
reset
check "second download succeeds" dl test-org/tiny
check "second download fetched nothing (1 API request)" test "$(log | wc -l)" = 1
reset
check "offline download resolves from the cache" bash -c "HF_HUB_OFFLINE=1 '$EMBTUNE' download test-org/tiny -q | grep -qx '$SNAP'"
check "offline mode made no request" test "$(log | wc -l)" = 0
check "offline by commit id and by --offline" bash -c "'$EMBTUNE' download --offline test-org/tiny@$COMMIT -q | grep -q '$COMMIT'"
fresh empty
check "offline with an empty cache fails" bash -c "! HF_HUB_OFFLINE=1 '$EMBTUNE' download test-org/tiny 2>'$OUT/stderr'"
check "offline error says so" in_err "offline mode is on"

# ---- 3. dropped connection: resumed within the run, then across runs ------------------
fresh drop; reset
fault '{"kind":"drop","file":"model.safetensors","after":100000,"times":2}'
check "download survives two dropped connections" dl test-org/tiny
check "resumed with Range from 100000 then 200000" \
    bash -c "curl -sf '$HF_ENDPOINT/_log' | grep '/cdn/' | grep -q 'bytes=100000-' && curl -sf '$HF_ENDPOINT/_log' | grep '/cdn/' | grep -q 'bytes=200000-'"
check "resumed file is byte-exact" same_files "$(cat "$OUT/stdout")" model.safetensors

fresh drop2; reset
fault '{"kind":"drop","file":"model.safetensors","after":150000,"times":1}'
check "no retries: the run fails" bash -c "! ET_HUB_RETRIES=0 '$EMBTUNE' download test-org/tiny 2>'$OUT/stderr'"
check "error says the partial file is kept" in_err "next run resumes"
PART=$HF_HOME/hub/models--test-org--tiny/blobs/$SHA.incomplete
check "150000 bytes kept in .incomplete" test "$(stat -c %s "$PART" 2>/dev/null)" = 150000
check "nothing in snapshots after the failure" bash -c "[ ! -e '$HF_HOME/hub/models--test-org--tiny/snapshots' ] || [ -z \"\$(find '$HF_HOME/hub/models--test-org--tiny/snapshots' -type l)\" ]"
reset
check "next run resumes" dl test-org/tiny
check "it asked for bytes=150000- and got only the rest" \
    bash -c "curl -sf '$HF_ENDPOINT/_log' | grep '/cdn/' | grep 'bytes=150000-' | grep -q '\"sent\": $(( $(stat -c %s "$FIX/model.safetensors") - 150000 ))'"
check "resumed file is byte-exact" same_files "$(cat "$OUT/stdout")" model.safetensors

fresh range; reset
fault '{"kind":"drop","file":"model.safetensors","after":120000,"times":1}'
fault '{"kind":"ignore_range","file":"model.safetensors","times":1}'
check "server ignoring Range (200 instead of 206): restart from 0" dl test-org/tiny
check "restarted file is byte-exact" same_files "$(cat "$OUT/stdout")" model.safetensors

# ---- 4. wrong bytes are rejected, nothing reaches snapshots --------------------------
for f in model.safetensors tokenizer.json; do
    fresh corrupt; reset
    fault "{\"kind\":\"corrupt\",\"file\":\"$f\"}"
    check "corrupted $f rejected" bash -c "! '$EMBTUNE' download test-org/tiny 2>'$OUT/stderr'"
    check "error names the checksum" in_err "checksum mismatch"
    R=$HF_HOME/hub/models--test-org--tiny
    check "no snapshot links, no ref, no partial after a bad $f" \
        bash -c "[ -z \"\$(find '$R' -type l 2>/dev/null)\" ] && [ ! -e '$R/refs/main' ] && ! ls '$R/blobs' | grep -q incomplete"
done
reset
check "after the fault, a clean run succeeds" dl test-org/tiny

# ---- 5. transient server errors are retried -----------------------------------------
fresh e500; reset
fault '{"kind":"status","match":"/api/models/","code":503,"times":1}'
fault '{"kind":"status","match":"/cdn/","code":500,"times":1}'
check "503 on the listing and 500 on the CDN are retried" dl test-org/tiny

# ---- 6. auth, gated, missing -----------------------------------------------------------
fresh auth; reset
check "private repo without a token fails" bash -c "! '$EMBTUNE' download test-org/private 2>'$OUT/stderr'"
check "401 message says HF_TOKEN is not set" in_err "HF_TOKEN is not set"
export HF_TOKEN=$TOKEN
check "private repo with HF_TOKEN works" dl test-org/private -q
unset HF_TOKEN
check "Bearer token sent to the hub" bash -c "curl -sf '$HF_ENDPOINT/_log' | grep 'resolve' | grep -q '\"auth_ok\": true'"
check "token never sent to the CDN host" bash -c "! curl -sf '$HF_ENDPOINT/_log' | grep '/cdn/' | grep -q '\"auth\": true'"
mkdir -p "$HF_HOME"; printf '%s\n' "$TOKEN" >"$HF_HOME/token"
rm -rf "$HF_HOME/hub"
check "token read from \$HF_HOME/token" dl test-org/private -q
rm -f "$HF_HOME/token"
check "gated repo without a token fails" bash -c "! '$EMBTUNE' download test-org/gated 2>'$OUT/stderr'"
check "gated message" in_err "gated repository"
check "gated with a token lacking access fails" bash -c "! HF_TOKEN=wrong '$EMBTUNE' download test-org/gated 2>'$OUT/stderr'"
check "gated 403 message names the token" in_err "has no access"
check "missing repo fails" bash -c "! HF_TOKEN=$TOKEN '$EMBTUNE' download test-org/nope 2>'$OUT/stderr'"
check "missing repo message" in_err "repository test-org/nope not found"
check "missing revision fails" bash -c "! '$EMBTUNE' download test-org/tiny@nope 2>'$OUT/stderr'"
check "missing revision message" in_err "revision 'nope' not found"
check "a token never appears in any output" bash -c "! grep -q '$TOKEN' '$OUT/all-output'"
check "bad id is a usage error" bash -c "! '$EMBTUNE' download ../etc 2>'$OUT/stderr'"

# ---- 7. layout: module folders, shards, files to skip; renamed repos; tags ------------
fresh layout; reset
check "sharded repo with a module folder" dl test-org/layout@v1.0
S=$(cat "$OUT/stdout")
check "shards, index and 1_Pooling/config.json present" \
    bash -c "[ -f '$S/model-00001-of-00002.safetensors' ] && [ -f '$S/model-00002-of-00002.safetensors' ] && [ -f '$S/model.safetensors.index.json' ] && [ -f '$S/1_Pooling/config.json' ]"
check "module file links one level deeper" bash -c "readlink '$S/1_Pooling/config.json' | grep -q '^\.\./\.\./\.\./blobs/'"
check "pytorch_model.bin, onnx/, README.md, .gitattributes skipped" \
    bash -c "[ ! -e '$S/pytorch_model.bin' ] && [ ! -e '$S/onnx' ] && [ ! -e '$S/README.md' ] && [ ! -e '$S/.gitattributes' ]"
check "refs/v1.0 written" test -f "$HF_HOME/hub/models--test-org--layout/refs/v1.0"
check "repo without safetensors is refused" bash -c "! '$EMBTUNE' download test-org/noweights 2>'$OUT/stderr'"
check "refusal names what it has" in_err "pytorch_model.bin"
check "renamed repo (relative redirect) works" dl test-org/old-name

# ---- 8. a partial snapshot made by someone else is completed, not trusted -----------
fresh partial; reset
dl test-org/tiny
rm "$(cat "$OUT/stdout")/tokenizer.json"
check "offline use of an incomplete snapshot fails" bash -c "! HF_HUB_OFFLINE=1 '$EMBTUNE' download test-org/tiny 2>'$OUT/stderr'"
check "incomplete-snapshot error names the file" in_err "missing tokenizer.json"
reset
check "online run completes the snapshot" dl test-org/tiny
check "only the missing file was fetched (blob reused)" bash -c "[ \$(curl -sf '$HF_ENDPOINT/_log' | grep -c '\"GET\".*resolve') -le 1 ]"

# ---- 9. -m org/name in the other commands: cache, offline, automatic download --------
fresh m; reset
printf 'what is R?\nR is a language for statistics.\n' >"$OUT/texts.txt"
"$EMBTUNE" embed -q -m "$FIX" -i "$OUT/texts.txt" -o "$OUT/ref.jsonl"
check "embed -m test-org/tiny downloads into the cache" \
    "$EMBTUNE" embed -q -m test-org/tiny -i "$OUT/texts.txt" -o "$OUT/hub.jsonl"
check "  and gives the vectors of the model directory" cmp -s "$OUT/ref.jsonl" "$OUT/hub.jsonl"
check "  the snapshot is in the HF layout" test -L "$HF_HOME/hub/models--test-org--tiny/snapshots/$COMMIT/model.safetensors"
reset
check "embed -m test-org/tiny with the cache complete: no request" \
    bash -c "'$EMBTUNE' embed -q -m test-org/tiny -i '$OUT/texts.txt' -o '$OUT/hub2.jsonl' && [ \$(curl -sf '$HF_ENDPOINT/_log' | wc -l) = 0 ]"
check "embed -m test-org/tiny offline" \
    bash -c "HF_HUB_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:1 '$EMBTUNE' embed -q -m test-org/tiny -i '$OUT/texts.txt' -o '$OUT/hub3.jsonl' && cmp -s '$OUT/ref.jsonl' '$OUT/hub3.jsonl'"
check "info -m test-org/tiny@$COMMIT" bash -c "'$EMBTUNE' info -m test-org/tiny@$COMMIT | grep -q model2vec"
fresh m2
check "embed -m with a missing repo fails clearly" \
    bash -c "! '$EMBTUNE' embed -q -m test-org/nope -i '$OUT/texts.txt' -o '$OUT/x.jsonl' 2>'$OUT/stderr'"
check "  (message)" in_err "not found"
check "a missing local directory is not sent to the hub" \
    bash -c "! '$EMBTUNE' info -m ./no/such/model 2>'$OUT/stderr'"
check "  (message)" in_err "no such directory"

# ---- 10. every command that takes a model takes a Hub id (from the cache filled above) ---
# Offline with a dead endpoint: each command must find the cached snapshot itself, and its
# result must equal the same command on the fixture directory.
export HF_HOME=$OUT/home-m
off() { HF_HUB_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:1 "$@"; }
"$EMBTUNE" tokenize -m "$FIX" -i "$OUT/texts.txt" >"$OUT/tok_dir.jsonl"
off "$EMBTUNE" tokenize -m test-org/tiny -i "$OUT/texts.txt" >"$OUT/tok_hub.jsonl" 2>"$OUT/stderr"
check "tokenize -m test-org/tiny = tokenize -m DIR" \
    bash -c "[ -s '$OUT/tok_dir.jsonl' ] && cmp -s '$OUT/tok_dir.jsonl' '$OUT/tok_hub.jsonl'"
cat >"$OUT/ds.json" <<'JSON'
{"queries": {"q1": "what is R?", "q2": "how to fit a linear model", "q3": "reading csv files"},
 "corpus": {"d1": "R is a language and environment for statistical computing.",
            "d2": "lm fits linear models by least squares.",
            "d3": "read.csv reads a file in comma separated format.",
            "d4": "Graphics are drawn with plot.",
            "d5": "R is free software for statistics and graphics.",
            "d6": "glm fits generalized linear models, lm fits linear ones.",
            "d7": "scan and readLines read files; read.table reads tables."},
 "relevant_docs": {"q1": ["d1"], "q2": ["d2"], "q3": ["d3"]}, "mode": "text"}
JSON
"$EMBTUNE" eval -q -d "$OUT/ds.json" -m "$FIX" >"$OUT/eval_dir.txt"
off "$EMBTUNE" eval -q -d "$OUT/ds.json" -m test-org/tiny >"$OUT/eval_hub.txt" 2>"$OUT/stderr"
metrics() { awk 'NR > 1 { $1 = $NF = ""; print }' "$1"; } # without the name and queries/s columns
check "eval -m test-org/tiny: the metrics of -m DIR" \
    bash -c "[ -s '$OUT/eval_hub.txt' ] && [ \"$(metrics "$OUT/eval_dir.txt")\" = \"$(metrics "$OUT/eval_hub.txt")\" ]"
ftargs=(-t "$OUT/ds.json" --mode adapter --epochs 1 --batch-size 2 --seed 5 -q)
"$EMBTUNE" finetune -m "$FIX" "${ftargs[@]}" -o "$OUT/ft_dir" >/dev/null 2>&1
off "$EMBTUNE" finetune -m test-org/tiny "${ftargs[@]}" -o "$OUT/ft_hub" >/dev/null 2>"$OUT/stderr"
check "finetune -m test-org/tiny: the adapter trained on -m DIR" \
    bash -c "[ -s '$OUT/ft_dir/adapter.safetensors' ] && cmp -s '$OUT/ft_dir/adapter.safetensors' '$OUT/ft_hub/adapter.safetensors'"
HF_HUB_OFFLINE=1 HF_ENDPOINT=http://127.0.0.1:1 "$EMBTUNE" serve -m test-org/tiny --port 0 2>"$OUT/serve.err" &
SPID=$!
SPORT=
for _ in $(seq 200); do
    SPORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$OUT/serve.err")
    [ -n "$SPORT" ] && break
    kill -0 $SPID 2>/dev/null || break
    sleep 0.05
done
curl -s -X POST "http://127.0.0.1:$SPORT/v1/embeddings" \
    -d '{"input": ["what is R?", "R is a language for statistics."]}' >"$OUT/serve.json"
kill -TERM $SPID 2>/dev/null
src=0; wait $SPID || src=$?; SPID=
check "serve -m test-org/tiny answers with embed's vectors, exits 0" bash -c "[ $src = 0 ] && $PY - '$OUT/serve.json' '$OUT/ref.jsonl'" <<'PY'
import json, sys
got = [d["embedding"] for d in json.load(open(sys.argv[1]))["data"]]
ref = [json.loads(l)["embedding"] for l in open(sys.argv[2])]
err = max(abs(a - b) for g, r in zip(got, ref) for a, b in zip(g, r))
print("     max abs err %.3g" % err)
sys.exit(0 if len(got) == len(ref) == 2 and err <= 1e-6 else 1)
PY
mkdir -p "$OUT/docs"
printf 'R is a language for statistics.\n\nIt fits linear models with lm and draws graphics with plot.\n\nData frames hold tables of variables.\n' >"$OUT/docs/train.txt"
printf 'read.csv reads comma separated files.\n\nwrite.table writes a data frame to a file.\n' >"$OUT/docs/val.txt"
off "$EMBTUNE" pipeline --train-docs "$OUT/docs/train.txt" --val-docs "$OUT/docs/val.txt" -m test-org/tiny \
    --mode adapter --epochs 1 -q -o "$OUT/pipe" >"$OUT/pipe.out" 2>&1
prc=$?
check "pipeline -m test-org/tiny runs from the cache" \
    bash -c "[ $prc = 0 ] && [ -s '$OUT/pipe/adapter/adapter.safetensors' ] || { sed 's/^/     | /' '$OUT/pipe.out'; exit 1; }"
"$EMBTUNE" ingest -q "$OUT/docs" -m "$FIX" --chunk-size 12 --chunk-overlap 2 -o "$OUT/chunks_dir.jsonl"
off "$EMBTUNE" ingest -q "$OUT/docs" -m test-org/tiny --chunk-size 12 --chunk-overlap 2 -o "$OUT/chunks_hub.jsonl" 2>"$OUT/stderr"
check "ingest -m test-org/tiny: the chunks of -m DIR" \
    bash -c "[ -s '$OUT/chunks_dir.jsonl' ] && cmp -s '$OUT/chunks_dir.jsonl' '$OUT/chunks_hub.jsonl'"
for cmd in tokenize eval pipeline serve; do
    case $cmd in
    tokenize) args=(-m test-org/nope -i "$OUT/texts.txt") ;;
    eval) args=(-m test-org/nope -d "$OUT/ds.json") ;;
    pipeline) args=(-m test-org/nope --train-docs "$OUT/docs/train.txt" --val-docs "$OUT/docs/val.txt" -o "$OUT/pipe2") ;;
    serve) args=(-m test-org/nope --port 0) ;;
    esac
    crc=0
    "$EMBTUNE" $cmd "${args[@]}" >/dev/null 2>"$OUT/stderr" || crc=$?
    check "$cmd -m test-org/nope asks the hub and fails clearly" bash -c "[ $crc != 0 ] && grep -q 'test-org/nope not found' '$OUT/stderr'"
done

echo "test_hub_download: $fails failure(s)"
[ $fails = 0 ]
