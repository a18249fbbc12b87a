#!/usr/bin/env python3
"""Test server for the two AWS credential endpoints a container or instance reads (pyenv or
Debian python3; standard library only). Not AWS: it serves what the SDKs expect, on 127.0.0.1.

  ECS container credentials (what AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI point at):
    GET <--relative-uri, default /v2/credentials/dicom-core-task>
        with --auth-token set, the Authorization header must equal it (else 401)
        -> 200 {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "RoleArn"}
  EC2 instance metadata, IMDSv2 only (IMDSv1 requests get 401, as with HttpTokens=required):
    PUT /latest/api/token  (X-aws-ec2-metadata-token-ttl-seconds: 1..21600) -> token
    GET /latest/meta-data/iam/security-credentials/         (X-aws-ec2-metadata-token) -> role
    GET /latest/meta-data/iam/security-credentials/<role>   -> 200 {"Code": "Success",
        "LastUpdated", "Type": "AWS-HMAC", "AccessKeyId", "SecretAccessKey", "Token",
        "Expiration"}
  Expiration is now + --expiry-seconds (ISO 8601 UTC, "2026-11-24T03:00:00Z"), so a short
  expiry makes a client refresh. --creds-file holds one credential object or a list of them
  ({"AccessKeyId", "SecretAccessKey", "Token", "RoleArn"?}); with a list, the n-th credential
  answer hands out entry n mod len (rotation shows that a refresh took the new keys). The file
  is reread when it changes.
  Test control:
    GET  /_count  -> {"ecs": n, "imds_token": n, "imds_role": n, "imds_creds": n,
                      "credentials": n (ecs + imds_creds), "rejected": n, "total": n}
    POST /_fail   {"count": N, "status": 500} the next N credential answers fail with status
    POST /_reset  counters and faults to zero
"""

import argparse
import datetime
import json
import os
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aws_harness_watchdog  # noqa: E402


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.tokens = {}  # token -> expiry time
        self.creds, self.mtime = [], None
        self.reset()

    def reset(self):
        self.counts = {"ecs": 0, "imds_token": 0, "imds_role": 0, "imds_creds": 0,
                       "credentials": 0, "rejected": 0, "total": 0}
        self.fail_count, self.fail_status = 0, 500

    def next_creds(self):
        """Caller holds the lock."""
        mt = os.stat(self.args.creds_file).st_mtime_ns
        if mt != self.mtime:
            with open(self.args.creds_file) as f:
                doc = json.load(f)
            self.creds, self.mtime = (doc if isinstance(doc, list) else [doc]), mt
        c = self.creds[self.counts["credentials"] % len(self.creds)]
        self.counts["credentials"] += 1
        exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            seconds=self.args.expiry_seconds)
        return c, exp.strftime("%Y-%m-%dT%H:%M:%SZ")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "metadata-test-server"
    st = None

    def log_message(self, fmt, *a):
        if self.st.args.verbose:
            sys.stderr.write("metadata_server: " + (fmt % a) + "\n")

    def reply(self, status, body, ctype="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def reject(self, status, text):
        with self.st.lock:
            self.st.counts["rejected"] += 1
        self.reply(status, text)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(n, 65536)) if n else b""

    def injected_failure(self):
        with self.st.lock:
            if self.st.fail_count > 0:
                self.st.fail_count -= 1
                return self.st.fail_status
        return None

    def do_PUT(self):
        path = urlsplit(self.path).path
        self.body()
        with self.st.lock:
            self.st.counts["total"] += 1
        if path != "/latest/api/token":
            return self.reject(404, "Not Found")
        if self.headers.get("X-Forwarded-For"):
            return self.reject(403, "Forbidden")  # IMDS refuses proxied token requests
        try:
            ttl = int(self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", ""))
        except ValueError:
            return self.reject(400, "Bad Request")
        if not 1 <= ttl <= 21600:
            return self.reject(400, "Bad Request")
        tok = secrets.token_urlsafe(32)
        with self.st.lock:
            self.st.tokens[tok] = time.time() + ttl
            self.st.counts["imds_token"] += 1
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))
        self.send_header("Content-Length", str(len(tok)))
        self.end_headers()
        self.wfile.write(tok.encode())

    def do_POST(self):
        path = urlsplit(self.path).path
        raw = self.body()
        if path == "/_fail":
            req = json.loads(raw or b"{}")
            with self.st.lock:
                self.st.fail_count += int(req.get("count", 1))
                self.st.fail_status = int(req.get("status", 500))
            return self.reply(200, '{"ok": true}', "application/json")
        if path == "/_reset":
            with self.st.lock:
                self.st.reset()
            return self.reply(200, '{"ok": true}', "application/json")
        return self.reject(404, "Not Found")

    def do_GET(self):
        st = self.st
        path = urlsplit(self.path).path
        if path == "/_count":
            with st.lock:
                return self.reply(200, json.dumps(st.counts), "application/json")
        with st.lock:
            st.counts["total"] += 1
        if path == st.args.relative_uri:
            if st.args.auth_token and self.headers.get("Authorization") != st.args.auth_token:
                return self.reject(401, "Unauthorized")
            fail = self.injected_failure()
            if fail:
                return self.reject(fail, "injected failure")
            with st.lock:
                st.counts["ecs"] += 1
                c, exp = st.next_creds()
            doc = {"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                   "Token": c.get("Token", ""), "Expiration": exp}
            if c.get("RoleArn"):
                doc["RoleArn"] = c["RoleArn"]
            return self.reply(200, json.dumps(doc), "application/json")
        prefix = "/latest/meta-data/iam/security-credentials/"
        if path.startswith("/latest/"):
            tok = self.headers.get("X-aws-ec2-metadata-token")
            with st.lock:
                ok = tok is not None and st.tokens.get(tok, 0) > time.time()
            if not ok:
                return self.reject(401, "Unauthorized")
            if path in (prefix, prefix[:-1]):
                with st.lock:
                    st.counts["imds_role"] += 1
                return self.reply(200, st.args.role_name)
            if path == prefix + st.args.role_name:
                fail = self.injected_failure()
                if fail:
                    return self.reject(fail, "injected failure")
                with st.lock:
                    st.counts["imds_creds"] += 1
                    c, exp = st.next_creds()
                now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                doc = {"Code": "Success", "LastUpdated": now, "Type": "AWS-HMAC",
                       "AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"],
                       "Token": c.get("Token", ""), "Expiration": exp}
                return self.reply(200, json.dumps(doc), "text/plain")
        return self.reject(404, "Not Found")


def main():
    ap = argparse.ArgumentParser(description="ECS credentials + IMDSv2 test server")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--creds-file", required=True)
    ap.add_argument("--expiry-seconds", type=int, default=3600)
    ap.add_argument("--relative-uri", default="/v2/credentials/dicom-core-task")
    ap.add_argument("--auth-token", default="")
    ap.add_argument("--role-name", default="dicom-core-task")
    ap.add_argument("--watch-dir", help="exit once this directory is gone")
    ap.add_argument("--max-lifetime", type=float, default=0, help="exit after this many s")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    aws_harness_watchdog.start(args.watch_dir, args.max_lifetime)
    Handler.st = State(args)
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(f"{srv.server_address[1]}\n")
        os.rename(args.port_file + ".tmp", args.port_file)
    srv.serve_forever(poll_interval=0.5)


if __name__ == "__main__":
    main()
