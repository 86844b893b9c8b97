#!/usr/bin/env bash
# outrider-proxy outbound routing with Istio documents against real backends
# (tests/backend.py): host selection (short name, FQDN with port, absolute
# form, unknown host 404 NR), every VirtualService match kind, a 90/10
# canary split measured over 2000 requests, a header route (end-user: jason
# -> v2), rewrite, request/response header operations, redirect,
# directResponse, the route timeout (504 UT), retries (on 5xx; exhausted
# -> URX; connect failures moved to another endpoint), load balancing
# (round robin exact, consistent hash sticky), maxRequestsPerConnection,
# a WebSocket upgrade tunnelled (its istio_tcp_* labelled with the 101's
# destination service), and the response flags at /stats/prometheus.
# Variants: the Proxy in namespace shop with the other documents implicitly
# (or explicitly) there too; the app's Host forms in shop route, the names of
# reviews in another namespace do not.
# variants: ns-implicit ns-explicit (tests/lib.sh: the same scenario with the documents in namespace shop)
. "$(dirname "$0")/../lib.sh"

start_backend v1
R1=$BACKEND_PORT
start_backend v2
R2=$BACKEND_PORT
start_backend v3
R3=$BACKEND_PORT
start_backend ratings-a
RA=$BACKEND_PORT
start_backend ratings-b
RB=$BACKEND_PORT
start_backend details-a
DA=$BACKEND_PORT
start_backend details-b
DB=$BACKEND_PORT
DEAD=$(free_port) # nothing listens there

