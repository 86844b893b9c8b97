#!/usr/bin/env python3
"""The demo mesh's two services (python3 standard library only).

  demo_app.py productpage PORT SIDECAR_OUTBOUND   GET /productpage calls reviews through
                                                  its sidecar and shows the answer
  demo_app.py reviews PORT VERSION                GET /reviews answers with its version

Like Istio's Bookinfo services, productpage copies the trace headers (and
end-user) of its incoming request onto its call to reviews, so the sidecars
can join both hops into one trace. That is the only thing a service in the
mesh has to do; everything else is the sidecars' work.
"""
import http.client
import json
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PROPAGATE = ("traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
             "x-b3-sampled", "x-b3-flags", "x-request-id", "end-user")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, obj):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        role = self.server.role
        if role == "reviews" and self.path.startswith("/reviews"):
            return self.reply(200, {"service": "reviews", "version": self.server.arg, "stars": 4})
        if role == "productpage" and self.path.startswith("/productpage"):
            headers = {k: v for k, v in self.headers.items() if k.lower() in PROPAGATE}
            headers["Host"] = "reviews:9080"
            host, port = self.server.arg.rsplit(":", 1)
            try:
                c = http.client.HTTPConnection(host, int(port), timeout=5)
                c.request("GET", "/reviews", headers=headers)
                r = c.getresponse()
                data = r.read()
                c.close()
                reviews = json.loads(data) if r.status == 200 else {"status": r.status, "body": data.decode()}
            except (OSError, ValueError) as e:
                return self.reply(502, {"service": "productpage", "error": str(e)})
            return self.reply(200, {"service": "productpage", "reviews": reviews})
        self.reply(404, {"error": "no such path " + self.path})


def main():
    role, port, arg = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    s = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    s.daemon_threads = True
    s.role, s.arg = role, arg
    s.serve_forever()


if __name__ == "__main__":
    main()
