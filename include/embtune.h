/* embtune.h - turn documents into a custom retrieval embedding model, on a CPU.
 *
 * The one public header of libembtune. Example: embed two texts.
 *
 *     et_error err = {0};
 *     et_model *m = NULL;
 *     if (et_model_load(&m, "bge-small-en-v1.5", NULL, &err)) {
 *         fprintf(stderr, "%s\n", err.msg);
 *         return 1;
 *     }
 *     const char *texts[2] = {"what is R?", "R is a language for statistics."};
 *     size_t dim = et_model_dim(m);
 *     float *v = malloc(2 * dim * sizeof(float));     // [2, dim]
 *     if (et_embed(m, texts, 2, NULL, v, &err)) { ... }
 *     et_model_free(m);
 *
 * Conventions
 * - Every function that can fail returns an int status: ET_OK (0) or an ET_E*
 *   code, and fills the caller's `et_error` (which may be NULL) with a message
 *   naming the file, the field and what was expected. The library never exits
 *   or aborts on bad input.
 * - Handles are opaque; each has an init/load and a free. Ownership is stated
 *   per function: "caller frees" or "borrowed, valid until X is freed".
 * - Sizes are size_t. Every tensor pointer has its shape in a comment,
 *   row-major: `float *out /+ [n, dim] +/`.
 */
#ifndef EMBTUNE_H
#define EMBTUNE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ET_VERSION "0.1.0"

/* ==== status and errors ==================================================== */

enum et_status {
    ET_OK = 0,
    ET_EINVAL = 1,       /* bad argument or bad input data */
    ET_EIO = 2,          /* a file could not be read or written */
    ET_EFORMAT = 3,      /* a file is malformed (names file + field) */
    ET_ENOMEM = 4,       /* allocation failed */
    ET_EUNSUPPORTED = 5, /* valid but not supported (architecture, component) */
    ET_ENOTFOUND = 6,    /* a required file or tensor is missing */
    ET_ENET = 7,         /* network / HTTP failure */
    ET_ECANCELED = 8,    /* interrupted (signal) */
    ET_ENUMERIC = 9      /* NaN/inf where a number was expected */
};

typedef struct et_error {
    int code;       /* an et_status */
    char msg[1024]; /* NUL-terminated, human readable */
} et_error;

/* Static string for a status code ("invalid argument", ...). */
const char *et_status_str(int code);

/* Threads used by compute kernels (default: all online CPUs). 0 = default. */
void et_set_threads(int n);
int et_get_threads(void);

/* ==== tokenizer ============================================================= */
/* Hugging Face tokenizers pipeline: normalizer -> pre-tokenizer -> model
 * (WordPiece, Unigram) -> post-processor, plus added/special tokens and
 * truncation. Ids equal Hugging Face tokenizers' ids. */

typedef struct et_tokenizer et_tokenizer;

/* Loads a tokenizer.json file. Caller frees with et_tokenizer_free. */
int et_tokenizer_load(et_tokenizer **out, const char *path, et_error *err);
/* Loads a tokenizer.json held in memory; `name` labels messages. Caller frees. */
int et_tokenizer_load_buffer(et_tokenizer **out, const char *data, size_t len, const char *name,
                             et_error *err);
/* Loads from a model directory: tokenizer.json, else vocab.txt (+
 * tokenizer_config.json for do_lower_case etc.). Caller frees. */
int et_tokenizer_load_dir(et_tokenizer **out, const char *dir, et_error *err);
void et_tokenizer_free(et_tokenizer *tok);

/* One encoded text. Arrays are owned by the encoding; reuse one encoding for
 * many calls to avoid allocations; release with et_encoding_free. */
typedef struct et_encoding {
    int32_t *ids;          /* [n] token ids */
    int32_t *type_ids;     /* [n] segment ids */
    uint8_t *special_mask; /* [n] 1 for tokens added by the post-processor */
    size_t *offsets;       /* [n, 2] byte offsets [start, end) into the input text */
    size_t n;
    size_t cap;
} et_encoding;
void et_encoding_free(et_encoding *enc);

