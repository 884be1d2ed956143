#!/usr/bin/env bash
# test_embed.sh - `embtune embed` against a plain PyTorch BERT / XLM-R forward
# (tests/ref/make_models.py) on random-weight models in the HF layout: F32,
# F16, BF16, sharded and not, bert./roberta. prefixes or none, every pooling
# mode, with and without modules.json, prompts. Token ids come from Hugging
# Face tokenizers (node); embtune runs on the texts (its own tokenizer) and on
# those ids (--ids), with two batch sizes (padding + bucketing).
# Tolerance: max abs error <= 1e-4 on every vector (normalized or not) for
# every dtype (the reference uses the same bf16/f16-rounded weights in fp32).
# sentence-transformers details checked against the reference's plain-torch copy of its
# Pooling module (tests/ref/make_models.py st_pool): include_prompt false, weightedmean,
# mean_sqrt_len without Normalize, do_lower_case (str.lower) with a cased tokenizer, a model
# with only vocab.txt + tokenizer_config.json.
set -eu
OUT=$BUILD/test-out/embed
rm -rf "$OUT"; mkdir -p "$OUT"
TOL=1e-4
$TORCH_PY -c "import json,sys; print(json.dumps(open('tests/ref/texts.txt', encoding='utf-8').read().split('\n')[:-1], ensure_ascii=False))" > "$OUT/texts.json"
$TORCH_PY tests/ref/make_models.py suite "$OUT" "$SHARED" "$NODE_REF" "$OUT/texts.json" > "$OUT/models.txt"
pairs=()
for d in $(cat "$OUT/models.txt"); do
    name=$(basename "$d")
    "$EMBTUNE" embed -q -m "$d" -i tests/ref/texts.txt -o "$d/got-text.npy"
    "$EMBTUNE" embed -q -m "$d" -i tests/ref/texts.txt --batch-size 3 -o "$d/got-text-b3.npy"
    "$EMBTUNE" embed -q -m "$d" -i "$d/ids.txt" --ids -o "$d/got-ids.npy"
    pairs+=("$name text" "$d/got-text.npy" "$d/ref.npy" "$name text batch 3" "$d/got-text-b3.npy" "$d/ref.npy"
            "$name ids" "$d/got-ids.npy" "$d/ref.npy")
done

