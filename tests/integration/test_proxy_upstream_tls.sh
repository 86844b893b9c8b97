#!/usr/bin/env bash
# TLS origination by the sidecar (DestinationRule trafficPolicy.tls, Istio's ClientTLSSettings),
# against nginx with certificates from the mesh CA (outriderctl), in namespace shop:
#  - SIMPLE with caCertificates and sni: the app's plain request reaches nginx over TLS;
#  - MUTUAL: nginx, which requires a client certificate from the CA, sees ours; SIMPLE to the
#    same server gets nginx's own 400 (no certificate sent);
#  - subjectAltNames with the server's SPIFFE id: accepted; another id: 503 UF, san_mismatch;
#  - a CA that did not sign the server: 503 with flag UF and "TLS error: unknown_ca";
#  - no sni and a host the certificate does not name: refused (the host is checked);
#  - the flags and reasons are in istio_requests_total, whose destination_service_name is the
#    whole external host and destination_service_namespace the ServiceEntry's (shop);
#  - --check: ISTIO_MUTUAL without spec.identity, MUTUAL without a key, an unreadable file,
#    each with file:line:col; /config_dump shows file names, never key material.
# variants: ns-implicit-w2 (tests/lib.sh: the documents in namespace shop through the Proxy's, two workers)
. "$(dirname "$0")/../lib.sh"

CTL=$OUTRIDER_BIN/outriderctl
[[ -x $CTL ]] || fail "no outriderctl in $OUTRIDER_BIN"
command -v nginx >/dev/null || fail "nginx is not installed"
"$CTL" ca init "$T/ca" --trust-domain example.org >/dev/null 2>&1 || fail "ca init"
"$CTL" ca init "$T/other" --trust-domain other.org >/dev/null 2>&1 || fail "ca init (other)"
"$CTL" cert issue --ca "$T/ca" --namespace shop --service-account ratings --dns localhost --out "$T/srv" >/dev/null 2>&1 ||
    fail "cert issue (server)"
"$CTL" cert issue --ca "$T/ca" --namespace shop --service-account productpage --out "$T/cli" >/dev/null 2>&1 ||
    fail "cert issue (client)"

S1=$(free_port)
S2=$(free_port)
cat >"$T/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $T/nginx.pid; error_log $T/nginx.err;
events { worker_connections 64; }
http { access_log off; client_body_temp_path $T; proxy_temp_path $T; fastcgi_temp_path $T; uwsgi_temp_path $T;
  scgi_temp_path $T;
  server { listen 127.0.0.1:$S1 ssl; ssl_certificate $T/srv/cert-chain.pem; ssl_certificate_key $T/srv/key.pem;
    location / { return 200 "tls ok \$ssl_protocol sni=\$ssl_server_name\n"; } }
  server { listen 127.0.0.1:$S2 ssl; ssl_certificate $T/srv/cert-chain.pem; ssl_certificate_key $T/srv/key.pem;
    ssl_client_certificate $T/ca/root-cert.pem; ssl_verify_client on;
    location / { return 200 "mtls ok verify=\$ssl_client_verify\n"; } } }
CONF
nginx -c "$T/nginx.conf" >"$T/nginx.out" 2>&1 &
track_pid $!
nginx_up() { curl -s -o /dev/null --cacert "$T/ca/root-cert.pem" "https://localhost:$S1/"; }
wait_until -n 200 -i 0.1 nginx_up || fail "nginx did not start: $(cat "$T/nginx.err" "$T/nginx.out" 2>/dev/null)"

se() { # NAME PORT: a ServiceEntry NAME.example.com on port 80 whose endpoint is 127.0.0.1:PORT
    printf -- '---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: %s, namespace: shop}\n' "$1"
    printf 'spec:\n  hosts: [%s.example.com]\n  ports: [{number: 80, name: http}]\n  resolution: STATIC\n' "$1"
    printf '  endpoints: [{address: 127.0.0.1, ports: {http: %s}}]\n' "$2"
}
dr() { # NAME TLS: a DestinationRule for NAME.example.com with trafficPolicy.tls TLS (a flow mapping)
    printf -- '---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: %s, namespace: shop}\n' "$1"
    printf 'spec:\n  host: %s.example.com\n  trafficPolicy:\n    tls: %s\n' "$1" "$2"
}
CA=$T/ca/root-cert.pem
{
    cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: productpage-v1, namespace: shop, labels: {app: productpage, version: v1}}