/* Encodes `len` bytes of UTF-8 `text`. add_special: apply the post-processor
 * (e.g. [CLS] ... [SEP]). max_len > 0 truncates to max_len tokens in total
 * (special tokens included, as HF truncation does); 0 = no truncation.
 * Invalid UTF-8 is replaced by U+FFFD, as Rust's from_utf8_lossy does. */
int et_tokenizer_encode(const et_tokenizer *tok, const char *text, size_t len,
                        int add_special, size_t max_len, et_encoding *enc,
                        et_error *err);
/* Number of tokens of `text` without special tokens and without truncation. */
int et_tokenizer_count(const et_tokenizer *tok, const char *text, size_t len,
                       size_t *n_tokens, et_error *err);
size_t et_tokenizer_vocab_size(const et_tokenizer *tok);
/* Short description: "WordPiece", "Unigram", ... (borrowed, static). */
const char *et_tokenizer_type(const et_tokenizer *tok);
/* Token string for an id (borrowed, valid until tok is freed), NULL if out of range. */
const char *et_tokenizer_id_to_token(const et_tokenizer *tok, int32_t id);
/* The string the post-processor gives its special token `id` ("[CLS]"), NULL if it adds no
 * such id (borrowed, valid until tok is freed). Use it for tokens whose special_mask is 1:
 * their id may name something else in the vocabulary. */
const char *et_tokenizer_special_str(const et_tokenizer *tok, int32_t id);
/* Id of a token string, -1 if absent. */
int32_t et_tokenizer_token_to_id(const et_tokenizer *tok, const char *token);
/* Number of special tokens the post-processor adds to a single sequence. */
size_t et_tokenizer_num_special(const et_tokenizer *tok);

/* ==== models and embedding ================================================== */

typedef struct et_model et_model;

enum et_pooling {
    ET_POOL_DEFAULT = 0, /* from the model directory */
    ET_POOL_CLS,
    ET_POOL_MEAN,
    ET_POOL_MAX,
    ET_POOL_LAST,
    ET_POOL_WEIGHTEDMEAN,  /* mean weighted by position 1..T (sentence-transformers weightedmean) */
    ET_POOL_MEAN_SQRT_LEN  /* sum / sqrt(tokens) (sentence-transformers mean_sqrt_len_tokens) */
};

typedef struct et_model_opts {
    int pooling;        /* enum et_pooling; ET_POOL_DEFAULT = from modules.json */
    size_t max_length;  /* 0 = model's max_seq_length */
    int quiet;          /* 1 = no notices on stderr */
} et_model_opts;

/* Loads a model directory (Hugging Face / sentence-transformers layout):
 * BERT, XLM-RoBERTa/RoBERTa or model2vec static. Weights are mmapped.
 * opts may be NULL. Caller frees with et_model_free. */
int et_model_load(et_model **out, const char *dir, const et_model_opts *opts,
                  et_error *err);
void et_model_free(et_model *m);

size_t et_model_dim(const et_model *m);
size_t et_model_max_length(const et_model *m);
/* Borrowed, valid until m is freed. */
const et_tokenizer *et_model_tokenizer(const et_model *m);
/* Prompt text for a named prompt from config_sentence_transformers.json
 * (e.g. "query"); NULL if absent. Borrowed, valid until m is freed. */
const char *et_model_prompt(const et_model *m, const char *name);
/* Name of the default prompt (default_prompt_name), NULL if none. Borrowed. */
const char *et_model_default_prompt(const et_model *m);

typedef struct et_model_info {
    const char *architecture; /* "bert", "xlm-roberta", "model2vec" */
    const char *dtype;        /* "F32", "F16", "BF16", mixed = "mixed" */
    const char *pooling;      /* "cls", "mean", "max", "last", "weightedmean", "mean_sqrt_len" */
    int include_prompt;       /* 0: 1_Pooling's include_prompt is false (prompt tokens not pooled) */
    int lower_case;           /* 1: inputs are lowercased before tokenizing (do_lower_case) */
    const char *tokenizer;    /* "WordPiece", "Unigram", ... */
    size_t n_params;
    size_t dim;
    size_t max_length;
    size_t n_layers, n_heads, intermediate; /* 0 for static models */
    size_t vocab_size;
    int normalize;            /* 1 if a Normalize module is present */
} et_model_info;
/* Static (model2vec) models: embedding-table rows and whether per-token
 * weights are present. Returns ET_EINVAL for transformer models. */