cat >"$T/mesh.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: productpage-v1, namespace: default, labels: {app: productpage, version: v1}}
spec:
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  telemetry: {flushInterval: 200ms}
  workers: 2
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $R1}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: $R2}, labels: {version: v2}}
  - {address: 127.0.0.1, ports: {http: $R3}, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: rewrite
    match: [{uri: {prefix: /old/}}]
    rewrite: {uri: /}
    headers:
      request: {set: {x-route: rewrite}, add: {x-added: one}, remove: [x-drop]}
      response: {set: {x-resp: "yes"}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: redirect
    match: [{uri: {exact: /go}}]
    redirect: {uri: /gone, authority: example.org}
  - name: direct
    match: [{uri: {prefix: /teapot}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - name: by-method
    match: [{method: {exact: DELETE}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: by-query
    match: [{queryParams: {canary: {exact: "yes"}}}]
    route: [{destination: {host: reviews, subset: v3}}]
  - name: by-regex
    match: [{uri: {regex: "/items/[0-9]+"}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: ignore-case
    match: [{uri: {exact: /caseless}, ignoreUriCase: true}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: without-beta
    match: [{uri: {prefix: /beta}, withoutHeaders: {x-beta: {exact: "1"}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: beta
    match: [{uri: {prefix: /beta}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - name: slow
    match: [{uri: {prefix: /delay/}}]
    timeout: 300ms
    retries: {attempts: 0}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: retry
    match: [{uri: {prefix: /fail/}}]
    retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: canary
    route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v3}, weight: 10}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $RA}, labels: {app: ratings, version: v7}}
  - {address: 127.0.0.1, ports: {http: $RB}, labels: {app: ratings, version: v7}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {http: {maxRequestsPerConnection: 1}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details}
spec:
  hosts: [details.shop.example]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $DA}}
  - {address: 127.0.0.1, ports: {http: $DB}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details}
spec:
  host: details.shop.example
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: flaky}
spec:
  hosts: [flaky]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $DEAD}}
  - {address: 127.0.0.1, ports: {http: $RA}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: gone}
spec:
  hosts: [gone]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $DEAD}}
YAML
mesh_variant "$T/mesh.yaml"
"$OUTRIDER_BIN/outrider-proxy" --config "$T/mesh.yaml" --check >"$T/check.out" 2>&1 ||
    fail "--check refused the mesh: $(cat "$T/check.out")"
! grep -q warning "$T/check.out" || fail "--check warned: $(cat "$T/check.out")"
start_proxy app "$T/mesh.yaml"
P=http://127.0.0.1:$PROXY_OUT
ADMIN=http://127.0.0.1:$PROXY_ADMIN
proxy_alive() { kill -0 "$PROXY_PID" 2>/dev/null || { cat "$PROXY_LOG" >&2; fail "proxy died: $1"; }; }

# count.py HOSTPORT N PATH [Header:value...]: N keep-alive GETs; prints "backend count" lines, sorted
cat >"$T/count.py" <<'PY'
import http.client, sys, collections
host, port = sys.argv[1].rsplit(":", 1)
n, path = int(sys.argv[2]), sys.argv[3]
hdrs = dict(h.split(":", 1) for h in sys.argv[4:])
c = http.client.HTTPConnection(host, int(port), timeout=30)
seen = collections.Counter()
for i in range(n):
    h = {k: v.replace("{i}", str(i)) for k, v in hdrs.items()}
    c.request("GET", path, headers=h)
    r = c.getresponse()
    r.read()
    seen["%s/%d" % (r.getheader("x-backend", "-"), r.status)] += 1
for k in sorted(seen):
    print(k, seen[k])
PY
count() { python3 "$T/count.py" "127.0.0.1:$PROXY_OUT" "$@"; }

# backend_of CURL_ARGS...: the x-backend of the response (and its status in $LAST_CODE)
backend_of() {
    LAST_CODE=$(curl -sS --max-time 20 -D "$T/resp.h" -o "$LAST_BODY" -w '%{http_code}' "$@" 2>"$T/curl.err") || true
    tr -d '\r' <"$T/resp.h" | awk -F': ' 'tolower($1)=="x-backend" {print $2}'
}

# ---- host selection: every form the app in $MESH_NS may use, none of another namespace ----
for h in reviews reviews:9080 "reviews.$MESH_NS" "reviews.$MESH_NS.svc" "reviews.$MESH_NS.svc.cluster.local:9080"; do
    assert_eq v1 "$(backend_of -H "Host: $h" "$P/old/")" "Host: $h (rewrite route)"
    assert_eq 200 "$(awk 'NR == 1 {print $2}' "$T/resp.h")" "status for Host: $h"
done
other_ns=other
[[ $MESH_NS == default ]] || other_ns=default
for h in "reviews.$other_ns" "reviews.$other_ns.svc.cluster.local:9080"; do
    code=$(http_status GET "$P/old/" -H "Host: $h")
    assert_eq 404 "$code" "Host: $h (reviews of namespace $other_ns)"
    assert_eq "no route for this host and path" "$(cat "$LAST_BODY")" "404 body for Host: $h"
done
assert_eq v1 "$(backend_of --proxy "$P" "http://reviews:9080/old/")" "absolute form (HTTP_PROXY style)"
code=$(http_status GET "$P/" -H 'Host: nosuch')
assert_eq 404 "$code" "unknown host"
b=$(backend_of -H 'Host: ratings:9080' "$P/")
[[ $b == ratings-a || $b == ratings-b ]] || fail "ServiceEntry without a VirtualService: got '$b' ($LAST_CODE)"

# ---- canary: 90/10 over 2000 requests (binomial sd 13.4; +-5 sd) ----
out=$(count 2000 / 'Host:reviews')
v1=$(awk '$1=="v1/200" {print $2}' <<<"$out")
v3=$(awk '$1=="v3/200" {print $2}' <<<"$out")
note "canary split: $(tr '\n' ' ' <<<"$out")"
[[ $((v1 + v3)) -eq 2000 ]] || fail "canary: only v1 and v3 should answer, got: $out"
((v3 >= 133 && v3 <= 267)) || fail "canary: v3 got $v3 of 2000, expected about 200 (10%)"

# ---- match kinds ----
out=$(count 50 / 'Host:reviews' 'end-user:jason')
assert_eq "v2/200 50" "$out" "end-user: jason -> v2"
assert_eq v3 "$(backend_of -X DELETE -H 'Host: reviews' "$P/x")" "method DELETE -> v3"
assert_eq v3 "$(backend_of -H 'Host: reviews' "$P/list?page=1&canary=yes")" "queryParams canary=yes -> v3"
assert_eq v2 "$(backend_of -H 'Host: reviews' "$P/items/42")" "uri regex /items/[0-9]+ -> v2"
b=$(backend_of -H 'Host: reviews' "$P/items/4x2")
[[ $b == v1 || $b == v3 ]] || fail "uri regex must match the whole path: /items/4x2 went to $b"
assert_eq v2 "$(backend_of -H 'Host: reviews' "$P/CaseLess")" "ignoreUriCase"
assert_eq v1 "$(backend_of -H 'Host: reviews' "$P/beta")" "withoutHeaders (header absent) -> v1"
assert_eq v2 "$(backend_of -H 'Host: reviews' -H 'x-beta: 1' "$P/beta")" "withoutHeaders (header present) -> next route"

# ---- rewrite and header operations ----
b=$(backend_of -H 'Host: reviews' -H 'x-drop: secret' -H 'x-added: zero' "$P/old/headers")
assert_eq v1 "$b" "rewrite route backend"
grep -qx 'path: /headers' "$LAST_BODY" || fail "rewrite /old/ -> /: $(cat "$LAST_BODY")"
grep -qx 'x-route: rewrite' "$LAST_BODY" || fail "request set x-route: $(cat "$LAST_BODY")"
grep -qx 'x-added: zero' "$LAST_BODY" && grep -qx 'x-added: one' "$LAST_BODY" || fail "request add x-added: $(cat "$LAST_BODY")"
! grep -q '^x-drop' "$LAST_BODY" || fail "request remove x-drop: $(cat "$LAST_BODY")"
grep -q '^x-request-id: ' "$LAST_BODY" || fail "x-request-id generated: $(cat "$LAST_BODY")"
grep -q '^traceparent: 00-' "$LAST_BODY" || fail "traceparent propagated: $(cat "$LAST_BODY")"
grep -q '^x-envoy-peer-metadata: ' "$LAST_BODY" || fail "peer metadata sent upstream: $(cat "$LAST_BODY")"
tr -d '\r' <"$T/resp.h" | grep -qix 'x-resp: yes' || fail "response set x-resp: $(cat "$T/resp.h")"

# ---- redirect and direct response ----
code=$(curl -sS --max-time 20 -D "$T/redir.h" -o /dev/null -w '%{http_code}' -H 'Host: reviews' "$P/go?x=1")
assert_eq 301 "$code" "redirect status"
loc=$(tr -d '\r' <"$T/redir.h" | awk -F': ' 'tolower($1)=="location" {print $2}')
[[ $loc == *//example.org/gone* ]] || fail "redirect Location: $loc"
code=$(http_status GET "$P/teapot" -H 'Host: reviews')
assert_eq 418 "$code" "directResponse status"
assert_eq "short and stout" "$(cat "$LAST_BODY")" "directResponse body"

# ---- route timeout: 504 UT, and the proxy is fine afterwards ----
code=$(http_status GET "$P/delay/3000" -H 'Host: reviews')
assert_eq 504 "$code" "route timeout 300ms on a 3 s backend"
grep -q 'upstream request timeout' "$LAST_BODY" || fail "504 body: $(cat "$LAST_BODY")"
assert_eq 200 "$(http_status GET "$P/delay/10" -H 'Host: reviews')" "a fast request on the timeout route"

# ---- retries ----
code=$(http_status GET "$P/fail/2/k1" -H 'Host: reviews')
assert_eq 200 "$code" "two 503s then 200 within 3 retries"
assert_eq "v1 ok" "$(cat "$LAST_BODY")" "body after retries"
code=$(http_status GET "$P/fail/9/k2" -H 'Host: reviews')
assert_eq 503 "$code" "retries exhausted: the last 503 passes through"
# connect failures go to the other endpoint (Istio's default policy: 2 retries on connect-failure)
out=$(count 20 / 'Host:flaky')
assert_eq "ratings-a/200 20" "$out" "flaky: a dead endpoint is retried on the live one"
code=$(http_status GET "$P/" -H 'Host: gone')
assert_eq 503 "$code" "every endpoint dead"
grep -q 'connection failure' "$LAST_BODY" || fail "503 body for a dead service: $(cat "$LAST_BODY")"

# ---- load balancing ----
out=$(count 10 / 'Host:ratings')
assert_eq "ratings-a/200 5
ratings-b/200 5" "$out" "round robin over two endpoints"
out=$(count 20 / 'Host:details.shop.example' 'x-user:alice')
[[ $(wc -l <<<"$out") -eq 1 ]] || fail "consistent hash: alice moved between endpoints: $out"
out=$(count 200 / 'Host:details.shop.example' 'x-user:user-{i}')
[[ $(wc -l <<<"$out") -eq 2 ]] || fail "consistent hash: 200 users all on one endpoint: $out"

# ---- WebSocket upgrade through the outbound listener ----
cat >"$T/ws.py" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(b"GET /ws HTTP/1.1\r\nHost: ratings\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    d = s.recv(1)
    if not d: break
    head += d
print(head.split(b"\r\n")[0].decode())
print("accept-ok" if b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head else "accept-missing")
for msg in (b"ping-1", b"x" * 100000):
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        d = s.recv(65536)
        if not d: break
        got += d
    print("echo-ok" if got == msg else "echo-bad %d" % len(got))
PY
out=$(python3 "$T/ws.py" "$PROXY_OUT")
assert_eq "HTTP/1.1 101 Switching Protocols
accept-ok
echo-ok
echo-ok" "$out" "WebSocket tunnel"
proxy_alive "after the tunnel"

# ---- response flags and metrics at /stats/prometheus (flushed every 200 ms) ----
wait_until -n 100 -i 0.1 bash -c "curl -sS '$ADMIN/stats/prometheus' | grep -q 'response_flags=\"NR\"'" ||
    fail "no NR series: $(curl -sS "$ADMIN/stats/prometheus" | grep istio_requests_total | head -20)"
tunnel_closed() {
    curl -sS "$ADMIN/stats/prometheus" | grep '^istio_tcp_connections_closed_total{' |
        awk '{s += $NF} END {exit !(s > 0)}'
}
wait_until -n 100 -i 0.1 tunnel_closed || fail "istio_tcp_connections_closed_total stayed 0 after the tunnel closed"
stats=$(curl -sS "$ADMIN/stats/prometheus")
grep 'istio_requests_total{' <<<"$stats" | grep 'response_code="504"' | grep -q 'response_flags="UT"' ||
    fail "no 504 UT series: $(grep istio_requests_total <<<"$stats" | head -30)"
grep 'istio_requests_total{' <<<"$stats" | grep 'response_code="503"' | grep -q 'response_flags="URX"' ||
    fail "no 503 URX series: $(grep istio_requests_total <<<"$stats" | head -30)"
grep 'istio_requests_total{' <<<"$stats" | grep 'destination_version="v3"' | grep -q 'reporter="source"' ||
    fail "no reporter=source v3 series: $(grep istio_requests_total <<<"$stats" | head -30)"
for m in istio_tcp_connections_opened_total istio_tcp_connections_closed_total istio_tcp_sent_bytes_total \
    istio_tcp_received_bytes_total; do
    v=$(grep "^$m{" <<<"$stats" | awk '{s += $NF} END {print s + 0}') || true
    [[ $v -gt 0 ]] || fail "$m after the WebSocket tunnel: $(grep istio_tcp <<<"$stats")"
done
# the tunnel's istio_tcp_* carry the destination service of the request that opened it (the 101), not "unknown"
label_of() { # LINE NAME: the value of label NAME in a sample line
    sed -n "s/.*[{,]$2=\"\([^\"]*\)\".*/\1/p" <<<"$1"
}
upgrade=$(grep '^istio_requests_total{' <<<"$stats" | grep 'response_code="101"') ||
    fail "no istio_requests_total series for the 101: $(grep istio_requests_total <<<"$stats" | head -30)"
assert_eq ratings "$(label_of "$upgrade" destination_service)" "destination_service of the 101"
assert_eq "$MESH_NS" "$(label_of "$upgrade" destination_service_namespace)" "destination_service_namespace of the 101"
assert_eq "ratings v7" "$(label_of "$upgrade" destination_app) $(label_of "$upgrade" destination_version)" \
    "destination_app and destination_version of the 101 (the endpoint's labels)"
for m in istio_tcp_connections_opened_total istio_tcp_connections_closed_total istio_tcp_sent_bytes_total \
    istio_tcp_received_bytes_total; do
    tcp=$(grep "^$m{" <<<"$stats")
    assert_eq 1 "$(wc -l <<<"$tcp")" "$m series (one tunnel)"
    for l in destination_service destination_service_name destination_service_namespace destination_app \
        destination_version; do
        assert_eq "$(label_of "$upgrade" $l)" "$(label_of "$tcp" $l)" "$m $l (as istio_requests_total of the 101)"
    done
done
echo "$stats" | promtool check metrics >"$T/promtool.out" 2>&1 || {
    grep -v 'counter metrics should have "_total" suffix\|should be "_seconds"\|use base unit' "$T/promtool.out" | grep -q . &&
        fail "promtool on /stats/prometheus: $(cat "$T/promtool.out")"
}

# ---- admin ----
assert_eq 200 "$(http_status GET "$ADMIN/ready")" "/ready"
http_get_json "$ADMIN/config_dump" "config_dump" | jq -e '.' >/dev/null
proxy_alive "at the end"
assert_eq 200 "$(http_status POST "$ADMIN/quitquitquit")" "/quitquitquit"
wait_until -n 200 bash -c "! kill -0 $PROXY_PID" || fail "proxy still running after /quitquitquit"
rc=0
wait "$PROXY_PID" || rc=$?
assert_eq 0 "$rc" "exit code after /quitquitquit (log: $(tail -5 "$PROXY_LOG"))"
note "proxy routing: all checks passed"
