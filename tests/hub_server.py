#!/usr/bin/env python3
"""hub_server.py - a local stand-in for the Hugging Face Hub, for tests.

Serves model repositories in the hub's URL layout, with the hub's headers:
  GET  /api/models/{org}/{name}/revision/{rev}  -> {"id", "sha", "siblings": [{"rfilename"}]}
  HEAD|GET /{org}/{name}/resolve/{rev}/{path}   -> regular files: 200, ETag = git blob sha1;
        LFS files (*.safetensors): 302 to http://localhost:PORT/cdn/<sha256> (another host
        name than 127.0.0.1, so clients must not forward Authorization), with X-Linked-Etag
        = sha256 and X-Linked-Size; always X-Repo-Commit.
  GET  /cdn/<sha256>                             -> the bytes, with Range support.
Errors carry X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo)
and X-Error-Message like the hub.

Repositories (built from --fixture, a model directory):
  test-org/tiny        every fixture file (+ README.md, LICENSE), public
  test-org/private     same files; 401 RepoNotFound unless "Authorization: Bearer --token"
  test-org/gated       same files; 401 GatedRepo without a token, 403 GatedRepo with a wrong one
  test-org/layout      sharded weights (index + 2 shards), modules.json, 1_Pooling/config.json,
                       and files a client must skip (pytorch_model.bin, onnx/model.onnx, README.md)
  test-org/noweights   config.json + pytorch_model.bin only
  test-org/old-name    renamed: 307 with a relative Location to test-org/tiny
Revisions: "main", tag "v1.0" and the commit id itself.

Fault injection (POST /_fault with a JSON object; each fault fires `times` times):
  {"kind": "drop", "file": F, "after": N}     send N body bytes of F then close the socket
  {"kind": "corrupt", "file": F}              flip one byte of F (headers stay right)
  {"kind": "status", "match": S, "code": C}   answer C to requests whose path contains S
  {"kind": "ignore_range", "file": F}         answer 200 + whole file to a Range request
POST /_reset clears faults and the log. GET /_log returns the request log as JSON lines:
  {"method", "path", "range", "auth", "host", "status", "sent"}.

usage: hub_server.py --fixture DIR --port-file FILE [--token TOKEN]
The port is written to --port-file once the server listens on 127.0.0.1.
"""
import argparse
import hashlib
import json
import os
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LOCK = threading.Lock()
LOG = []
FAULTS = []


def git_sha1(data):
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Repo:
    def __init__(self, name, files, lfs=lambda f: f.endswith(".safetensors"), auth=None):
        self.name = name
        self.files = files  # {path: bytes}
        self.lfs = lfs
        self.auth = auth  # None, "private", "gated"
        h = hashlib.sha1(name.encode())
        for f in sorted(files):
            h.update(f.encode() + b"\0" + hashlib.sha256(files[f]).digest())
        self.commit = h.hexdigest()

    def etag(self, f):
        d = self.files[f]
        return hashlib.sha256(d).hexdigest() if self.lfs(f) else git_sha1(d)