typedef struct et_model_static_info {
    size_t rows;   /* rows of the embedding table (< vocab when quantized) */
    int weighted;  /* 1 if per-token weights scale the rows */
} et_model_static_info;
int et_model_get_static_info(const et_model *m, et_model_static_info *si);

/* Fills info; strings are borrowed, valid until m is freed. */
void et_model_get_info(const et_model *m, et_model_info *info);

/* Embeds n texts into out [n, dim]; prompt (may be NULL) is prepended to each
 * text. Batched with length bucketing; output row i is text i. When the model's
 * 1_Pooling has include_prompt: false and prompt is not NULL, the first
 * len(tokenize(prompt)) - 1 tokens (special tokens included) are left out of
 * the pooling, as sentence-transformers does. */
int et_embed(et_model *m, const char *const *texts, size_t n, const char *prompt,
             float *out /* [n, dim] */, et_error *err);

/* Embeds already tokenized sequences (ids include special tokens). */
int et_embed_ids(et_model *m, const int32_t *const *ids, const size_t *lens, size_t n,
                 float *out /* [n, dim] */, et_error *err);

/* Batch size used by et_embed (default 32). */
void et_model_set_batch_size(et_model *m, size_t batch_size);

/* ==== ingest (documents -> chunks) ========================================== */
/* Files and directories (recursive) -> one JSONL chunk file (src/chunks.h):
 * PDF (poppler), HTML, Markdown and plain text are cleaned (UTF-8 with a
 * Windows-1252 fallback, ligatures, hyphenation, page headers/footers) and
 * split into sentence-aware chunks of at most chunk_size tokens, counted with
 * the given tokenizer or, without one, a word-based estimate. */

#define ET_INGEST_CHUNK_SIZE 256
#define ET_INGEST_CHUNK_OVERLAP 32

typedef struct et_ingest_opts {
    size_t chunk_size;    /* token budget per chunk (default 256) */
    size_t chunk_overlap; /* overlap tokens, < chunk_size (default 32) */
    const et_tokenizer *tokenizer; /* borrowed; NULL = word-based estimate */
    size_t max_tokens;    /* model limit (max length - special tokens); 0 = none */
    const char *const *include; /* [n_include] globs (fnmatch) on the path relative */
    size_t n_include;           /* to its argument, or on the file name; borrowed */
    const char *const *exclude; /* [n_exclude] globs, same matching; also prune dirs */
    size_t n_exclude;
    int strict;           /* 1: an unreadable/unsupported file is an error */
    int progress;         /* 1: progress line on stderr (tty or ET_PROGRESS=1) */
    /* Called for each skipped file (may be NULL): path, reason ("encrypted",
     * "corrupt", "no text", "binary", "empty", "unreadable") and a message. */
    void (*on_skip)(void *ctx, const char *path, const char *reason, const char *msg);
    void *cb_ctx;
} et_ingest_opts;

/* Fills the defaults above. */
void et_ingest_opts_default(et_ingest_opts *o);

typedef struct et_ingest_stats {
    size_t files;      /* documents ingested */
    size_t pages;      /* PDF pages (text files with form feeds count their pages) */
    size_t chunks;     /* chunks written */
    size_t tokens;     /* sum of n_tokens */
    size_t max_chunk_tokens;
    size_t skipped;    /* files skipped (see on_skip) */
    size_t skipped_by[8]; /* per reason, indexed as et_ingest_reason_name(i) */
    size_t duplicates; /* chunks dropped because an identical one (same id) was written */
    size_t ignored;    /* files not selected (extension, --include/--exclude, hidden) */
    size_t bytes;      /* bytes of input read */
    double seconds;
} et_ingest_stats;

