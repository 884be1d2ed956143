#!/usr/bin/env bash
# test_serve_cli.sh - `embtune serve` with the real model2vec fixture, curl as the client:
# every endpoint and error path, auth, base64, dimensions, replies equal to `embtune embed`'s
# vectors; a 64-connection load test where every reply is checked against its own inputs
# (tests/serve_client.py); SIGTERM with requests in flight drains and exits 0.
set -u
cd "$(dirname "$0")/.."
: "${BUILD:=build}" "${EMBTUNE:=$PWD/$BUILD/embtune}" "${SHARED:=$(cd .. && pwd)/shared}"
FIX=$SHARED/fixtures/model2vec-bge-base-q128
OUT=$BUILD/test-out/serve_cli
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PY=${PYTHON:-python3}
export ET_PROGRESS=0

fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

SRV=
start_server() { # args...; sets SRV and PORT
    "$EMBTUNE" serve --port 0 "$@" 2>"$OUT/serve.err" &
    SRV=$!
    PORT=
    for _ in $(seq 200); do
        PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$OUT/serve.err")
        [ -n "$PORT" ] && return 0
        kill -0 $SRV 2>/dev/null || break
        sleep 0.05
    done
    echo "server did not start:"; cat "$OUT/serve.err"; return 1
}
stop_server() { # SIGTERM; returns the server's exit code
    kill -TERM $SRV 2>/dev/null
    local rc=0
    wait $SRV || rc=$?
    SRV=
    return $rc
}
trap '[ -n "$SRV" ] && kill -9 $SRV 2>/dev/null' EXIT

# texts and their reference vectors from `embtune embed`
{
    cat tests/ref/texts.txt 2>/dev/null | awk 'NF > 0'
    for i in $(seq 300); do echo "sentence number $i about statistics, regression and the R language $((i * 7))"; done
} | awk 'NF > 0 && !seen[$0]++' >"$OUT/texts.txt"
NT=$(wc -l <"$OUT/texts.txt")
"$EMBTUNE" embed -q -m "$FIX" -i "$OUT/texts.txt" -o "$OUT/ref.jsonl" ||
    { echo "embtune embed failed"; exit 1; }

