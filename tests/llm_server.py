#!/usr/bin/env python3
"""llm_server.py - a local OpenAI-compatible chat-completions server for tests and bench.

It answers like real LLM servers do (numbered lists, preambles, Markdown, <think>
reasoning, too few or too many questions, commentary) and injects faults. Every
answer is a function of (prompt, X-Embtune-Attempt header) only, so a client that
is killed and restarted gets the same answers as one that ran through.

  llm_server.py --port-file F [--latency S] [--scenario clean|mixed|bench]
                [--key KEY] [--max-seconds N] [--record FILE]

Binds 127.0.0.1 on a free port and writes the port to F. GET /stats returns
{"requests", "max_in_flight", "bad_auth", "by_fault"}. Stops by itself after
--max-seconds (default 600) or on SIGTERM. --record appends every POST body, as one
JSON line, to FILE (tests check what the client sent).

Scenario "mixed": the fault depends on a hash of the prompt (h % 12) and the attempt:
  0: 429 + Retry-After: 1 (seconds) on attempt 0     1: 429 + Retry-After as an HTTP date
  2: 500 on attempts 0 and 1                          3: reply slower than the client timeout
  4: truncated JSON (Content-Length cut short)        5: 200 with truncated JSON that fits its length
  6: connection dropped without a reply               7: 502 HTML error page
  8: always 500 (the chunk ends in the failure list)  9: one question too few (a follow-up is needed)
  10: reasoning + preamble + Markdown + commentary    11: too many questions, duplicates, the key echoed
"""
import argparse
import email.utils
import hashlib
import json
import os
import re
import signal
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

LOCK = threading.Lock()
STATS = {"requests": 0, "in_flight": 0, "max_in_flight": 0, "bad_auth": 0, "by_fault": {}}
ARGS = None

WORDS_RE = re.compile(r"[A-Za-z][A-Za-z0-9._]{3,}")


def context_of(prompt):
    m = re.search(r"-{5,}\n(.*?)\n-{5,}", prompt, re.S)
    return m.group(1) if m else prompt


def questions_for(prompt, attempt, n):
    """Deterministic questions that name words of the context without copying it."""
    ctx = context_of(prompt)
    words = []
    for w in WORDS_RE.findall(ctx):
        if w.lower() not in words:
            words.append(w.lower())
    if not words:
        words = ["this topic"]
    seed = int(hashlib.sha256((prompt + "#" + str(attempt)).encode()).hexdigest(), 16)
    forms = ["What does {a} mean in relation to {b}?", "How is {a} used together with {b}?",
             "Why would someone choose {a} over {b}?", "Which role does {a} play for {b}?",
             "When should {a} be applied to {b}?", "Where does {a} appear alongside {b}?"]
    out = []
    for k in range(n):
        a = words[(seed >> (8 * k)) % len(words)]
        b = words[(seed >> (8 * k + 5)) % len(words)]
        out.append(forms[(seed >> (3 * k)) % len(forms)].format(a=a, b=b))
    return out


def asked_n(prompt):
    m = re.search(r"Write (\d+) more", prompt)
    if m:
        return int(m.group(1))
    m = re.search(r"write (\d+) questions", prompt)
    return int(m.group(1)) if m else 2


