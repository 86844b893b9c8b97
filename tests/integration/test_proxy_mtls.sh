#!/usr/bin/env bash
# Mutual TLS between sidecars with identities from the mesh CA (outriderctl), in namespace shop:
#  - B (reviews) gets its certificate from `outriderctl ca serve` (bootstrap token, 6 s lifetime, so
#    it renews every few seconds); A (productpage) from certificate files, which it re-reads when
#    they change; both trust the mesh root;
#  - PeerAuthentication STRICT (namespace-wide): A -> B works through auto mTLS (the endpoint's
#    security.istio.io/tlsMode: istio label) and through a DestinationRule ISTIO_MUTUAL; plaintext,
#    no client certificate, a certificate from another CA, an expired one and one of another trust
#    domain (signed by the mesh root itself) are refused, each counted with its reason at
#    /stats/prometheus; `openssl s_client` and `openssl verify` check what B presents (SPIFFE SAN,
#    chain, TLS 1.3, no TLS 1.1); a ServiceEntry whose subjectAltNames name another account gets
#    503 UF "TLS error: san_mismatch";
#  - telemetry: the collector sees source_principal / destination_principal as the SPIFFE ids and
#    connection_security_policy="mutual_tls"; the CLIENT span stays the SERVER span's parent; the
#    peer metadata still travels (inside the tunnel) and never reaches the app;
#  - rotation under load: new connections for every request while B renews and A's files are
#    replaced (a new certificate and a root bundle with a second root): no failed request, and
#    the serials and roots in /config_dump change without a restart; nothing secret in it;
#  - SIGHUP to PERMISSIVE takes plaintext and mTLS; a workload portLevelMtls DISABLE takes plaintext;
#  - --check: STRICT without spec.identity, portLevelMtls without a selector, half a files identity.
# variants: ns-implicit-w2 (tests/lib.sh: the documents in namespace shop through the Proxy's, two workers)
. "$(dirname "$0")/../lib.sh"

CTL=$OUTRIDER_BIN/outriderctl
[[ -x $CTL ]] || fail "no outriderctl in $OUTRIDER_BIN"
command -v hey >/dev/null || fail "hey is not installed"
"$CTL" ca init "$T/ca" >/dev/null 2>&1 || fail "ca init"
"$CTL" ca init "$T/rogue" >/dev/null 2>&1 || fail "ca init (rogue, the same trust domain)"
ROOT=$T/ca/root-cert.pem
ID_A=spiffe://cluster.local/ns/shop/sa/productpage
ID_B=spiffe://cluster.local/ns/shop/sa/reviews

# A's certificate files, as a secret mount holds them
"$CTL" cert issue --ca "$T/ca" --namespace shop --service-account productpage --out "$T/a1" >/dev/null 2>&1 ||
    fail "cert issue (productpage)"
mkdir -p "$T/acerts"
cp "$T/a1/cert-chain.pem" "$T/a1/key.pem" "$T/acerts/"
cp "$ROOT" "$T/acerts/roots.pem"

# the CA endpoint for B, with B's bootstrap token
TOK_B=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '# TOKEN NAMESPACE SERVICE-ACCOUNT\n%s shop reviews\n' "$TOK_B" >"$T/tokens"
chmod 600 "$T/tokens"
printf '%s\n' "$TOK_B" >"$T/token-b"
"$CTL" ca serve --ca "$T/ca" --listen 127.0.0.1:0 --tokens "$T/tokens" 2>"$T/ca-serve.log" &
track_pid $!
ca_listening() { grep -q 'listening https://127.0.0.1:[0-9]*' "$T/ca-serve.log"; }
wait_until -n 200 -i 0.05 ca_listening || fail "ca serve did not start: $(cat "$T/ca-serve.log")"
CA_URL=$(grep -o 'https://127.0.0.1:[0-9]*' "$T/ca-serve.log" | head -1)

start_collector
start_backend reviews-app
APP_B=$BACKEND_PORT
B_IN=$(free_port)

b_yaml() { # MODE [EXTRA]: B's file with the namespace's PeerAuthentication MODE
    cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews, version: v1}}
