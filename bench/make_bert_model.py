"""make_bert_model.py OUT_DIR TOKENIZER.json [LAYERS HIDDEN HEADS FF] - a random-weight
BERT model directory in the sentence-transformers layout (bge-small shape by
default: 12 layers, 384 hidden, 12 heads, 1536 FF; CLS pooling + Normalize, as
bge), for the fine-tuning benchmark, and OUT_DIR/pairs.jsonl: 128 (query,
passage) pairs whose texts are 30 and 126 single-token words, i.e. exactly 32
and 128 tokens with [CLS] and [SEP]."""
import json
import os
import random
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import bert_ref  # noqa: E402


def main():
    out, tok = sys.argv[1], sys.argv[2]
    L, C, H, FF = ([int(a) for a in sys.argv[3:7]] + [12, 384, 12, 1536][len(sys.argv[3:7]):])[:4]
    os.makedirs(os.path.join(out, "1_Pooling"), exist_ok=True)
    vocab = json.load(open(tok))["model"]["vocab"]
    cfg = dict(hidden_size=C, intermediate_size=FF, num_hidden_layers=L, num_attention_heads=H,
               vocab_size=len(vocab), max_position_embeddings=512, type_vocab_size=2, layer_norm_eps=1e-12,
               hidden_act="gelu")
    bert_ref.save_safetensors(os.path.join(out, "model.safetensors"), bert_ref.random_params(cfg, seed=1))
    json.dump(dict(cfg, model_type="bert", architectures=["BertModel"], hidden_dropout_prob=0.1,
                   attention_probs_dropout_prob=0.1, pad_token_id=0), open(os.path.join(out, "config.json"), "w"))
    shutil.copyfile(tok, os.path.join(out, "tokenizer.json"))
    json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
              open(os.path.join(out, "modules.json"), "w"))
    json.dump({"word_embedding_dimension": C, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False},
              open(os.path.join(out, "1_Pooling", "config.json"), "w"))
    json.dump({"max_seq_length": 512, "do_lower_case": True}, open(os.path.join(out, "sentence_bert_config.json"), "w"))
    words = sorted(w for w in vocab if w.isalpha() and w.islower() and 4 <= len(w) <= 8)
    rnd = random.Random(5)
    with open(os.path.join(out, "pairs.jsonl"), "w") as f:
        for _ in range(128):
            q = " ".join(rnd.choice(words) for _ in range(30))
            p = " ".join(rnd.choice(words) for _ in range(126))
            f.write(json.dumps({"anchor": q, "positive": p}) + "\n")


if __name__ == "__main__":
    main()
