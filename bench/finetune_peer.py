"""finetune_peer.py - the PyTorch peers of bench/finetune.sh, measured in the same run.

  finetune_peer.py static MODEL_DIR DATA.json IDS.json BATCH EPOCHS THREADS
      sentence-transformers' StaticEmbedding training re-implemented on PyTorch
      (its own classes are not installable here): nn.EmbeddingBag(mode="mean")
      over the full [vocab, dim] table (dense gradients, as StaticEmbedding),
      Normalize, MultipleNegativesRankingLoss (scale 20), AdamW (lr 5e-3, wd 0.01),
      clip_grad_norm_(1), shuffled batches. Token ids are given (tokenization not
      timed, as embtune's pairs/s counts the training loop only).
  finetune_peer.py adapter MODEL_DIR DATA.json IDS.json BATCH EPOCHS THREADS
      llama-index EmbeddingAdapterFinetuneEngine's loop: every batch of every
      epoch re-embeds its queries and passages with the frozen base model (here
      the static model), then a linear adapter + MNRL + AdamW step.
Prints one JSON line: pairs_per_s, seconds, peak_rss_mb."""
import json
import os
import random
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import st_io  # noqa: E402


def table_of(model_dir):
    t = st_io.load(os.path.join(model_dir, "model.safetensors"))
    emb = t["embeddings"].double()
    if "mapping" in t:
        emb = emb[t["mapping"].long()]
    if "weights" in t:
        emb = emb * t["weights"].double().unsqueeze(1)
    return emb.float()


def main():
    mode, model_dir, data, ids_path = sys.argv[1:5]
    B, epochs, nth = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    torch.set_num_threads(nth)
    ds = json.load(open(data))
    idm = json.load(open(ids_path))
    ids_of = {t: i for t, i in zip(idm["texts"], idm["ids"])}
    rows = [(ids_of[ds["queries"][q]], ids_of[ds["corpus"][d[0]]]) for q, d in ds["relevant_docs"].items()]
    table = table_of(model_dir)
    bag = torch.nn.EmbeddingBag.from_pretrained(table, freeze=(mode == "adapter"), mode="mean")

    def embed(seqs):
        flat = torch.tensor([i for s in seqs for i in s], dtype=torch.long)
        offs = torch.tensor([0] + [len(s) for s in seqs[:-1]]).cumsum(0)
        return F.normalize(bag(flat, offs), dim=1)

    if mode == "static":
        params = list(bag.parameters())
    else:
        W = torch.nn.Parameter(torch.eye(table.shape[1]))
        params = [W]
    opt = torch.optim.AdamW(params, lr=5e-3 if mode == "static" else 3e-3, weight_decay=0.01)
    rnd = random.Random(1)
    n = 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        rnd.shuffle(rows)
        for s in range(0, len(rows), B):
            batch = rows[s:s + B]
            if mode == "static":
                q, p = embed([r[0] for r in batch]), embed([r[1] for r in batch])
            else:
                with torch.no_grad():  # re-embedded every batch, as llama-index does
                    qb, p = embed([r[0] for r in batch]), embed([r[1] for r in batch])
                q = qb @ W.T
            scores = F.normalize(q, dim=1) @ F.normalize(p, dim=1).T * 20.0
            loss = F.cross_entropy(scores, torch.arange(len(batch)))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            n += len(batch)
    dt = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"impl": "pytorch-" + mode, "threads": nth, "pairs_per_s": n / dt, "seconds": dt,
                      "peak_rss_mb": rss}))


if __name__ == "__main__":
    main()