spec:
  inbound: {listen: 127.0.0.1:$B_IN, forwardTo: 127.0.0.1:$APP_B}
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  telemetry: {otlpEndpoint: $OTLP_URL, samplingPercent: 100, flushInterval: 200ms}
  identity:
    serviceAccount: reviews
    rootCertificates: $ROOT
    caAddress: $CA_URL
    tokenFile: $T/token-b
    certificateTtl: 6s
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec:
  mtls: {mode: $1}
${2:-}
YAML
}
b_yaml STRICT >"$T/b.yaml"

# two stand-ins for a peer sidecar (tests/tls_head_echo.py, mTLS with the mesh's certificates): "once"
# chooses the ALPN id outrider-http/1.1 (peer metadata once per connection) and echoes the client's
# metadata on its first response only; "every" knows only http/1.1, as Envoy
"$CTL" cert issue --ca "$T/ca" --namespace shop --service-account echo --out "$T/echo" >/dev/null 2>&1 ||
    fail "cert issue (echo)"
start_echo() { # NAME ALPN-IDS [ARGS...]: its port in $T/NAME.port
    local name=$1 alpn=$2
    shift 2
    python3 "$OUTRIDER_SRC/tests/tls_head_echo.py" --cert "$T/echo/cert-chain.pem" --key "$T/echo/key.pem" \
        --ca "$ROOT" --alpn "$alpn" --port-file "$T/$name.port" "$@" >"$T/$name.log" 2>&1 &
    track_pid $!
    wait_until -n 200 -i 0.05 test -s "$T/$name.port" || fail "tls_head_echo $name did not start: $(cat "$T/$name.log")"
}
start_echo once outrider-http/1.1,http/1.1 --echo-metadata
start_echo every http/1.1
ECHO_ONCE=$(cat "$T/once.port")
ECHO_EVERY=$(cat "$T/every.port")
echo_se() { # HOST PORT: a ServiceEntry with the one endpoint, auto mTLS
    printf -- '---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: %s, namespace: shop}\n' "$1"
    printf 'spec:\n  hosts: [%s]\n  ports: [{number: 9080, name: http}]\n  resolution: STATIC\n  endpoints:\n' "$1"
    printf '  - {address: 127.0.0.1, ports: {http: %s}, labels: {app: %s, security.istio.io/tlsMode: istio}}\n' "$2" "$1"
}
{
cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: productpage-v1, namespace: shop, labels: {app: productpage, version: v1}}
spec:
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  telemetry: {otlpEndpoint: $OTLP_URL, samplingPercent: 100, flushInterval: 200ms}
  identity:
    serviceAccount: productpage
    rootCertificates: $T/acerts/roots.pem
    certificateChain: $T/acerts/cert-chain.pem
    privateKey: $T/acerts/key.pem
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $B_IN}, labels: {app: reviews, version: v1, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy:
    connectionPool: {http: {maxRequestsPerConnection: 1}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: details, namespace: shop}
spec:
  hosts: [details]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $B_IN}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: details, namespace: shop}
spec:
  host: details
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: shop}
spec:
  hosts: [ratings]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  subjectAltNames: [spiffe://cluster.local/ns/shop/sa/ratings]
  endpoints:
  - {address: 127.0.0.1, ports: {http: $B_IN}, labels: {app: ratings, security.istio.io/tlsMode: istio}}
YAML
echo_se once "$ECHO_ONCE"
echo_se every "$ECHO_EVERY"
} >"$T/a.yaml"
start_proxy b "$T/b.yaml"
B_PID=$PROXY_PID
B_ADMIN=$PROXY_ADMIN
B_LOG=$PROXY_LOG
start_proxy a "$T/a.yaml"
A_OUT=$PROXY_OUT
A_ADMIN=$PROXY_ADMIN

stat_b() { curl -sS "http://127.0.0.1:$B_ADMIN/stats/prometheus"; }
handshakes() { # ADMIN SIDE RESULT
    curl -sS "http://127.0.0.1:$1/stats/prometheus" |
        awk -v k="outrider_proxy_tls_handshakes_total{side=\"$2\",result=\"$3\"}" '$1 == k {print $2}'
}

