#!/usr/bin/env bash
# outrider-proxy --check: the example meshes pass; a broken file gives every
# error with file:line:col and exit 1; warnings do not fail the check;
# --print-config prints the effective configuration as JSON; without
# --config it is a usage error (exit 2).
. "$(dirname "$0")/../lib.sh"

BIN=$OUTRIDER_BIN/outrider-proxy
[[ -x $BIN ]] || fail "no proxy binary at $BIN (set OUTRIDER_BIN)"
passed=0

# run_proxy ARGS...: run the proxy, leave stdout/stderr in $T/out, $T/err and the exit code in $RC
run_proxy() {
    RC=0
    "$BIN" "$@" >"$T/out" 2>"$T/err" || RC=$?
}

# expect_line FILE LINE: FILE has LINE exactly
expect_line() {
    grep -qxF -- "$2" "$1" || { cat "$1" >&2; fail "missing line in $(basename "$1"): $2"; }
}

for f in mesh-example.yaml mesh-reviews-v1.yaml; do
    run_proxy --config "$OUTRIDER_SRC/deploy/$f" --check
    assert_eq 0 "$RC" "exit code of --check on deploy/$f (stderr: $(cat "$T/err"))"
    expect_line "$T/out" "configuration is valid"
    passed=$((passed + 1))
done
[[ ! -s $T/err ]] || fail "deploy/mesh-example.yaml --check wrote to stderr: $(cat "$T/err")"

cat >"$T/bad.yaml" <<'YAML'
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: pp}
spec:
  workers: 0
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: 19081}, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v3}
      weight: 90
    - destination: {host: ratings}
      weight: 5
    timeout: soon
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: s}
YAML
run_proxy --config "$T/bad.yaml" --check
assert_eq 1 "$RC" "exit code of --check on a bad file"
expect_line "$T/err" "$T/bad.yaml:5:12: Proxy pp: spec.workers: 0 is out of range (1-64)"
expect_line "$T/err" "$T/bad.yaml:22:5: VirtualService reviews: spec.http[0].route: the weights of the destinations add up to 95; they must add up to 100"
expect_line "$T/err" "$T/bad.yaml:27:14: VirtualService reviews: spec.http[0].timeout: expected a duration such as 1s, 0.5s, 250ms, 1m or 1h (at least 1ms), got \"soon\""
expect_line "$T/err" "$T/bad.yaml:30:7: document 4: kind: unknown kind \"Sidecar\" (expected Proxy, ServiceEntry, VirtualService, DestinationRule, RateLimit, Telemetry or PeerAuthentication)"
expect_line "$T/err" "$T/bad.yaml:23:44: VirtualService reviews: spec.http[0].route[0].destination.subset: subset \"v3\" is not defined by any DestinationRule for host reviews"
expect_line "$T/err" "$T/bad.yaml:25:27: VirtualService reviews: spec.http[0].route[1].destination.host: host \"ratings\" is not defined by any ServiceEntry"
expect_line "$T/err" "$T/bad.yaml: 6 errors, 0 warnings: configuration is not valid"
grep -q "configuration is valid" "$T/out" && fail "a bad file was called valid"
passed=$((passed + 1))

# warnings alone do not fail the check
sed -e 's/^  workers: 0$/  workers: 1/' "$OUTRIDER_SRC/deploy/mesh-example.yaml" >"$T/warn.yaml"
cat >>"$T/warn.yaml" <<'YAML'
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec: {hosts: [ratings], ports: [{number: 9080, name: http}], resolution: STATIC, endpoints: [{address: 127.0.0.1}]}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings}
spec:
  host: ratings
  trafficPolicy:
    loadBalancer: {simple: PASSTHROUGH}
YAML
run_proxy --config "$T/warn.yaml" --check
assert_eq 0 "$RC" "exit code of --check with warnings only (stderr: $(cat "$T/err"))"
n=$(wc -l <"$OUTRIDER_SRC/deploy/mesh-example.yaml")
expect_line "$T/err" "warning: $T/warn.yaml:$((n + 13)):28: DestinationRule ratings: spec.trafficPolicy.loadBalancer.simple: PASSTHROUGH is parsed but not enforced yet (ROUND_ROBIN is used)"
expect_line "$T/out" "configuration is valid"
passed=$((passed + 1))

run_proxy --config "$T/missing.yaml" --check
assert_eq 1 "$RC" "exit code on a missing file"
grep -qF "$T/missing.yaml: cannot open: No such file or directory" "$T/err" || fail "no 'cannot open' message: $(cat "$T/err")"
passed=$((passed + 1))

run_proxy --config "$OUTRIDER_SRC/deploy/mesh-example.yaml" --print-config
assert_eq 0 "$RC" "exit code of --print-config"
assert_eq 10 "$(jq '.virtualServices[0].spec.http[1].route[1].weight' "$T/out")" "canary weight in --print-config"
assert_eq '"jason"' "$(jq '.virtualServices[0].spec.http[0].match[0].headers["end-user"].exact' "$T/out")" "header route"
assert_eq '"127.0.0.1:15001"' "$(jq '.proxy.spec.outbound.listen' "$T/out")" "outbound listener"
passed=$((passed + 1))

run_proxy --check
assert_eq 2 "$RC" "exit code without --config"
passed=$((passed + 1))

echo "$passed passed, 0 failed"
