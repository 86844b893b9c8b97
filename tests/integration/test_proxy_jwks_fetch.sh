#!/usr/bin/env bash
# RequestAuthentication with a jwksUri on a server: the sidecar fetches the JWKS and caches it
# (proxy/jwks_fetch.h). nginx serves the keys over TLS with a certificate from the test's mesh CA
# (spec.jwks.caFile), and over plain http; namespace shop, two workers:
#  - a token signed by the fetched keys passes, others are refused; requests do not fetch (nginx's
#    access log: one GET for many requests, refreshInterval 1h);
#  - /config_dump shows the keys and the fetch status; /stats/prometheus the fetch counters;
#  - rotation: the served file changes; SIGHUP fetches again, and so does refreshInterval;
#  - failures keep the keys fetched before, across a configuration reload: a 404, nginx stopped;
#    the counters and lastError say why;
#  - refused fetches: a certificate that does not name the URI's host (127.0.0.1 vs localhost), one
#    from another CA, an answer over 1 MiB, no answer in the rule's timeout: tokens of that issuer
#    get 401 "Jwks remote fetch is failed"; other issuers are not affected;
#  - /ready says WAITING until the first fetch of every jwksUri has ended, then LIVE;
#  - --check: a jwksUri with another scheme or user information is an error at file:line:col;
#    plain http is a warning.
# variants: ns-implicit-w2 (tests/lib.sh: the documents in namespace shop through the Proxy's, two workers)
. "$(dirname "$0")/../lib.sh"

command -v node >/dev/null || fail "node is not installed"
command -v nginx >/dev/null || fail "nginx is not installed"
CTL=$OUTRIDER_BIN/outriderctl
JWT="node $OUTRIDER_SRC/tests/jwt_tool.mjs"
"$CTL" ca init "$T/ca" --trust-domain example.org >/dev/null 2>&1 || fail "ca init"
"$CTL" ca init "$T/other" --trust-domain other.org >/dev/null 2>&1 || fail "ca init (other)"
"$CTL" cert issue --ca "$T/ca" --namespace shop --service-account keys --dns localhost --out "$T/srv" >/dev/null 2>&1 ||
    fail "cert issue"
$JWT keys "$T/keys" k1 && $JWT keys "$T/keys" k2 || fail "jwt_tool keys"
mkdir -p "$T/www"
echo up >"$T/www/up.txt"
cp "$T/keys/k1-jwks.json" "$T/www/jwks.json"
cp "$T/keys/k1-jwks.json" "$T/www/plain.json"
head -c 1100000 /dev/zero | tr '\0' ' ' >"$T/www/big.json"
printf '{"keys":' >>"$T/www/big.json" # valid JSON would not matter: it is cut at 1 MiB first

S=$(free_port)
P=$(free_port)
cat >"$T/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $T/nginx.pid; error_log $T/nginx.err;
events { worker_connections 64; }
http { client_body_temp_path $T; proxy_temp_path $T; fastcgi_temp_path $T; uwsgi_temp_path $T; scgi_temp_path $T;
  log_format f '\$server_port \$request \$status';
  access_log $T/access.log f;
  server { listen 127.0.0.1:$S ssl; ssl_certificate $T/srv/cert-chain.pem; ssl_certificate_key $T/srv/key.pem;
    root $T/www; default_type application/json; }
  server { listen 127.0.0.1:$P; root $T/www; default_type application/json; } }
CONF
start_nginx() {
    nginx -c "$T/nginx.conf" >"$T/nginx.out" 2>&1 &
    NGINX_PID=$!
    track_pid $NGINX_PID
    nginx_up() { curl -s -o /dev/null --cacert "$T/ca/root-cert.pem" "https://localhost:$S/up.txt"; }
    wait_until -n 200 -i 0.1 nginx_up || fail "nginx did not start: $(cat "$T/nginx.err" "$T/nginx.out" 2>/dev/null)"
}
start_nginx
gets() { grep -c "^$S GET /jwks.json " "$T/access.log" || true; }