/* Token limit of chunks for a model directory: its max sequence length
 * (sentence_bert_config.json max_seq_length, else config.json
 * max_position_embeddings, minus 2 for RoBERTa-family position offsets, else
 * tokenizer_config.json model_max_length) minus tok's special tokens. *out = 0
 * when the model declares no limit (static models). tok may be NULL. */
int et_ingest_model_limit(const char *model_dir, const et_tokenizer *tok, size_t *out, et_error *err);

/* Name of a skip reason index (0 = "none"), NULL past the end. */
const char *et_ingest_reason_name(size_t i);

/* Ingests paths into out_path (written atomically: on error the previous file,
 * if any, is untouched). stats may be NULL. Without opts->strict, files that
 * cannot be ingested are skipped and reported through on_skip; it is an error
 * if nothing at all could be ingested. */
int et_ingest(const char *const *paths, size_t n_paths, const char *out_path, const et_ingest_opts *opts,
              et_ingest_stats *stats, et_error *err);

/* The files et_ingest would read for these paths and options (directories
 * walked as et_ingest does: include/exclude globs, known extensions, hidden
 * entries skipped, a file reached twice listed once), in the order it reads
 * them. *files: [*n_files] paths, caller frees with et_ingest_list_free.
 * A missing path is ET_ENOTFOUND; an empty list is not an error. */
int et_ingest_list(const char *const *paths, size_t n_paths, const et_ingest_opts *opts, char ***files,
                   size_t *n_files, et_error *err);
void et_ingest_list_free(char **files, size_t n_files);

/* ==== generate (chunks -> synthetic queries) ================================ */
/* Reads a chunk file (see `embtune ingest`), writes (query, chunk) training
 * data. With llm_url, asks an OpenAI-compatible /v1/chat/completions server for
 * questions_per_chunk questions per chunk (many requests in flight, retries);
 * without it, the embedded generator builds them from the chunk's salient
 * sentences. Every finished chunk is appended to a journal beside the output
 * ("<output>.journal"), so rerunning the same call resumes; the dataset is
 * then written atomically from the journal. Corpus ids are chunk ids, query
 * ids "<chunk id>-q<k>". */

typedef struct et_generate_opts {
    const char *input;          /* chunk JSONL */
    const char *output;         /* dataset path (BEIR: a directory) */
    const char *format;         /* "llama" (default), "pairs", "flag", "beir" */
    const char *llm_url;        /* NULL = embedded generator; "http://host:port" or ".../v1" */
    const char *llm_model;      /* NULL = the server's first model from /v1/models */
    const char *api_key;        /* NULL = none; never printed or logged */
    size_t questions_per_chunk; /* default 2 */
    size_t concurrency;         /* requests in flight, default 8 */
    double timeout;             /* seconds per request, default 120 */
    int retries;                /* retries per request, default 5 */
    double temperature;         /* default 0.7; < 0 = not sent */
    double top_p;               /* < 0 = not sent (default) */
    long max_tokens;            /* default 512; 0 = not sent */
    uint64_t seed;              /* embedded generator; sent to the LLM when has_seed */
    int has_seed;
    const char *prompt_file;    /* NULL = default prompt; must contain {context} and {n} */
    const char *val_docs;       /* glob over chunk "doc": those chunks go to val_output */
    double val_fraction;        /* or: this fraction of chunks, whole documents, to val_output */
    const char *val_output;     /* validation dataset path (same format) */
    int restart;                /* 1 = discard an existing journal */
    int keep_journal;           /* 1 = keep the journal after a complete run (default: it is
                                   deleted once every chunk has all its questions; it stays
                                   when chunks are short or failed, so a rerun retries them) */
    volatile int *stop;         /* may be NULL; set non-zero (e.g. by a SIGINT handler) to stop:
                                   finished chunks are journaled and synced, requests in flight
                                   dropped, and et_generate returns ET_ECANCELED (rerun resumes) */
    int quiet;                  /* 1 = no summary or progress on stderr */
} et_generate_opts;

