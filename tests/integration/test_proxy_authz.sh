#!/usr/bin/env bash
# AuthorizationPolicy (security.istio.io/v1) on the inbound side, with real sidecars and mutual TLS, in
# namespace shop. Clients: sidecar A (productpage, shop), sidecar C (sleep, namespace other), both with
# certificates from the mesh root, and plain curl straight to B (PERMISSIVE, so no principal). B
# (reviews) applies each policy set below after a SIGHUP; allowed and denied requests are both checked.
# The sets follow Istio's AuthorizationPolicy reference and its authorization tasks:
#  - allow-nothing (spec: {}), deny-all (DENY, rules: [{}]), allow-all (rules: [{}]);
#  - ALLOW from a principal to GET on a path prefix (reference "allow ... from sa, GET /info*");
#  - DENY from a namespace (reference "deny requests from namespace dev");
#  - require mutual TLS: DENY notPrincipals ["*"] (plaintext denied, mesh allowed);
#  - when request.headers[version] (task "HTTP traffic", header condition), when source.namespace;
#  - ipBlocks, remoteIpBlocks and remote.ip (the peer, or X-Forwarded-For with numTrustedProxies), ports,
#    hosts, path templates {*}/{**};
#  - AUDIT: allowed, counted;
#  - dry run (Istio's task): a DENY with istio.io/dry-run: "true" lets requests through, counts
#    dry_run_denied on its policy and says so on the span (authz.dry_run_result);
#  - DENY before ALLOW when both match;
#  - path normalization: "/status/../admin" and "/%61dmin" meet a DENY on /admin*, and the app gets
#    the normalized path;
#  - a client that writes a whole POST body before reading still gets the 403 (lingering close);
#  - /stats/prometheus counts by policy (promtool check metrics); 403 body "RBAC: access denied";
#  - the SERVER span says which policy decided (authz.policy, response_code_details as Envoy words
#    a denial) and which AUDIT policy matched (authz.audit_policy);
#  - trustDomainAliases: a client of an alias trust domain is let in and matches principals of either;
#  - --check: CUSTOM refused at file:line:col; a principals rule without mTLS warned of.
# variants: ns-implicit-w2 (tests/lib.sh: the documents in namespace shop through the Proxy's, two workers)
. "$(dirname "$0")/../lib.sh"

CTL=$OUTRIDER_BIN/outriderctl
[[ -x $CTL ]] || fail "no outriderctl in $OUTRIDER_BIN"
"$CTL" ca init "$T/ca" >/dev/null 2>&1 || fail "ca init"
ROOT=$T/ca/root-cert.pem
for who in shop:productpage:a shop:reviews:b other:sleep:c; do
    IFS=: read -r ns sa dir <<<"$who"
    "$CTL" cert issue --ca "$T/ca" --namespace "$ns" --service-account "$sa" --out "$T/$dir" >/dev/null 2>&1 ||
        fail "cert issue ($sa)"
done
# a second mesh, trust domain old.example (a migration's old one): B trusts both roots from the start
"$CTL" ca init "$T/old" --trust-domain old.example >/dev/null 2>&1 || fail "ca init (old.example)"
"$CTL" cert issue --ca "$T/old" --namespace shop --service-account productpage --out "$T/o" >/dev/null 2>&1 ||
    fail "cert issue (old.example)"
cat "$ROOT" "$T/old/root-cert.pem" >"$T/roots.pem"

start_collector
start_backend reviews-app
APP_B=$BACKEND_PORT
B_IN=$(free_port)

b_yaml() { # POLICY DOCUMENTS (may be empty)
    cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews, version: v1}}
spec:
  inbound: {listen: 127.0.0.1:$B_IN, forwardTo: 127.0.0.1:$APP_B}
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  workers: 2
  numTrustedProxies: ${TRUSTED_HOPS:-0}
  telemetry: {otlpEndpoint: $OTLP_URL, samplingPercent: 100, flushInterval: 200ms}
  identity:
    serviceAccount: reviews
    trustDomainAliases: [${TD_ALIASES:-}]
    rootCertificates: $T/roots.pem
    certificateChain: $T/b/cert-chain.pem
    privateKey: $T/b/key.pem
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec:
  mtls: {mode: PERMISSIVE}
$1
YAML
}
client_yaml() { # NAME NAMESPACE SA DIR
    cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: $1, namespace: $2, labels: {app: $1}}
