"""make_bge_small.py OUT_DIR TOKENIZER_JSON [seed] - a random-weight model
directory with bge-small-en-v1.5's shapes (12 layers, hidden 384, 12 heads,
FFN 1536, vocab 30522, 512 positions; CLS pooling + Normalize), for the
training benchmarks."""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "ref"))
import bert_ref  # noqa: E402

out, tok = sys.argv[1], sys.argv[2]
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
cfg = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": 30522, "hidden_size": 384,
       "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 1536,
       "hidden_act": "gelu", "max_position_embeddings": 512, "type_vocab_size": 2,
       "layer_norm_eps": 1e-12, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
       "pad_token_id": 0, "position_embedding_type": "absolute"}
os.makedirs(os.path.join(out, "1_Pooling"), exist_ok=True)
os.makedirs(os.path.join(out, "2_Normalize"), exist_ok=True)
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(cfg, f, indent=1)
bert_ref.save_safetensors(os.path.join(out, "model.safetensors"), bert_ref.random_params(cfg, seed=seed))
shutil.copyfile(tok, os.path.join(out, "tokenizer.json"))
with open(os.path.join(out, "modules.json"), "w") as f:
    json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
              f, indent=1)
with open(os.path.join(out, "1_Pooling", "config.json"), "w") as f:
    json.dump({"word_embedding_dimension": 384, "pooling_mode_cls_token": True,
               "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False}, f, indent=1)
with open(os.path.join(out, "sentence_bert_config.json"), "w") as f:
    json.dump({"max_seq_length": 512, "do_lower_case": True}, f)
print(out)