typedef struct et_generate_summary {
    size_t n_chunks;       /* distinct chunks in the input */
    size_t n_resumed;      /* chunks found finished in the journal */
    size_t n_ok;           /* chunks with all their questions */
    size_t n_short;        /* chunks with fewer questions than asked (> 0) */
    size_t n_failed;       /* chunks without any question */
    size_t n_queries;      /* queries written (train + validation) */
    size_t n_val_queries;  /* of which validation */
    size_t requests, retries, max_in_flight; /* LLM mode */
    double seconds;
    char journal[1024];    /* journal path ("" when it was deleted after a complete run) */
    char failures[1024];   /* failures file path ("" when none) */
} et_generate_summary;

/* Defaults as documented above. */
void et_generate_opts_init(et_generate_opts *o);
/* Runs the job. sum may be NULL. */
int et_generate(const et_generate_opts *o, et_generate_summary *sum, et_error *err);

/* ==== fine-tuning ============================================================ */

/* Fine-tuning (`embtune finetune`): trains a copy of a base model (mode
 * "full": every parameter, by backpropagation; static models: the token
 * table) or an adapter on its frozen embeddings (mode "adapter") on a
 * retrieval dataset, with in-batch-negative losses, AdamW, a linear warm-up /
 * decay schedule, gradient clipping, checkpoints and resume. OUT_DIR receives
 * the model directory (sentence-transformers layout) or the adapter
 * directory, plus train_log.jsonl; OUT_DIR/checkpoint/ holds the resumable
 * state while training. Zero / NULL fields take the documented defaults. */
typedef struct et_finetune_opts {
    const char *base;          /* base model directory (required) */
    const char *train;         /* training dataset (required) */
    const char *val;           /* validation dataset, or NULL */
    const char *format;        /* "llama", "pairs", "flag", "beir"; NULL = detect */
    const char *out_dir;       /* output directory (required) */
    const char *mode;          /* "full" (default) or "adapter" */
    const char *adapter;       /* "linear" (default) or "mlp" */
    size_t adapter_hidden;     /* mlp hidden width; 0 = 2 x dim */
    int adapter_bias;          /* linear adapter with a bias */
    int adapter_both;          /* adapter applied to documents too (default: queries only) */
    const char *loss;          /* "mnrl" (default), "mnrl-sym", "gist", "matryoshka", "cached-mnrl" */
    const char *guide;         /* guide model directory (loss "gist") */
    float scale;               /* MNRL similarity scale; 0 = 20 */
    float temperature;         /* GIST temperature; 0 = 0.01 */
    size_t n_dims;             /* Matryoshka dims (0 = dim, dim/2, dim/4, ... >= 32) */
    size_t dims[16];
    float dim_weights[16];     /* 0 = 1 */
    size_t mini_batch;         /* GradCache mini-batch ("cached-mnrl"); 0 = 32 */
    size_t epochs;             /* 0 = default of the mode */
    double lr;                 /* peak learning rate; 0 = default of the mode */
    size_t batch_size;         /* rows per batch; 0 = default of the mode */
    size_t grad_accum;         /* batches per optimizer step; 0 = 1 */
    double warmup;             /* < 1: fraction of the steps; >= 1: steps. < 0 = 0.1 */
    double weight_decay;       /* < 0 = 0.01 */
    float max_grad_norm;       /* 0 = 1.0; < 0 = no clipping */
    size_t max_length;         /* tokens per text; 0 = the model's */
    uint64_t seed;             /* shuffling, sampling, dropout, init */
    size_t eval_steps;         /* validate every N steps; 0 = every epoch */
    size_t save_steps;         /* checkpoint every N steps; 0 = every epoch/eval + 5 minutes */
    long negatives;            /* hard-negative columns; < 0 = 1 if the data has negatives */
    int resume;                /* continue from OUT_DIR/checkpoint */
    int overwrite;             /* replace an existing OUT_DIR model and checkpoint */
    int no_dropout;            /* dropout off (default: the model config's) */
    const char *prompt_name;   /* query prompt of the model (NULL: "query" if the model has it) */
    const char *cache;         /* adapter mode: embedding cache file; NULL = default, "" = none */
    int save_last;             /* write the last model, not the best validated one */
    int log_batches;           /* train_log.jsonl lists each step's rows (query and document ids) */
    int quiet;                 /* no progress or summary on stderr */
    volatile int *stop;        /* set non-zero (e.g. from a signal handler) to checkpoint and stop */
} et_finetune_opts;

