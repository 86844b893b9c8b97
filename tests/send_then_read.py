#!/usr/bin/env python3
"""A client that writes its whole request before it reads anything (as simple
HTTP clients do): do early error answers reach it, and does the server stop
reading what follows within its bounds?

Usage: python3 tests/send_then_read.py --port P --case CASE [--mode MODE]
           [--expect CODE] [--expect-body TEXT] [--tries N] [--body-bytes B] [--path PATH]
           [--header "Name: value"]... [--tls-ca FILE [--tls-cert FILE --tls-key FILE]]
           [--ready FILE --release FILE]

--header adds a field to the request's head; --tls-ca speaks TLS (to
"localhost", whose certificate must chain to FILE; --tls-cert and
--tls-key present a client certificate); --expect-body also requires TEXT
in the answer's bytes (status mode).

The request of CASE:
  big-header   a head with a 100 KB field (proxy: 431)
  long-uri     a 64 KB request-target (proxy: 414)
  malformed    a request line that is not HTTP (400)
  big-body     POST PATH (default /v1/traces) with Content-Length B (collector: 413)
  chunked      POST PATH with a chunked body of B bytes in 64 KiB chunks (collector:
               413 once the body ends, or the connection closes past its bounds)
each followed by B bytes of body (default 4 MiB; in endless and trickle modes
it announces 1 TB, or never ends its chunks).

MODE (default status), each repeated --tries times (default 100):
  status   send the whole request with sendall, then read the answer (to the
           end of its body, a reset or end of stream): every send must succeed and the first line must be
           "HTTP/1.1 CODE". A send that fails because the server closed (a
           reset, a broken pipe) fails the try, as it does for simple clients:
           Python's http.client, for one, raises there and never reads the
           answer the server sent
  endless  send the body as fast as the server takes it; passes when the server
           ends the connection (a failed send) before 4 GiB went out
  trickle  send 1 KiB every 10 ms; passes when the server ends the connection
           within 6000 sends
  idle     send the head, read the answer to its end (the server's half-close),
           then stay quiet and probe with one byte every 0.3 s; passes when a
           probe finds the connection closed within 200 probes
  hold     open N (--tries) connections at once, send each the head, read each
           answer (it must be CODE) to its end, create the --ready file, wait
           for the --release file, then close them all: N lingering connections
           for as long as the caller wants

No try asserts how long anything took; the limits above only keep a broken
server from hanging the test. Prints "CASE/MODE: OK/N" and a line per failed
try; exits 1 when a try failed.
"""
import argparse
import os
import socket
import ssl
import sys
import time

CHUNK = 64 * 1024
BLOCK = b"\0" * CHUNK


EXTRA = b""  # --header fields, each ending in CRLF
TLS = None  # an ssl.SSLContext with --tls-ca


def head(case, body_bytes, path):
    if case == "chunked":
        return (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-protobuf\r\n" + EXTRA +
                b"Transfer-Encoding: chunked\r\n\r\n")
    if case == "big-header":
        h = b"POST /x HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 100000 + b"\r\n"
    elif case == "long-uri":
        h = b"POST /" + b"u" * 65536 + b" HTTP/1.1\r\nHost: a\r\n"
    elif case == "malformed":
        h = b"THIS IS NOT HTTP\r\nHost: a\r\n"
    else:
        h = b"POST " + path.encode() + b" HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-protobuf\r\n"
    return h + EXTRA + b"Content-Length: %d\r\n\r\n" % body_bytes


def framed(case, block):
    """block as the body's framing wants it (a chunk, or as is)."""
    if case == "chunked":
        return b"%x\r\n" % len(block) + block + b"\r\n"
    return block


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(60)
    if TLS is not None:
        s = TLS.wrap_socket(s, server_hostname="localhost")
    return s


