#!/usr/bin/env bash
# RequestAuthentication cost (issue 14; figures go to docs/benchmarks.md): one outrider-proxy inbound
# sidecar in front of nginx (1 KiB body, keep-alive) verifying a JWT in every request, ES256 or RS256
# (RSA 2048), against none; HAProxy in the same place with its jwt_verify converter as the peer, all
# measured in the same run, alternately (the order rotates every round).
#
# The shape users send: 1,000 users' tokens (tests/jwt_tool.mjs sign-many: each its own sub and jti,
# so nothing can be remembered from one request to the next), cycled over the connections, each
# request with a fresh path and a fresh x-request-id. Outrider checks the signature, iss, aud, exp
# and nbf and copies sub into a header (outputClaimToHeaders); HAProxy checks the signature, alg and
# iss (jwt_verify and jwt_header_query / jwt_payload_query ACLs), which is less work.
# Per round and variant: wrk -t2 -c64 -dDUR (requests/s, p50, p99) and the proxy's CPU per request.
# Telemetry off, 1 worker (nbthread 1).
#   usage: tests/bench/jwt_bench.sh
#   env:   DUR (5 s), ROUNDS (3), OUTRIDER_BIN
# Needs: nginx haproxy wrk curl node (Debian packages).
NAME=jwt_bench
. "$(dirname "$0")/wrk_rounds.sh"
command -v node >/dev/null || die "node is not installed"
start_backend

ISS=https://issuer.bench.example
JWT="node $REPO/tests/jwt_tool.mjs"
$JWT keys "$W/keys" k1 || die "jwt_tool keys"
for alg in es:ES256 rs:RS256; do
    $JWT sign-many "$W/keys" "k1-${alg%%:*}" "${alg##*:}" 1000 "{\"iss\":\"$ISS\",\"aud\":\"reviews\",\"exp\":\"+3600\"}" \
        >"$W/tokens-${alg%%:*}.txt" || die "jwt_tool sign-many $alg"
done

for v in none es256 rs256; do
    p=$(free_port)
    {
        outrider_yaml "$p"
        [[ $v == none ]] || cat <<YAML
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  jwtRules:
  - issuer: $ISS
    audiences: [reviews]
    jwksUri: file://$W/keys/k1-jwks.json
    outputClaimToHeaders: [{header: x-jwt-sub, claim: sub}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: shop}
spec:
  rules: [{from: [{source: {requestPrincipals: ["*"]}}]}]
YAML
    } >"$W/p-$v.yaml"
    start_variant "outrider-$v" "$p" "$W/p-$v.yaml"

    p=$(free_port)
    {
        haproxy_head "$p"
        if [[ $v != none ]]; then
            alg=${v^^}
            printf '  http-request set-var(txn.bearer) http_auth_bearer\n'
            printf '  http-request deny deny_status 401 unless { var(txn.bearer),jwt_header_query('"'"'$.alg'"'"') -m str %s }\n' "$alg"
            printf '  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('"'"'$.iss'"'"') -m str %s }\n' "$ISS"
            printf '  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(%s,"%s") -m int 1 }\n' \
                "$alg" "$W/keys/k1-${v:0:2}.pub.pem"
        fi
        haproxy_tail
    } >"$W/h-$v.cfg"
    start_variant "haproxy-$v" "$p" "$W/h-$v.cfg"
done
VARIANTS="outrider-none outrider-es256 outrider-rs256 haproxy-none haproxy-es256 haproxy-rs256"

# one wrk script per key type: the tokens cycle, the path and request id are fresh
for k in es rs; do
    {
        printf 'local tokens = {}\nfor line in io.lines("%s") do tokens[#tokens + 1] = line end\n' "$W/tokens-$k.txt"
        cat <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/items/" .. n .. "-" .. math.random(1, 1000000000),
                    {["x-request-id"] = tostring(math.random(1, 1000000000000)),
                     ["authorization"] = "Bearer " .. tokens[(n + math.random(0, #tokens - 1)) % #tokens + 1]})
end
LUA
    } >"$W/tokens-$k.lua"
done
# the variants without a check get the ES256 tokens too: the same bytes on the wire
for v in $VARIANTS; do
    k=es
    [[ $v == *rs256 ]] && k=rs
    tok=$(head -1 "$W/tokens-$k.txt")
    code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" "http://127.0.0.1:${PORT[$v]}/")
    [[ $code == 200 ]] || die "$v: a good token got $code"
    last=${tok: -2:1} # a flipped character inside the signature's last full byte
    bad=${tok:0:${#tok}-2}$([[ $last == A ]] && echo B || echo A)${tok: -1}
    code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $bad" "http://127.0.0.1:${PORT[$v]}/")
    [[ $v == *-none || $code == 401 || $code == 403 ]] || die "$v: a bad signature got $code"
    wrk -t2 -c64 -d1s -s "$W/tokens-$k.lua" "http://127.0.0.1:${PORT[$v]}/" >/dev/null 2>&1 # warm up
done
# wrk_rounds takes one script: a dispatcher that reads the variant from the port would be fragile, so
# the rounds run twice, once per key type, each with its own variants
V_ALL=$VARIANTS
VARIANTS="outrider-none outrider-es256 haproxy-none haproxy-es256"
wrk_rounds "RequestAuthentication benchmark, ES256 (P-256)" "$W/tokens-es.lua" none
echo
VARIANTS="outrider-none outrider-rs256 haproxy-none haproxy-rs256"
wrk_rounds "RequestAuthentication benchmark, RS256 (RSA 2048)" "$W/tokens-rs.lua" none
VARIANTS=$V_ALL
