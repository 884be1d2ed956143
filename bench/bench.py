#!/usr/bin/python3
"""bench.py - the body of `make bench` (bench/run.sh sets up the environment).

Measures in one run, on the same random weights for every implementation:
  peak     the CPU's compute peak (bench_gemm peak: FMA chains for the ISA the
           CPU has; AVX-512 and AMX bf16 when present, else "n/a") and the
           GFLOP/s of embtune's GEMM and OpenBLAS sgemm on bge shapes;
  infer    sequences/s, batch 32, at lengths 128 and 512, of bge-small (12 x 384,
           FFN 1536) and bge-base (12 x 768, FFN 3072) shaped random BERTs:
           embtune (bench_infer), PyTorch fp32 (1 torch thread + OpenBLAS
           threads, and torch threads + 1 BLAS thread), PyTorch bf16 autocast,
           ONNX Runtime (onnxruntime-node, model from torch.onnx.export); each
           peer's embeddings compared with embtune's (max abs error);
  train    one fine-tuning step (MNRL, 16 pairs, 32 + 128 tokens, AdamW):
           pairs/s and peak RSS, embtune (bench_bert_step) vs PyTorch
           (bert_step_torch.py) from the same weights and ids; loss per step
           compared;
  stream   `embtune embed` of 1M short texts with the model2vec fixture: RSS
           sampled during the run (start, end, peak);
  scripts  bench/{ingest,tokenizer,generate,eval,serve,finetune}.sh.
Every part fails soft ("skipped: reason"). Prints one table of ratios
(embtune / best peer) and writes bench/out/bench.json.
Env: BENCH_ONLY=infer,train,... runs a subset; BENCH_QUICK=1 smaller counts;
BENCH_BUDGET_S (default 1800): wall-clock budget; a part that would start after
it is skipped (stated as such), and no child runs past it.
GFLOP/s "per CPU" = flops / (process CPU seconds / threads): the rate while the
cores were ours, comparable with the peak when other processes share the box."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
os.chdir(ROOT)
BUILD = os.environ.get("BUILD", "build")
PY = os.environ.get("TORCH_PY", "/usr/bin/python3")
SHARED = os.environ.get("SHARED", os.path.abspath(os.path.join(ROOT, "..", "shared")))
EMBTUNE = os.path.join(ROOT, BUILD, "embtune")
W = os.path.join(ROOT, BUILD, "bench-out", "main")
OUT = os.path.join(ROOT, "bench", "out")
NPROC = os.cpu_count() or 2
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))
QUICK = os.environ.get("BENCH_QUICK") == "1"
T_START = time.time()
DEADLINE = T_START + float(os.environ.get("BENCH_BUDGET_S", "1800"))


def left():
    return DEADLINE - time.time()
os.makedirs(W, exist_ok=True)
os.makedirs(OUT, exist_ok=True)

R = {"date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": os.environ.get("CPU_NAME", "?"),
     "isa": os.environ.get("CPU_ISA", "?"), "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
     "nproc": NPROC, "loadavg_start": os.getloadavg(), "skipped": {}}
ROWS = []  # (section, what, embtune, peer name, peer value, unit, note)


def log(*a):
    print(*a, flush=True)


def want(part):
    return not ONLY or part in ONLY


def skip(key, why):
    R["skipped"][key] = why
    log("  skipped: %s: %s" % (key, why))


def run(cmd, timeout, env=None, cwd=None):
    """Runs cmd; returns (stdout, peak_rss_kb of the child, wall seconds). Raises on failure."""
    e = dict(os.environ)
    e.update(env or {})
    if left() < 10:
        raise RuntimeError("time budget (BENCH_BUDGET_S) used up")
    timeout = min(timeout, left())
    t0 = time.time()
    p = subprocess.Popen(["/usr/bin/time", "-f", "@@RSS %M"] + cmd, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=e, cwd=cwd, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # the child and everything it started
        p.communicate()
        raise RuntimeError("timed out after %d s%s" % (timeout, " (time budget)" if left() < 5 else ""))
    rss = 0
    for line in err.splitlines():
        if line.startswith("@@RSS "):
            rss = int(line.split()[1])
    if p.returncode != 0:
        tail = [l for l in err.splitlines() if not l.startswith("@@RSS")][-3:]
        raise RuntimeError("exit %d: %s" % (p.returncode, " | ".join(tail)[:300]))
    return out, rss, time.time() - t0


def last_json(out):
    for line in reversed(out.splitlines()):
        line = line.strip()
        if line.startswith("{") or line.startswith("["):
            return json.loads(line)
    raise RuntimeError("no JSON in output")


def make_bin(name):
    path = os.path.join(BUILD, "bench", name)
    subprocess.run(["make", "-s", path], check=True, stdout=subprocess.DEVNULL)
    return path


# ---- peak and GEMM ---------------------------------------------------------------------------
def bench_peak():
    log("\n== compute peak and GEMM (%d threads) ==" % NPROC)
    exe = make_bin("bench_gemm")
    R["peak"] = {}
    for isa in ("avx2", "avx512", "amx"):
        p = subprocess.run([exe, "peak", isa, str(NPROC)], capture_output=True, text=True, timeout=120)
        if p.returncode == 0:
            R["peak"][isa] = json.loads(p.stdout)["gflops"]
            log("  peak %-7s %8.1f GFLOP/s (%s)" % (isa, R["peak"][isa],
                                                   "fp32 FMA" if isa != "amx" else "bf16 tiles, fp32 accumulate"))
        elif p.returncode == 3:
            R["peak"][isa] = "n/a"
            log("  peak %-7s      n/a (not on this CPU)" % isa)
        else:
            R["peak"][isa] = "error"
            log("  peak %-7s error: %s" % (isa, p.stderr.strip()[:200]))
    fp32 = [v for k, v in R["peak"].items() if k != "amx" and isinstance(v, float)]
    R["peak_fp32"] = max(fp32) if fp32 else None
    out, _, _ = run([exe, "gemm", str(NPROC)], 600, env={"OPENBLAS_NUM_THREADS": str(NPROC)})
    R["gemm"] = json.loads(out)
    log("  GFLOP/s over wall time, and per CPU (CPU seconds / threads); % of peak from the per-CPU rate")
    log("  %-10s %-18s %9s %9s %9s %9s %7s %10s" % ("model", "N x C -> OC", "embtune", "per CPU", "OpenBLAS",
                                                    "per CPU", "% peak", "max|diff|"))
    for g in R["gemm"]:
        frac = g["embtune_gflops_cpu"] / R["peak_fp32"] if R["peak_fp32"] else None
        g["embtune_fraction_of_peak"] = frac
        log("  %-10s %4d x %4d -> %4d  %9.1f %9.1f %9.1f %9.1f %6.1f%% %10.2g" % (
            g["model"], g["N"], g["C"], g["OC"], g["embtune_gflops"], g["embtune_gflops_cpu"], g["openblas_gflops"],
            g["openblas_gflops_cpu"], 100 * frac if frac else float("nan"), g["max_abs_diff"]))
    best = max(R["gemm"], key=lambda g: g["embtune_gflops_cpu"])
    ROWS.append(("gemm", "GEMM fp32, GFLOP/s per CPU, best shape (%s %dx%d->%d)" % (
                     best["model"], best["N"], best["C"], best["OC"]),
                 best["embtune_gflops_cpu"], "OpenBLAS sgemm", best["openblas_gflops_cpu"], "GFLOP/s",
                 "%.0f%% of %s FMA peak %.0f; wall %.0f vs %.0f; AVX-512 %s; AMX %s" % (
                     100 * best["embtune_fraction_of_peak"], R["isa"] if R["isa"] != "amx" else "fp32",
                     R["peak_fp32"], best["embtune_gflops"], best["openblas_gflops"], fmt_peak(R["peak"].get("avx512")), fmt_peak(R["peak"].get("amx")))))


def fmt_peak(v):
    return "%.0f GF/s" % v if isinstance(v, float) else str(v)


# ---- models ----------------------------------------------------------------------------------
SHAPES = {"bge-small": (12, 384, 12, 1536), "bge-base": (12, 768, 12, 3072)}


def model_dir(shape):
    d = os.path.join(W, shape)
    if not os.path.exists(os.path.join(d, "model.safetensors")):
        L, C, H, FF = SHAPES[shape]
        subprocess.run([PY, "bench/make_bert_model.py", d, os.path.join(SHARED, "fixtures/bge-wordpiece/tokenizer.json"),
                        str(L), str(C), str(H), str(FF)], check=True, stdout=subprocess.DEVNULL)
    return d


def ids_file(T, n=256):
    path = os.path.join(W, "ids%d.txt" % T)
    if not os.path.exists(path):
        rng = np.random.default_rng(T)
        with open(path, "w") as f:
            for _ in range(n):
                f.write(" ".join(map(str, [101] + list(rng.integers(1000, 29000, T - 2)) + [102])) + "\n")
    return path


def onnx_model(shape):
    d = model_dir(shape)
    path = os.path.join(d, "model.onnx")
    if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(os.path.join(d, "model.safetensors")):
        run([PY, "bench/peers/onnx_export.py", d, path], 900)
    return path


def ort_installed():
    mod = os.path.join(ROOT, "bench", "peers", "node_modules", "onnxruntime-node")
    if not os.path.isdir(mod):
        log("  installing onnxruntime-node into bench/peers (ONNXRUNTIME_NODE_INSTALL=skip)")
        subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=os.path.join(ROOT, "bench", "peers"),
                       env=dict(os.environ, ONNXRUNTIME_NODE_INSTALL="skip"), check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    return True


# ---- inference -------------------------------------------------------------------------------
def flops_per_seq(shape, T):
    L, C, H, FF = SHAPES[shape]
    return L * (2.0 * T * (4 * C * C + 2 * C * FF) + 4.0 * T * T * C)


SPF = {}  # runner kind -> measured wall seconds per FLOP (for the counts of the next cells)
TARGET_S = 20 if QUICK else 45


def count_for(kind, flops, first, lo, hi):
    """Sequences for one runner in one cell: `first` on the first cell, then what the
    runner's measured speed does in about TARGET_S seconds, in [lo, hi], a multiple of 4."""
    if kind not in SPF:
        return first
    n = int(TARGET_S / (SPF[kind] * flops))
    return max(lo, min(hi, n - n % 4))