typedef struct et_finetune_result {
    size_t steps;              /* optimizer steps done */
    size_t rows;               /* training rows (query, positive) per epoch */
    double last_loss;          /* mean loss of the last logged step */
    double seconds;            /* training time of this run */
    double pairs_per_s;        /* rows per second of this run */
    int validated;             /* 1 if a validation set was given */
    size_t best_step;          /* step of the model written (0 = base) */
    double base_acc[4];        /* accuracy@1,3,5,10 of the base model on val */
    double base_mrr10;
    double best_acc[4];        /* of the model written */
    double best_mrr10;
} et_finetune_result;

/* Sets every field of o to its default (zeros, NULLs and the < 0 markers). */
void et_finetune_opts_default(et_finetune_opts *o);
/* Runs the fine-tuning. res may be NULL. */
int et_finetune(const et_finetune_opts *o, et_finetune_result *res, et_error *err);

/* Adapters: a small trained transform applied to base-model embeddings, so
 * the base model (and, for query-only adapters, the document index) stays
 * untouched. Written by `embtune finetune --mode adapter` as a directory:
 * config.json + adapter.safetensors (tensor names as llama-index's
 * LinearLayer / TwoLayerNN state dicts).
 *   linear: y = W x (+ b), W initialized to the identity
 *   mlp:    y = x + r * W2 relu(W1 x + b1) + r * b2, r initialized to 0 */
typedef struct et_adapter et_adapter;

/* Loads an adapter directory. Caller frees with et_adapter_free. */
int et_adapter_load(et_adapter **out, const char *dir, et_error *err);
void et_adapter_free(et_adapter *a);
/* Input/output width (the base model's embedding dimension). */
size_t et_adapter_dim(const et_adapter *a);
/* 1 if the adapter was trained on (and must be applied to) documents as well
 * as queries; 0 = queries only (documents use the base embedding). */
int et_adapter_applies_to_docs(const et_adapter *a);
/* Base model directory recorded at training time (borrowed; may be ""). */
const char *et_adapter_base_model(const et_adapter *a);
/* out[i] = adapter(x[i]) for n rows, L2-normalized when the base model
 * normalizes (recorded in config.json). out may equal x. */
int et_adapter_apply(const et_adapter *a, const float *x /* [n, dim] */, size_t n,
                     float *out /* [n, dim] */, et_error *err);

/* ==== evaluation ============================================================== */

/* ==== pipeline (documents -> fine-tuned model -> report) ======================= */
/* `embtune pipeline`: the whole workflow in one call, every stage writing
 * into run_dir:
 *   ingest-val      val_docs   -> chunks-val.jsonl
 *   ingest-train    train_docs -> chunks-train.jsonl
 *   generate-val    chunks-val.jsonl   -> val.json    (queries about the
 *   generate-train  chunks-train.jsonl -> train.json   validation documents only)
 *   finetune        base + train.json (val.json for the curves) -> model/
 *                   (adapter/ in adapter mode)
 *   eval            base vs fine-tuned vs BM25 on val.json -> report/
 * (validation stages first: they are small, and a problem with the
 * validation documents shows before the long stages). run_dir/manifest.json
 * records per stage its status, timings, options, the SHA-256 of every input
 * and output file and a key over them. Rerunning skips each stage whose key
 * is unchanged and whose outputs are intact, resumes an interrupted stage
 * (generate's journal, finetune's checkpoint) and reruns a stage whose key
 * changed; a stage after it reruns when its own inputs changed. */

#define ET_PIPELINE_STAGES 6