# ---- STRICT: the mesh's own traffic ----
code=$(curl -sS --max-time 20 -o "$T/headers.txt" -w '%{http_code}' -H 'Host: reviews:9080' -H 'x-b3-sampled: 1' \
    "http://127.0.0.1:$A_OUT/headers")
assert_eq 200 "$code" "A -> B over auto mTLS (endpoint label)"
grep -qi '^x-envoy-peer-metadata' "$T/headers.txt" && fail "peer metadata reached app B: $(cat "$T/headers.txt")"
tp=$(awk '$1=="traceparent:" {print $2}' "$T/headers.txt")
[[ $tp =~ ^00-([0-9a-f]{32})-([0-9a-f]{16})-01$ ]] || fail "traceparent at app B: '$tp'"
TRACE=${BASH_REMATCH[1]}
# again on A's reused connection to B, where only traceparent (and x-b3-flags when debug) crosses: app B still
# gets every form from B, with the same trace and sampling, B's span as the span and A's as the parent
curl -sS --max-time 20 -o "$T/headers2.txt" -H 'Host: reviews:9080' \
    -H 'b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d' "http://127.0.0.1:$A_OUT/headers"
tp=$(awk '$1=="traceparent:" {print $2}' "$T/headers2.txt")
[[ $tp =~ ^00-80f198ee56343ba864fe8b2a57d3eff7-([0-9a-f]{16})-01$ ]] || fail "traceparent at app B: '$tp'"
span=${BASH_REMATCH[1]}
b3=$(awk '$1=="b3:" {print $2}' "$T/headers2.txt")
[[ $b3 =~ ^80f198ee56343ba864fe8b2a57d3eff7-$span-d-([0-9a-f]{16})$ ]] || fail "b3 at app B: '$b3' (span $span)"
parent=${BASH_REMATCH[1]}
for f in "x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7" "x-b3-spanid: $span" "x-b3-parentspanid: $parent" \
    "x-b3-sampled: 1" "x-b3-flags: 1" "x-forwarded-proto: http"; do
    grep -qxF "$f" <(tr -d '\r' <"$T/headers2.txt") || fail "app B lacks '$f': $(cat "$T/headers2.txt")"
done
[[ $parent != e457b5a2e4d86bd1 ]] || fail "app B's parent is the client's span, not A's"
assert_eq 200 "$(http_status GET "http://127.0.0.1:$A_OUT/status/200" -H 'Host: details:9080')" \
    "A -> B over DestinationRule ISTIO_MUTUAL"
out_ok=$(handshakes "$A_ADMIN" outbound ok)
[[ $out_ok -ge 2 ]] || fail "A's outbound handshakes ok: $out_ok"
[[ $(handshakes "$B_ADMIN" inbound ok) -ge 2 ]] || fail "B's inbound handshakes: $(stat_b | grep handshakes)"

# a ServiceEntry that expects another service account: 503 UF with the reason
curl -sS --max-time 20 -o "$T/ratings.txt" -w '%{http_code}' -H 'Host: ratings:9080' "http://127.0.0.1:$A_OUT/" \
    >"$T/ratings.code" || true
assert_eq 503 "$(cat "$T/ratings.code")" "subjectAltNames naming another account"
grep -q 'TLS error: san_mismatch' "$T/ratings.txt" || fail "503 body: $(cat "$T/ratings.txt")"
[[ $(handshakes "$A_ADMIN" outbound san_mismatch) -ge 1 ]] || fail "san_mismatch not counted by A"