def bench_infer():
    log("\n== inference: sequences/s, batch 32, %d threads per process ==" % NPROC)
    exe = make_bin("bench_infer")
    have_ort = True
    try:
        ort_installed()
    except Exception as e:  # noqa: BLE001
        have_ort = False
        skip("onnxruntime", "npm install failed: %s" % e)
    R["infer"] = {}
    torch_best = None  # (torch threads, blas threads), picked on the first cell
    bf16_skip = None  # reason, once bf16 autocast measured much slower than fp32
    for shape in ("bge-small", "bge-base"):
        try:
            d = model_dir(shape)
        except Exception as e:  # noqa: BLE001
            skip("infer " + shape, "model: %s" % e)
            continue
        onnx = None
        if have_ort:
            try:
                onnx = onnx_model(shape)
            except Exception as e:  # noqa: BLE001
                skip("onnx export " + shape, str(e))
        for T in (128, 512):
            key = "%s L%d" % (shape, T)
            ids = ids_file(T)
            cell = R["infer"][key] = {"flops_per_seq": flops_per_seq(shape, T)}
            n_fast = count_for("embtune", cell["flops_per_seq"], 64, 8, 128 if T == 128 else 64)
            log("  -- %s (hidden %d, FFN %d), length %d --" % (shape, SHAPES[shape][1], SHAPES[shape][3], T))
            et_out = os.path.join(W, "et.f32")
            try:
                o, rss, _ = run([exe, d, ids, et_out, "32", str(n_fast), str(TARGET_S)], 900)
                r = last_json(o)
                SPF["embtune"] = r["seconds"] / (r["sequences"] * cell["flops_per_seq"])
                r["peak_rss_kb"] = rss
                cell["embtune"] = r
                et = np.fromfile(et_out, dtype=np.float32).reshape(r["sequences"], -1)
                gf = r["seq_per_s"] * cell["flops_per_seq"] / 1e9
                r["gflops"] = gf
                r["gflops_per_cpu"] = gfc = r["sequences"] * cell["flops_per_seq"] / (r["cpu_seconds"] / r["threads"]) / 1e9
                log("  %-34s %8.2f seq/s  %4d seqs  %5d MB  %6.1f GFLOP/s, per CPU %.1f (%.0f%% of peak)" % (
                    "embtune", r["seq_per_s"], r["sequences"], rss // 1024, gf, gfc,
                    100 * gfc / R["peak_fp32"] if R.get("peak_fp32") else float("nan")))
            except Exception as e:  # noqa: BLE001
                skip("embtune " + key, str(e))
                continue
            peers = []
            if torch_best is None:
                peers += [("pytorch fp32 1thr+BLAS%d" % NPROC, "fp32", 1, NPROC),
                          ("pytorch fp32 %dthr+BLAS1" % NPROC, "fp32", NPROC, 1)]
            else:
                peers += [("pytorch fp32 %dthr+BLAS%d" % torch_best, "fp32") + torch_best]
            if bf16_skip:
                skip("pytorch bf16 %s" % key, bf16_skip)
            else:
                peers += [("pytorch bf16 autocast %dthr+BLAS%d" % (torch_best or (1, NPROC)), "bf16") +
                          (torch_best or (1, NPROC))]
            if onnx:
                peers.append(("onnxruntime %d threads" % NPROC, "ort", NPROC, 1))
            for name, kind, tthr, bthr in peers:
                n_slow = count_for(kind + str(tthr), cell["flops_per_seq"], 32, 4, 32)
                out_f = os.path.join(W, "peer.f32")
                try:
                    if kind == "ort":
                        cmd = ["node", "bench/peers/ort_infer.js", onnx, ids, out_f, str(tthr), "32",
                               str(n_slow), str(TARGET_S)]
                    elif kind == "bf16":
                        # bf16 autocast: one batch of 4 (on a CPU without native bf16 matmul, torch 1.13's
                        # bf16 linear is ~30x slower than fp32: a batch of 32 takes many minutes)
                        cmd = [PY, "bench/infer_torch.py", d, ids, out_f, "4", "4", str(TARGET_S), str(tthr), kind]
                    else:
                        cmd = [PY, "bench/infer_torch.py", d, ids, out_f, "32",
                               str(n_slow), str(TARGET_S), str(tthr), kind]
                    o, rss, _ = run(cmd, 300 if kind == "bf16" else 900,
                                    env={"OPENBLAS_NUM_THREADS": str(bthr), "OMP_NUM_THREADS": str(tthr)})
                    r = last_json(o)
                    SPF[kind + str(tthr)] = r["seconds"] / (r["sequences"] * cell["flops_per_seq"])
                    r["peak_rss_kb"] = rss
                    pe = np.fromfile(out_f, dtype=np.float32).reshape(r["sequences"], -1)
                    k = min(len(pe), len(et))
                    r["max_abs_err_vs_embtune"] = float(np.abs(pe[:k] - et[:k]).max())
                    r["rows_compared"] = k
                    cell[name] = r
                    log("  %-34s %8.2f seq/s  %4d seqs  %5d MB  max|emb - embtune| %.2g (%d rows)%s" % (
                        name, r["seq_per_s"], r["sequences"], rss // 1024, r["max_abs_err_vs_embtune"], k,
                        ", batch 4" if kind == "bf16" else ""))
                except Exception as e:  # noqa: BLE001
                    skip("%s %s" % (name, key), str(e))
                    if kind == "bf16":
                        bf16_skip = R["bf16_skip"] = "bf16 autocast failed at %s (%s): not tried again" % (key, e)
            if torch_best is None:
                c = [(cell[n]["seq_per_s"], n) for n, kd, _, _ in peers[:2] if n in cell]
                if c:
                    best = max(c)[1]
                    torch_best = (1, NPROC) if best.startswith("pytorch fp32 1thr") else (NPROC, 1)
                    R["torch_best_threads"] = {"torch": torch_best[0], "openblas": torch_best[1]}
            bf = [n for n in cell if "bf16" in n]
            fp = [cell[n]["seq_per_s"] for n in cell if "fp32" in n]
            if bf and fp and cell[bf[0]]["seq_per_s"] < 0.5 * max(fp) and not bf16_skip:
                bf16_skip = ("bf16 autocast ran at %.2fx PyTorch fp32's speed at %s on this CPU (%s, no native "
                             "bf16 matmul): not measured again" % (cell[bf[0]]["seq_per_s"] / max(fp), key, R["isa"]))
                R["bf16_skip"] = bf16_skip
            peer_names = [n for n in cell if n not in ("embtune", "flops_per_seq")]
            if peer_names:
                bp = max(peer_names, key=lambda n: cell[n]["seq_per_s"])
                e = cell["embtune"]
                errs = ", ".join("%s %.1g" % (n.split()[0] + (" bf16" if "bf16" in n else ""),
                                              cell[n]["max_abs_err_vs_embtune"]) for n in peer_names)
                ROWS.append(("infer", "%s L%d batch 32 (seqs: embtune %d, peers %s)" % (
                    shape, T, e["sequences"], "/".join(str(cell[n]["sequences"]) for n in peer_names)),
                    e["seq_per_s"], bp, cell[bp]["seq_per_s"], "seq/s",
                    "RSS %d vs %d MB; %.0f%% of FMA peak per CPU; max abs err %s" % (
                        e["peak_rss_kb"] // 1024, cell[bp]["peak_rss_kb"] // 1024,
                        100 * e["gflops_per_cpu"] / R["peak_fp32"] if R.get("peak_fp32") else float("nan"), errs)))


