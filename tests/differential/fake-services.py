# The differential suite's stand-ins for Prometheus and for webhook receivers, one process per
# controller and scenario (tests/differential/run.sh), so that what each controller sent is
# recorded on its own.
#
#   python3 fake-services.py PORT_FILE QUERIES_FILE WEBHOOKS_FILE
#
# Listens on 127.0.0.1:0 and writes the port it got to PORT_FILE.
# * GET or POST /api/v1/query (any path prefix): appends the query to QUERIES_FILE and answers
#   a one-sample vector whose value is always 1 (so Prometheus' own `vector(1)` health query
#   succeeds, a `max: 500` range passes and a `min: 99` range fails).
# * POST to any other path: appends `PATH BODY` (the JSON body with sorted keys, on one line) to
#   WEBHOOKS_FILE and answers 200.
import http.server
import json
import os
import sys
import urllib.parse

PORT_FILE, QUERIES_FILE, WEBHOOKS_FILE = sys.argv[1:4]


def append(path, line):
    with open(path, "a") as f:
        f.write(line.replace("\n", " ") + "\n")


class Handler(http.server.BaseHTTPRequestHandler):
    def answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def query(self, params):
        append(QUERIES_FILE, params.get("query", [""])[0])
        self.answer(200, {
            "status": "success",
            "data": {"resultType": "vector",
                     "result": [{"metric": {}, "value": [1700000000, "1"]}]},
        })

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path.endswith("/api/v1/query"):
            self.query(urllib.parse.parse_qs(url.query))
        else:
            self.answer(404, {"status": "error", "error": "not found"})

    def do_POST(self):
        url = urllib.parse.urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        if url.path.endswith("/api/v1/query"):
            params = urllib.parse.parse_qs(url.query)
            params.update(urllib.parse.parse_qs(raw.decode(errors="replace")))
            self.query(params)
            return
        try:
            body = json.dumps(json.loads(raw), sort_keys=True)
        except ValueError:
            body = raw.decode(errors="replace")
        append(WEBHOOKS_FILE, url.path + " " + body)
        self.answer(200, {})

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.replace(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()
