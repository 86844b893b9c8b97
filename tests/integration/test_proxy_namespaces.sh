#!/usr/bin/env bash
# outrider-proxy namespaces (issue 8, point 3), with real backends. The
# issue's file: a Proxy in namespace shop, and ServiceEntry, VirtualService,
# DestinationRule and RateLimit documents without metadata.namespace. They
# are in shop (--print-config and /config_dump say so), and every Host form
# the app in shop may use (reviews, reviews:9080, reviews.shop,
# reviews.shop.svc, reviews.shop.svc.cluster.local:9080) reaches the
# VirtualService: its routes, the DestinationRule's subsets, its fault and
# the RateLimit all apply; reviews.default is 404 NR. The same with the Proxy
# written last. A VirtualService explicitly in default is only selected by
# reviews.default, and --check warns about it; two entries for one name warn
# too (exit 0, warnings only).
. "$(dirname "$0")/../lib.sh"

BIN=$OUTRIDER_BIN/outrider-proxy
start_backend v1
V1=$BACKEND_PORT
start_backend v2
V2=$BACKEND_PORT

proxy_doc() {
    cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: productpage-v1, namespace: shop, labels: {app: productpage, version: v1}}
spec:
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  telemetry: {flushInterval: 200ms}
YAML
}
# istio_docs [VS_NAMESPACE]: the Istio documents, the VirtualService in VS_NAMESPACE when given
istio_docs() {
    local vs_meta="{name: reviews}"
    [[ -z ${1:-} ]] || vs_meta="{name: reviews, namespace: $1}"
    cat <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $V1}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: $V2}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: $vs_meta
