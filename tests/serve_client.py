#!/usr/bin/env python3
"""serve_client.py - a concurrent client for `embtune serve` tests (stdlib only).

Each worker thread keeps one HTTP/1.1 connection and sends POST /v1/embeddings
requests of 1..4 texts picked from --texts; every reply is checked against the
reference vectors of ITS OWN texts (--ref: `embtune embed` JSONL output, row i
= line i of --texts), float or base64 alternately.

  serve_client.py load  --port P --texts F --ref R [--conns 64] [--requests 2000]
      any failure (non-200, wrong count, wrong vector) -> exit 1
  serve_client.py drain --port P --texts F --ref R --pid PID [--conns 64] [--after 0.5]
      keeps sending until the server goes away; SIGTERMs PID after --after s.
      Every 200 must be correct; other outcomes may only be refused/reset
      connections or 503; at least one reply must complete after the signal
      (requests in flight were drained).
Prints a one-line summary with the max abs error.
"""
import argparse
import base64
import http.client
import json
import os
import random
import signal
import struct
import sys
import threading
import time


def load_ref(texts_path, ref_path):
    with open(texts_path, encoding="utf-8") as f:
        texts = [l.rstrip("\n") for l in f]
    with open(ref_path) as f:
        vecs = [json.loads(l)["embedding"] for l in f]
    assert len(texts) == len(vecs), (len(texts), len(vecs))
    return texts, vecs


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.bad = []
        self.other = {}
        self.max_err = 0.0
        self.ok_after_signal = 0

    def add_other(self, k):
        with self.lock:
            self.other[k] = self.other.get(k, 0) + 1


def check_reply(body, idx, vecs, b64):
    r = json.loads(body)
    data = r["data"]
    if len(data) != len(idx):
        return "got %d embeddings for %d inputs" % (len(data), len(idx)), 0.0
    worst = 0.0
    for k, (d, i) in enumerate(zip(data, idx)):
        if d["index"] != k:
            return "index %d at position %d" % (d["index"], k), 0.0
        e = d["embedding"]
        if b64:
            raw = base64.b64decode(e)
            e = list(struct.unpack("<%df" % (len(raw) // 4), raw))
        want = vecs[i]
        if len(e) != len(want):
            return "dim %d, expected %d" % (len(e), len(want)), 0.0
        err = max(abs(a - b) for a, b in zip(e, want))
        worst = max(worst, err)
        if err > 1e-6:
            return "input %d (text %d) differs by %g" % (k, i, err), err
    if r["usage"]["prompt_tokens"] <= 0:
        return "usage missing", worst
    return None, worst


def worker(wid, a, texts, vecs, st, stop, signaled, n_req):
    rnd = random.Random(wid)
    conn = None
    sent = 0
    while not stop.is_set() and (n_req is None or sent < n_req):
        idx = [rnd.randrange(len(texts)) for _ in range(rnd.randint(1, 4))]
        b64 = rnd.random() < 0.5
        body = json.dumps({"input": [texts[i] for i in idx], "model": "m",
                           "encoding_format": "base64" if b64 else "float"})
        sent += 1
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
            conn.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            status = resp.status
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            if conn:
                conn.close()
            conn = None
            if a.mode == "drain" and signaled.is_set():
                st.add_other(type(e).__name__)
                if isinstance(e, ConnectionRefusedError):
                    return
                continue
            with st.lock:
                st.bad.append("connection error %s: %s" % (type(e).__name__, e))
            return
        if status == 200:
            why, err = check_reply(data, idx, vecs, b64)
            with st.lock:
                st.max_err = max(st.max_err, err)
                if why:
                    st.bad.append(why)
                else:
                    st.ok += 1
                    if signaled.is_set():
                        st.ok_after_signal += 1
        elif status == 503 and a.mode == "drain" and signaled.is_set():
            st.add_other("503")
        else:
            with st.lock:
                st.bad.append("HTTP %d: %s" % (status, data[:200]))
    if conn:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["load", "drain"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--texts", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--after", type=float, default=0.5)
    a = ap.parse_args()
    texts, vecs = load_ref(a.texts, a.ref)
    st, stop, signaled = Stats(), threading.Event(), threading.Event()
    per = None if a.mode == "drain" else (a.requests + a.conns - 1) // a.conns
    ths = [threading.Thread(target=worker, args=(i, a, texts, vecs, st, stop, signaled, per))
           for i in range(a.conns)]
    t0 = time.time()
    for t in ths:
        t.start()
    if a.mode == "drain":
        time.sleep(a.after)
        signaled.set()
        os.kill(a.pid, signal.SIGTERM)
        time.sleep(0.1)
        deadline = time.time() + 60
        for t in ths:
            t.join(max(0.1, deadline - time.time()))
        stop.set()
    for t in ths:
        t.join()
    dt = time.time() - t0
    print("%s: %d replies verified (max abs err %.3g), %d bad, %d after SIGTERM, other outcomes %s, "
          "%.0f req/s over %d connections" % (a.mode, st.ok, st.max_err, len(st.bad),
                                              st.ok_after_signal, st.other, st.ok / dt, a.conns))
    for b in st.bad[:10]:
        print("  BAD:", b)
    if st.bad or st.ok == 0:
        return 1
    if a.mode == "load" and st.ok != per * a.conns:
        print("  expected %d replies" % (per * a.conns))
        return 1
    if a.mode == "drain" and st.ok_after_signal == 0:
        print("  no request completed after SIGTERM: nothing was drained")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
