"""make_ft_data.py TEXT.txt OUT_DIR [N_CHUNKS] - small deterministic retrieval datasets
from real text (pdftotext output) for the fine-tuning tests: chunks of ~60
words; per chunk two queries made of word windows of the chunk (so a
fine-tuned model can learn them); llama-index JSON train.json / val.json
(chunks split 70/30), plus malformed variants for the error tests."""
import json
import os
import random
import re
import sys


def main():
    text, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    words = re.sub(r"\s+", " ", open(text, encoding="utf-8", errors="replace").read()).split(" ")
    words = [w for w in words if re.search(r"[A-Za-z]", w)]
    n_chunks = int(sys.argv[3]) if len(sys.argv) > 3 else 80
    words = words[6000:6000 + 60 * n_chunks]  # skip the front matter
    chunks = [" ".join(words[i:i + 60]) for i in range(0, len(words) - 60, 60)]
    rnd = random.Random(7)
    train = {"queries": {}, "corpus": {}, "relevant_docs": {}, "mode": "text"}
    val = {"queries": {}, "corpus": {}, "relevant_docs": {}, "mode": "text"}
    for ci, c in enumerate(chunks):
        ds = train if ci % 10 < 7 else val
        nid = f"node-{ci}"
        ds["corpus"][nid] = c
        w = c.split(" ")
        for k in range(2):
            s = rnd.randrange(0, len(w) - 8)
            q = " ".join(w[s:s + 6 + rnd.randrange(3)])
            qid = f"q-{ci}-{k}"
            ds["queries"][qid] = q
            ds["relevant_docs"][qid] = [nid]
    json.dump(train, open(os.path.join(out, "train.json"), "w"), indent=1)
    json.dump(val, open(os.path.join(out, "val.json"), "w"), indent=1)
    # pairs JSONL and FlagEmbedding JSONL (with negatives) of the training set
    with open(os.path.join(out, "train_pairs.jsonl"), "w") as f:
        for qid, q in train["queries"].items():
            f.write(json.dumps({"anchor": q, "positive": train["corpus"][train["relevant_docs"][qid][0]]}) + "\n")
    ids = list(train["corpus"])
    with open(os.path.join(out, "train_flag.jsonl"), "w") as f:
        for i, (qid, q) in enumerate(train["queries"].items()):
            pos = train["relevant_docs"][qid][0]
            negs = [train["corpus"][n] for n in (ids[(ids.index(pos) + 1) % len(ids)], ids[(ids.index(pos) + 5) % len(ids)])]
            f.write(json.dumps({"query": q, "pos": [train["corpus"][pos]], "neg": negs[: i % 3]}) + "\n")
    # bad data
    json.dump({"queries": {}, "corpus": {}, "relevant_docs": {}}, open(os.path.join(out, "empty.json"), "w"))
    bad = json.loads(json.dumps(train))
    bad["relevant_docs"]["q-0-0"] = ["no-such-node"]
    json.dump(bad, open(os.path.join(out, "missing_rel.json"), "w"))
    with open(os.path.join(out, "malformed.jsonl"), "w") as f:
        f.write(json.dumps({"anchor": "a question", "positive": "an answer"}) + "\n")
        f.write('{"anchor": "broken line", "positive": \n')
    texts = list(train["queries"].values()) + list(train["corpus"].values()) + \
        list(val["queries"].values()) + list(val["corpus"].values())
    json.dump(texts, open(os.path.join(out, "texts.json"), "w"))
    with open(os.path.join(out, "texts.txt"), "w") as f:
        for t in texts[:40]:
            f.write(t + "\n")
    print(f"make_ft_data: {len(train['queries'])} train queries, {len(val['queries'])} val queries")


if __name__ == "__main__":
    main()