# ---- STRICT refuses everything else ----
plain=$(curl -sS --max-time 20 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$B_IN/" 2>/dev/null) || true
assert_eq 000 "$plain" "plaintext to a STRICT inbound listener gets no HTTP answer"
[[ $(handshakes "$B_ADMIN" inbound not_tls) -ge 1 ]] || fail "not_tls not counted: $(stat_b | grep handshakes)"

# client certificates: another CA, expired, another trust domain (signed by the mesh root), none
"$CTL" cert issue --ca "$T/rogue" --namespace shop --service-account productpage --out "$T/rogue-cert" \
    >/dev/null 2>&1 || fail "cert issue (rogue)"
"$CTL" cert issue --ca "$T/ca" --namespace shop --service-account productpage --ttl 1s --out "$T/short" \
    >/dev/null 2>&1 || fail "cert issue (1 s)"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj / -keyout "$T/evil.key" \
    -out "$T/evil.csr" 2>/dev/null || fail "openssl req"
printf 'subjectAltName=critical,URI:spiffe://evil.local/ns/shop/sa/productpage\nextendedKeyUsage=serverAuth,clientAuth\n' \
    >"$T/evil.ext"
openssl x509 -req -in "$T/evil.csr" -CA "$ROOT" -CAkey "$T/ca/root-key.pem" -CAcreateserial -days 1 \
    -extfile "$T/evil.ext" -out "$T/evil.pem" 2>/dev/null || fail "openssl x509 -req (other trust domain)"
# s_client_get [ARGS...]: a request to B's inbound listener over TLS; prints what came back
s_client_get() {
    printf 'GET /status/200 HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n' |
        timeout 20 openssl s_client -connect "127.0.0.1:$B_IN" -CAfile "$ROOT" -quiet "$@" 2>&1 || true
}
got=$(s_client_get -cert "$T/a1/cert-chain.pem" -key "$T/a1/key.pem")
grep -q 'HTTP/1.1 200' <<<"$got" || fail "a client with the mesh's certificate: $got"
refused() { # REASON DESCRIPTION ARGS...: B refuses the handshake and counts REASON
    local reason=$1 what=$2 before
    shift 2
    before=$(handshakes "$B_ADMIN" inbound "$reason")
    got=$(s_client_get "$@")
    grep -q 'HTTP/1.1' <<<"$got" && fail "$what: B answered over TLS: $got"
    counted() { [[ $(handshakes "$B_ADMIN" inbound "$reason") -gt $before ]]; }
    wait_until -n 100 -i 0.05 counted || fail "$what: no $reason counted ($(stat_b | grep 'inbound'))"
    note "refused: $what ($reason)"
}
refused unknown_ca "certificate from another CA" -cert "$T/rogue-cert/cert-chain.pem" -key "$T/rogue-cert/key.pem"
refused san_mismatch "another trust domain" -cert "$T/evil.pem" -key "$T/evil.key"
refused no_peer_certificate "no client certificate"
expired() { # cert inspect says "(expired ... ago)" on the notAfter line
    local out
    out=$("$CTL" cert inspect "$T/short/cert-chain.pem" 2>&1) || true
    grep -q 'not after: .*(expired' <<<"$out"
}
wait_until -n 100 -i 0.1 expired || fail "the 1 s certificate did not expire: $("$CTL" cert inspect "$T/short/cert-chain.pem" 2>&1)"
refused expired "expired certificate" -cert "$T/short/cert-chain.pem" -key "$T/short/key.pem"
grep -q 'inbound: TLS handshake from 127.0.0.1 failed: unknown_ca' "$B_LOG" || fail "B's log lacks the reason"

# what B presents: its SPIFFE id, a chain to the mesh root, TLS 1.3; TLS 1.1 is refused
timeout 20 openssl s_client -connect "127.0.0.1:$B_IN" -CAfile "$ROOT" -cert "$T/a1/cert-chain.pem" \
    -key "$T/a1/key.pem" -showcerts </dev/null >"$T/sclient.txt" 2>&1 || true
grep -q 'Verify return code: 0 (ok)' "$T/sclient.txt" || fail "s_client did not verify B: $(cat "$T/sclient.txt")"
grep -qE 'TLSv1\.3' "$T/sclient.txt" || fail "not TLS 1.3: $(grep -i protocol "$T/sclient.txt")"
awk '/BEGIN CERTIFICATE/ {n++} n == 1 {print} /END CERTIFICATE/ && n == 1 {exit}' "$T/sclient.txt" >"$T/b-leaf.pem"
openssl x509 -in "$T/b-leaf.pem" -noout -ext subjectAltName >"$T/b-san.txt" 2>&1 || fail "B's leaf: $(cat "$T/b-leaf.pem")"
grep -q "URI:$ID_B" "$T/b-san.txt" || fail "B's SAN: $(cat "$T/b-san.txt")"
openssl verify -CAfile "$ROOT" "$T/b-leaf.pem" | grep ': OK' >/dev/null || fail "openssl verify of B's certificate"
tls11=$(timeout 20 openssl s_client -connect "127.0.0.1:$B_IN" -tls1_1 </dev/null 2>&1) &&
    grep -q 'Cipher is' <<<"$tls11" && ! grep -q 'Cipher is (NONE)' <<<"$tls11" && fail "TLS 1.1 accepted: $tls11"

# ---- telemetry: principals and the security policy at the collector; the trace stays linked ----
principals_seen() {
    curl -sS "$ZIPKIN_URL/metrics" | grep '^istio_requests_total{' | grep 'reporter="destination"' |
        grep "source_principal=\"$ID_A\"" | grep "destination_principal=\"$ID_B\"" |
        grep 'connection_security_policy="mutual_tls"' >/dev/null
}
wait_until -n 200 -i 0.1 principals_seen ||
    fail "no destination-side series with both principals and mutual_tls: $(curl -sS "$ZIPKIN_URL/metrics" | grep istio_requests_total)"
src_seen() {
    curl -sS "$ZIPKIN_URL/metrics" | grep '^istio_requests_total{' | grep 'reporter="source"' |
        grep 'destination_service_name="reviews"' | grep "source_principal=\"$ID_A\"" |
        grep "destination_principal=\"$ID_B\"" >/dev/null
}
wait_until -n 200 -i 0.1 src_seen || fail "source side lacks the principals: $(curl -sS "$ZIPKIN_URL/metrics" | grep 'reporter="source"')"
curl -sS "$ZIPKIN_URL/metrics" | grep '^istio_requests_total{' | grep 'reporter="destination"' |
    grep 'source_principal="unknown"' | grep 'response_code="200"' | grep 'connection_security_policy="mutual_tls"' >/dev/null &&
    fail "a mutual TLS series without its source principal"
two_spans() { curl -sf "$ZIPKIN_URL/api/v2/trace/$TRACE" | jq -e 'length == 2' >/dev/null; }
wait_until -n 200 -i 0.1 two_spans || fail "trace $TRACE: $(curl -sS "$ZIPKIN_URL/api/v2/trace/$TRACE")"
trace=$(curl -sS "$ZIPKIN_URL/api/v2/trace/$TRACE")
client=$(jq -c '.[] | select(.kind == "CLIENT")' <<<"$trace")
server=$(jq -c '.[] | select(.kind == "SERVER")' <<<"$trace")
assert_eq "$(jq -r .id <<<"$client")" "$(jq -r .parentId <<<"$server")" "SERVER span's parent is the CLIENT span"
assert_eq "$ID_A" "$(jq -r '.tags.source_principal' <<<"$server")" "SERVER span's source_principal"
assert_eq "$ID_B" "$(jq -r '.tags.destination_principal' <<<"$client")" "CLIENT span's destination_principal"

# ---- peer metadata once per connection when the server chose outrider-http/1.1, else on every request ----
for i in 1 2 3 4; do
    curl -sS --max-time 20 -H 'Host: once:9080' "http://127.0.0.1:$A_OUT/" >>"$T/once.txt" || fail "curl once"
    curl -sS --max-time 20 -H 'Host: every:9080' "http://127.0.0.1:$A_OUT/" >>"$T/every.txt" || fail "curl every"
done
# (two workers: each has its own pool, so up to two connections; four requests reuse at least one)
awk '{split($2, r, "="); if ((r[2] == 1) != ($3 == "md=1") || $4 != "alpn=outrider-http/1.1") bad = 1; if (r[2] > 1) reused = 1}
     END {exit !(NR == 4 && !bad && reused)}' "$T/once.txt" ||
    fail "outrider-http/1.1: the metadata should travel on each connection's first request only: $(cat "$T/once.txt")"
awk '$3 != "md=1" || $4 != "alpn=http/1.1" {bad = 1} END {exit !(NR == 4 && !bad)}' "$T/every.txt" ||
    fail "http/1.1: the metadata should travel on every request: $(cat "$T/every.txt")"
# the trace context as traceparent alone to a sidecar of ours once the handshake said so (B writes every form
# again for its app), all five fields a foreign server needs for a new trace (b3, x-b3-traceid, -spanid,
# -sampled, x-forwarded-proto) otherwise
awk '$6 != "tp=1" {bad = 1} {split($2, r, "=")} r[2] > 1 && $5 != "foreign=0" {bad = 1} END {exit !(NR == 4 && !bad)}' \
    "$T/once.txt" || fail "outrider-http/1.1: the B3 forms should stay off a reused connection: $(cat "$T/once.txt")"
awk '$5 != "foreign=5" || $6 != "tp=1" {bad = 1} END {exit !(NR == 4 && !bad)}' "$T/every.txt" ||
    fail "http/1.1: every trace form and x-forwarded-proto on every request: $(cat "$T/every.txt")"
# A kept the server's metadata (sent on the first response only) for the responses without it
series_sum() { # ADMIN_PORT FILTER...: the sum of istio_requests_total samples whose line has every FILTER
    curl -sS "http://127.0.0.1:$1/stats/prometheus" | prom_sum istio_requests_total "${@:2}"
}
sum_is() { [[ $(series_sum "${@:2}") == "$1" ]]; } # EXPECTED ADMIN_PORT FILTER...
A_ONCE=("$A_ADMIN" 'reporter="source"' 'destination_service_name="once"' 'destination_workload="productpage-v1"')
wait_until -n 100 -i 0.05 sum_is 4 "${A_ONCE[@]}" ||
    fail "responses from once not all attributed to the metadata of its first response: $(series_sum "${A_ONCE[@]}");
$(curl -sS "http://127.0.0.1:$A_ADMIN/stats/prometheus" | grep '^istio_requests_total{.*once')"
# B, a real sidecar: ISTIO_MUTUAL keep-alive to it (details); every request is attributed to A's metadata by B,
# and every response to B's by A, though only each connection's first carried it
B_SRC=("$B_ADMIN" 'reporter="destination"' 'source_workload="productpage-v1"' 'response_code="200"')
A_DST=("$A_ADMIN" 'reporter="source"' 'destination_service_name="details"' 'destination_workload="reviews-v1"')
src0=$(series_sum "${B_SRC[@]}") dst0=$(series_sum "${A_DST[@]}") hs0=$(handshakes "$B_ADMIN" inbound ok)
for i in 1 2 3 4 5 6; do
    assert_eq 200 "$(http_status GET "http://127.0.0.1:$A_OUT/status/200" -H 'Host: details:9080' \
        -H "x-b3-traceid: $(printf 'd1d1%028x' "$i")" -H 'x-b3-spanid: 00f067aa0ba902b7' -H 'x-b3-sampled: 1')" "details $i"
