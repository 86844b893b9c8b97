#!/usr/bin/env bash
# outrider-proxy circuit breaking (DestinationRule connectionPool) against a
# real backend: with maxConnections 1 and http1MaxPendingRequests 1, a
# second concurrent request waits for the connection and a third fails
# fast with 503 UO; the waiting one is served when the first finishes.
# maxRetries 0 turns a route's retries off (attempts counted at the
# backend). The UO flag reaches istio_requests_total.
# variants: ns-implicit ns-explicit (tests/lib.sh: the same scenario with the documents in namespace shop)
. "$(dirname "$0")/../lib.sh"

start_backend app
BE=$BACKEND_PORT

cat >"$T/b.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: client-v1, labels: {app: client}}
spec:
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  telemetry: {flushInterval: 200ms}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: limited}
spec:
  hosts: [limited]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $BE}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: limited}
spec:
  host: limited
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRetries: 0}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: limited}
spec:
  hosts: [limited]
  http:
  - match: [{uri: {prefix: /status/}}]
    retries: {attempts: 3, retryOn: 5xx}
    route: [{destination: {host: limited}}]
  - retries: {attempts: 0}
    route: [{destination: {host: limited}}]
YAML
start_proxy b "$T/b.yaml"
P=http://127.0.0.1:$PROXY_OUT
ADMIN=http://127.0.0.1:$PROXY_ADMIN
served() { curl -sS --max-time 10 "http://127.0.0.1:$BE/count"; }

# ---- maxConnections 1 + http1MaxPendingRequests 1 ----
base=$(served)
# the first request holds the only connection for 8 s: room for the next two on a loaded machine
curl -sS --max-time 60 -o "$T/1.out" -w '%{http_code}' -H 'Host: limited' "$P/delay/8000" >"$T/1.code" &
C1=$!
track_pid "$C1"
wait_until bash -c "[[ \$(curl -sS http://127.0.0.1:$BE/count) -gt $base ]]" || fail "the first request did not reach the backend"
curl -sS --max-time 60 -o "$T/2.out" -w '%{http_code}' -H 'Host: limited' "$P/delay/10" >"$T/2.code" &
C2=$!
track_pid "$C2"
sleep 2 # the second request is now queued in the proxy (its bytes were on loopback)
[[ $(served) -eq $((base + 1)) ]] || fail "the second request reached the backend past maxConnections 1"
code=$(http_status GET "$P/delay/10" -H 'Host: limited')
assert_eq 503 "$code" "third concurrent request: pending limit 1 reached"
grep -q 'overflow' "$LAST_BODY" || fail "overflow body: $(cat "$LAST_BODY")"
wait "$C1" || fail "first request failed"
wait "$C2" || fail "second (queued) request failed"
assert_eq 200 "$(cat "$T/1.code")" "first request"
assert_eq 200 "$(cat "$T/2.code")" "queued request, served once the connection was free"

# ---- maxRetries 0: the route's 3 retries are not made ----
before=$(served)
code=$(http_status GET "$P/status/503" -H 'Host: limited')
assert_eq 503 "$code" "503 passes through"
assert_eq 1 "$(($(served) - before))" "attempts with maxRetries 0"

wait_until -n 100 -i 0.1 bash -c "curl -sS '$ADMIN/stats/prometheus' | grep '^istio_requests_total{' | grep -q 'response_flags=\"UO\"'" ||
    fail "no UO series: $(curl -sS "$ADMIN/stats/prometheus" | grep istio_requests_total)"
stop_pid "$PROXY_PID"
assert_eq 0 "$STOP_RC" "exit code after SIGTERM"
note "proxy breakers: all checks passed"
