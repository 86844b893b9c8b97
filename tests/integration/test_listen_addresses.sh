#!/usr/bin/env bash
# Listen addresses as users write them (common/hostport): the collector on
# `localhost:0` and `[::1]:0`, the proxy's listeners and admin endpoint on
# `[::1]:0` and an inbound app on `[::1]:PORT`, each actually serving; and
# the refusals: a name where an IP address is required, a bare IPv6
# address, a port past 65535.
. "$(dirname "$0")/../lib.sh"

command -v curl >/dev/null || fail "curl is needed"

# ---- collector: localhost and IPv6 loopback ----
"$OUTRIDER_BIN/outrider-collector" --zipkin-listen localhost:0 --otlp-listen '[::1]:0' >>"$COLLECTOR_LOG" 2>&1 &
COLLECTOR_PID=$!
track_pid "$COLLECTOR_PID"
wait_until -n 400 grep -q 'listening otlp http://' "$COLLECTOR_LOG" || fail "collector did not start"
zport=$(grep -o 'listening zipkin http://localhost:[0-9]*' "$COLLECTOR_LOG" | sed 's/.*://')
oport=$(grep -o 'listening otlp http://\[::1\]:[0-9]*' "$COLLECTOR_LOG" | sed 's/.*://')
[[ -n $zport && -n $oport ]] || fail "listening lines: $(grep listening "$COLLECTOR_LOG")"
note "collector: zipkin localhost:$zport, otlp [::1]:$oport"
assert_eq 200 "$(http_status GET "http://127.0.0.1:$zport/health")" "zipkin on localhost answers on 127.0.0.1"
assert_eq 200 "$(http_status POST "http://[::1]:$oport/v1/traces" -g -H 'Content-Type: application/x-protobuf' \
    --data-binary '')" "OTLP on [::1]"
stop_pid "$COLLECTOR_PID"
assert_eq 0 "$STOP_RC" "collector exit code"

# ---- collector refusals: the reason names the problem ----
bad_listen() { # ADDRESS EXPECTED-MESSAGE
    if "$OUTRIDER_BIN/outrider-collector" --zipkin-listen "$1" --otlp-listen 127.0.0.1:0 >"$T/bad.out" 2>&1; then
        fail "collector started with --zipkin-listen $1"
    fi
    grep -qF "$2" "$T/bad.out" || fail "--zipkin-listen $1: expected \"$2\", got: $(cat "$T/bad.out")"
}
bad_listen example.com:0 'zipkin listen address "example.com:0": host must be an IPv4 or IPv6 address'
bad_listen 127.0.0.01:0 'host must be an IPv4 or IPv6 address'
bad_listen ::1:0 'expected HOST:PORT (port 0-65535; IPv6 in brackets)'
bad_listen 127.0.0.1:65536 'expected HOST:PORT (port 0-65535; IPv6 in brackets)'

# ---- proxy: every listener on IPv6 loopback, the app too ----
start_backend app --host ::1
cat >"$T/v6.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: app-v1, labels: {app: app}}
spec:
  inbound: {listen: "[::1]:0", forwardTo: "[::1]:$BACKEND_PORT"}
  outbound: {listen: "[::1]:0"}
  admin: {listen: "[::1]:0"}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: app}
spec:
  hosts: [app]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: "::1", ports: {http: $BACKEND_PORT}}]
YAML
start_proxy v6 "$T/v6.yaml"
grep -q "listening admin http://\[::1\]:$PROXY_ADMIN" "$PROXY_LOG" || fail "admin listening line: $(grep listening "$PROXY_LOG")"
assert_eq 200 "$(http_status GET "http://[::1]:$PROXY_ADMIN/ready" -g)" "admin on [::1]"
assert_eq 200 "$(http_status GET "http://[::1]:$PROXY_OUT/" -g -H 'Host: app')" "outbound on [::1] to an IPv6 endpoint"
assert_eq "app" "$(cat "$LAST_BODY")" "outbound body"
assert_eq 200 "$(http_status GET "http://[::1]:$PROXY_IN/" -g)" "inbound on [::1] to an app on [::1]"
assert_eq "app" "$(cat "$LAST_BODY")" "inbound body"
stop_pid "$PROXY_PID"
assert_eq 0 "$STOP_RC" "proxy exit code"

# ---- proxy refusals (--check): listeners need IP addresses, destinations a port ----
cat >"$T/bad.yaml" <<'YAML'
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: app-v1}
spec:
  inbound: {listen: "localhost:0", forwardTo: "app.local:0"}
  outbound: {listen: "::1:0"}
  admin: {listen: "127.0.0.1:65536"}
YAML
if "$OUTRIDER_BIN/outrider-proxy" --config "$T/bad.yaml" --check >"$T/check.out" 2>&1; then
    fail "--check accepted bad listen addresses"
fi
expect() { grep -qF "$1" "$T/check.out" || fail "expected \"$1\" in: $(cat "$T/check.out")"; }
expect 'spec.inbound.listen: expected an IP address and port such as 127.0.0.1:15001, got "localhost:0"'
expect 'spec.inbound.forwardTo: expected HOST:PORT with a port 1-65535 (IPv6 in brackets), got "app.local:0"'
expect 'spec.outbound.listen: expected HOST:PORT with a port 0-65535 (IPv6 in brackets), got "::1:0"'
expect 'spec.admin.listen: expected HOST:PORT with a port 0-65535 (IPv6 in brackets), got "127.0.0.1:65536"'