spec:
  hosts: [reviews]
  http:
  - name: abort
    match: [{uri: {prefix: /abort}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}
    route: [{destination: {host: reviews, subset: v1}}]
  - name: limited
    match: [{uri: {prefix: /status/}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v1}}]
  - name: main
    route: [{destination: {host: reviews, subset: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: outrider.io/v1alpha1
kind: RateLimit
metadata: {name: reviews-limits}
spec:
  hosts: [reviews]
  routes: [limited]
  local: {maxTokens: 3, fillInterval: 1h}
YAML
}

{
    proxy_doc
    echo ---
    istio_docs
} >"$T/issue.yaml"

# ---- --check and --print-config: every document in shop ----
"$BIN" --config "$T/issue.yaml" --check >"$T/check.out" 2>"$T/check.err" ||
    fail "--check refused the issue's file: $(cat "$T/check.err")"
[[ ! -s $T/check.err ]] || fail "--check wrote to stderr: $(cat "$T/check.err")"
"$BIN" --config "$T/issue.yaml" --print-config >"$T/print.json" || fail "--print-config failed"
namespaces() { # the "Kind name namespace" of every document of a config dump on stdin
    jq -r '[.proxy] + .serviceEntries + .virtualServices + .destinationRules + .rateLimits
           | .[] | "\(.kind) \(.metadata.name) \(.metadata.namespace)"'
}
assert_eq "Proxy productpage-v1 shop
ServiceEntry reviews shop
VirtualService reviews shop
DestinationRule reviews shop
RateLimit reviews-limits shop" "$(namespaces <"$T/print.json")" "--print-config namespaces"

start_proxy issue "$T/issue.yaml"
P=http://127.0.0.1:$PROXY_OUT
ADMIN=http://127.0.0.1:$PROXY_ADMIN
assert_eq "$(namespaces <"$T/print.json")" "$(curl -sS "$ADMIN/config_dump" | namespaces)" "/config_dump namespaces"

# backend_of CURL_ARGS...: "STATUS BACKEND" of one request through the proxy ("-" when no backend answered)
backend_of() {
    curl -sS --max-time 20 -D "$T/resp.h" -o "$LAST_BODY" "$@" >/dev/null 2>"$T/curl.err" || true
    tr -d '\r' <"$T/resp.h" | awk -F': ' 'NR == 1 {split($0, s, " "); st = s[2]} tolower($1) == "x-backend" {b = $2}
        END {print st, (b == "" ? "-" : b)}'
}

# check_routes PROXY_PORT: the Host forms of reviews in shop reach the VirtualService, those of default do not
check_routes() {
    local p=http://127.0.0.1:$1 h
    for h in reviews reviews:9080 reviews.shop reviews.shop.svc reviews.shop.svc.cluster.local:9080; do
        assert_eq "200 v2" "$(backend_of -H "Host: $h" "$p/")" "Host: $h (route main, subset v2)"
        assert_eq "200 v1" "$(backend_of -H "Host: $h" -H 'end-user: jason' "$p/")" "Host: $h, end-user jason (v1)"
        assert_eq "418 -" "$(backend_of -H "Host: $h" "$p/abort")" "Host: $h /abort (fault abort 418)"
    done
    for h in reviews.default reviews.default.svc.cluster.local:9080; do
        assert_eq "404 -" "$(backend_of -H "Host: $h" "$p/")" "Host: $h (reviews of namespace default)"
        assert_eq "no route for this host and path" "$(cat "$LAST_BODY")" "404 body for Host: $h"
    done
}
check_routes "$PROXY_OUT"

# ---- the RateLimit of the limited route: 3 tokens, then 429 RL ----
for i in 1 2 3; do
    assert_eq "200 v1" "$(backend_of -H 'Host: reviews.shop' "$P/status/200")" "limited route, request $i"
done
assert_eq "429 -" "$(backend_of -H 'Host: reviews' "$P/status/200")" "limited route past its 3 tokens"

# ---- response flags and the destination's namespace at /stats/prometheus ----
series() { curl -sS "$ADMIN/stats/prometheus" | grep '^istio_requests_total{'; }
has_series() { # LABEL=VALUE...: a series carrying every pair
    local s
    s=$(series)
    for pair in "$@"; do s=$(grep -F "${pair%%=*}=\"${pair#*=}\"" <<<"$s") || return 1; done
}
wait_until -n 100 -i 0.1 has_series response_code=404 response_flags=NR ||
    fail "no 404 NR series: $(series)"
for want in "response_code=200 destination_service=reviews destination_service_namespace=shop destination_version=v2" \
    "response_code=418 response_flags=FI destination_service_namespace=shop" \
    "response_code=429 response_flags=RL destination_service_namespace=shop"; do
    # shellcheck disable=SC2086 # the pairs are words; each may come with a later flush than the 404's
    wait_until -n 100 -i 0.1 has_series $want || fail "no series with $want: $(series)"
done
stop_pid "$PROXY_PID"
assert_eq 0 "$STOP_RC" "exit code after SIGTERM"

# ---- documents come in any order: the Proxy written last ----
{
    istio_docs
    echo ---
    proxy_doc
} >"$T/last.yaml"
start_proxy last "$T/last.yaml"
assert_eq "$(namespaces <"$T/print.json")" "$(curl -sS "http://127.0.0.1:$PROXY_ADMIN/config_dump" | namespaces)" \
    "/config_dump namespaces with the Proxy last"
check_routes "$PROXY_OUT"
stop_pid "$PROXY_PID"

# ---- a VirtualService placed in default: a warning, and only reviews.default selects it ----
{
    proxy_doc
    echo ---
    istio_docs default
} >"$T/mixed.yaml"
"$BIN" --config "$T/mixed.yaml" --check >"$T/check.out" 2>"$T/check.err" ||
    fail "--check refused the mixed file: $(cat "$T/check.err")"
grep -qxF "configuration is valid" "$T/check.out" || fail "--check output: $(cat "$T/check.out")"
assert_eq "warning: $T/mixed.yaml:24:11: VirtualService reviews: spec.hosts[0]: short host \"reviews\" means \
reviews.default.svc.cluster.local (the VirtualService's namespace is default); the sidecar is in namespace shop, \
so the app's Host: reviews does not select this VirtualService (Host: reviews.default does)
$T/mixed.yaml: 1 warning" "$(cat "$T/check.err")" "--check warning for the VirtualService in default"
start_proxy mixed "$T/mixed.yaml"
P=http://127.0.0.1:$PROXY_OUT
assert_eq "418 -" "$(backend_of -H 'Host: reviews.default' "$P/abort")" "Host: reviews.default selects the VirtualService"
# Host: reviews is the ServiceEntry alone: no fault, an endpoint answers (the backends know no /abort: 404)
b=$(backend_of -H 'Host: reviews' "$P/abort")
[[ $b == "404 v1" || $b == "404 v2" ]] || fail "Host: reviews with the VirtualService in default: got '$b'"
stop_pid "$PROXY_PID"

# ---- two entries for one name in shop: warnings, and Istio's reading wins ----
{
    proxy_doc
    cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-short}
spec: {hosts: [reviews], ports: [{number: 80, name: http}], resolution: STATIC,
       endpoints: [{address: 127.0.0.1, ports: {http: $V1}}]}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews-fqdn}
spec: {hosts: [reviews.shop.svc.cluster.local], ports: [{number: 80, name: http}], resolution: STATIC,
       endpoints: [{address: 127.0.0.1, ports: {http: $V2}}]}
YAML
} >"$T/two.yaml"
"$BIN" --config "$T/two.yaml" --check >"$T/check.out" 2>"$T/check.err" ||
    fail "--check refused two entries for one name: $(cat "$T/check.err")"
assert_eq "warning: $T/two.yaml:12:16: ServiceEntry reviews-short: spec.hosts[0]: the app's Host: reviews reaches \
ServiceEntry reviews-fqdn (host \"reviews.shop.svc.cluster.local\"), not this entry: the sidecar is in namespace \
shop, where reviews means reviews.shop.svc.cluster.local
$T/two.yaml: 1 warning" "$(cat "$T/check.err")" "--check warning for two entries"
start_proxy two "$T/two.yaml"
assert_eq "200 v2" "$(backend_of -H 'Host: reviews' "http://127.0.0.1:$PROXY_OUT/")" "Host: reviews (the FQDN entry)"
stop_pid "$PROXY_PID"
note "proxy namespaces: all checks passed"
