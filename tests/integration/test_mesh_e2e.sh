#!/usr/bin/env bash
# End to end: app A (curl) -> A's sidecar (outbound) -> B's sidecar
# (inbound) -> app B (tests/backend.py), both sidecars exporting to a real
# outrider-collector. Checks: the trace appears in the collector's Zipkin
# API with the CLIENT span of A's sidecar as the parent of the SERVER span
# of B's sidecar; istio_requests_total arrives with reporter="source" and
# reporter="destination", the destination side labelled with the source
# workload through the peer-metadata exchange (and that header never
# reaches app B); the hop between the sidecars is mutual TLS (identities from
# outriderctl, PeerAuthentication STRICT at B, auto mTLS at A) and the
# collector sees the SPIFFE ids as source_principal and destination_principal
# with connection_security_policy="mutual_tls"; an incoming x-b3-sampled: 0 suppresses the trace while
# metrics still count it; access logs arrive as OTLP log records; a
# WebSocket through both sidecars is counted in istio_tcp_* on both
# reporters with the destination service labels istio_requests_total has
# for its 101; B's SIGHUP reload with a bad file is refused and the old
# config serves on.
. "$(dirname "$0")/../lib.sh"

CTL=$OUTRIDER_BIN/outriderctl
"$CTL" ca init "$T/ca" >/dev/null 2>&1 || fail "ca init"
for sa in productpage reviews; do
    "$CTL" cert issue --ca "$T/ca" --namespace default --service-account "$sa" --out "$T/$sa" >/dev/null 2>&1 ||
        fail "cert issue $sa"
done
identity() { # SA: the Proxy's spec.identity from files
    printf '  identity: {serviceAccount: %s, rootCertificates: %s, certificateChain: %s, privateKey: %s}\n' \
        "$1" "$T/ca/root-cert.pem" "$T/$1/cert-chain.pem" "$T/$1/key.pem"
}
start_collector
start_backend reviews-app
APP_B=$BACKEND_PORT
B_IN=$(free_port)

cat >"$T/b.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: reviews-v1, namespace: default, labels: {app: reviews, version: v1}}
spec:
  inbound: {listen: 127.0.0.1:$B_IN, forwardTo: 127.0.0.1:$APP_B}
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  telemetry: {otlpEndpoint: $OTLP_URL, samplingPercent: 100, flushInterval: 200ms}
$(identity reviews)
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: {mode: STRICT}}
YAML
cat >"$T/a.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: productpage-v1, namespace: default, labels: {app: productpage, version: v1}}
spec:
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  telemetry: {otlpEndpoint: $OTLP_URL, samplingPercent: 100, flushInterval: 200ms}
$(identity productpage)
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $B_IN}, labels: {app: reviews, version: v1, security.istio.io/tlsMode: istio}}
YAML
start_proxy b "$T/b.yaml"
B_PID=$PROXY_PID
B_LOG=$PROXY_LOG
B_ADMIN=$PROXY_ADMIN
start_proxy a "$T/a.yaml"
A_OUT=$PROXY_OUT
A_ADMIN=$PROXY_ADMIN

# ---- one request through both sidecars ----
code=$(curl -sS --max-time 20 -o "$T/headers.txt" -w '%{http_code}' -H 'Host: reviews:9080' \
    -H 'User-Agent: e2e-test' "http://127.0.0.1:$A_OUT/headers")
assert_eq 200 "$code" "request through both sidecars"
grep -q '^x-envoy-peer-metadata' "$T/headers.txt" && fail "peer metadata reached app B: $(cat "$T/headers.txt")"
tp=$(awk '$1=="traceparent:" {print $2}' "$T/headers.txt")
[[ $tp =~ ^00-([0-9a-f]{32})-([0-9a-f]{16})-01$ ]] || fail "traceparent at app B: '$tp' ($(cat "$T/headers.txt"))"
TRACE=${BASH_REMATCH[1]}
SERVER_SPAN=${BASH_REMATCH[2]}
grep -q "^x-b3-traceid: $TRACE" "$T/headers.txt" || fail "b3 headers at app B: $(cat "$T/headers.txt")"
grep -q '^x-request-id: ' "$T/headers.txt" || fail "x-request-id at app B"
note "trace $TRACE, server span $SERVER_SPAN"

# ---- the trace at the collector: two spans, linked ----
wait_until -n 100 -i 0.1 bash -o pipefail -c "curl -sf '$ZIPKIN_URL/api/v2/trace/$TRACE' | jq -e 'length == 2' >/dev/null" ||
    fail "trace $TRACE did not reach the collector with 2 spans: $(curl -sS "$ZIPKIN_URL/api/v2/trace/$TRACE")"
