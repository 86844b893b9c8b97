#!/usr/bin/env python3
"""Upstream test server for the proxy's integration tests (standard library only).

Usage: python3 tests/backend.py --port P --name NAME [--port-file F] [--host H] [--status CODE]

--status CODE makes every request but /count and /last answer CODE (a failing endpoint).

Port 0 picks a free port; the bound port is written to --port-file (atomically,
so a reader never sees a partial file) and the server then serves until killed
(SIGTERM or SIGINT end it cleanly). HTTP/1.1 with keep-alive, one daemon thread
per connection. Every response carries `x-backend: NAME`. Any method is
accepted on every path; HEAD gets the GET's head without its body. Request
bodies (Content-Length or chunked) are always read, so keep-alive stays in
step.

  /                 200 "NAME\\n"
  /headers          200, "path: <raw target>", "method: <M>", "peer-port: <the client's port>"
                    (tells connections apart), then the request's
                    header fields as "name: value" lines (names lowercased, in order)
  /status/CODE      that status (200..599), body "NAME CODE\\n" (none for 204/304)
  /delay/MS         sleeps MS ms, then 200 "NAME\\n"
  /echo             200 with the request body and its Content-Type
  /reset            status line, Content-Length: 100000, 10 bytes, then the socket
                    closes (add ?rst=1 to close with a TCP RST instead of a FIN)
  /close            closes the connection without any response
  /count            200 "N\\n": requests served so far, /count and /last excluded
  /last             200, the previous request (not /count or /last): "METHOD target", its
                    header fields as "name: value" lines, then "body-bytes: N"
  /fail/N/KEY       the first N requests with this KEY get 503 "NAME fail I\\n",
                    later ones 200 "NAME ok\\n"
  /chunked          200, chunked body "hello chunked world"
  /early/CODE       that status with Connection: close before the request body is read, then
                    the body is read and dropped until the peer closes (a server that
                    answers early and lingers)
  /bytes/N          200, N bytes of "x" (Content-Length), written 64 KiB at a time
  /ws               with Upgrade: websocket, 101 (Sec-WebSocket-Accept per RFC 6455),
                    then raw bytes are echoed until the peer closes; else 426
  anything else     404 "NAME no such path\\n"
"""

import argparse
import base64
import hashlib
import os
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_BODY = 64 * 1024 * 1024