post() { # path body [extra curl args] -> $OUT/body, prints the status
    local path=$1 body=$2; shift 2
    curl -s -o "$OUT/body" -w '%{http_code}' -X POST "http://127.0.0.1:$PORT$path" \
        -H 'Content-Type: application/json' --data-binary "$body" "$@"
}
get() { curl -s -o "$OUT/body" -w '%{http_code}' "http://127.0.0.1:$PORT$1" "${@:2}"; }
# compare reply rows with reference rows: jq-free, python stdlib
cmp_rows() { # mode(openai|tei) dims normalize idx...
    $PY - "$OUT/body" "$OUT/ref.jsonl" "$@" <<'PY'
import base64, json, math, struct, sys
body, ref, mode, dims, norm = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
idx = [int(x) for x in sys.argv[6:]]
refs = [json.loads(l)["embedding"] for l in open(ref)]
r = json.load(open(body))
rows = r if mode == "tei" else [d["embedding"] for d in r["data"]]
if len(rows) != len(idx): sys.exit("got %d rows, expected %d" % (len(rows), len(idx)))
worst = 0
for row, i in zip(rows, idx):
    if isinstance(row, str):
        raw = base64.b64decode(row); row = struct.unpack("<%df" % (len(raw) // 4), raw)
    want = refs[i][:dims] if dims else refs[i]
    if norm:
        s = math.sqrt(sum(x * x for x in want)); want = [x / s for x in want]
    if len(row) != len(want): sys.exit("dim %d, expected %d" % (len(row), len(want)))
    worst = max([worst] + [abs(a - b) for a, b in zip(row, want)])
print("max abs err %.3g" % worst)
sys.exit(0 if worst <= 1e-6 else "max abs err %g > 1e-6" % worst)
PY
}
err_shape() { # status param|- : OpenAI error object with message/type/param/code
    $PY - "$OUT/body" "$1" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["error"]
assert isinstance(e["message"], str) and e["message"] and isinstance(e["type"], str), e
assert "param" in e and "code" in e, e
if sys.argv[2] != "-": assert e["param"] == sys.argv[2], e
PY
}
T0=$(sed -n 1p "$OUT/texts.txt" | $PY -c 'import json,sys; print(json.dumps(sys.stdin.read().rstrip("\n")))')
T1=$(sed -n 2p "$OUT/texts.txt" | $PY -c 'import json,sys; print(json.dumps(sys.stdin.read().rstrip("\n")))')
T5=$(sed -n 6p "$OUT/texts.txt" | $PY -c 'import json,sys; print(json.dumps(sys.stdin.read().rstrip("\n")))')

# ---- endpoints ------------------------------------------------------------------------
start_server -m "$FIX" --name tiny || exit 1
check "GET /health" test "$(get /health)" = 200
check "GET /v1/models names the model" bash -c "[ \"\$(curl -s http://127.0.0.1:$PORT/v1/models | grep -c '\"id\":\"tiny\"')\" = 1 ]"
s=$(post /v1/embeddings "{\"input\": $T0, \"model\": \"tiny\"}")
check "POST /v1/embeddings one text: 200" test "$s" = 200
check "  vector = embtune embed (<= 1e-6)" cmp_rows openai 0 0 0
s=$(post /v1/embeddings "{\"input\": [$T0, $T1, $T5]}")
check "three texts: 200, in order, = embed" cmp_rows openai 0 0 0 1 5
check "usage.prompt_tokens > 0" grep -q '"prompt_tokens":[1-9]' "$OUT/body"
s=$(post /v1/embeddings "{\"input\": [$T0, $T5], \"encoding_format\": \"base64\"}")
check "base64 decodes to embed's float32" cmp_rows openai 0 0 0 5
s=$(post /v1/embeddings "{\"input\": [$T0, $T5], \"dimensions\": 16}")
check "dimensions 16: truncated + renormalized" cmp_rows openai 16 1 0 5
s=$(post /embed "{\"inputs\": [$T1, $T0]}")
check "TEI /embed = embed (normalized model)" cmp_rows tei 0 1 1 0
s=$(post /embed "{\"inputs\": $T1, \"dimensions\": 32}")
check "TEI single string, dimensions 32" cmp_rows tei 32 1 1
s=$(post /v1/embeddings "{\"input\": $T0, \"input_type\": \"document\"}")
check "input_type document (no prompt in this model) = embed" cmp_rows openai 0 0 0

# ---- errors -----------------------------------------------------------------------------
s=$(post /v1/embeddings '{"input": ["a",')
check "malformed JSON -> 400" test "$s" = 400
check "  OpenAI error object" err_shape -
s=$(post /v1/embeddings '{"input": 5}'); check "wrong type -> 400" test "$s" = 400; check "  param input" err_shape input
s=$(post /v1/embeddings '{"input": []}'); check "empty array -> 400" test "$s" = 400
s=$(post /v1/embeddings '{"input": ""}'); check "empty string -> 400" test "$s" = 400
s=$(post /v1/embeddings '{"model": "x"}'); check "missing input -> 400" test "$s" = 400
s=$(post /v1/embeddings '{"input": "a", "dimensions": 65}'); check "dimensions > 64 -> 400" test "$s" = 400; check "  param dimensions" err_shape dimensions
s=$(post /v1/embeddings '{"input": "a", "encoding_format": "hex"}'); check "bad encoding_format -> 400" test "$s" = 400
s=$(post /v1/embeddings '{"input": "a", "prompt_name": "nope"}'); check "unknown prompt -> 400" test "$s" = 400
s=$(post /embed '{"inputs": 3}'); check "TEI wrong type -> 400 with TEI error" bash -c "[ $s = 400 ] && grep -q error_type '$OUT/body'"
s=$(get /nope); check "unknown path -> 404" test "$s" = 404
s=$(get /v1/embeddings); check "GET on a POST route -> 405" test "$s" = 405
stop_server; check "SIGTERM on an idle server exits 0" test $? = 0

# ---- prompts from the model (config_sentence_transformers.json) and token-id inputs ---------
# A copy of the fixture with query/document prompts: input_type / prompt_name must give the
# vectors of `embtune embed --prompt-name`; token-id arrays those of `embtune embed --ids`.
PM=$OUT/prompted
mkdir -p "$PM"
for f in "$FIX"/*; do ln -sf "$f" "$PM/"; done
cat >"$PM/config_sentence_transformers.json" <<'JSON'
{"prompts": {"query": "Represent this sentence for searching relevant passages: ", "document": "passage: "},
 "default_prompt_name": null, "similarity_fn_name": "cosine"}
JSON
sed -n '1p;6p' "$OUT/texts.txt" >"$OUT/two.txt"
"$EMBTUNE" embed -q -m "$PM" --prompt-name query -i "$OUT/two.txt" -o "$OUT/ref_q.jsonl"
"$EMBTUNE" embed -q -m "$PM" --prompt-name document -i "$OUT/two.txt" -o "$OUT/ref_d.jsonl"
"$EMBTUNE" embed -q -m "$PM" -i "$OUT/two.txt" -o "$OUT/ref_n.jsonl"
check "the query prompt changes the vectors (else this test proves nothing)" bash -c "! cmp -s '$OUT/ref_q.jsonl' '$OUT/ref_n.jsonl'"
cp "$OUT/ref.jsonl" "$OUT/ref_plain.jsonl"
start_server -m "$PM" || exit 1
cp "$OUT/ref_q.jsonl" "$OUT/ref.jsonl"
s=$(post /v1/embeddings "{\"input\": [$T0, $T5], \"input_type\": \"query\"}")
check "input_type query = embed --prompt-name query" cmp_rows openai 0 0 0 1
s=$(post /embed "{\"inputs\": [$T0, $T5], \"prompt_name\": \"query\"}")
check "TEI prompt_name query = embed --prompt-name query" cmp_rows tei 0 1 0 1
cp "$OUT/ref_d.jsonl" "$OUT/ref.jsonl"
s=$(post /v1/embeddings "{\"input\": [$T0, $T5], \"input_type\": \"document\"}")
check "input_type document = embed --prompt-name document" cmp_rows openai 0 0 0 1
cp "$OUT/ref_n.jsonl" "$OUT/ref.jsonl"
s=$(post /v1/embeddings "{\"input\": [$T0, $T5]}")
check "no input_type: no prompt" cmp_rows openai 0 0 0 1
stop_server
cp "$OUT/ref_plain.jsonl" "$OUT/ref.jsonl"
"$EMBTUNE" tokenize -m "$FIX" -i "$OUT/two.txt" >"$OUT/two.tok"
IDS0=$($PY -c 'import json,sys; print(json.dumps([json.loads(l)["ids"] for l in open(sys.argv[1])][0]))' "$OUT/two.tok")
IDS=$($PY -c 'import json,sys; print(json.dumps([json.loads(l)["ids"] for l in open(sys.argv[1])]))' "$OUT/two.tok")
$PY -c 'import json,sys; [print(" ".join(map(str, json.loads(l)["ids"]))) for l in open(sys.argv[1])]' "$OUT/two.tok" >"$OUT/two.ids"
"$EMBTUNE" embed -q -m "$FIX" --ids -i "$OUT/two.ids" -o "$OUT/ref_ids.jsonl"
cp "$OUT/ref_ids.jsonl" "$OUT/ref.jsonl"
start_server -m "$FIX" || exit 1
s=$(post /v1/embeddings "{\"input\": $IDS}")
check "array of token-id arrays = embed --ids" cmp_rows openai 0 0 0 1
s=$(post /v1/embeddings "{\"input\": $IDS0, \"encoding_format\": \"base64\"}")
check "one token-id array (base64) = embed --ids" cmp_rows openai 0 0 0
s=$(post /v1/embeddings "{\"input\": [[1, 2], [1, 99999999]]}")
check "a token id beyond the vocabulary -> 400" test "$s" = 400
stop_server
cp "$OUT/ref_plain.jsonl" "$OUT/ref.jsonl"

# ---- adapters: queries only, or documents too ------------------------------------------
make_adapter() { # dir apply_to
    $PY - "$1" "$2" <<'PY'
import json, math, os, struct, sys
d, apply = sys.argv[1], sys.argv[2]
os.makedirs(d, exist_ok=True)
n = 64
w = [[(1.0 if i == j else 0.0) + 0.3 * math.sin(7 * i + 3 * j) for j in range(n)] for i in range(n)]
data = struct.pack("<%df" % (n * n), *[x for row in w for x in row])
hdr = json.dumps({"linear.weight": {"dtype": "F32", "shape": [n, n], "data_offsets": [0, len(data)]}}).encode()
hdr += b" " * ((8 - len(hdr) % 8) % 8)
open(d + "/adapter.safetensors", "wb").write(struct.pack("<Q", len(hdr)) + hdr + data)
json.dump({"adapter_type": "linear", "in_features": n, "out_features": n, "bias": False,
           "apply_to": apply, "normalize": True}, open(d + "/config.json", "w"))
PY
}
adapted_ref() { # reference rows with the adapter applied -> $OUT/ref_ad.jsonl
    $PY - "$OUT/ref.jsonl" "$OUT/ref_ad.jsonl" <<'PY'
import json, math, sys
n = 64
w = [[(1.0 if i == j else 0.0) + 0.3 * math.sin(7 * i + 3 * j) for j in range(n)] for i in range(n)]
with open(sys.argv[2], "w") as out:
    for l in open(sys.argv[1]):
        x = json.loads(l)["embedding"]
        y = [sum(w[i][j] * x[j] for j in range(n)) for i in range(n)]
        s = math.sqrt(sum(v * v for v in y))
        out.write(json.dumps({"embedding": [v / s for v in y]}) + "\n")
PY
}
make_adapter "$OUT/ad_query" query
make_adapter "$OUT/ad_both" both
adapted_ref
cp "$OUT/ref.jsonl" "$OUT/ref_plain.jsonl"
start_server -m "$FIX" --adapter "$OUT/ad_query" || exit 1
cp "$OUT/ref_ad.jsonl" "$OUT/ref.jsonl"
s=$(post /v1/embeddings "{\"input\": [$T0, $T5], \"input_type\": \"query\"}")
check "query-only adapter: queries adapted (<= 1e-6)" cmp_rows openai 0 0 0 5
s=$(post /embed "{\"inputs\": [$T1], \"input_type\": \"query\"}")
check "  TEI /embed with input_type query: adapted" cmp_rows tei 0 1 1
cp "$OUT/ref_plain.jsonl" "$OUT/ref.jsonl"
s=$(post /v1/embeddings "{\"input\": [$T0, $T5], \"input_type\": \"document\"}")
check "  documents untouched" cmp_rows openai 0 0 0 5
s=$(post /v1/embeddings "{\"input\": $T1}")
check "  no input_type: untouched" cmp_rows openai 0 0 1
stop_server
start_server -m "$FIX" --adapter "$OUT/ad_both" || exit 1
cp "$OUT/ref_ad.jsonl" "$OUT/ref.jsonl"
s=$(post /v1/embeddings "{\"input\": [$T0, $T5], \"input_type\": \"document\"}")
check "adapter trained on both: documents adapted" cmp_rows openai 0 0 0 5
s=$(post /v1/embeddings "{\"input\": [$T1], \"input_type\": \"query\", \"dimensions\": 8}")
check "  queries adapted, then truncated to 8 + renormalized" cmp_rows openai 8 1 1
cp "$OUT/ref_plain.jsonl" "$OUT/ref.jsonl"
stop_server
make_adapter "$OUT/ad_bad" query
sed -i 's/"in_features": 64, "out_features": 64/"in_features": 32, "out_features": 32/' "$OUT/ad_bad/config.json"
check "an adapter of the wrong width is refused" bash -c "! '$EMBTUNE' serve -m '$FIX' --port 0 --adapter '$OUT/ad_bad' 2>/dev/null"

# ---- limits ----------------------------------------------------------------------------------
start_server -m "$FIX" --max-inputs 3 --max-body 2000 --max-tokens 8 --no-truncate || exit 1
s=$(post /v1/embeddings '{"input": ["a","b","c","d"]}'); check "4 inputs > --max-inputs 3 -> 413" test "$s" = 413
big=$($PY -c 'import json; print(json.dumps({"input": "word " * 500}))')
s=$(post /v1/embeddings "$big"); check "body > --max-body -> 413" test "$s" = 413
s=$(post /v1/embeddings "$big" -H 'Transfer-Encoding: chunked'); check "chunked body (no Content-Length) > --max-body -> 413" test "$s" = 413
s=$(post /v1/embeddings '{"input": "one two"}' -H 'Transfer-Encoding: chunked'); check "small chunked body -> 200" test "$s" = 200
s=$(post /v1/embeddings '{"input": "one two three four five six seven eight nine ten eleven"}')
check "more than --max-tokens with --no-truncate -> 413" bash -c "[ $s = 413 ] && grep -q context_length_exceeded '$OUT/body'"
s=$(post /v1/embeddings '{"input": "one two three four five six seven eight nine ten eleven", "truncate": true}')
check "  unless the request says truncate: true" test "$s" = 200
s=$(post /v1/embeddings '{"input": "one two"}'); check "short input passes" test "$s" = 200
stop_server

# ---- API key -----------------------------------------------------------------------------------
export SERVE_TEST_KEY=k-$RANDOM-secret
start_server -m "$FIX" --api-key-env SERVE_TEST_KEY || exit 1
s=$(post /v1/embeddings '{"input": "a"}'); check "no key -> 401" test "$s" = 401; check "  error object" err_shape -
s=$(post /v1/embeddings '{"input": "a"}' -H "Authorization: Bearer wrong"); check "wrong key -> 401" test "$s" = 401
s=$(post /v1/embeddings '{"input": "a"}' -H "Authorization: Bearer $SERVE_TEST_KEY"); check "right key -> 200" test "$s" = 200
s=$(get /health); check "health needs no key" test "$s" = 200
stop_server
check "the key never appears in the server's output" bash -c "! grep -q '$SERVE_TEST_KEY' '$OUT/serve.err'"
check "--api-key-env with an unset variable is refused" bash -c "! '$EMBTUNE' serve -m '$FIX' --api-key-env NO_SUCH_VAR_XYZ 2>/dev/null"

# ---- load: 64 connections, every reply checked against its own inputs ----------------------------
start_server -m "$FIX" || exit 1
check "64 connections, 2000 requests, all correct" \
    $PY tests/serve_client.py load --port $PORT --texts "$OUT/texts.txt" --ref "$OUT/ref.jsonl" --conns 64 --requests 2000
stop_server; check "exit 0 after the load" test $? = 0

# ---- SIGTERM with requests in flight --------------------------------------------------------------
start_server -m "$FIX" || exit 1
$PY tests/serve_client.py drain --port $PORT --pid $SRV --texts "$OUT/texts.txt" --ref "$OUT/ref.jsonl" \
    --conns 64 --after 0.7 >"$OUT/drain.out" 2>&1
drc=$?
cat "$OUT/drain.out"
rc=0; wait $SRV || rc=$?; SRV=
check "drain: every reply correct, some completed after SIGTERM" test $drc = 0
check "drain: the server exited 0" test $rc = 0
check "drain: the server reported draining" grep -q "finishing the requests in flight" "$OUT/serve.err"

echo "test_serve_cli: $fails failure(s)"
[ $fails = 0 ]
