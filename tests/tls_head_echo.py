#!/usr/bin/env python3
"""An mTLS HTTP/1.1 server standing in for a peer sidecar: what the client's heads carried.

Usage: python3 tests/tls_head_echo.py --cert C --key K --ca ROOT --alpn ID[,ID...] --port-file F
                                      [--echo-metadata]

Takes TLS 1.2/1.3 with a client certificate that chains to ROOT, chooses the first of --alpn
(in that order) that the client offers, and answers every request on a keep-alive connection
with 200 and a one-line body:

    conn=C req=N md=0|1 alpn=ID foreign=K tp=0|1

C numbers connections from 1, N requests on the connection from 1, md says whether the
request carried x-envoy-peer-metadata (and x-envoy-peer-metadata-id: both or neither, else
md=partial), K how many of the fields only a server that is not an Outrider sidecar needs it
carried (b3, x-b3-* other than x-b3-flags, x-forwarded-proto), tp whether it had traceparent. With --echo-metadata, the first response on each connection carries the
x-envoy-peer-metadata value of the connection's first request (so the client learns itself as
the peer), and no later response carries any, as a sidecar that agreed to PEER_ALPN answers.
The bound port is written to --port-file once listening. Standard library only.
"""
import argparse
import itertools
import os
import socket
import ssl
import threading


def serve(conn, n, echo):
    f = conn.makefile("rb")
    alpn = conn.selected_alpn_protocol() or "-"
    for req in itertools.count(1):
        line = f.readline(65536)
        if not line:
            return
        names = set()
        length = 0
        got = ""
        while True:
            h = f.readline(65536)
            if h in (b"\r\n", b"\n", b""):
                break
            name, _, value = h.decode("latin-1").partition(":")
            names.add(name.strip().lower())
            if name.strip().lower() == "x-envoy-peer-metadata":
                got = value.strip()
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length:
            f.read(length)
        md = {"x-envoy-peer-metadata", "x-envoy-peer-metadata-id"} & names
        mds = "1" if len(md) == 2 else "0" if not md else "partial"
        foreign = {"b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-forwarded-proto"}
        body = ("conn=%d req=%d md=%s alpn=%s foreign=%d tp=%d\n"
                % (n, req, mds, alpn, len(foreign & names), "traceparent" in names)).encode()
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n" % len(body)
        if echo and req == 1 and got:
            head += "x-envoy-peer-metadata: %s\r\nx-envoy-peer-metadata-id: sidecar~127.0.0.1~echo\r\n" % got
        conn.sendall(head.encode() + b"\r\n" + body)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--alpn", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--echo-metadata", action="store_true")
    a = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(a.cert, a.key)
    ctx.load_verify_locations(a.ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(a.alpn.split(","))
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as pf:
        pf.write("%d\n" % ls.getsockname()[1])
    os.rename(tmp, a.port_file)
    for n in itertools.count(1):
        raw, _ = ls.accept()
        try:
            conn = ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            continue
        threading.Thread(target=lambda c=conn, k=n: (serve(c, k, a.echo_metadata), c.close()), daemon=True).start()


if __name__ == "__main__":
    main()