spec:
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  identity:
    serviceAccount: $3
    rootCertificates: $ROOT
    certificateChain: $T/$4/cert-chain.pem
    privateKey: $T/$4/key.pem
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: $2}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $B_IN}, labels: {app: reviews, security.istio.io/tlsMode: istio}}
YAML
}
b_yaml "" >"$T/b.yaml"
start_proxy b "$T/b.yaml"
B_PID=$PROXY_PID
B_ADMIN=$PROXY_ADMIN
client_yaml productpage shop productpage a >"$T/a.yaml"
start_proxy a "$T/a.yaml"
A_OUT=$PROXY_OUT
# C lives in namespace other: no namespace variant rewrites it (tests/lib.sh rewrites only with a variant)
client_yaml sleep other sleep c >"$T/c.yaml"
OUTRIDER_TEST_VARIANT='' start_proxy c "$T/c.yaml"
C_OUT=$PROXY_OUT
HOST='Host: reviews.shop.svc.cluster.local:9080'

code() { # WHO(a|c|plain) METHOD PATH [curl args...]: the status code
    local who=$1 m=$2 path=$3 url
    shift 3
    case $who in
    a) url="http://127.0.0.1:$A_OUT$path" ;;
    c) url="http://127.0.0.1:$C_OUT$path" ;;
    plain) url="http://127.0.0.1:$B_IN$path" ;;
    esac
    local host=$HOST
    [[ $* == *'Host:'* ]] && host= # the caller's own Host instead
    curl -sS --max-time 20 --path-as-is -o "$T/body" -w '%{http_code}' -X "$m" ${host:+-H "$host"} "$@" "$url"
}
expect() { # CODE WHO METHOD PATH [curl args...]
    local want=$1 got
    shift
    got=$(code "$@")
    [[ $got == "$want" ]] || fail "[$POLICY] $*: $got, expected $want: $(head -c 200 "$T/body")"
    if [[ $want == 403 ]]; then
        [[ $(cat "$T/body") == "RBAC: access denied" ]] || fail "[$POLICY] $*: 403 body '$(cat "$T/body")'"
    fi
}
stats() { curl -sS "http://127.0.0.1:$B_ADMIN/stats/prometheus"; }
apply() { # NAME DOCUMENTS: B's policies become DOCUMENTS (policy NAME among them), after a SIGHUP
    POLICY=$1
    b_yaml "$2" >"$T/b.yaml"
    mesh_variant "$T/b.yaml"
    kill -HUP "$B_PID"
    applied() { stats | grep -q "policy=\"shop/$POLICY\""; }
    wait_until -n 100 -i 0.1 applied || fail "policy $POLICY not applied: $(tail -5 "$T/proxy-b.log")"
}
ap() { # NAME SPEC (indented two spaces): one AuthorizationPolicy document in namespace shop
    printf -- '---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: %s, namespace: shop}\nspec:\n%s\n' "$1" "$2"
}

# no policy: everything passes
POLICY=none
expect 200 a GET /status/200
expect 200 c GET /status/200
expect 200 plain GET /status/200
stats | grep -q outrider_proxy_authz_requests_total && fail "authz counters without any policy"

apply allow-nothing "$(ap allow-nothing '  {}')"
expect 403 a GET /status/200
expect 403 plain GET /status/200

apply deny-all "$(ap deny-all '  action: DENY
  rules: [{}]')"
expect 403 a GET /status/200
expect 403 c POST /headers

apply allow-all "$(ap allow-all '  rules: [{}]')"
expect 200 a GET /status/200
expect 200 plain GET /headers

# ALLOW from productpage's principal, GET on /status/*, selector on B's labels
apply viewer "$(ap viewer '  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/productpage"]}}]
    to: [{operation: {methods: ["GET"], paths: ["/status/*"]}}]')"
expect 200 a GET /status/200
expect 403 a POST /status/200
expect 403 a GET /headers
expect 403 c GET /status/200
expect 403 plain GET /status/200

# DENY from namespace other; the rest allowed
apply deny-other "$(ap deny-other '  action: DENY
  rules:
  - from: [{source: {namespaces: ["other"]}}]')"
expect 403 c GET /status/200
expect 200 a GET /status/200
expect 200 plain GET /status/200