def split_safetensors(data):
    """Splits a safetensors file into two valid files, tensor by tensor."""
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    meta = header.pop("__metadata__", None)
    names = sorted(header)
    parts = [names[: max(1, len(names) // 2)], names[max(1, len(names) // 2):]]
    out = []
    for part in parts:
        h, chunks, off = {}, [], 0
        for t in part:
            s, e = header[t]["data_offsets"]
            h[t] = dict(header[t], data_offsets=[off, off + e - s])
            chunks.append(body[s:e])
            off += e - s
        if meta:
            h["__metadata__"] = meta
        hb = json.dumps(h).encode()
        hb += b" " * ((8 - len(hb) % 8) % 8)
        out.append((part, struct.pack("<Q", len(hb)) + hb + b"".join(chunks)))
    return out


def build_repos(fixture):
    base = {}
    for f in sorted(os.listdir(fixture)):
        p = os.path.join(fixture, f)
        if os.path.isfile(p):
            with open(p, "rb") as fh:
                base[f] = fh.read()
    base.setdefault("README.md", b"# tiny\n")
    repos = {
        "test-org/tiny": Repo("test-org/tiny", dict(base)),
        "test-org/private": Repo("test-org/private", dict(base), auth="private"),
        "test-org/gated": Repo("test-org/gated", dict(base), auth="gated"),
    }
    layout = {k: v for k, v in base.items() if k != "model.safetensors"}
    shards = split_safetensors(base["model.safetensors"])
    weight_map = {}
    for i, (names, blob) in enumerate(shards):
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
        layout[fn] = blob
        for t in names:
            weight_map[t] = fn
    layout["model.safetensors.index.json"] = json.dumps(
        {"metadata": {"total_size": sum(len(b) for _, b in shards)}, "weight_map": weight_map},
        indent=2).encode()
    layout["1_Pooling/config.json"] = b'{"word_embedding_dimension": 64, "pooling_mode_mean_tokens": true}\n'
    layout["pytorch_model.bin"] = b"\x80\x02not really a pickle" * 100
    layout["onnx/model.onnx"] = b"onnx" * 100
    layout[".gitattributes"] = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    repos["test-org/layout"] = Repo("test-org/layout", layout)
    repos["test-org/noweights"] = Repo("test-org/noweights", {
        "config.json": base["config.json"], "pytorch_model.bin": b"x" * 1000})
    return repos


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hub_server"

    def log_message(self, *a):
        pass

    # -- helpers -----------------------------------------------------------------------
    def _fault(self, kind, path):
        with LOCK:
            for f in FAULTS:
                if f["kind"] != kind or f.get("times", 1) <= 0:
                    continue
                key = f.get("file") or f.get("match") or ""
                if key and key not in path:
                    continue
                f["times"] = f.get("times", 1) - 1
                return f
        return None

    def _log(self, status, sent=0):
        if self.path.startswith("/_"):
            return
        with LOCK:
            LOG.append({"method": self.command, "path": self.path,
                        "range": self.headers.get("Range"),
                        "auth": self.headers.get("Authorization") is not None,
                        "auth_ok": self.headers.get("Authorization") == "Bearer " + self.server.token,
                        "host": self.headers.get("Host"), "status": status, "sent": sent})

    def _reply(self, code, body=b"", headers=None, ctype="application/json"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._log(code, len(body))

    def _error(self, code, xcode, msg):
        self._reply(code, json.dumps({"error": msg}),
                    {"X-Error-Code": xcode, "X-Error-Message": msg} if xcode else {"X-Error-Message": msg})

    def _auth(self, repo):
        """None if allowed, else sends the hub's error."""
        got = self.headers.get("Authorization")
        ok = got == "Bearer " + self.server.token
        if repo.auth == "private" and not ok:
            msg = "Invalid credentials in Authorization header" if got else "Repository not found"
            self._error(401, "RepoNotFound", msg)
            return False
        if repo.auth == "gated" and not ok:
            if got:
                self._error(403, "GatedRepo", "Access to model %s is restricted and you are not in "
                            "the authorized list." % repo.name)
            else:
                self._error(401, "GatedRepo", "Access to model %s is restricted. You must have "
                            "access to it and be authenticated to access it." % repo.name)
            return False
        return True

    def _send_bytes(self, data, extra=None, path=""):
        """Sends data (or a Range of it), applying drop/corrupt/ignore_range faults."""
        total = len(data)
        rng = self.headers.get("Range")
        start = 0
        if rng and not (self.command == "GET" and self._fault("ignore_range", path)):
            try:
                unit, spec = rng.split("=", 1)
                s, e = spec.split("-", 1)
                start = int(s)
                assert unit == "bytes" and e == ""
            except Exception:
                return self._reply(400, "bad range")
            if start >= total:
                return self._reply(416, b"", {"Content-Range": "bytes */%d" % total})
        if self.command == "GET" and self._fault("corrupt", path):
            data = bytearray(data)
            data[total // 2] ^= 0x5A
            data = bytes(data)
        body = data[start:]
        self.send_response(206 if start else 200)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        if start:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, total - 1, total))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            self._log(206 if start else 200, 0)
            return
        drop = self._fault("drop", path)
        if drop:
            n = max(0, min(len(body), drop.get("after", 0)))
            self.wfile.write(body[:n])
            self.wfile.flush()
            self._log(206 if start else 200, n)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self.wfile.write(body)
        self._log(206 if start else 200, len(body))

    # -- routes ------------------------------------------------------------------------
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path == "/_fault":
            with LOCK:
                FAULTS.append(json.loads(body))
            return self._reply(200, "{}")
        if self.path == "/_reset":
            with LOCK:
                FAULTS.clear()
                LOG.clear()
            return self._reply(200, "{}")
        self._reply(404, "{}")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/_log":
            with LOCK:
                data = "".join(json.dumps(e) + "\n" for e in LOG)
            body = data.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        f = self._fault("status", path)
        if f:
            return self._error(f["code"], None, "injected error %d" % f["code"])
        parts = path.split("/")
        repos = self.server.repos
        if path.startswith("/cdn/"):
            sha = parts[2] if len(parts) > 2 else ""
            blob = self.server.blobs.get(sha)
            if blob is None:
                return self._reply(404, "no such blob")
            return self._send_bytes(blob[1], {"ETag": '"%s"' % sha}, path=blob[0])
        if path.startswith("/api/models/") and len(parts) >= 7 and parts[5] == "revision":
            name = parts[3] + "/" + parts[4]
            rev = unquote("/".join(parts[6:]))
            if name == "test-org/old-name":
                return self._reply(307, "", {"Location": path.replace("old-name", "tiny")})
            repo = repos.get(name)
            if repo is None:
                return self._error(401 if not self.headers.get("Authorization") else 404,
                                   "RepoNotFound", "Repository not found")
            if not self._auth(repo):
                return
            if rev not in ("main", "v1.0", repo.commit):
                return self._error(404, "RevisionNotFound", "Invalid rev id: %s" % rev)
            info = {"id": name, "modelId": name, "sha": repo.commit,
                    "siblings": [{"rfilename": f} for f in sorted(repo.files)]}
            return self._reply(200, json.dumps(info))
        if len(parts) >= 6 and parts[3] == "resolve":
            name = parts[1] + "/" + parts[2]
            rev = unquote(parts[4])
            fpath = unquote("/".join(parts[5:]))
            if name == "test-org/old-name":
                return self._reply(307, "", {"Location": path.replace("old-name", "tiny")})
            repo = repos.get(name)
            if repo is None:
                return self._error(401 if not self.headers.get("Authorization") else 404,
                                   "RepoNotFound", "Repository not found")
            if not self._auth(repo):
                return
            if rev not in ("main", "v1.0", repo.commit):
                return self._error(404, "RevisionNotFound", "Invalid rev id: %s" % rev)
            if fpath not in repo.files:
                return self._error(404, "EntryNotFound", "Entry not found")
            data = repo.files[fpath]
            hdr = {"X-Repo-Commit": repo.commit}
            if repo.lfs(fpath):
                sha = hashlib.sha256(data).hexdigest()
                hdr.update({"X-Linked-Etag": '"%s"' % sha, "X-Linked-Size": str(len(data)),
                            "ETag": '"%s"' % git_sha1(b"version lfs pointer " + sha.encode()),
                            "Location": "http://localhost:%d/cdn/%s" % (self.server.server_port, sha)})
                return self._reply(302, "", hdr)
            hdr["ETag"] = '"%s"' % git_sha1(data)
            return self._send_bytes(data, hdr, path=fpath)
        self._reply(404, "{}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--token", default="hf_test_token_do_not_print")
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.token = a.token
    srv.repos = build_repos(a.fixture)
    srv.blobs = {}
    for r in srv.repos.values():
        for f, d in r.files.items():
            if r.lfs(f):
                srv.blobs[hashlib.sha256(d).hexdigest()] = (f, d)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as fh:
        fh.write("%d\n" % srv.server_port)
    os.rename(tmp, a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