class State:
    def __init__(self, name):
        self.name = name
        self.lock = threading.Lock()
        self.served = 0
        self.fail_counts = {}

    def count_request(self):
        with self.lock:
            self.served += 1

    def fail_attempt(self, key):
        with self.lock:
            n = self.fail_counts.get(key, 0) + 1
            self.fail_counts[key] = n
            return n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "outrider-test-backend"
    state = None  # set in main

    def setup(self):
        super().setup()
        # the head and the body go out in separate writes: without this, Nagle holds the body
        # until the proxy's delayed ACK (40 ms per request)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("backend %s: %s\n" % (self.state.name, fmt % args))

    # Every method goes to dispatch (BaseHTTPRequestHandler looks up do_<METHOD>).
    def __getattr__(self, name):
        if name.startswith("do_"):
            return self.dispatch
        raise AttributeError(name)

    # ---- request body ----

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if te and te.strip().lower() == "chunked":
            return self.read_chunked()
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            self.close_connection = True
            return None
        return self.rfile.read(n)

    def read_chunked(self):
        parts = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                return None
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                return None
            if size == 0:
                while True:  # trailer section up to the empty line
                    t = self.rfile.readline(8192)
                    if not t or t in (b"\r\n", b"\n"):
                        break
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)  # CRLF after the chunk data

    # ---- responses ----

    def reply(self, status, body=b"", content_type="text/plain", extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("x-backend", self.state.name)
        for k, v in extra:
            self.send_header(k, v)
        if status not in (204, 304):
            if content_type:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def early(self, code):
        self.close_connection = True
        self.reply(int(code) if code.isdigit() else 400, "%s early %s\n" % (self.state.name, code))
        self.connection.shutdown(socket.SHUT_WR)
        try:
            while self.connection.recv(65536):
                pass
        except OSError:
            pass

    def dispatch(self):
        name = self.state.name
        target = self.path
        path = urlsplit(target).path if not target.startswith("/") else target.split("?", 1)[0]
        query = target.split("?", 1)[1] if "?" in target else ""
        if path not in ("/count", "/last"):
            self.state.count_request()
        if path.startswith("/early/"):
            return self.early(path[7:])
        body = self.read_body()
        if path not in ("/count", "/last") and body is not None:
            # what /last reports: this request's head and body
            self.state.last = ("%s %s\n" % (self.command, target) +
                               "".join("%s: %s\n" % (k.lower(), v) for k, v in self.headers.items()) +
                               "body-bytes: %d\n" % len(body)).encode()
        if body is None:
            self.close_connection = True
            self.reply(400, "%s bad request body\n" % name)
            return
        if getattr(self.state, "force_status", 0) and path not in ("/count", "/last"):
            return self.reply(self.state.force_status, "%s %d\n" % (name, self.state.force_status))
        parts = path.split("/")  # "/fail/3/k" -> ["", "fail", "3", "k"]

        if path == "/":
            self.reply(200, name + "\n")
        elif path == "/headers":
            lines = ["path: %s" % target, "method: %s" % self.command, "peer-port: %d" % self.client_address[1]]
            for k, v in self.headers.items():
                lines.append("%s: %s" % (k.lower(), v))
            self.reply(200, "\n".join(lines) + "\n")
        elif len(parts) == 3 and parts[1] == "status":
            try:
                code = int(parts[2])
            except ValueError:
                code = 0
            if not 200 <= code <= 599:
                self.reply(400, "%s status must be 200..599\n" % name)
            else:
                self.reply(code, "%s %d\n" % (name, code))
        elif len(parts) == 3 and parts[1] == "delay":
            try:
                ms = int(parts[2])
            except ValueError:
                ms = -1
            if ms < 0:
                self.reply(400, "%s bad delay\n" % name)
            else:
                time.sleep(ms / 1000.0)
                self.reply(200, name + "\n")
        elif path == "/echo":
            self.reply(200, body, self.headers.get("Content-Type"))
        elif path == "/reset":
            self.send_reset("rst=1" in query.split("&"))
        elif path == "/close":
            self.close_connection = True
        elif path == "/last":
            self.reply(200, getattr(self.state, "last", b"none\n").decode(), "text/plain")
        elif path == "/count":
            with self.state.lock:
                n = self.state.served
            self.reply(200, "%d\n" % n)
        elif len(parts) == 4 and parts[1] == "fail":
            try:
                limit = int(parts[2])
            except ValueError:
                limit = -1
            if limit < 0:
                self.reply(400, "%s bad count\n" % name)
                return
            attempt = self.state.fail_attempt(parts[3])
            if attempt <= limit:
                self.reply(503, "%s fail %d\n" % (name, attempt))
            else:
                self.reply(200, "%s ok\n" % name)
        elif path == "/chunked":
            self.send_chunked([b"hello ", b"chunked ", b"world"])
        elif path.startswith("/bytes/") and path[7:].isdigit():
            self.send_bytes(int(path[7:]))
        elif path == "/ws":
            self.websocket()
        else:
            self.reply(404, "%s no such path\n" % name)

    def send_bytes(self, n):
        """n bytes of 'x', written 64 KiB at a time (a large body for back-pressure tests)."""
        self.send_response(200)
        self.send_header("x-backend", self.state.name)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        if self.command == "HEAD":
            return
        piece = b"x" * 65536
        while n > 0:
            k = min(n, len(piece))
            self.wfile.write(piece[:k])
            n -= k

    def send_reset(self, rst):
        self.close_connection = True
        self.send_response(200)
        self.send_header("x-backend", self.state.name)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        self.wfile.write(b"0123456789")
        self.wfile.flush()
        if rst:
            # SO_LINGER 0: close() sends RST instead of FIN
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def send_chunked(self, pieces):
        if self.request_version == "HTTP/1.0":
            self.close_connection = True
            self.reply(200, b"".join(pieces))
            return
        self.send_response(200)
        self.send_header("x-backend", self.state.name)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        for p in pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(p), p))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def websocket(self):
        upgrade = self.headers.get("Upgrade", "")
        if "websocket" not in upgrade.lower():
            self.reply(426, "%s websocket upgrade required\n" % self.state.name, extra=[("Upgrade", "websocket")])
            return
        key = self.headers.get("Sec-WebSocket-Key", "").strip()
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("x-backend", self.state.name)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        # bytes already buffered after the head belong to the tunnel: read1 returns them first
        try:
            while True:
                data = self.rfile.read1(65536)
                if not data:
                    break
                self.wfile.write(data)
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    verbose = False

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description="Outrider test upstream")
    ap.add_argument("--port", type=int, required=True, help="port to listen on (0: any free port)")
    ap.add_argument("--name", required=True, help="name sent in x-backend and bodies")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    ap.add_argument("--status", type=int, default=0,
                    help="answer every request (but /count and /last) with this status: a failing endpoint")
    args = ap.parse_args()

    Handler.state = State(args.name)
    Handler.state.force_status = args.status
    if ":" in args.host:
        Server.address_family = socket.AF_INET6
    Server.verbose = args.verbose
    httpd = Server((args.host, args.port), Handler)
    port = httpd.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        httpd.serve_forever()
    except SystemExit:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