# require mutual TLS: deny requests without a principal
apply require-mtls "$(ap require-mtls '  action: DENY
  rules:
  - from: [{source: {notPrincipals: ["*"]}}]')"
expect 403 plain GET /status/200
expect 200 a GET /status/200
expect 200 c GET /status/200

# when: a header and the source namespace
apply by-header "$(ap by-header '  rules:
  - when:
    - {key: "request.headers[version]", values: ["v1", "v2"]}
    - {key: source.namespace, values: ["shop"]}')"
expect 200 a GET /status/200 -H 'version: v2'
expect 403 a GET /status/200 -H 'version: v3'
expect 403 a GET /status/200
expect 403 c GET /status/200 -H 'version: v1'

# ipBlocks, ports and hosts (the app's port is B's destination.port)
apply by-ip "$(ap by-ip '  rules:
  - from: [{source: {ipBlocks: ["10.0.0.0/8"]}}]')"
expect 403 plain GET /status/200
apply by-ip-lo "$(ap by-ip-lo '  rules:
  - from: [{source: {ipBlocks: ["127.0.0.0/8"], notIpBlocks: ["127.0.0.2"]}}]')"
expect 200 plain GET /status/200
# remoteIpBlocks: the peer without trusted proxies (X-Forwarded-For is the client's to say), else the
# numTrustedProxies-th X-Forwarded-For entry from the right
apply by-remote "$(ap by-remote '  rules:
  - from: [{source: {remoteIpBlocks: ["203.0.113.0/24"]}}]')"
expect 403 plain GET /status/200 -H 'X-Forwarded-For: 203.0.113.9'
TRUSTED_HOPS=2 apply by-remote2 "$(ap by-remote2 '  rules:
  - from: [{source: {remoteIpBlocks: ["203.0.113.0/24"]}}]')"
expect 200 plain GET /status/200 -H 'X-Forwarded-For: 198.51.100.1, 203.0.113.9, 10.0.0.1'
expect 200 plain GET /status/200 -H 'X-Forwarded-For: 203.0.113.9' -H 'X-Forwarded-For: 10.0.0.1'
expect 403 plain GET /status/200 -H 'X-Forwarded-For: 203.0.113.9, 198.51.100.1, 10.0.0.1'
expect 403 plain GET /status/200 -H 'X-Forwarded-For: 10.0.0.1' # one entry: the peer (127.0.0.1)
TRUSTED_HOPS=1 apply by-remote-when "$(ap by-remote-when '  rules:
  - when: [{key: remote.ip, values: ["2001:db8::/32"]}]')"
