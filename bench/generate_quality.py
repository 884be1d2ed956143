"""generate_quality.py TRAIN.json VAL.json [LR] [EPOCHS] - are the generated queries good training data?

A reference check in PyTorch (run with /usr/bin/python3), independent of embtune's trainer:
fine-tunes the model2vec fixture's token table (dequantized: weights[id] * embeddings[mapping[id]],
[29524, 64]) with MNRL (cosine x 20, in-batch negatives, batch 32, no two queries of one chunk in a
batch), AdamW (lr 1e-2, wd 0.01), grad-norm clip 1, on TRAIN's (query, chunk) pairs, and prints
accuracy@5 and MRR@10 on VAL (queries vs VAL's corpus) before and after each epoch. Tokens come from
Hugging Face tokenizers (node, tests/ref). Example (R-intro for training, R-data for validation):

    embtune ingest ../shared/corpus/*.pdf -o chunks.jsonl
    embtune generate -i chunks.jsonl -o train.json --val-docs 'R-data*' --val-output val.json
    /usr/bin/python3 bench/generate_quality.py train.json val.json
"""
import json, os, subprocess, sys, random, tempfile
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'ref'))
import st_io, torch, torch.nn.functional as F  # noqa: E402
FIX = os.environ.get('SHARED', os.path.join(os.path.dirname(ROOT), 'shared')) + '/fixtures/model2vec-bge-base-q128'
train, val = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
TOK_JS = """
const { Tokenizer } = require(process.argv[1] + '/tests/ref/node_modules/@anush008/tokenizers');
const fs = require('fs');
(async () => {
  const tok = Tokenizer.fromFile(process.argv[2]);
  const texts = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
  const out = [];
  for (const t of texts) { const e = await tok.encode(t); out.push(Array.from(e.getIds())); }
  fs.writeFileSync(process.argv[4], JSON.stringify(out));
})();
"""
def tok(texts):
    with tempfile.TemporaryDirectory() as d:
        json.dump(texts, open(d + '/in.json', 'w'))
        subprocess.run(['node', '-e', TOK_JS, ROOT, FIX + '/tokenizer.json', d + '/in.json', d + '/out.json'], check=True)
        return json.load(open(d + '/out.json'))
st = st_io.load(FIX + '/model.safetensors')
table0 = (st['weights'].double()[:, None] * st['embeddings'].double()[st['mapping'].long()]).float()
def embed(table, seqs):
    rows = [table[torch.tensor(s)].mean(0) if s else torch.zeros(table.shape[1]) for s in seqs]
    return F.normalize(torch.stack(rows), dim=1)
def evaluate(table, ds, qs, cs):
    qids, cids = list(ds['queries']), list(ds['corpus'])
    with torch.no_grad():
        s = embed(table, qs) @ embed(table, cs).T
    rank = s.argsort(dim=1, descending=True)
    a5 = mrr = 0
    for i, q in enumerate(qids):
        rel = set(ds['relevant_docs'][q]); r = [cids[j] for j in rank[i, :10].tolist()]
        a5 += any(x in rel for x in r[:5])
        for k, x in enumerate(r):
            if x in rel: mrr += 1 / (k + 1); break
    return a5 / len(qids), mrr / len(qids)
vq = tok(list(val['queries'].values())); vc = tok(list(val['corpus'].values()))
tq = tok(list(train['queries'].values())); tcorp = dict(zip(train['corpus'], tok(list(train['corpus'].values()))))
pairs = [(tq[i], tcorp[train['relevant_docs'][q][0]], train['relevant_docs'][q][0]) for i, q in enumerate(train['queries'])]
print('base      acc@5 %.3f MRR@10 %.3f' % evaluate(table0, val, vq, vc))
table = torch.nn.Parameter(table0.clone())
opt = torch.optim.AdamW([table], lr=float(sys.argv[3]) if len(sys.argv) > 3 else 1e-2, weight_decay=0.01)
rnd = random.Random(0)
for ep in range(int(sys.argv[4]) if len(sys.argv) > 4 else 2):
    rnd.shuffle(pairs)
    batches, cur, seen = [], [], set()
    for p in pairs:   # no two questions of one chunk in a batch
        if p[2] in seen or len(cur) == 32:
            batches.append(cur); cur, seen = [], set()
        cur.append(p); seen.add(p[2])
    batches.append(cur)
    for b in batches:
        if len(b) < 2: continue
        a = embed(table, [p[0] for p in b]); c = embed(table, [p[1] for p in b])
        loss = F.cross_entropy(a @ c.T * 20, torch.arange(len(b)))
        opt.zero_grad(); loss.backward(); torch.nn.utils.clip_grad_norm_([table], 1.0); opt.step()
    print('epoch %d   acc@5 %.3f MRR@10 %.3f' % ((ep + 1,) + evaluate(table.detach(), val, vq, vc)))