trace=$(curl -sS "$ZIPKIN_URL/api/v2/trace/$TRACE")
client=$(jq -c '.[] | select(.kind == "CLIENT")' <<<"$trace")
server=$(jq -c '.[] | select(.kind == "SERVER")' <<<"$trace")
[[ -n $client && -n $server ]] || fail "expected one CLIENT and one SERVER span: $trace"
assert_eq "$SERVER_SPAN" "$(jq -r .id <<<"$server")" "SERVER span id = the span id app B received"
assert_eq "$(jq -r .id <<<"$client")" "$(jq -r .parentId <<<"$server")" "SERVER span's parent is the CLIENT span"
assert_eq productpage.default "$(jq -r .localEndpoint.serviceName <<<"$client")" "CLIENT span service"
assert_eq reviews.default "$(jq -r .localEndpoint.serviceName <<<"$server")" "SERVER span service"
assert_eq GET "$(jq -r '.tags["http.method"]' <<<"$client")" "http.method tag"
assert_eq 200 "$(jq -r '.tags["http.status_code"]' <<<"$server")" "http.status_code tag"
jq -e '.tags | has("error") | not' <<<"$client" >/dev/null || fail "error tag on a 200: $client"

# a 5xx is tagged error
code=$(http_status GET "http://127.0.0.1:$A_OUT/status/500" -H 'Host: reviews' -H 'x-b3-sampled: 1')
assert_eq 500 "$code" "a 500 from app B passes through"

# ---- x-b3-sampled: 0 suppresses the trace ----
code=$(curl -sS --max-time 20 -o "$T/h2.txt" -w '%{http_code}' -H 'Host: reviews' \
    -H 'x-b3-traceid: 463ac35c9f6413ad48485a3953bb6124' -H 'x-b3-spanid: a2fb4a1d1a96d312' -H 'x-b3-sampled: 0' \
    "http://127.0.0.1:$A_OUT/headers")
assert_eq 200 "$code" "unsampled request"
grep -q '^x-b3-sampled: 0' "$T/h2.txt" || fail "sampling decision not propagated: $(cat "$T/h2.txt")"
grep -q '^x-b3-traceid: 463ac35c9f6413ad48485a3953bb6124' "$T/h2.txt" || fail "incoming trace id not kept"

# ---- metrics at the collector: both reporters, source labels through peer metadata ----
# count_200 REPORTER: the sum of istio_requests_total{reporter=REPORTER, response_code="200"} at the collector
count_200() {
    curl -sS "$ZIPKIN_URL/metrics" | grep '^istio_requests_total{' | grep "reporter=\"$1\"" |
        grep 'response_code="200"' | grep 'destination_service_name="reviews"' | awk '{s += $NF} END {print s + 0}'
}
both_counted() { [[ $(count_200 source) == 2 && $(count_200 destination) == 2 ]]; }
wait_until -n 100 -i 0.1 both_counted || true
assert_eq 2 "$(count_200 source)" "reporter=source 200s (one sampled, one not)"
assert_eq 2 "$(count_200 destination)" "reporter=destination 200s"
metrics=$(curl -sS "$ZIPKIN_URL/metrics")
want_src='reporter="source"'
grep '^istio_requests_total{' <<<"$metrics" | grep 'reporter="destination"' | grep 'source_workload="productpage-v1"' >/dev/null ||
    fail "no destination-side series labelled with the source workload: $(grep istio_requests_total <<<"$metrics")"
grep '^istio_requests_total{' <<<"$metrics" | grep "$want_src" | grep 'destination_workload="reviews-v1"' >/dev/null ||
    fail "source side lacks destination_workload from the response's peer metadata: $(grep istio_requests_total <<<"$metrics")"
grep -q '^istio_request_duration_milliseconds_bucket{' <<<"$metrics" || fail "no duration histogram at the collector"
# mutual TLS: the principals are the certificates' SPIFFE ids
grep '^istio_requests_total{' <<<"$metrics" | grep 'reporter="destination"' | grep 'response_code="200"' |
    grep 'source_principal="spiffe://cluster.local/ns/default/sa/productpage"' |
    grep 'destination_principal="spiffe://cluster.local/ns/default/sa/reviews"' |
    grep 'connection_security_policy="mutual_tls"' >/dev/null ||
    fail "destination side lacks the principals or mutual_tls: $(grep istio_requests_total <<<"$metrics")"
grep '^istio_requests_total{' <<<"$metrics" | grep 'reporter="source"' | grep 'response_code="200"' |
    grep 'source_principal="spiffe://cluster.local/ns/default/sa/productpage"' |
    grep 'destination_principal="spiffe://cluster.local/ns/default/sa/reviews"' >/dev/null ||
    fail "source side lacks the principals: $(grep istio_requests_total <<<"$metrics")"

# only the two sampled requests were traced: the unsampled trace id is absent
code=$(http_status GET "$ZIPKIN_URL/api/v2/trace/463ac35c9f6413ad48485a3953bb6124")
assert_eq 404 "$code" "the unsampled trace is not stored"

# access logs arrive as OTLP log records (3 requests x 2 sidecars)
wait_until -n 100 -i 0.1 bash -c "curl -sS '$ZIPKIN_URL/metrics' | awk '/^outrider_collector_log_records_total/ {s += \$NF} END {exit !(s >= 6)}'" ||
    fail "access logs: $(curl -sS "$ZIPKIN_URL/metrics" | grep log_records)"