ISS=https://issuer.shop.example
ISS_HOST=https://wrong-host.example
ISS_PLAIN=https://plain.example
tok() { $JWT sign "$T/keys" "$1" "$2" "$3" || fail "jwt_tool sign $*"; }
claims() { echo "{\"iss\":\"$1\",\"sub\":\"alice\",\"aud\":\"reviews\",\"exp\":\"+600\"}"; }
K1=$(tok k1-rs RS256 "$(claims $ISS)")
K2=$(tok k2-es ES256 "$(claims $ISS)")
K1_HOST=$(tok k1-rs RS256 "$(claims $ISS_HOST)")
K1_PLAIN=$(tok k1-ed EdDSA "$(claims $ISS_PLAIN)")

start_backend reviews-app
APP=$BACKEND_PORT
B_IN=$(free_port)
b_yaml() { # REFRESH
    cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews, version: v1}}
spec:
  inbound: {listen: 127.0.0.1:$B_IN, forwardTo: 127.0.0.1:$APP}
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  workers: 2
  jwks: {caFile: $T/ca/root-cert.pem, refreshInterval: $1}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  jwtRules:
  - issuer: $ISS
    audiences: [reviews]
    jwksUri: https://localhost:$S/jwks.json
    outputClaimToHeaders: [{header: x-jwt-sub, claim: sub}]
  - issuer: $ISS_HOST
    jwksUri: https://127.0.0.1:$S/jwks.json
  - issuer: $ISS_PLAIN
    jwksUri: http://localhost:$P/plain.json
YAML
}
b_yaml 1h >"$T/b.yaml"
start_proxy b "$T/b.yaml"
B_PID=$PROXY_PID
B_ADMIN=$PROXY_ADMIN
B_LOG=$PROXY_LOG

code() { # PATH [curl args...]: status; the body in $T/body
    local path=$1
    shift
    curl -sS --max-time 20 -o "$T/body" -D "$T/head" -w '%{http_code}' "$@" "http://127.0.0.1:$B_IN$path" 2>/dev/null
}
expect() { # CODE PATH [curl args...]
    local want=$1 got
    shift
    got=$(code "$@")
    [[ $got == "$want" ]] || fail "$*: $got, expected $want: $(head -c 300 "$T/body")"
}
bearer() { echo "Authorization: Bearer $1"; }
dump() { curl -sS "http://127.0.0.1:${2:-$B_ADMIN}/config_dump" | jq -c ".requestAuthentications[0].spec.jwtRules[$1]"; }
stats() { curl -sS "http://127.0.0.1:${1:-$B_ADMIN}/stats/prometheus"; }
ready() { [[ $(curl -sS "http://127.0.0.1:$1/ready") == LIVE ]]; }

wait_until -n 200 -i 0.1 ready "$B_ADMIN" || fail "/ready: $(curl -sS "http://127.0.0.1:$B_ADMIN/ready")"
# fetched once, then every request verifies against the cache
for _ in $(seq 20); do expect 200 /headers -H "$(bearer "$K1")"; done
grep -qxF 'x-jwt-sub: alice' "$T/body" || fail "the claim header did not reach the app: $(cat "$T/body")"
expect 200 /headers -H "$(bearer "$K1_PLAIN")"
expect 200 /headers
assert_eq 1 "$(gets)" "GETs of jwks.json for 20 requests (cached)"
grep -q "^$S GET /jwks.json HTTP/1.1 200" "$T/access.log" || fail "nginx log: $(cat "$T/access.log")"
expect 401 /headers -H "$(bearer "$K2")"
assert_eq "Jwks doesn't have a key to match the kid or alg of the Jwt" "$(cat "$T/body")" "k2's token before rotation"

# a certificate that names localhost, not 127.0.0.1: that issuer has no keys; the others are not affected
expect 401 /headers -H "$(bearer "$K1_HOST")"
assert_eq "Jwks remote fetch is failed" "$(cat "$T/body")" "a token whose keys could not be fetched"
grep -qi '^www-authenticate: Bearer' "$T/head" || fail "no WWW-Authenticate: $(cat "$T/head")"
d=$(dump 1)
assert_eq 0 "$(jq -r .jwksKeys <<<"$d")" "keys of the wrong-host URI"
assert_eq "TLS handshake with 127.0.0.1:$S failed: san_mismatch" "$(jq -r .jwksFetch.lastError <<<"$d")" \
    "lastError of the wrong-host URI"