expect 200 plain GET /status/200 -H 'X-Forwarded-For: 203.0.113.9, 2001:db8::7'
expect 403 plain GET /status/200 -H 'X-Forwarded-For: 2001:db8::7, 203.0.113.9'
apply by-port "$(ap by-port "  rules:
  - to: [{operation: {ports: [\"$APP_B\"], hosts: [\"reviews.shop.svc.cluster.local\"]}}]")"
expect 200 a GET /status/200
expect 403 plain GET /status/200 -H 'Host: details'
apply by-other-port "$(ap by-other-port '  rules:
  - to: [{operation: {ports: ["1"]}}]')"
expect 403 a GET /status/200

# path templates
apply templates "$(ap templates '  rules:
  - to: [{operation: {paths: ["/status/{*}", "/delay/{**}"]}}]')"
expect 200 a GET /status/200
expect 403 a GET /status/200/x
expect 200 a GET /delay/1

# AUDIT never decides; DENY wins over ALLOW; path normalization in front of both
apply audit "$(ap audit '  action: AUDIT
  rules: [{to: [{operation: {paths: ["/headers"]}}]}]')
$(ap allow-all2 '  rules: [{}]')
$(ap no-admin '  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*", "/status/5*"]}}]}]')"
expect 200 a GET /headers
grep -qx 'path: /headers' "$T/body" || fail "the app's path: $(head -3 "$T/body")"
expect 403 a GET /status/503
expect 403 plain GET /status/../admin
expect 403 plain GET /%61dmin
expect 403 plain GET /headers/../status/500
expect 200 plain GET /status/../headers?q=1
grep -qx 'path: /headers?q=1' "$T/body" || fail "the app got the path as sent, not normalized: $(head -3 "$T/body")"
# /config_dump shows the policies (and which apply here)
dump=$(curl -sS "http://127.0.0.1:$B_ADMIN/config_dump")
assert_eq "audit AUDIT true,allow-all2 ALLOW true,no-admin DENY true" \
    "$(jq -r '[.authorizationPolicies[] | "\(.metadata.name) \(.spec.action) \(.appliesToThisProxy)"] | join(",")' <<<"$dump")" \
    "authorizationPolicies in /config_dump"
assert_eq '["/admin*","/status/5*"]' \
    "$(jq -c '.authorizationPolicies[2].spec.rules[0].to[0].operation.paths' <<<"$dump")" "no-admin's paths in /config_dump"

# the spans say who decided
T1=4bf92f3577b34da6a3ce929d0e0e4736 T2=5bf92f3577b34da6a3ce929d0e0e4737
expect 403 plain GET /status/../admin -H "traceparent: 00-$T1-00f067aa0ba902b7-01"
expect 200 plain GET /headers -H "traceparent: 00-$T2-00f067aa0ba902b7-01"
span_tag() { # TRACE TAG: the tag of the trace's one span, once the collector has it
    curl -sf "$ZIPKIN_URL/api/v2/trace/$1" | jq -r --arg t "$2" '.[0].tags[$t] // empty'
}
has_span() { [[ -n $(span_tag "$1" http.status_code) ]]; }
wait_until -n 200 -i 0.1 has_span "$T1" || fail "no span for the denied request"
wait_until -n 200 -i 0.1 has_span "$T2" || fail "no span for the audited request"
assert_eq "rbac_access_denied_matched_policy[ns[shop]-policy[no-admin]-rule[0]]" \
    "$(span_tag "$T1" response_code_details)" "denied span's response_code_details"
assert_eq shop/no-admin "$(span_tag "$T1" authz.policy)" "denied span's authz.policy"
assert_eq shop/allow-all2 "$(span_tag "$T2" authz.policy)" "allowed span's authz.policy"
assert_eq shop/audit "$(span_tag "$T2" authz.audit_policy)" "allowed span's authz.audit_policy"
assert_eq "" "$(span_tag "$T2" response_code_details)" "an allowed request has no response_code_details"

s=$(stats)
audited=$(prom_sum outrider_proxy_authz_requests_total 'policy="shop/audit"' 'result="audited"' <<<"$s")
[[ $audited -ge 3 ]] || fail "audited requests: $audited (expected the three /headers)"
denied=$(prom_sum outrider_proxy_authz_requests_total 'policy="shop/no-admin"' 'action="DENY"' 'result="denied"' <<<"$s")
assert_eq 5 "$denied" "requests no-admin denied"
allowed=$(prom_sum outrider_proxy_authz_requests_total 'policy="shop/allow-all2"' 'result="allowed"' <<<"$s")
[[ $allowed -ge 2 ]] || fail "requests allow-all2 allowed: $allowed"
if command -v promtool >/dev/null; then
    # (the authz family alone: promtool's lint also flags Istio's own istio_*_milliseconds names)
    stats | grep outrider_proxy_authz_ | promtool check metrics >"$T/promtool.txt" 2>&1 ||
        fail "promtool: $(cat "$T/promtool.txt")"
fi

# a client that sends a whole 4 MiB POST before reading still gets the 403
python3 "$OUTRIDER_SRC/tests/send_then_read.py" --port "$B_IN" --case big-body --path /admin --expect 403 \
    --tries 5 --body-bytes 4194304 >"$T/linger.log" 2>&1 || fail "send-then-read: $(cat "$T/linger.log")"

# dry run: a DENY on GET /headers annotated istio.io/dry-run is evaluated and reported, not enforced
POLICY=dry-deny
b_yaml "---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: dry-deny, namespace: shop, annotations: {istio.io/dry-run: \"true\"}}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: [GET], paths: [/headers]}}]}]" >"$T/b.yaml"
mesh_variant "$T/b.yaml"
kill -HUP "$B_PID"
dry_applied() { stats | grep -q 'policy="shop/dry-deny",action="DENY",result="dry_run_denied"'; }
wait_until -n 100 -i 0.1 dry_applied || fail "dry-deny not applied: $(stats | grep authz)"
T3=6bf92f3577b34da6a3ce929d0e0e4738
expect 200 a GET /headers -H "traceparent: 00-$T3-00f067aa0ba902b7-01"
expect 200 plain GET /status/200
assert_eq 1 "$(stats | prom_sum outrider_proxy_authz_requests_total 'policy="shop/dry-deny"' 'result="dry_run_denied"')" \
    "dry-run denials counted"
wait_until -n 200 -i 0.1 has_span "$T3" || fail "no span for the dry-run request"
assert_eq denied "$(span_tag "$T3" authz.dry_run_result)" "the span's authz.dry_run_result"
assert_eq shop/dry-deny "$(span_tag "$T3" authz.dry_run_policy)" "the span's authz.dry_run_policy"
assert_eq true "$(curl -sS "http://127.0.0.1:$B_ADMIN/config_dump" | jq '.authorizationPolicies[0].dryRun')" \
    "dryRun in /config_dump"

# trustDomainAliases (a trust domain migration): O's certificate is of old.example. Without the alias B
# refuses it in the handshake; with it, O is the same workload as cluster.local's productpage, whichever
# trust domain a policy names
sed -e "s|serviceAccount: productpage|serviceAccount: productpage\n    trustDomain: old.example\n    trustDomainAliases: [cluster.local]|" \
    -e "s|rootCertificates: $ROOT|rootCertificates: $T/roots.pem|" -e "s|$T/a/|$T/o/|g" -e "s|name: productpage|name: oldpage|" \
    "$T/a.yaml" >"$T/o.yaml"
OUTRIDER_TEST_VARIANT='' start_proxy o "$T/o.yaml"
O_OUT=$PROXY_OUT
o_code() { curl -sS --max-time 20 -o "$T/body" -w '%{http_code}' -H "$HOST" "http://127.0.0.1:$O_OUT$1"; }
apply pp-only "$(ap pp-only '  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/productpage"]}}]')"
assert_eq 503 "$(o_code /status/200)" "old.example's client without the alias"
TD_ALIASES=old.example apply pp-alias "$(ap pp-alias '  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/productpage"]}}]')"
assert_eq 200 "$(o_code /status/200)" "old.example's productpage, alias on, policy names cluster.local"
expect 200 a GET /status/200
expect 403 c GET /status/200
TD_ALIASES=old.example apply pp-old "$(ap pp-old '  rules:
  - from: [{source: {principals: ["old.example/ns/shop/sa/productpage"]}}]')"