# ---- response flags reach the collector: a request for an unknown host (404 NR) ----
assert_eq 404 "$(http_status GET "http://127.0.0.1:$A_OUT/" -H 'Host: nowhere')" "unknown host"
nr_seen() { curl -sS "$ZIPKIN_URL/metrics" | grep '^istio_requests_total{' | grep 'reporter="source"' | grep 'response_flags="NR"' >/dev/null; }
wait_until -n 100 -i 0.1 nr_seen || fail "no response_flags=\"NR\" series at the collector"
nr_span() { curl -sS "$ZIPKIN_URL/api/v2/traces?serviceName=productpage.default&limit=50" |
    jq -e '[.[][] | select(.tags.response_flags == "NR" and .tags["http.status_code"] == "404")] | length >= 1' >/dev/null; }
wait_until -n 100 -i 0.1 nr_span || fail "no span tagged response_flags=NR at the collector"

# ---- a WebSocket through both sidecars: istio_tcp_* on both reporters, with the destination service ----
cat >"$T/ws.py" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(b"GET /ws HTTP/1.1\r\nHost: reviews:9080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    d = s.recv(1)
    if not d: break
    head += d
print(head.split(b"\r\n")[0].decode())
msg = b"ping through two sidecars"
s.sendall(msg)
got = b""
while len(got) < len(msg):
    d = s.recv(65536)
    if not d: break
    got += d
print("echo-ok" if got == msg else "echo-bad %r" % got)
PY
assert_eq "HTTP/1.1 101 Switching Protocols
echo-ok" "$(python3 "$T/ws.py" "$A_OUT")" "WebSocket through both sidecars"
# tcp_closed REPORTER: istio_tcp_connections_closed_total of that reporter at the collector
tcp_closed() {
    curl -sS "$ZIPKIN_URL/metrics" | grep '^istio_tcp_connections_closed_total{' | grep "reporter=\"$1\"" |
        awk '{s += $NF} END {print s + 0}'
}
both_closed() { [[ $(tcp_closed source) == 1 && $(tcp_closed destination) == 1 ]]; }
wait_until -n 100 -i 0.1 both_closed ||
    fail "istio_tcp_connections_closed_total: source $(tcp_closed source), destination $(tcp_closed destination)"
metrics=$(curl -sS "$ZIPKIN_URL/metrics")
label_of() { # LINE NAME: the value of label NAME in a sample line
    sed -n "s/.*[{,]$2=\"\([^\"]*\)\".*/\1/p" <<<"$1"
}
for rep in source destination; do
    upgrade=$(grep '^istio_requests_total{' <<<"$metrics" | grep "reporter=\"$rep\"" | grep 'response_code="101"') ||
        fail "no reporter=$rep istio_requests_total for the 101: $(grep istio_requests_total <<<"$metrics")"
    assert_eq reviews "$(label_of "$upgrade" destination_service_name)" "reporter=$rep destination_service_name of the 101"
    for m in istio_tcp_connections_opened_total istio_tcp_connections_closed_total istio_tcp_sent_bytes_total \
        istio_tcp_received_bytes_total; do
        tcp=$(grep "^$m{" <<<"$metrics" | grep "reporter=\"$rep\"") || fail "no reporter=$rep $m at the collector"
        assert_eq 1 "$(wc -l <<<"$tcp")" "reporter=$rep $m series"
        for l in destination_service destination_service_name destination_service_namespace; do
            assert_eq "$(label_of "$upgrade" $l)" "$(label_of "$tcp" $l)" "reporter=$rep $m $l (as the 101's)"
        done
    done
done

# ---- SIGHUP: a bad file is refused and the old config serves on; a good one applies ----
cp "$T/b.yaml" "$T/b.good.yaml"
printf 'apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: reviews-v1}\nspec: {bogus: 1}\n' >"$T/b.yaml"
kill -HUP "$B_PID"
wait_until grep -q 'reload refused' "$B_LOG" || fail "no 'reload refused' after a bad file: $(tail "$B_LOG")"
grep -q 'b.yaml:4:[0-9]*: .*bogus' "$B_LOG" || fail "reload error without file:line:col: $(tail "$B_LOG")"
assert_eq 200 "$(http_status GET "http://127.0.0.1:$A_OUT/" -H 'Host: reviews')" "serving after a refused reload"
sed 's/samplingPercent: 100/samplingPercent: 50/' "$T/b.good.yaml" >"$T/b.yaml"
kill -HUP "$B_PID"
wait_until grep -q 'reloaded ' "$B_LOG" || fail "good reload not applied: $(tail "$B_LOG")"
curl -sS "http://127.0.0.1:$B_ADMIN/config_dump" | jq -e '.proxy.spec.telemetry.samplingPercent == 50' >/dev/null ||
    fail "config_dump after reload: $(curl -sS "http://127.0.0.1:$B_ADMIN/config_dump" | head -c 600)"
assert_eq 200 "$(http_status GET "http://127.0.0.1:$A_OUT/" -H 'Host: reviews')" "serving after a good reload"
stop_pid "$B_PID"
assert_eq 0 "$STOP_RC" "B's exit code after SIGTERM"
note "mesh e2e: all checks passed"