d=$(dump 0)
assert_eq "3 1 0" "$(jq -r '"\(.jwksKeys) \(.jwksFetch.successes) \(.jwksFetch.failures)"' <<<"$d")" "the fetched URI in /config_dump"
grep -q '"kty"\|"n":' <<<"$d" && fail "/config_dump holds key material: $d"
m=$(stats)
assert_num_eq 1 "$(prom_sum outrider_proxy_jwks_fetch_total "jwks_uri=\"https://localhost:$S/jwks.json\"" 'result="success"' <<<"$m")" \
    "fetch successes"
assert_num_eq 3 "$(prom_sum outrider_proxy_jwks_keys "jwks_uri=\"https://localhost:$S/jwks.json\"" <<<"$m")" "keys gauge"
(($(prom_sum outrider_proxy_jwks_fetch_total "jwks_uri=\"https://127.0.0.1:$S/jwks.json\"" 'result="failure"' <<<"$m") >= 1)) ||
    fail "no failure counted for the wrong-host URI: $(grep jwks <<<"$m")"
grep -q "jwks https://127.0.0.1:$S/jwks.json: .*tokens of this issuer are refused" "$B_LOG" || fail "no log line for the failed fetch"

# rotation: the server's file changes; SIGHUP fetches at once
cp "$T/keys/k2-jwks.json" "$T/www/jwks.json"
kill -HUP "$B_PID"
rotated() { [[ $(code /status/200 -H "$(bearer "$K2")") == 200 ]]; }
wait_until -n 200 -i 0.1 rotated || fail "k2's token after rotation and SIGHUP: $(cat "$T/body")"
expect 401 /status/200 -H "$(bearer "$K1")"

# a failed fetch keeps the keys: a 404, then nginx stopped, across a configuration reload
mv "$T/www/jwks.json" "$T/www/gone.json"
kill -HUP "$B_PID"
failed404() { dump 0 | jq -e '.jwksFetch.lastError == "HTTP status 404"'; }
wait_until -n 200 -i 0.1 failed404 || fail "no 404 recorded: $(dump 0)"
expect 200 /status/200 -H "$(bearer "$K2")"
assert_eq 3 "$(dump 0 | jq -r .jwksKeys)" "keys kept after a 404"
stop_pid "$NGINX_PID"
b_yaml 1s >"$T/b.yaml" # a reload (a changed file) with the same URIs; every second a fetch that fails
mesh_variant "$T/b.yaml"
kill -HUP "$B_PID"
reloaded() { curl -sS "http://127.0.0.1:$B_ADMIN/config_dump" | jq -e '.proxy.spec.jwks.refreshInterval == "1s"'; }
wait_until -n 200 -i 0.1 reloaded || fail "the reload did not apply"
refused_conn() { dump 0 | jq -e '.jwksFetch.lastError != "HTTP status 404"'; }
wait_until -n 200 -i 0.1 refused_conn || fail "no failure with nginx stopped: $(dump 0)"
for _ in $(seq 10); do expect 200 /status/200 -H "$(bearer "$K2")"; done
f=$(dump 0 | jq -r .jwksFetch.failures)
((f >= 2)) || fail "failures counted: $f"
note "with nginx stopped: $(dump 0 | jq -r .jwksFetch.lastError)"

# back: refreshInterval 1s picks up a rotation with no signal
mv "$T/www/gone.json" "$T/www/jwks.json"
cp "$T/keys/k1-jwks.json" "$T/www/jwks.json"
start_nginx
back() { [[ $(code /status/200 -H "$(bearer "$K1")") == 200 ]]; }
wait_until -n 300 -i 0.1 back || fail "k1's token once the server is back (refreshInterval 1s): $(cat "$T/body")"
expect 401 /status/200 -H "$(bearer "$K2")"
grep -q "jwks https://localhost:$S/jwks.json: 3 keys fetched" "$B_LOG" || fail "no log line for the fetched keys"

# refused fetches on a second sidecar: another CA's certificate, an answer over 1 MiB, no answer in time;
# /ready waits for the first attempt of each
python3 - "$T/hold.port" <<'PY' >/dev/null 2>&1 &
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
held = []
while True:
    c, _ = s.accept(); held.append(c)  # accepted, never answered