assert_eq 200 "$(o_code /status/200)" "old.example's productpage, policy names old.example"
expect 200 a GET /status/200
expect 403 c GET /status/200
dump=$(curl -sS "http://127.0.0.1:$B_ADMIN/config_dump")
assert_eq '["old.example"]' "$(jq -c .proxy.spec.identity.trustDomainAliases <<<"$dump")" "aliases in /config_dump"

# --check: CUSTOM is refused where it is written; a principals rule without mTLS is warned of
cat >"$T/bad.yaml" <<'YAML'
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews}}
spec:
  inbound: {listen: 127.0.0.1:0, forwardTo: 127.0.0.1:9}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: shop}
spec:
  action: CUSTOM
  provider: {name: opa}
YAML
"$OUTRIDER_BIN/outrider-proxy" --check --config "$T/bad.yaml" >"$T/check.txt" 2>&1 && fail "CUSTOM accepted"
grep -q "$T/bad.yaml:11:11: AuthorizationPolicy ext: spec.action: CUSTOM hands the decision to an external authorizer" \
    "$T/check.txt" || fail "CUSTOM message: $(cat "$T/check.txt")"
cat >"$T/warn.yaml" <<'YAML'
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews}}
spec:
  inbound: {listen: 127.0.0.1:0, forwardTo: 127.0.0.1:9}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: from-pp, namespace: shop}
spec:
  rules:
  - from: [{source: {principals: ["cluster.local/ns/shop/sa/productpage"]}}]
YAML
"$OUTRIDER_BIN/outrider-proxy" --check --config "$T/warn.yaml" >"$T/check.txt" 2>&1 || fail "warn.yaml: $(cat "$T/check.txt")"
grep -q "$T/warn.yaml:12:5: .*AuthorizationPolicy from-pp: spec.rules\[0\]: this rule can never match here" \
    "$T/check.txt" || fail "no warning for principals without mTLS: $(cat "$T/check.txt")"
echo "1 passed, 0 failed"