typedef struct et_pipeline_opts {
    const char *const *train_docs; /* [n_train_docs] files or directories, borrowed */
    size_t n_train_docs;
    const char *const *val_docs;   /* [n_val_docs] files or directories, borrowed */
    size_t n_val_docs;
    const char *base;              /* base model directory or Hugging Face id */
    const char *run_dir;           /* created if needed */
    /* Stage options, initialized by et_pipeline_opts_default to each stage's
     * defaults. The pipeline sets the fields that wire stages together:
     * ingest: tokenizer, max_tokens (from the base model), progress, on_skip;
     * generate: input, output, format, val_*, restart; finetune: base, train,
     * val, out_dir, resume, overwrite, save_last, stop, quiet. */
    et_ingest_opts ingest;         /* chunk_size, chunk_overlap, include, exclude, strict */
    et_generate_opts generate;     /* questions, seed, LLM and prompt options */
    et_finetune_opts finetune;     /* mode, loss, optimization; prompt_name, max_length and
                                      cache also apply to eval */
    int select_best;               /* keep the epoch best on the validation set (default 0:
                                      the last model, so the eval on that set stays honest) */
    size_t ks[8];                  /* eval cut-offs for accuracy/precision/recall */
    size_t n_k;                    /* 0 = 1,3,5,10 */
    const char *rerun;             /* NULL, or a stage name: run it and every later stage
                                      even when up to date ("all" = every stage) */
    int quiet;                     /* no progress on stderr */
    volatile int *stop;            /* set non-zero (e.g. by a signal) to stop at the next
                                      checkpoint; polled while *stop_polled is 1 */
    volatile int *stop_polled;     /* may be NULL; the pipeline sets it to 1 while the running
                                      stage polls *stop (finetune), else 0, so a signal handler
                                      knows whether to set *stop or let the signal kill */
} et_pipeline_opts;

typedef struct et_pipeline_stage_info {
    const char *name;    /* "ingest-val", ... (static) */
    const char *action;  /* "ran", "resumed", "up to date", "failed", "interrupted",
                            "not run" (static) */
    double seconds;      /* spent in this call */
    char summary[256];   /* e.g. "107 chunks from 1 file, 41 pages -> chunks-val.jsonl" */
} et_pipeline_stage_info;

typedef struct et_pipeline_result {
    et_pipeline_stage_info stages[ET_PIPELINE_STAGES];
    double seconds;
    int evaluated;        /* 1 when the fields below are set */
    char table[4096];     /* the comparison table (one row per system) */
    char report[4096];    /* report.html path */
    char manifest[4096];  /* manifest.json path */
    char base_name[128], tuned_name[128]; /* row labels */
    /* validation metrics of the base, fine-tuned and BM25 systems; accuracy
     * at 1, 3, 5, 10 (NaN when a cut-off was not asked) */
    double base_acc[4], tuned_acc[4], bm25_acc[4];
    double base_mrr10, tuned_mrr10, bm25_mrr10;
    double base_ndcg10, tuned_ndcg10, bm25_ndcg10;
    size_t n_val_queries;
} et_pipeline_result;

/* Fills every stage's defaults (et_ingest_opts_default, et_generate_opts_init,
 * et_finetune_opts_default) and the pipeline's own. */
void et_pipeline_opts_default(et_pipeline_opts *o);
/* Runs (or resumes) the pipeline. res may be NULL; on failure its stages
 * still tell which ran and which failed. An error names the stage. */
int et_pipeline(const et_pipeline_opts *o, et_pipeline_result *res, et_error *err);


/* ==== serve and hub =========================================================== */

/* Resolves a model spec as every CLI command's -m does: an existing local
 * directory wins; else a Hugging Face Hub id "org/name[@revision]" is looked
 * up in the Hugging Face cache and, if the snapshot there is incomplete,
 * downloaded (see et_hub_download; with HF_HUB_OFFLINE=1 the cache only).
 * A cached complete snapshot is used without contacting the hub
 * (`embtune download` refreshes). *dir: the model directory, caller frees. */
int et_resolve_model(const char *spec, char **dir, et_error *err);

