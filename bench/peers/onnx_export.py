"""onnx_export.py MODEL_DIR OUT_ONNX - exports the BERT forward of a model
directory (the same plain-PyTorch forward as tests/ref/bert_ref.py: the
weights read from model.safetensors, CLS pooling + L2 normalization) to
ONNX with torch.onnx.export, for the ONNX Runtime peer of `make bench`.
Inputs input_ids, attention_mask [batch, seq] int64; output embeddings
[batch, hidden]. Dynamic batch and sequence axes."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "ref"))
import bert_ref  # noqa: E402

mdir, out = sys.argv[1], sys.argv[2]
cfg = json.load(open(os.path.join(mdir, "config.json")))
params = {k: v.float() for k, v in bert_ref.load_safetensors(os.path.join(mdir, "model.safetensors")).items()}


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        # registered as buffers so the exporter stores them as initializers
        self.names = list(params)
        for i, n in enumerate(self.names):
            self.register_buffer("w%d" % i, params[n])

    def forward(self, ids, mask):
        p = {n: getattr(self, "w%d" % i) for i, n in enumerate(self.names)}
        return bert_ref.pool(bert_ref.encode(p, cfg, ids, mask), mask, "cls")


m = Encoder().eval()
ids = torch.randint(1000, 2000, (2, 16))
mask = torch.ones_like(ids)
with torch.no_grad():
    torch.onnx.export(m, (ids, mask), out + ".tmp", input_names=["input_ids", "attention_mask"],
                      output_names=["embeddings"], opset_version=14,
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                                    "embeddings": {0: "batch"}})
os.replace(out + ".tmp", out)
print(out)
