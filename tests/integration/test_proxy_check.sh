#!/usr/bin/env bash
# outrider-proxy --check: the example meshes pass; a broken file gives every
# error with file:line:col and exit 1; warnings do not fail the check;
# --print-config prints the effective configuration as JSON; without
# --config it is a usage error (exit 2); several --config files make one configuration, and each
# message names the file its position is in.
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
expect_line "$T/err" "$T/bad.yaml:30:7: document 4: kind: unknown kind \"Sidecar\" (expected Proxy, ServiceEntry, VirtualService, DestinationRule, RateLimit, Telemetry, PeerAuthentication, AuthorizationPolicy or RequestAuthentication)"
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

# several --config files make one configuration (a workload's Proxy, the mesh's documents apart);
# each message names the file its position is in
cat >"$T/proxy.yaml" <<'YAML'
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: productpage-v1, namespace: shop, labels: {app: productpage}}
spec: {}
YAML
cat >"$T/mesh.yaml" <<'YAML'
# the mesh's documents, as a ConfigMap holds them
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1}]
YAML
run_proxy --config "$T/proxy.yaml" --config "$T/mesh.yaml" --print-config
assert_eq 0 "$RC" "two files (stderr: $(cat "$T/err"))"
assert_eq '"shop"' "$(jq '.serviceEntries[0].metadata.namespace' "$T/out")" "the mesh file's documents take the Proxy's namespace"
cat >"$T/mesh2.yaml" <<'YAML'
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http: [{route: [{destination: {host: ratings}}], timeout: soon}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec: {hosts: [reviews], ports: [{number: 9080, name: http}], resolution: STATIC, endpoints: [{address: 127.0.0.1}]}
YAML
run_proxy --config "$T/proxy.yaml" --config "$T/mesh.yaml" --config "$T/mesh2.yaml" --check
assert_eq 1 "$RC" "errors in the third file"
expect_line "$T/err" "$T/mesh2.yaml:6:61: VirtualService reviews: spec.http[0].timeout: expected a duration such as 1s, 0.5s, 250ms, 1m or 1h (at least 1ms), got \"soon\""
expect_line "$T/err" "$T/mesh2.yaml:6:40: VirtualService reviews: spec.http[0].route[0].destination.host: host \"ratings\" is not defined by any ServiceEntry"
expect_line "$T/err" "$T/mesh2.yaml:10:18: ServiceEntry reviews: metadata.name: duplicate ServiceEntry shop/reviews (the first is at $T/mesh.yaml:2)"
expect_line "$T/err" "$T/mesh2.yaml:11:16: ServiceEntry reviews: spec.hosts[0]: host \"reviews\" is already defined by ServiceEntry reviews ($T/mesh.yaml:6)"
expect_line "$T/err" "$T/proxy.yaml + $T/mesh.yaml + $T/mesh2.yaml: 4 errors, 2 warnings: configuration is not valid"
passed=$((passed + 1))

# a running proxy with two files: SIGHUP reads both again (the mesh file changed: a VirtualService now answers)
start_backend reviews
cat >"$T/run-proxy.yaml" <<'YAML'
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: productpage-v1, namespace: shop}
spec: {outbound: {listen: 127.0.0.1:0}, admin: {listen: 127.0.0.1:0}}
YAML
mesh_file() { # EXTRA: the mesh file, reviews at the backend, plus EXTRA documents
    printf 'apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: reviews}\n'
    printf 'spec: {hosts: [reviews], ports: [{number: 9080, name: http}], resolution: STATIC, '
    printf 'endpoints: [{address: 127.0.0.1, ports: {http: %s}}]}\n%s' "$BACKEND_PORT" "${1:-}"
}
mesh_file >"$T/run-mesh.yaml"
"$BIN" --config "$T/run-proxy.yaml" --config "$T/run-mesh.yaml" >"$T/run.log" 2>&1 &
RUN_PID=$!
track_pid "$RUN_PID"
run_up() { grep -q 'listening admin http://' "$T/run.log"; }
wait_until -n 400 run_up || fail "the proxy with two files did not start: $(cat "$T/run.log")"
OUT=$(grep -o 'listening outbound http://[^ ]*' "$T/run.log" | head -1 | sed 's/.*://')
assert_eq 200 "$(http_status GET "http://127.0.0.1:$OUT/" -H 'Host: reviews:9080')" "reviews from the mesh file"
mesh_file "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec: {hosts: [reviews], http: [{directResponse: {status: 418}}]}
" >"$T/run-mesh.yaml"
kill -HUP "$RUN_PID"
teapot() { [[ $(http_status GET "http://127.0.0.1:$OUT/" -H 'Host: reviews:9080') == 418 ]]; }
wait_until -n 100 -i 0.1 teapot || fail "SIGHUP did not read the mesh file again: $(tail -5 "$T/run.log")"
grep -q "reloaded $T/run-proxy.yaml + $T/run-mesh.yaml" "$T/run.log" || fail "reload log: $(grep reload "$T/run.log")"
# no SIGHUP: a ConfigMap volume swaps a symbolic link under the file, and the proxy notices by itself
mkdir -p "$T/cm/v1" "$T/cm/v2"
mesh_file >"$T/cm/v1/mesh.yaml"
ln -s v1 "$T/cm/..data" && ln -s ..data/mesh.yaml "$T/cm/mesh.yaml"
"$BIN" --config "$T/run-proxy.yaml" --config "$T/cm/mesh.yaml" >"$T/run2.log" 2>&1 &
track_pid $!
run2_up() { grep -q 'listening admin http://' "$T/run2.log"; }
wait_until -n 400 run2_up || fail "the proxy did not start: $(cat "$T/run2.log")"
OUT2=$(grep -o 'listening outbound http://[^ ]*' "$T/run2.log" | head -1 | sed 's/.*://')
assert_eq 200 "$(http_status GET "http://127.0.0.1:$OUT2/" -H 'Host: reviews:9080')" "reviews before the ConfigMap changes"
mesh_file "---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec: {hosts: [reviews], http: [{directResponse: {status: 418}}]}
" >"$T/cm/v2/mesh.yaml"
ln -s v2 "$T/cm/..data_tmp" && mv -T "$T/cm/..data_tmp" "$T/cm/..data" # the kubelet's atomic swap
teapot2() { [[ $(http_status GET "http://127.0.0.1:$OUT2/" -H 'Host: reviews:9080') == 418 ]]; }
wait_until -n 100 -i 0.1 teapot2 || fail "the swapped ConfigMap was not applied: $(tail -5 "$T/run2.log")"
grep -q "changed on disk: reloading" "$T/run2.log" || fail "no reload logged: $(tail -5 "$T/run2.log")"
passed=$((passed + 1))

echo "$passed passed, 0 failed"