PY
HOLD_PID=$!
track_pid $HOLD_PID
wait_until -n 100 test -s "$T/hold.port" || fail "the silent server did not start"
HOLD=$(cat "$T/hold.port")
C_IN=$(free_port)
cat >"$T/c.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: ratings-v1, namespace: shop, labels: {app: ratings}}
spec:
  inbound: {listen: 127.0.0.1:$C_IN, forwardTo: 127.0.0.1:$APP}
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  jwks: {caFile: $T/other/root-cert.pem}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  jwtRules:
  - {issuer: $ISS, jwksUri: "https://localhost:$S/jwks.json"}
  - {issuer: $ISS_PLAIN, jwksUri: "http://localhost:$P/big.json"}
  - {issuer: https://silent.example, jwksUri: "http://127.0.0.1:$HOLD/jwks", timeout: 60s}
YAML
start_proxy c "$T/c.yaml"
C_ADMIN=$PROXY_ADMIN
r=$(curl -sS "http://127.0.0.1:$C_ADMIN/ready")
assert_eq "WAITING for the first fetch of jwksUri http://127.0.0.1:$HOLD/jwks" "$r" "/ready during the first fetch"
stop_pid "$HOLD_PID" # the held connection closes: that fetch ends, failed
wait_until -n 300 -i 0.1 ready "$C_ADMIN" || fail "/ready after the silent server went: $(curl -sS "http://127.0.0.1:$C_ADMIN/ready")"
for i in 0 1 2; do
    d=$(dump $i "$C_ADMIN")
    assert_eq 0 "$(jq -r .jwksKeys <<<"$d")" "keys of rule $i"
    note "rule $i: $(jq -r .jwksFetch.lastError <<<"$d")"
done
assert_eq "TLS handshake with localhost:$S failed: unknown_ca" "$(dump 0 "$C_ADMIN" | jq -r .jwksFetch.lastError)" "another CA"
assert_eq "answer too large" "$(dump 1 "$C_ADMIN" | jq -r .jwksFetch.lastError)" "an answer over 1 MiB"
c_code() { curl -sS --max-time 20 -o "$T/body" -w '%{http_code}' -H "$(bearer "$1")" "http://127.0.0.1:$C_IN/status/200"; }
assert_eq 401 "$(c_code "$K1")" "a token whose keys are not trusted"
assert_eq "Jwks remote fetch is failed" "$(cat "$T/body")" "its reason"
assert_eq 200 "$(curl -sS --max-time 20 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$C_IN/status/200")" "no token"

# the rule's timeout bounds a fetch: a server that accepts and never answers, 300ms
python3 - "$T/hold2.port" <<'PY' >/dev/null 2>&1 &
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
held = []
while True:
    c, _ = s.accept(); held.append(c)
PY
track_pid $!
wait_until -n 100 test -s "$T/hold2.port" || fail "the second silent server did not start"
sed -i "s|http://127.0.0.1:$HOLD/jwks\", timeout: 60s|http://127.0.0.1:$(cat "$T/hold2.port")/jwks\", timeout: 300ms|" "$T/c.yaml"
kill -HUP "$PROXY_PID"
timed_out() { dump 2 "$C_ADMIN" | jq -e '.jwksFetch.lastError == "no answer in time"'; }
wait_until -n 300 -i 0.1 timed_out || fail "the rule's timeout: $(dump 2 "$C_ADMIN")"

# --check
check() { # WANT (grep -E) URI; EXIT
    printf 'apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: p, namespace: shop}\nspec:\n  inbound: {listen: 127.0.0.1:0, forwardTo: 127.0.0.1:9}\n---\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: ra}\nspec:\n  jwtRules:\n  - issuer: x\n    jwksUri: %s\n' "$2" >"$T/check.yaml"
    local rc=0
    "$OUTRIDER_BIN/outrider-proxy" --check --config "$T/check.yaml" >"$T/check.txt" 2>&1 || rc=$?
    assert_eq "$3" "$rc" "--check exit status for $2"
    grep -Eq "$1" "$T/check.txt" || fail "--check $2: expected /$1/, got: $(cat "$T/check.txt")"
}
check 'check.yaml:13:14: RequestAuthentication ra: spec.jwtRules\[0\].jwksUri: "ftp://x/jwks": expected an https://, http:// or file:// URI' ftp://x/jwks 1
check 'check.yaml:13:14: .*user information' https://user@issuer.example/jwks 1
check 'check.yaml:13:14: .*jwksUri: .*bad port|port' https://issuer.example:99999/jwks 1
check 'warning: .*check.yaml:13:14: .*plain http' http://issuer.example/jwks 0
echo "1 passed, 0 failed"