typedef struct et_hub_opts {
    const char *endpoint;  /* NULL: $HF_ENDPOINT, else https://huggingface.co */
    const char *cache_dir; /* NULL: $HF_HUB_CACHE, else $HF_HOME/hub, else
                              ~/.cache/huggingface/hub */
    const char *token;     /* NULL: $HF_TOKEN, else the file $HF_TOKEN_PATH or
                              $HF_HOME/token; sent as Bearer, never printed */
    int offline;           /* 1 = cache only; 0 = $HF_HUB_OFFLINE decides */
    int refresh;           /* 1 = ask the hub what the revision is now even if a
                              complete snapshot is cached (`embtune download`) */
    int quiet;             /* 1 = no notices on stderr (progress follows ET_PROGRESS) */
} et_hub_opts;

/* Fetches the files a model needs (config, tokenizer, safetensors weights and
 * shards, sentence-transformers module configs) of Hub repo "org/name[@rev]"
 * into the Hugging Face cache layout, resuming partial downloads and checking
 * each file against the hub's ETag (sha256 for LFS files, git blob sha1 for
 * the others). Nothing appears in snapshots/ unless every file arrived intact.
 * opts may be NULL. *snapshot_dir: caller frees.
 * Errors: ET_ENET (network / HTTP, incl. 401/403 gated and 404 missing repos,
 * with the hub's reason), ET_ENOTFOUND (offline and not cached), ET_EFORMAT
 * (checksum mismatch, malformed reply). */
int et_hub_download(const char *spec, const et_hub_opts *opts, char **snapshot_dir,
                    et_error *err);

/* OpenAI-compatible embeddings server (libmicrohttpd): POST /v1/embeddings,
 * POST /embed (Hugging Face text-embeddings-inference), GET /health,
 * GET /v1/models. Concurrent requests are batched into one forward pass on a
 * single worker thread that owns the model. */
typedef struct et_server et_server;

typedef struct et_serve_opts {
    const char *host;       /* NULL = "127.0.0.1" (an IPv4/IPv6 address or name) */
    int port;               /* 0 = any free port (see et_server_port) */
    const char *api_key;    /* NULL = open; else "Authorization: Bearer KEY" is required
                               (except GET /health); copied, never logged */
    const char *model_name; /* id reported by /v1/models and responses; NULL = "embtune" */
    size_t max_batch;       /* inputs per forward pass (0 = 64) */
    double max_wait_ms;     /* longest wait for more requests to fill a batch, only while
                               requests are arriving (< 0 = default 5; 0 = never wait) */
    size_t max_inputs;      /* inputs per request (0 = 2048), more: 413 */
    size_t max_body;        /* request body bytes (0 = 16 MiB), more: 413 */
    size_t max_tokens;      /* tokens per input, special tokens included
                               (0 or more than the model's: the model's max length) */
    int no_truncate;        /* 1 = longer inputs get 413 unless the request says
                               truncate: true; 0 = they are cut */
    int threads;            /* HTTP poll threads (0 = 2) */
    int log_requests;       /* 1 = one line per request on stderr */
} et_serve_opts;


/* Starts serving m (borrowed: must outlive the server) on background threads;
 * returns once listening. adapter (borrowed, may be NULL) is applied to query
 * embeddings (input_type "query" / prompt_name "query"), and to documents too
 * if it was trained so. opts may be NULL. Caller frees with et_server_free. */
int et_server_start(et_server **out, et_model *m, const et_adapter *adapter,
                    const et_serve_opts *opts, et_error *err);
/* TCP port the server listens on (useful after port 0). */
int et_server_port(const et_server *s);
/* Graceful stop: refuses new connections, answers every request already
 * received, then closes. Waits at most timeout_s seconds (<= 0: 30 s);
 * ET_OK if everything in flight was answered, ET_ECANCELED on timeout. */
int et_server_drain(et_server *s, double timeout_s);
/* Stops (draining first if not done) and frees. NULL is a no-op. */
void et_server_free(et_server *s);

#ifdef __cplusplus
}
#endif
#endif