done
[[ $(($(handshakes "$B_ADMIN" inbound ok) - hs0)) -le 2 ]] || fail "A -> B (details) did not reuse its connections"
wait_until -n 100 -i 0.05 sum_is $((src0 + 6)) "${B_SRC[@]}" ||
    fail "B: requests attributed to productpage-v1: $src0 -> $(series_sum "${B_SRC[@]}"), 6 more expected;
$(curl -sS "http://127.0.0.1:$B_ADMIN/stats/prometheus" | grep '^istio_requests_total{')"
wait_until -n 100 -i 0.05 sum_is $((dst0 + 6)) "${A_DST[@]}" ||
    fail "A: responses attributed to reviews-v1: $dst0 -> $(series_sum "${A_DST[@]}"), 6 more expected;
$(curl -sS "http://127.0.0.1:$A_ADMIN/stats/prometheus" | grep '^istio_requests_total{.*details')"
# ... and in the spans: B's SERVER span names A's service, A's CLIENT span B's (not the host's "details")
for i in 1 2 3 4 5 6; do
    tid=$(printf 'd1d1%028x' "$i")
    both() { curl -sf "$ZIPKIN_URL/api/v2/trace/$tid" | jq -e 'length == 2' >/dev/null; }
    wait_until -n 200 -i 0.05 both || fail "trace $tid: $(curl -sS "$ZIPKIN_URL/api/v2/trace/$tid")"
    remote=$(curl -sS "$ZIPKIN_URL/api/v2/trace/$tid" |
        jq -r '[.[] | select(.kind == "SERVER")][0].remoteEndpoint.serviceName + " " +
               [.[] | select(.kind == "CLIENT")][0].remoteEndpoint.serviceName')
    assert_eq "productpage reviews" "$remote" "details request $i: the peers its spans name (server, client)"
done

# ---- rotation under load: a new mTLS connection per request while both certificates change ----
dump() { curl -sS "http://127.0.0.1:$1/config_dump"; }
serial_b0=$(dump "$B_ADMIN" | jq -r .identityStatus.serial)
serial_a0=$(dump "$A_ADMIN" | jq -r .identityStatus.serial)
renewals() { curl -sS "http://127.0.0.1:$1/stats/prometheus" | awk '$1 == "outrider_proxy_identity_renewals_total{result=\"ok\"}" {print $2}'; }
rb0=$(renewals "$B_ADMIN")
hey -z 8s -c 4 -host reviews:9080 "http://127.0.0.1:$A_OUT/status/200" >"$T/hey.txt" 2>&1 &
HEY=$!
sleep 2
"$CTL" cert issue --ca "$T/ca" --namespace shop --service-account productpage --out "$T/a2" >/dev/null 2>&1 ||
    fail "cert issue (productpage, new)"
# replace the files as a secret volume does: new files renamed into place (key first, then the chain)
cp "$T/a2/key.pem" "$T/acerts/.key.new" && cp "$T/a2/cert-chain.pem" "$T/acerts/.chain.new"
cat "$ROOT" "$T/rogue/root-cert.pem" >"$T/acerts/.roots.new"
mv "$T/acerts/.key.new" "$T/acerts/key.pem"
mv "$T/acerts/.chain.new" "$T/acerts/cert-chain.pem"
mv "$T/acerts/.roots.new" "$T/acerts/roots.pem"
wait "$HEY" || fail "hey: $(cat "$T/hey.txt")"
grep -q '\[200\]' "$T/hey.txt" || fail "no 200 under rotation: $(cat "$T/hey.txt")"
grep -E '^\s+\[[0-9]+\]' "$T/hey.txt" | grep -v '\[200\]' >/dev/null && fail "a request failed during rotation: $(cat "$T/hey.txt")"
grep -q 'Error distribution' "$T/hey.txt" && fail "connection errors during rotation: $(cat "$T/hey.txt")"
total=$(awk '/\[200\]/ {print $2}' "$T/hey.txt")
note "$total requests during rotation, all 200"
rb1=$(renewals "$B_ADMIN")
[[ $((rb1 - rb0)) -ge 2 ]] || fail "B renewed $((rb1 - rb0)) times in 8 s (6 s certificates)"
[[ $(dump "$B_ADMIN" | jq -r .identityStatus.serial) != "$serial_b0" ]] || fail "B's serial did not change"
a_new() { dump "$A_ADMIN" | jq -e --arg s "$serial_a0" '.identityStatus.serial != $s and .identityStatus.n_roots == 2' >/dev/null; }
wait_until -n 100 -i 0.1 a_new || fail "A did not take its new files: $(dump "$A_ADMIN" | jq -c .identityStatus)"
assert_eq "$(openssl x509 -in "$T/a2/cert-chain.pem" -noout -serial | sed 's/serial=//')" \
    "$(dump "$A_ADMIN" | jq -r .identityStatus.serial)" "A's serial is the new file's"
assert_eq 200 "$(http_status GET "http://127.0.0.1:$A_OUT/status/200" -H 'Host: reviews:9080')" "after rotation"
for port in "$A_ADMIN" "$B_ADMIN"; do
    d=$(dump "$port")
    grep -q 'PRIVATE KEY' <<<"$d" && fail "/config_dump shows a key"
    grep -q "$TOK_B" <<<"$d" && fail "/config_dump shows the token"
done
grep -q "$TOK_B" "$B_LOG" "$T/ca-serve.log" && fail "a log shows the token"

# ---- PERMISSIVE (SIGHUP): plaintext and mTLS both; DISABLE on the app's port: plaintext ----
b_yaml PERMISSIVE >"$T/b.yaml"
mesh_variant "$T/b.yaml"
kill -HUP "$B_PID"
permissive() { [[ $(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$B_IN/status/200") == 200 ]]; }
wait_until -n 100 -i 0.1 permissive || fail "PERMISSIVE did not take plaintext: $(tail -5 "$B_LOG")"
assert_eq 200 "$(http_status GET "http://127.0.0.1:$A_OUT/status/200" -H 'Host: reviews:9080')" "mTLS under PERMISSIVE"
got=$(s_client_get -cert "$T/a1/cert-chain.pem" -key "$T/a1/key.pem")
grep -q 'HTTP/1.1 200' <<<"$got" || fail "openssl s_client under PERMISSIVE: $got"
plain_n=$(stat_b | awk '$1 == "outrider_proxy_inbound_plaintext_connections_total" {print $2}')
[[ $plain_n -ge 1 ]] || fail "plaintext connections not counted: $plain_n"
assert_eq PERMISSIVE "$(dump "$B_ADMIN" | jq -r .effectivePeerAuthentication.mode)" "effective mode"
b_yaml STRICT "---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: reviews-port, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  portLevelMtls:
    $APP_B: {mode: DISABLE}" >"$T/b.yaml"
mesh_variant "$T/b.yaml"
kill -HUP "$B_PID"
disabled() { dump "$B_ADMIN" | jq -e '.effectivePeerAuthentication.mode == "DISABLE"' >/dev/null; }
wait_until -n 100 -i 0.1 disabled || fail "portLevelMtls DISABLE: $(dump "$B_ADMIN" | jq -c .effectivePeerAuthentication)"
assert_eq 200 "$(http_status GET "http://127.0.0.1:$B_IN/status/200")" "plaintext with the app's port DISABLEd"

# ---- --check ----
check_err() { # FILE EXPECTED
    out=$("$OUTRIDER_BIN/outrider-proxy" --config "$1" --check 2>&1) && fail "--check accepted $1"
    grep -qE "$2" <<<"$out" || fail "--check $1: $out"
}
sed '/^  identity:/,/^---/{/^---/!d}' "$T/a.yaml" >"$T/noid.yaml"
b_yaml STRICT | sed '/^  identity:/,/^---/{/^---/!d}' >"$T/strict-noid.yaml"
check_err "$T/strict-noid.yaml" "strict-noid.yaml:[0-9]+:[0-9]+: PeerAuthentication default: mode STRICT accepts only mutual TLS"
check_err "$T/noid.yaml" "noid.yaml:[0-9]+:[0-9]+: DestinationRule details: spec.trafficPolicy.tls: ISTIO_MUTUAL presents"
{ b_yaml PERMISSIVE; printf -- '---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n'
  printf 'metadata: {name: p, namespace: shop}\nspec:\n  portLevelMtls: {9080: {mode: STRICT}}\n'; } >"$T/ports.yaml"
check_err "$T/ports.yaml" "PeerAuthentication p: spec.portLevelMtls: portLevelMtls applies to the workloads a selector"
sed "s|^    certificateChain: .*||" "$T/a.yaml" >"$T/half.yaml"
check_err "$T/half.yaml" "half.yaml:[0-9]+:[0-9]+: Proxy productpage-v1: spec.identity.certificateChain: missing required field"
echo "1 passed, 0 failed"
