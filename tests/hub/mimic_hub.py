#!/usr/bin/env python3
"""A local stand-in for the Hugging Face hub's HTTP layout, for tests (127.0.0.1 only).

Serves REPOS/<org>/<name>/<file> as
  GET  /api/models/<org>/<name>[/revision/<rev>]   {"id", "sha", "siblings": [{rfilename, size, blobId, lfs}]}
  HEAD|GET /<org>/<name>/resolve/<rev>/<file>       .nemo files as LFS: 302 to /cdn/<sha256> with
                                                    X-Linked-Etag, X-Linked-Size, X-Repo-Commit;
                                                    other files directly with ETag = git blob sha1
  GET  /cdn/<sha256>                                the bytes, with Range support
Error behaviour follows the real hub: unknown repositories answer 401 to anonymous clients and 404
to authenticated ones (X-Error-Code: RepoNotFound), unknown files 404 EntryNotFound.
Options make it misbehave on purpose: --cut-once BYTES, --bad-sha, --token, --delay-ms.
"""
import argparse
import hashlib
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"

ap = argparse.ArgumentParser()
ap.add_argument("--repos", required=True)
ap.add_argument("--port-file", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--cut-once", type=int, default=0, help="first CDN GET sends only this many bytes, then closes")
ap.add_argument("--bad-sha", action="store_true", help="report a wrong sha256 everywhere")
ap.add_argument("--token", default="", help="require Authorization: Bearer TOKEN")
ap.add_argument("--delay-ms", type=int, default=0, help="pause per 64 KiB of CDN body")
ap.add_argument("--fail-once", type=int, default=0, help="first CDN GET answers this HTTP status (e.g. 503)")
args = ap.parse_args()

files = {}  # (repo, name) -> dict
blobs = {}  # sha256 -> path
for org in sorted(os.listdir(args.repos)):
    for name in sorted(os.listdir(os.path.join(args.repos, org))):
        d = os.path.join(args.repos, org, name)
        for f in sorted(os.listdir(d)):
            p = os.path.join(d, f)
            data = open(p, "rb").read()
            sha = hashlib.sha256(data).hexdigest()
            git = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            files[(org + "/" + name, f)] = {"path": p, "size": len(data), "sha256": sha, "git": git,
                                            "lfs": f.endswith(".nemo")}
            blobs[sha] = p
lock = threading.Lock()
state = {"cut_done": False, "fail_done": False}
WRONG = "f" * 64


def log(line):
    with lock:
        with open(args.log, "a") as f:
            f.write(line + "\n")


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def authed(self):
        return self.headers.get("Authorization", "") == "Bearer " + args.token if args.token else True

    def has_auth(self):
        return bool(self.headers.get("Authorization"))

    def err(self, code, xcode, msg):
        body = json.dumps({"error": msg}).encode()
        self.send_response(code)
        if xcode:
            self.send_header("X-Error-Code", xcode)
        self.send_header("X-Error-Message", msg)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def repo_known(self, repo):
        return any(r == repo for (r, _) in files)

    def do_HEAD(self):
        self.handle_any()

    def do_GET(self):
        self.handle_any()

    def handle_any(self):
        path = self.path.split("?")[0]
        via_proxy = bool(re.match(r"^https?://", path))
        if via_proxy:  # absolute-form request: we are being used as the proxy
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        log("%s %s range=%s auth=%s%s" % (self.command, path, self.headers.get("Range", "-"),
                                          "yes" if self.has_auth() else "no", " via-proxy" if via_proxy else ""))
        if path.startswith("/cdn/"):
            return self.cdn(path[5:])
        if args.token and not self.authed():
            if self.has_auth():
                return self.err(401, "", "Invalid credentials in Authorization header")
            return self.err(401, "RepoNotFound", "Repository Not Found")
        m = re.match(r"^/api/models/([^/]+/[^/]+)(?:/revision/([^/]+))?$", path)
        if m:
            repo, rev = m.group(1), m.group(2) or "main"
            if not self.repo_known(repo):
                return self.err(404 if self.has_auth() else 401, "RepoNotFound", "Repository Not Found")
            if rev not in ("main", COMMIT):
                return self.err(404, "RevisionNotFound", "Invalid rev id: " + rev)
            sib = []
            for (r, f), info in files.items():
                if r != repo:
                    continue
                e = {"rfilename": f, "size": info["size"], "blobId": info["git"]}
                if info["lfs"]:
                    e["lfs"] = {"sha256": WRONG if args.bad_sha else info["sha256"], "size": info["size"],
                                "pointerSize": 134}
                sib.append(e)
            body = json.dumps({"id": repo, "modelId": repo, "sha": COMMIT, "siblings": sib}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(body)
            return
        m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
        if m:
            repo, rev, f = m.groups()
            if not self.repo_known(repo):
                return self.err(404 if self.has_auth() else 401, "RepoNotFound", "Repository Not Found")
            if rev not in ("main", COMMIT):
                return self.err(404, "RevisionNotFound", "Invalid rev id: " + rev)
            info = files.get((repo, f))
            if not info:
                return self.err(404, "EntryNotFound", "Entry not found")
            if info["lfs"]:
                sha = WRONG if args.bad_sha else info["sha256"]
                self.send_response(302)
                # another host name, as the real CDN is: clients must not send the token there
                self.send_header("Location", "http://localhost:%d/cdn/%s" % (self.server.server_port, info["sha256"]))
                self.send_header("X-Linked-Etag", '"%s"' % sha)
                self.send_header("X-Linked-Size", str(info["size"]))
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", 'W/"%s"' % info["git"])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = open(info["path"], "rb").read()
            self.send_response(200)
            self.send_header("ETag", '"%s"' % info["git"])
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(data)
            return
        self.err(404, "", "not found")

    def cdn(self, sha):
        with lock:
            fail = args.fail_once and not state["fail_done"]
            state["fail_done"] = True
        if fail:
            return self.err(args.fail_once, "", "simulated CDN failure")
        p = blobs.get(sha)
        if not p:
            return self.err(404, "", "no such blob")
        data = open(p, "rb").read()
        start = 0
        rng = self.headers.get("Range")
        if rng:
            m = re.match(r"bytes=(\d+)-$", rng)
            if not m or int(m.group(1)) >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(data))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = int(m.group(1))
            self.send_response(206)
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", '"%s"' % sha)
        self.end_headers()
        if self.command == "HEAD":
            return
        body = data[start:]
        cut = None
        with lock:
            if args.cut_once and not state["cut_done"]:
                state["cut_done"] = True
                cut = args.cut_once
        if cut is not None:
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        step = 65536
        for i in range(0, len(body), step):
            self.wfile.write(body[i:i + step])
            if args.delay_ms:
                self.wfile.flush()
                threading.Event().wait(args.delay_ms / 1000.0)


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
srv.daemon_threads = True
tmp = args.port_file + ".tmp"
with open(tmp, "w") as f:
    f.write(str(srv.server_port))
os.rename(tmp, args.port_file)
srv.serve_forever()