# ---- fine-tuning -----------------------------------------------------------------------------
def bench_train():
    log("\n== fine-tuning step: MNRL, 16 pairs, query 32 + passage 128 tokens, AdamW, dropout off ==")
    exe = make_bin("bench_bert_step")
    R["train"] = {}
    tb = R.get("torch_best_threads", {"torch": 1, "openblas": NPROC})
    for shape in ("bge-small", "bge-base"):
        steps = 3 if shape == "bge-small" else 2  # the first step is warm-up, not timed
        try:
            d = model_dir(shape)
            o, rss, _ = run([exe, d, "16", "32", "128", str(steps), "0"], 900,
                            env={"ET_THREADS": str(NPROC)})
            e = last_json(o)
            e["peak_rss_kb"] = rss
        except Exception as ex:  # noqa: BLE001
            skip("train embtune " + shape, str(ex))
            continue
        cell = R["train"][shape] = {"embtune": e}
        log("  %s: %-30s %6.2f pairs/s  %5d MB  losses %s" % (
            shape, "embtune", e["pairs_per_s"], rss // 1024, " ".join("%.5f" % x for x in e["losses"])))
        precs = ["fp32"]
        if shape == "bge-small":
            if R.get("bf16_skip"):
                skip("train pytorch bf16", R["bf16_skip"])
            else:
                precs.append("bf16")
        for prec in precs:
            name = "pytorch %s %dthr+BLAS%d" % (prec, tb["torch"], tb["openblas"])
            try:
                o, rss, _ = run([PY, "bench/bert_step_torch.py", "16", "32", "128", str(steps), str(tb["torch"]), "0",
                                 d, prec], 1200, env={"OPENBLAS_NUM_THREADS": str(tb["openblas"])})
                t = last_json(o)
                t["peak_rss_kb"] = rss
                k = min(len(t["losses"]), len(e["losses"]))
                t["max_abs_loss_diff"] = max(abs(a - b) for a, b in zip(t["losses"][:k], e["losses"][:k]))
                cell[name] = t
                log("  %s: %-30s %6.2f pairs/s  %5d MB  losses %s  max|dloss| %.2g" % (
                    shape, name, t["pairs_per_s"], rss // 1024, " ".join("%.5f" % x for x in t["losses"]),
                    t["max_abs_loss_diff"]))
            except Exception as ex:  # noqa: BLE001
                skip("train %s %s" % (name, shape), str(ex))
        peers = [n for n in cell if n != "embtune"]
        if peers:
            bp = max(peers, key=lambda n: cell[n]["pairs_per_s"])
            p = cell[bp]
            ROWS.append(("train", "%s fine-tune step, 16 pairs 32/128 tok (%d timed step%s)" % (
                shape, steps - 1, "s, median" if steps > 2 else ""), e["pairs_per_s"], bp, p["pairs_per_s"], "pairs/s",
                "peak RSS %d vs %d MB (%.2fx); max abs loss diff %.2g" % (
                    e["peak_rss_kb"] // 1024, p["peak_rss_kb"] // 1024, e["peak_rss_kb"] / p["peak_rss_kb"],
                    p["max_abs_loss_diff"])))


# ---- 1M short texts, streaming ---------------------------------------------------------------
def bench_stream():
    n = 200000 if QUICK else 1000000
    log("\n== embed %d short texts (model2vec fixture), RSS sampled every 0.2 s ==" % n)
    d = os.path.join(W, "stream")
    os.makedirs(d, exist_ok=True)
    src = os.path.join(d, "texts%d.txt" % n)
    if not os.path.exists(src):
        txt = subprocess.run(["pdftotext", "-q", os.path.join(SHARED, "corpus/R-intro.pdf"), "-"],
                             capture_output=True, text=True, check=True).stdout.split()
        with open(src + ".tmp", "w") as f:
            for i in range(n):
                j = (i * 7919) % (len(txt) - 16)
                f.write(" ".join(txt[j:j + 4 + i % 9]) + " %d\n" % i)
        os.replace(src + ".tmp", src)
    out = os.path.join(d, "out.npy")
    fix = os.path.join(SHARED, "fixtures/model2vec-bge-base-q128")
    t0 = time.time()
    p = subprocess.Popen([EMBTUNE, "embed", "-q", "-m", fix, "-i", src, "-o", out],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    samples = []

    def poll():
        while p.poll() is None:
            try:
                with open("/proc/%d/status" % p.pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            samples.append((time.time() - t0, int(line.split()[1])))
            except OSError:
                pass
            time.sleep(0.2)

    th = threading.Thread(target=poll)
    th.start()
    try:
        _, err = p.communicate(timeout=1200)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        skip("stream", "timed out")
        return
    th.join()
    dt = time.time() - t0
    if p.returncode != 0:
        skip("stream", "exit %d: %s" % (p.returncode, err.strip()[-200:]))
        return
    rows = np.load(out, mmap_mode="r").shape[0]
    if rows != n or not samples:
        skip("stream", "%d rows for %d texts, %d RSS samples" % (rows, n, len(samples)))
        return
    rss = [s[1] for s in samples]
    q = max(1, len(rss) // 10)
    r = R["stream"] = {"texts": n, "seconds": dt, "texts_per_s": n / dt, "rss_start_kb": rss[0],
                       "rss_first_10pct_max_kb": max(rss[:q]), "rss_last_10pct_max_kb": max(rss[-q:]),
                       "rss_end_kb": rss[-1], "rss_peak_kb": max(rss), "samples": len(rss),
                       "output_bytes": os.path.getsize(out)}
    log("  %d texts in %.1f s (%.0f texts/s, process start and model load included)" % (n, dt, n / dt))
    log("  RSS: first sample %d MB, max over the first 10%% %d MB, over the last 10%% %d MB, last sample %d MB, "
        "peak %d MB (%d samples; output %d MB)" % (rss[0] // 1024, r["rss_first_10pct_max_kb"] // 1024,
                                                    r["rss_last_10pct_max_kb"] // 1024, rss[-1] // 1024,
                                                    max(rss) // 1024, len(rss), r["output_bytes"] >> 20))
    ROWS.append(("stream", "embed %dk short texts, model2vec" % (n // 1000), n / dt, "-", None, "texts/s",
                 "RSS first 10%% <= %d MB, last 10%% <= %d MB, peak %d MB" % (
                     r["rss_first_10pct_max_kb"] // 1024, r["rss_last_10pct_max_kb"] // 1024, max(rss) // 1024)))


# ---- per-area scripts ------------------------------------------------------------------------
def script(name, cmd, timeout, env=None):
    log("\n== %s ==" % " ".join(cmd))
    t0 = time.time()
    if left() < 60:
        skip(name, "time budget (BENCH_BUDGET_S) used up")
        return None
    timeout = min(timeout, left())
    try:
        e = dict(os.environ, BUILD=BUILD)
        e.update(env or {})
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=e,
                             start_new_session=True)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # the script's servers and children too
            p.communicate()
            raise
        sys.stdout.write(out)
        if p.returncode != 0:
            skip(name, "exit %d: %s" % (p.returncode, out.strip().splitlines()[-1][:200] if out.strip() else ""))
            return None
        R.setdefault("script_seconds", {})[name] = round(time.time() - t0, 1)
        return json.load(open(os.path.join(OUT, name + ".json")))
    except subprocess.TimeoutExpired:
        skip(name, "timed out after %d s" % timeout)
    except Exception as ex:  # noqa: BLE001
        skip(name, str(ex))
    return None


def bench_scripts():
    j = script("ingest", ["bench/ingest.sh"], 600, {"RUNS": "3"})
    if j:
        ROWS.append(("ingest", "ingest %d PDF pages -> %d chunks" % (j["pages"], j["chunks"]), j["embtune_2t_pages_per_s"],
                     "pdftotext (extract only)", j["pdftotext_pages_per_s"], "pages/s", "best of %d runs" % j["runs"]))
    j = script("tokenizer", ["bench/tokenizer.sh"], 600, {"RUNS": "3"})
    if j:
        for t in j:
            o, h = t["embtune"], t["hf_tokenizers"]
            ours = o["lines"]["tokens"] / o["lines"]["seconds"] / 1e6
            seq = h["tokens"]["seq"] / h["seconds"]["seq"] / 1e6
            bat = h["tokens"]["batch"] / h["seconds"]["batch"] / 1e6
            best, bn = max((seq, "HF tokenizers encode"), (bat, "HF tokenizers encodeBatch"))
            ROWS.append(("tokenizer", "tokenize R-intro lines, %s" % t["name"], ours, bn, best, "Mtok/s", "1 thread (HF batch: all)"))
    j = script("generate", ["bench/generate.sh"], 600)
    if j:
        ROWS.append(("generate", "embedded generator, %d chunks" % j["embedded_chunks"], j["embedded_chunks_per_s"],
                     "-", None, "chunks/s", ""))
        ROWS.append(("generate", "LLM path, 16 in flight, 0.2 s server latency", j["llm_req_per_s_16"],
                     "sequential client (llama-index)", j["llm_req_per_s_1"], "req/s", "peer quoted ~2.2 s/chunk"))
    j = script("eval", ["bench/eval.sh"], 900)
    if j:
        o, p = j["ours"], j["peer"]
        ROWS.append(("eval", "%dk passages x %dk queries, cached emb." % (o["nd"] // 1000, o["nq"] // 1000), o["topk_qps"],
                     "sentence-transformers IR evaluator (torch)", p["st_qps"], "queries/s",
                     "metrics equal: %s" % ("yes" if j["metrics_match"] else "NO")))
        ROWS.append(("eval", "BM25 search + metrics", o["bm25_qps"], "rank_bm25 BM25Okapi", p["bm25_qps"], "queries/s", ""))
    j = script("serve", ["bench/serve.sh"], 900, {"SECONDS_PER_RUN": "3"})
    if j:
        for m in j:
            for r in m["runs"]:
                if r["texts_per_request"] != 1:
                    continue
                s = r["duration_us"] / 1e6
                rps = r["requests"] / s
                ROWS.append(("serve", "%s, 1 text/req, %d conns" % (m["model"][:24], r["conns"]), rps, "-", None, "req/s",
                             "p50 %.1f ms, p99 %.1f ms, errors %d" % (r["p50_us"] / 1e3, r["p99_us"] / 1e3,
                                                                     r["socket_errors"] + r["non2xx"])))
    j = script("finetune", ["bench/finetune.sh"], 1200)
    if j:
        s = j["static"]
        ROWS.append(("finetune", "static model2vec, batch 32, MNRL (CLI)", s["pairs_per_s"], "PyTorch StaticEmbedding",
                     s["torch_pairs_per_s"], "pairs/s", "RSS %.0f vs %.0f MB" % (s["peak_rss_mb"], s["torch_peak_rss_mb"])))
        a = j["adapter"]
        ROWS.append(("finetune", "adapter 64x64, cached embeddings (CLI)", a["pairs_per_s"], "llama-index loop",
                     a["llama_index_loop_pairs_per_s"], "pairs/s", "rerun %.2f s" % a["rerun_s"]))
        b = j.get("bert")
        if isinstance(b, dict):
            ROWS.append(("finetune", "bge-small full, batch 16, 32/128 tok (CLI)", b["pairs_per_s"], "PyTorch best threads",
                         b["torch_pairs_per_s"], "pairs/s", "RSS %.0f vs %.0f MB" % (b["peak_rss_mb"], b["torch_peak_rss_mb"])))


# ---- report ----------------------------------------------------------------------------------
def report():
    R["loadavg_end"] = os.getloadavg()
    R["seconds"] = round(time.time() - T_START, 1)
    R["table"] = [dict(section=s, what=w, embtune=e, peer=pn, peer_value=pv, unit=u,
                       ratio=(e / pv if pv else None), note=n) for s, w, e, pn, pv, u, n in ROWS]
    lines = ["make bench, %s, %s (%s, %d CPUs, OPENBLAS_CORETYPE=%s), load average %.1f at start, %.1f at end, %.0f s" % (
        R["date_utc"], R["cpu"], R["isa"], NPROC, R["openblas_coretype"], R["loadavg_start"][0], R["loadavg_end"][0],
        R["seconds"]), ""]
    hdr = "| %-9s | %-58s | %10s | %-36s | %10s | %-9s | %6s | %s |" % (
        "area", "measure", "embtune", "best peer (same run)", "peer", "unit", "ratio", "notes")
    lines += [hdr, "|" + "|".join("-" * (len(c) + 0) for c in hdr.split("|")[1:-1]) + "|"]
    for t in R["table"]:
        lines.append("| %-9s | %-58s | %10s | %-36s | %10s | %-9s | %6s | %s |" % (
            t["section"], t["what"], "%.4g" % t["embtune"], t["peer"] or "-",
            "%.4g" % t["peer_value"] if t["peer_value"] else "-", t["unit"],
            "%.2fx" % t["ratio"] if t["ratio"] else "-", t["note"]))
    if R["skipped"]:
        lines.append("")
        lines += ["skipped: %s: %s" % kv for kv in R["skipped"].items()]
    text = "\n".join(lines)
    R["table_text"] = text
    log("\n" + text)
    with open(os.path.join(OUT, "bench.json.tmp"), "w") as f:
        json.dump(R, f, indent=1, default=str)
    os.replace(os.path.join(OUT, "bench.json.tmp"), os.path.join(OUT, "bench.json"))
    log("\nwrote bench/out/bench.json")


def main():
    log("make bench: %s, %s, %d CPUs, OPENBLAS_CORETYPE=%s, load average %.1f %.1f %.1f" % (
        R["cpu"], R["isa"], NPROC, R["openblas_coretype"], *R["loadavg_start"]))
    for part, fn in (("peak", bench_peak), ("infer", bench_infer), ("train", bench_train), ("stream", bench_stream),
                     ("scripts", bench_scripts)):
        if want(part):
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                skip(part, "%s: %s" % (type(e).__name__, e))
    report()


if __name__ == "__main__":
    main()
