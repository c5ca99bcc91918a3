"""A webhook receiver for the service tests, on 127.0.0.1 only.
webhook_receiver.py PORT_FILE LOG_FILE SECRET_FILE FAIL_FIRST
Answers 500 to the first FAIL_FIRST deliveries, then 200. Logs one JSON line per delivery with the
parsed body and whether X-Canary-Signature matches HMAC-SHA256(secret, "<timestamp>.<body>")."""
import hashlib, hmac, http.server, json, sys

port_file, log_file, secret_file, fail_first = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
count = 0

class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        secret = open(secret_file).read().strip().encode()
        ts = self.headers.get("X-Canary-Timestamp", "")
        want = "sha256=" + hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        count += 1
        with open(log_file, "a") as f:
            f.write(json.dumps({"n": count, "valid": hmac.compare_digest(want, self.headers.get("X-Canary-Signature", "")),
                                "body": json.loads(body)}) + "\n")
        self.send_response(500 if count <= fail_first else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass

srv = http.server.HTTPServer(("127.0.0.1", 0), H)
with open(port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
import os
os.rename(port_file + ".tmp", port_file)
srv.serve_forever()