spec:
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  telemetry: {flushInterval: 200ms}
YAML
    se simple "$S1"
    dr simple "{mode: SIMPLE, caCertificates: $CA, sni: localhost}"
    se mutual "$S2"
    dr mutual "{mode: MUTUAL, caCertificates: $CA, sni: localhost, clientCertificate: $T/cli/cert-chain.pem, privateKey: $T/cli/key.pem}"
    se nocert "$S2"
    dr nocert "{mode: SIMPLE, caCertificates: $CA, sni: localhost}"
    se spiffe "$S1"
    dr spiffe "{mode: SIMPLE, caCertificates: $CA, subjectAltNames: [spiffe://example.org/ns/shop/sa/ratings]}"
    se otherid "$S1"
    dr otherid "{mode: SIMPLE, caCertificates: $CA, subjectAltNames: [spiffe://example.org/ns/shop/sa/reviews]}"
    se wrongca "$S1"
    dr wrongca "{mode: SIMPLE, caCertificates: $T/other/root-cert.pem, sni: localhost}"
    se wronghost "$S1"
    dr wronghost "{mode: SIMPLE, caCertificates: $CA}"
} >"$T/mesh.yaml"
mesh_variant "$T/mesh.yaml"
"$OUTRIDER_BIN/outrider-proxy" --config "$T/mesh.yaml" --check >"$T/check.out" 2>&1 ||
    fail "--check refused the mesh: $(cat "$T/check.out")"
start_proxy app "$T/mesh.yaml"
P=http://127.0.0.1:$PROXY_OUT

get() { curl -sS -o "$T/body" -w '%{http_code}' -H "Host: $1.example.com" "$P/"; }
assert_eq 200 "$(get simple)" "SIMPLE"
grep -q '^tls ok TLSv1.[23] sni=localhost$' "$T/body" || fail "SIMPLE: nginx answered $(cat "$T/body")"
assert_eq 200 "$(get simple)" "SIMPLE again (a kept or resumed connection)"
assert_eq 200 "$(get mutual)" "MUTUAL"
grep -q '^mtls ok verify=SUCCESS$' "$T/body" || fail "MUTUAL: nginx answered $(cat "$T/body")"
assert_eq 400 "$(get nocert)" "SIMPLE to a server that requires a client certificate (nginx's own 400)"
assert_eq 200 "$(get spiffe)" "subjectAltNames with the server's SPIFFE id"
for case in "otherid:san_mismatch" "wrongca:unknown_ca" "wronghost:"; do
    name=${case%%:*} reason=${case#*:}
    assert_eq 503 "$(get "$name")" "$name"
    grep -q "transport failure reason: TLS error: $reason" "$T/body" || fail "$name: the answer lacks the TLS reason: $(cat "$T/body")"
done
stats() { curl -sS "http://127.0.0.1:$PROXY_ADMIN/stats/prometheus"; }
uf_counted() { stats | grep '^istio_requests_total{' | grep 'destination_service="wrongca.example.com"' | grep -qE 'response_flags="UF[,"]'; }
wait_until -n 100 -i 0.1 uf_counted || fail "no UF series for wrongca: $(stats | grep wrongca | head -5)"
# a host outside cluster.local is its own service name, in its ServiceEntry's namespace (as Istio 1.23+ labels it)
stats | grep '^istio_requests_total{' | grep 'destination_service="wrongca.example.com"' |
    grep 'destination_service_name="wrongca.example.com"' | grep -q 'destination_service_namespace="shop"' ||
    fail "wrongca's service labels: $(stats | grep 'wrongca' | head -2)"
grep -q 'upstream: TLS handshake failed: unknown_ca' "$PROXY_LOG" || fail "the sidecar's log does not say why: $(tail -5 "$PROXY_LOG")"

# /config_dump: the settings, file names only
dump=$(curl -sS "http://127.0.0.1:$PROXY_ADMIN/config_dump")
jq -e '[.. | objects | select(has("tls")) | .tls.mode] | index("MUTUAL") != null' <<<"$dump" >/dev/null ||
    fail "/config_dump has no tls settings"
grep -q 'PRIVATE KEY' <<<"$dump" && fail "/config_dump shows key material"

# ---- errors at --check ----
check_err() { # TLS EXPECTED
    { sed -n '1,7p' "$T/mesh.yaml"; se bad "$S1"; dr bad "$1"; } >"$T/bad.yaml"
    out=$("$OUTRIDER_BIN/outrider-proxy" --config "$T/bad.yaml" --check 2>&1) && fail "--check accepted tls $1"
    grep -qE "bad.yaml:[0-9]+:[0-9]+: DestinationRule bad: spec.trafficPolicy.tls.*$2" <<<"$out" ||
        fail "--check on tls $1: $out"
}
check_err "{mode: ISTIO_MUTUAL}" "ISTIO_MUTUAL presents the sidecar's workload identity: the Proxy needs spec.identity"
check_err "{mode: MUTUAL, caCertificates: $CA}" "mode MUTUAL needs clientCertificate and privateKey"
check_err "{mode: SIMPLE, caCertificates: $T/nothing.pem}" "cannot read"
check_err "{sni: x}" "mode: missing required field"
echo "1 passed, 0 failed"
