#!/usr/bin/env python3
"""A ClamAV-style database mirror for tests, on 127.0.0.1 (or on an address
of a network namespace the test made).

Usage: mirror.py ROOT PORTFILE LOGFILE [PORT [HOST]]

Serves the plain files of ROOT (no subdirectories, no dot files) the way the
CDN does for freshclam: honours "Range: bytes=A-B" (206) and
"If-Modified-Since" (304 when the file is not newer). Binds PORT (default: a
free one) on HOST (default 127.0.0.1) and writes it to PORTFILE once listening. Appends one line per request to
LOGFILE: "GET /test.cvd 206 bytes=0-511".

When ROOT/.status exists, every request is answered with the status it
holds instead ("429 120": 429 with Retry-After: 120; "429 -": no
Retry-After; "403 -"), so a test can switch the mirror to rate limiting
while it runs. A third word N serves the first N requests normally ("429 120
2": rate limited from the third request on, in the middle of an update).
"stall S" holds every request S seconds without sending a byte, then closes
the connection (logged with status 0): a mirror that hangs, for shutdown
tests. The server answers one request at a time, so it stalls everyone.
"""
import email.utils
import http.server
import os
import re
import sys
import time

ROOT, PORTFILE, LOGFILE = sys.argv[1:4]
PORT = int(sys.argv[4]) if len(sys.argv) > 4 else 0
HOST = sys.argv[5] if len(sys.argv) > 5 else "127.0.0.1"


SERVED = [0]


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _log(self, status):
        with open(LOGFILE, "a") as log:
            log.write("%s %s %d %s %s\n" % (self.command, self.path, status,
                                            self.headers.get("Range", "-"),
                                            self.client_address[0]))

    def _answer(self, status, body=b"", headers=()):
        self._log(status)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(body)

    def _forced(self):
        try:
            with open(os.path.join(ROOT, ".status")) as f:
                words = f.read().split()
        except FileNotFoundError:
            return False
        SERVED[0] += 1
        if len(words) > 2 and SERVED[0] <= int(words[2]):
            return False
        if words[0] == "stall":
            self._log(0)
            time.sleep(float(words[1]) if len(words) > 1 else 3600)
            self.close_connection = True
            return True
        headers = [("Retry-After", words[1])] if words[1:2] != ["-"] else []
        self._answer(int(words[0]), b"", headers)
        return True

    def do_GET(self):
        if self._forced():
            return
        name = self.path.lstrip("/")
        path = os.path.join(ROOT, name)
        if "/" in name or name.startswith(".") or not os.path.isfile(path):
            self._answer(404)
            return
        mtime = int(os.path.getmtime(path))
        ims = self.headers.get("If-Modified-Since")
        if ims:
            since = email.utils.parsedate_to_datetime(ims).timestamp()
            if mtime <= since:
                self._answer(304)
                return
        with open(path, "rb") as f:
            data = f.read()
        lm = [("Last-Modified", email.utils.formatdate(mtime, usegmt=True))]
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if m:
            first = int(m.group(1))
            last = int(m.group(2)) if m.group(2) else len(data) - 1
            last = min(last, len(data) - 1)
            rng = "bytes %d-%d/%d" % (first, last, len(data))
            self._answer(206, data[first:last + 1],
                         lm + [("Content-Range", rng)])
            return
        self._answer(200, data, lm)

    do_HEAD = do_GET


server = http.server.HTTPServer((HOST, PORT), Handler)
tmp = PORTFILE + ".tmp"
with open(tmp, "w") as f:
    f.write("%d\n" % server.server_address[1])
os.rename(tmp, PORTFILE)
server.serve_forever()