def completion(content, reasoning=None, usage=True):
    msg = {"role": "assistant", "content": content}
    if reasoning is not None:
        msg["reasoning_content"] = reasoning
    body = {"id": "chatcmpl-test", "object": "chat.completion", "created": 1700000000, "model": "test-model",
            "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}]}
    if usage:
        body["usage"] = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
    return json.dumps(body).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet; never logs headers
        pass

    def send_body(self, code, body, ctype="application/json", extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/stats"):
            with LOCK:
                self.send_body(200, json.dumps(STATS).encode())
        elif self.path.rstrip("/").endswith("/models"):
            self.send_body(200, json.dumps({"object": "list", "data": [{"id": "test-model", "object": "model"}]}).encode())
        else:
            self.send_body(404, b'{"error": {"message": "not found"}}')

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        with LOCK:
            if ARGS.record:
                try:
                    line = json.dumps(json.loads(raw))
                except ValueError:
                    line = json.dumps({"unparsable": raw.decode("utf-8", "replace")})
                with open(ARGS.record, "a") as f:
                    f.write(line + "\n")
            STATS["requests"] += 1
            STATS["in_flight"] += 1
            STATS["max_in_flight"] = max(STATS["max_in_flight"], STATS["in_flight"])
        try:
            self.handle_chat(raw)
        finally:
            with LOCK:
                STATS["in_flight"] -= 1

    def count(self, fault):
        with LOCK:
            STATS["by_fault"][fault] = STATS["by_fault"].get(fault, 0) + 1

    def handle_chat(self, raw):
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self.send_body(404, b'{"error": {"message": "unknown endpoint"}}')
        if ARGS.key and self.headers.get("Authorization") != "Bearer " + ARGS.key:
            with LOCK:
                STATS["bad_auth"] += 1
            return self.send_body(401, json.dumps({"error": {"message": "Incorrect API key provided: %s" %
                                                             self.headers.get("Authorization", "")}}).encode())
        try:
            req = json.loads(raw)
            prompt = req["messages"][-1]["content"]
        except Exception:
            return self.send_body(400, b'{"error": {"message": "bad request"}}')
        attempt = int(self.headers.get("X-Embtune-Attempt", "0"))
        if ARGS.latency > 0:
            time.sleep(ARGS.latency)
        want = asked_n(prompt)
        h = int(hashlib.sha256(context_of(prompt).encode()).hexdigest(), 16)
        follow = "Write " in prompt and "more" in prompt
        fault = h % 12 if ARGS.scenario == "mixed" else -1
        qs = questions_for(prompt, attempt, want + 3)
        if fault == 0 and attempt == 0:
            self.count("429")
            return self.send_body(429, b'{"error": {"message": "rate limited"}}', extra={"Retry-After": "1"})
        if fault == 1 and attempt == 0:
            self.count("429-date")
            when = email.utils.formatdate(time.time() + 1, usegmt=True)
            return self.send_body(429, b'{"error": {"message": "slow down"}}', extra={"Retry-After": when})
        if fault == 2 and attempt <= 1:
            self.count("500")
            return self.send_body(500, b'{"error": {"message": "internal error"}}')
        if fault == 3 and attempt == 0:
            self.count("slow")
            time.sleep(ARGS.slow)
            return self.send_body(200, completion("\n".join(qs[:want])))
        if fault == 4 and attempt == 0:
            self.count("cut")
            body = completion("\n".join(qs[:want]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if fault == 5 and attempt == 0:
            self.count("truncated-json")
            body = completion("\n".join(qs[:want]))
            return self.send_body(200, body[: len(body) // 2])
        if fault == 6 and attempt == 0:
            self.count("drop")
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass
            return
        if fault == 7 and attempt == 0:
            self.count("html")
            return self.send_body(502, b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway"
                                       b"</h1><hr>nginx</body></html>", ctype="text/html")
        if fault == 8:
            self.count("always-500")
            return self.send_body(500, b'{"error": {"message": "the model crashed"}}')
        if fault == 9 and not follow:
            self.count("too-few")
            return self.send_body(200, completion("Here is a question:\n\n1. " + qs[0]))
        if fault == 10:
            self.count("chatty")
            lines = ["Sure! Here are %d questions based on the context:" % want, ""]
            lines += ["**Question %d:** %s" % (k + 1, q) for k, q in enumerate(qs[:want])]
            lines += ["", "These questions test understanding of the main ideas. Let me know if you need more!"]
            return self.send_body(200, completion("<think>The user wants questions. Is this a question?</think>\n" +
                                                  "\n".join(lines), reasoning="thinking...", usage=False))
        if fault == 11:
            self.count("too-many")
            lines = ["Here are the questions:"] + ["- %s" % q for q in qs[:want]] + ["- %s" % qs[0].upper()]
            lines += ["- %s" % q for q in qs[want:]] + ["", "(Your API key %s was used for this.)" % ARGS.key]
            return self.send_body(200, completion("\n".join(lines)))
        self.count("clean")
        return self.send_body(200, completion("\n".join("%d. %s" % (k + 1, q) for k, q in enumerate(qs[:want]))))


class Server(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # a client that timed out or hung up: not an error of the server


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--slow", type=float, default=3.0, help="delay of the slow-reply fault")
    p.add_argument("--scenario", default="mixed", choices=["clean", "mixed", "bench"])
    p.add_argument("--key", default=os.environ.get("LLM_SERVER_KEY", ""))
    p.add_argument("--max-seconds", type=float, default=600)
    p.add_argument("--record", default="")
    ARGS = p.parse_args()
    if ARGS.scenario == "bench":
        ARGS.scenario = "clean"
    srv = Server(("127.0.0.1", 0), Handler)
    tmp = ARGS.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(tmp, ARGS.port_file)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    t = threading.Timer(ARGS.max_seconds, lambda: os._exit(0))
    t.daemon = True
    t.start()
    srv.serve_forever()


if __name__ == "__main__":
    main()