def complete(data):
    """Whether data holds a whole response (a head, and as much body as its Content-Length says)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False
    length = 0
    for line in data[:end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return len(data) >= end + 4 + length


LAST_ANSWER = b""  # the bytes read_answer read last


def read_answer(s, to_eof=False):
    """Reads one response (to end of stream when to_eof); returns its first line, or a description."""
    global LAST_ANSWER
    data = b""
    LAST_ANSWER = b""
    try:
        while to_eof or not complete(data):
            d = s.recv(65536)
            if not d:
                break
            data += d
    except (ConnectionResetError, ssl.SSLError):
        if b"\r\n" not in data:
            return "<reset before a status line>"
    except socket.timeout:
        return "<no whole answer and no end of stream within 60 s>"
    LAST_ANSWER = data
    return data.split(b"\r\n", 1)[0].decode("latin-1")[:80]


def try_status(a):
    s = connect(a.port)
    sent = "sent whole"
    try:
        s.sendall(head(a.case, a.body_bytes, a.path))
        left = a.body_bytes
        while left > 0:
            n = min(left, CHUNK)
            s.sendall(framed(a.case, BLOCK[:n]))
            left -= n
        if a.case == "chunked":
            s.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError, ssl.SSLError) as e:
        sent = "send failed: " + type(e).__name__
    except socket.timeout:
        sent = "send blocked for 60 s"
    line = read_answer(s)
    s.close()
    if sent == "sent whole" and line.startswith("HTTP/1.1 %d " % a.expect):
        if a.expect_body is None or a.expect_body.encode() in LAST_ANSWER:
            return None
        return "the answer lacks %r: %r" % (a.expect_body, LAST_ANSWER[:300])
    return "got %r (%s)" % (line, sent)


def try_until_closed(a, block, pause, max_sends):
    s = connect(a.port)
    try:
        s.sendall(head(a.case, 1 << 40, a.path))
        block = framed(a.case, block)
        for _ in range(max_sends):
            s.sendall(block)
            if pause:
                time.sleep(pause)
    except (BrokenPipeError, ConnectionResetError):
        return None
    except socket.timeout:
        return "the server neither read nor closed for 60 s"
    finally:
        s.close()
    return "the server still read after %d sends" % max_sends


def try_idle(a):
    s = connect(a.port)
    try:
        s.sendall(head(a.case, 1 << 40, a.path))
        line = read_answer(s, to_eof=True)
        if a.expect and not line.startswith("HTTP/1.1 %d " % a.expect):
            return "got %r" % line
        for _ in range(200):
            time.sleep(0.3)
            s.send(b"x")
    except (BrokenPipeError, ConnectionResetError):
        return None
    finally:
        s.close()
    return "the connection stayed open through 200 probes"


def hold(a):
    conns = []
    for _ in range(a.tries):
        s = connect(a.port)
        s.sendall(head(a.case, 1 << 40, a.path))
        conns.append(s)
    bad = 0
    for s in conns:
        line = read_answer(s, to_eof=True)
        if not line.startswith("HTTP/1.1 %d " % a.expect):
            print("got %r" % line)
            bad += 1
    open(a.ready, "w").close()
    while not os.path.exists(a.release):
        time.sleep(0.02)
    for s in conns:
        s.close()
    print("%s/hold: %d/%d" % (a.case, a.tries - bad, a.tries))
    sys.exit(1 if bad else 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--case", required=True, choices=["big-header", "long-uri", "malformed", "big-body", "chunked"])
    ap.add_argument("--mode", default="status", choices=["status", "endless", "trickle", "idle", "hold"])
    ap.add_argument("--expect", type=int, default=0)
    ap.add_argument("--tries", type=int, default=100)
    ap.add_argument("--body-bytes", type=int, default=4 << 20)
    ap.add_argument("--path", default="/v1/traces")
    ap.add_argument("--ready")
    ap.add_argument("--release")
    ap.add_argument("--header", action="append", default=[])
    ap.add_argument("--expect-body")
    ap.add_argument("--tls-ca")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    a = ap.parse_args()
    global EXTRA, TLS
    EXTRA = b"".join(h.encode() + b"\r\n" for h in a.header)
    if a.tls_ca:
        TLS = ssl.create_default_context(cafile=a.tls_ca)
        if a.tls_cert:
            TLS.load_cert_chain(a.tls_cert, a.tls_key)
    if a.mode in ("status", "hold") and not a.expect:
        ap.error("--mode %s needs --expect" % a.mode)
    if a.mode == "hold":
        if not (a.ready and a.release):
            ap.error("--mode hold needs --ready and --release")
        hold(a)
    ok = 0
    for i in range(a.tries):
        if a.mode == "status":
            why = try_status(a)
        elif a.mode == "endless":
            why = try_until_closed(a, BLOCK, 0, (4 << 30) // CHUNK)
        elif a.mode == "trickle":
            why = try_until_closed(a, BLOCK[:1024], 0.01, 6000)
        else:
            why = try_idle(a)
        if why is None:
            ok += 1
        else:
            print("try %d: %s" % (i, why))
    print("%s/%s: %d/%d" % (a.case, a.mode, ok, a.tries))
    sys.exit(0 if ok == a.tries else 1)


if __name__ == "__main__":
    main()
