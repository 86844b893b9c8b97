#!/usr/bin/python3
"""The peer exporter of tests/bench/metrics_scrape_bench.sh: prometheus_client
(Debian: python3-prometheus-client) serving the same label sets as
outrider-collector after metrics_load, through its own WSGI HTTP server (gzip
when asked, OpenMetrics when asked), so both are scraped by the same curl loop.

The series are the same (istio_requests_total and the three histograms with
the same buckets, on every label set of metrics_load --labels-out); the
values are not (each histogram child observes three values). _created series
are turned off (PROMETHEUS_DISABLE_CREATED_SERIES) so both expose the same
lines. Prints "port=N build_s=S series=N" once it serves, then serves until
killed.

usage: metrics_scrape_peer.py LABELS_TSV [BYTES_HISTOGRAMS 0|1]
"""
import os
import sys
import time

os.environ["PROMETHEUS_DISABLE_CREATED_SERIES"] = "True"

from wsgiref.simple_server import WSGIRequestHandler, make_server  # noqa: E402

from prometheus_client import CollectorRegistry, Counter, Histogram  # noqa: E402
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app  # noqa: E402

DURATION_MS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
               1800000, 3600000]
BYTES = [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def main():
    path = sys.argv[1]
    with_bytes = len(sys.argv) < 3 or sys.argv[2] != "0"
    t0 = time.monotonic()
    with open(path, encoding="utf-8") as f:
        names = f.readline().rstrip("\n").split("\t")
        rows = [line.rstrip("\n").split("\t") for line in f]
    reg = CollectorRegistry()
    requests = Counter("istio_requests_total", "Requests handled, by reporter, workload, service and response code.",
                       names, registry=reg)
    hists = [(Histogram("istio_request_duration_milliseconds",
                        "Request duration, first request byte to last response byte.", names, registry=reg,
                        buckets=DURATION_MS), (3, 40, 300))]
    if with_bytes:
        hists.append((Histogram("istio_request_bytes", "Request body sizes.", names, registry=reg, buckets=BYTES),
                      (50, 700, 5000)))
        hists.append((Histogram("istio_response_bytes", "Response body sizes.", names, registry=reg, buckets=BYTES),
                      (500, 7000, 50000)))
    for i, row in enumerate(rows):
        requests.labels(*row).inc(1 + i % 200)
        for h, values in hists:
            child = h.labels(*row)
            for v in values:
                child.observe(v)
    server = make_server("127.0.0.1", 0, make_wsgi_app(reg), ThreadingWSGIServer, handler_class=Quiet)
    print("port=%d build_s=%.3f series=%d" % (server.server_port, time.monotonic() - t0, len(rows) * (1 + len(hists))),
          flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
