#!/usr/bin/env python3
"""Check an /api/mesh answer against the collector's /metrics.

  check_api.py API_JSON METRICS_TXT OUT_JSON

The answer must be for a window that covers everything the collector holds
(the test asks for 1h right after start), so every sidecar edge's figures
must equal the istio_requests_total and istio_request_duration_milliseconds
series of /metrics for its reporter:

  requests    the sum of istio_requests_total
  errors      the same for response codes 5xx and 0 (no response)
  p99Ms       histogram_quantile(0.99, sum by (le) of the _bucket series),
              computed here as Prometheus computes it
  versions    each node's requests per destination_version and its share

and every pair of services with requests in /metrics must be an edge.
OUT_JSON gets the figures of /metrics per edge, for the browser check.
Exits 1 with the differences listed. Python standard library only.
"""
import json
import math
import re
import sys
from collections import defaultdict

SERIES = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*')
UNESCAPE = {'\\\\': '\\', '\\"': '"', '\\n': '\n'}


def parse_labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            raise ValueError('bad labels: ' + text)
        labels[m.group(1)] = re.sub(r'\\[\\"n]', lambda e: UNESCAPE[e.group(0)], m.group(2))
        pos = m.end()
    return labels


def parse_metrics(path):
    out = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.rstrip('\n')
            if not line or line.startswith('#'):
                continue
            m = SERIES.match(line)
            if m:
                out.append((m.group(1), parse_labels(m.group(2) or ''), float(m.group(3))))
    return out


def known(v):
    return v not in (None, '', 'unknown')


def source_of(l):
    name = next((l.get(k) for k in ('source_canonical_service', 'source_app', 'source_workload') if known(l.get(k))),
                None)
    if name is None:
        return 'unknown'
    ns = l.get('source_workload_namespace')
    return f'{name}.{ns}.svc.cluster.local' if known(ns) else name


def destination_of(l):
    svc, name, ns = l.get('destination_service'), l.get('destination_service_name'), l.get('destination_service_namespace')
    if known(svc) and '.' in svc:
        return svc
    if known(name):
        return f'{name}.{ns}.svc.cluster.local' if known(ns) else name
    return 'unknown'


def histogram_quantile(q, cumulative):
    """Prometheus's histogram_quantile over [(upper bound, cumulative count)], +Inf last."""
    buckets = sorted(cumulative)
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return None
    total = buckets[-1][1]
    if total == 0:
        return None
    rank = q * total
    b = next(i for i, (_, c) in enumerate(buckets) if c >= rank or i == len(buckets) - 1)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, below = (0.0, 0.0) if b == 0 else buckets[b - 1]
    return start + (buckets[b][0] - start) * ((rank - below) / (buckets[b][1] - below))


def main():
    api = json.load(open(sys.argv[1], encoding='utf-8'))
    series = parse_metrics(sys.argv[2])
    requests = defaultdict(float)  # (reporter, src, dst) -> n
    errors = defaultdict(float)
    versions = defaultdict(float)  # (reporter, src, dst, version) -> n
    buckets = defaultdict(float)  # (reporter, src, dst, le) -> cumulative n
    for name, l, v in series:
        key = (l.get('reporter'), source_of(l), destination_of(l))
        if name == 'istio_requests_total':
            requests[key] += v
            code = l.get('response_code', '')
            if code == '0' or (len(code) == 3 and code.startswith('5')):
                errors[key] += v
            versions[key + (l.get('destination_version') or 'unknown',)] += v
        elif name == 'istio_request_duration_milliseconds_bucket':
            buckets[key + (float(l['le']),)] += v
    problems = []
    edges = {(e['source'], e['destination']): e for e in api['edges']}
    expected = []
    for (src, dst), e in sorted(edges.items()):
        if e['reporter'] == 'trace':
            continue
        key = (e['reporter'], src, dst)
        le = [(k[3], c) for k, c in buckets.items() if k[:3] == key]
        p99 = histogram_quantile(0.99, le)
        want = {'source': src, 'destination': dst, 'requests': int(requests[key]), 'errors': int(errors[key]),
                'p99Ms': p99}
        expected.append(want)
        for f in ('requests', 'errors'):
            if e[f] != want[f]:
                problems.append(f'{src} -> {dst}: {f} {e[f]} at /api/mesh, {want[f]} at /metrics')
        if (p99 is None) != (e['p99Ms'] is None) or (p99 is not None and abs(e['p99Ms'] - p99) > 1e-4 * p99):
            problems.append(f'{src} -> {dst}: p99Ms {e["p99Ms"]} at /api/mesh, {p99} from /metrics buckets')
    pairs = {(s, d) for (r, s, d), n in requests.items() if n > 0 and r in ('source', 'destination')}
    for pair in sorted(pairs - set(edges)):
        problems.append(f'{pair[0]} -> {pair[1]} has requests at /metrics but is no edge')
    for node in api['nodes']:
        inbound = [e for e in api['edges'] if e['destination'] == node['service'] and e['reporter'] != 'trace']
        per_version = defaultdict(float)
        for e in inbound:
            for k, n in versions.items():
                if k[:3] == (e['reporter'], e['source'], e['destination']):
                    per_version[k[3]] += n
        total = sum(per_version.values())
        got = {v['version']: (v['requests'], v['share']) for v in node['versions']}
        want = {v: (int(n), n / total) for v, n in per_version.items() if n > 0}
        if set(got) != set(want) or any(got[v][0] != want[v][0] or abs(got[v][1] - want[v][1]) > 1e-5 for v in got):
            problems.append(f'{node["service"]}: versions {got} at /api/mesh, {want} at /metrics')
    json.dump({'edges': expected}, open(sys.argv[3], 'w', encoding='utf-8'), ensure_ascii=False)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