# named prompts (config_sentence_transformers.json): --prompt-name NAME == the reference on
# prompt + text, with the prompt's tokens left out of the pooling when 1_Pooling has
# include_prompt: false (prompt_length = len(tokenize(prompt)) - 1, as sentence-transformers)
for d in $(cat "$OUT/models.txt"); do
    for r in "$d"/ref-prompt-*.npy; do
        [ -f "$r" ] || continue
        pn=$(basename "$r" .npy); pn=${pn#ref-prompt-}
        "$EMBTUNE" embed -q -m "$d" -i tests/ref/texts.txt --prompt-name "$pn" --batch-size 4 -o "$d/got-prompt-$pn.npy"
        pairs+=("$(basename "$d") --prompt-name $pn" "$d/got-prompt-$pn.npy" "$r")
    done
done
# default_prompt_name applies when no prompt is given (sentence-transformers' encode)
cp -r "$OUT/bert-f32-wmean-noprompt" "$OUT/defprompt"
$TORCH_PY - "$OUT/defprompt/config_sentence_transformers.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["default_prompt_name"] = "query"; json.dump(c, open(sys.argv[1], "w"))
PY
"$EMBTUNE" embed -q -m "$OUT/defprompt" -i tests/ref/texts.txt -o "$OUT/defprompt/got.npy"
pairs+=("default_prompt_name query" "$OUT/defprompt/got.npy" "$OUT/bert-f32-wmean-noprompt/ref-prompt-query.npy")
# --prompt TEXT == --prompt-name; --pooling overrides the model's pooling (cls model, mean pooling)
d=$OUT/bert-f32-cls
cp -r "$d" "$OUT/override"
$TORCH_PY - <<PY
import json, sys
sys.path.insert(0, "tests/ref")
import numpy as np
from make_models import reference
out = "$OUT"
s = json.load(open(out + "/override/spec.json")); s["pooling"] = "mean"
json.dump(s, open(out + "/override/spec.json", "w"))
np.save(out + "/override/ref-mean.npy", reference(out + "/override", json.load(open("$d/ids.json"))))
PY
"$EMBTUNE" embed -q -m "$d" -i tests/ref/texts.txt --prompt "Represent this sentence for searching relevant passages: " --batch-size 5 -o "$d/got-p.npy"
"$EMBTUNE" embed -q -m "$d" -i tests/ref/texts.txt --pooling mean -o "$OUT/override/got.npy"
pairs+=("prompt text" "$d/got-p.npy" "$d/ref-prompt-query.npy"
        "--pooling mean override" "$OUT/override/got.npy" "$OUT/override/ref-mean.npy")

# JSONL in and out, stdin
$TORCH_PY -c "
import json
for t in json.load(open('$OUT/texts.json')): print(json.dumps({'text': t, 'id': 1}, ensure_ascii=False))" > "$OUT/texts.jsonl"
"$EMBTUNE" embed -q -m "$OUT/xlmr-f32-mean" -i "$OUT/texts.jsonl" -o "$OUT/got.jsonl"
"$EMBTUNE" embed -q -m "$OUT/xlmr-f32-mean" -i - --threads 1 -o "$OUT/got-stdin.npy" < tests/ref/texts.txt
$TORCH_PY -c "
import json, numpy as np
v = np.array([json.loads(l)['embedding'] for l in open('$OUT/got.jsonl')], dtype=np.float32)
np.save('$OUT/got-jsonl.npy', v)"
pairs+=("jsonl in/out" "$OUT/got-jsonl.npy" "$OUT/xlmr-f32-mean/ref.npy" "stdin" "$OUT/got-stdin.npy" "$OUT/xlmr-f32-mean/ref.npy")

$TORCH_PY tests/ref/compare_npy.py $TOL "${pairs[@]}"

# the notice without modules.json
"$EMBTUNE" embed -m "$OUT/bert-f32-nomodules" -i tests/ref/texts.txt -o "$OUT/nm.npy" 2> "$OUT/nm.err"
grep -q "mean pooling" "$OUT/nm.err" || { echo "no mean-pooling notice on stderr"; exit 1; }

# info
"$EMBTUNE" info -m "$OUT/bert-bf16-sharded-mean" > "$OUT/info.txt"
for w in "architecture  bert" "dimension     64" "pooling       mean + normalize" "dtype         BF16" "WordPiece"; do
    grep -q "$w" "$OUT/info.txt" || { echo "info: missing '$w'"; cat "$OUT/info.txt"; exit 1; }
done
"$EMBTUNE" info -m "$OUT/xlmr-f32-mean" | grep -q "max length    48 tokens" || { echo "info: xlmr max length"; exit 1; }
"$EMBTUNE" info -m "$OUT/bert-f16-max-noprompt-lower" > "$OUT/info2.txt"
for w in "pooling       max (prompt excluded) + normalize" "input lowercased" 'prompt        query: "query: "'; do
    grep -qF "$w" "$OUT/info2.txt" || { echo "info: missing '$w'"; cat "$OUT/info2.txt"; exit 1; }
done
"$EMBTUNE" info -m "$OUT/bert-f32-wmean-noprompt" | grep -q "pooling       weightedmean (prompt excluded)" || { echo "info: weightedmean"; exit 1; }
"$EMBTUNE" info -m "$OUT/xlmr-f32-sqrtlen-nonorm" | grep -q "pooling       mean_sqrt_len (prompt excluded)$" || { echo "info: mean_sqrt_len"; exit 1; }
# --max-length beyond the position table: an error naming the model directory
if "$EMBTUNE" embed -m "$OUT/bert-f32-cls" -i tests/ref/texts.txt --max-length 5000 -o "$OUT/ml.npy" 2> "$OUT/ml.err"; then
    echo "--max-length 5000 accepted"; exit 1; fi
grep -q "bert-f32-cls: max_length 5000" "$OUT/ml.err" && [ ! -e "$OUT/ml.npy" ] || { echo "max-length error: $(cat "$OUT/ml.err")"; exit 1; }
echo "test_embed: ok"
