#!/usr/bin/env bash
# RequestAuthentication (security.istio.io/v1) on the inbound side, with tokens from tests/jwt_tool.mjs
# (Node's crypto: RSA, EC P-256 and Ed25519 keys, a JWKS file read through a file:// jwksUri), in
# namespace shop:
#  - no token passes; a good RS256, PS256, ES256 and EdDSA token passes, from Authorization: Bearer,
#    from ?access_token and from a configured header with its prefix;
#  - refused with 401, the reason and WWW-Authenticate: expired, not yet valid, wrong issuer, wrong
#    audience, a flipped signature bit, alg none, HS256 made with the RSA public key (key confusion),
#    a kid the JWKS lacks, garbage;
#  - the token header is removed before the app (forwardOriginalToken false) and kept when true;
#    outputClaimToHeaders (also a nested claim) and outputPayloadToHeader reach the app, and a client
#    cannot send its own values for them;
#  - with an AuthorizationPolicy: requestPrincipals ["*"] requires a token (Istio's "require JWT");
#    a when condition on request.auth.claims[groups] and request.auth.principal;
#  - JWKS rotation: the file replaced (no signal: the sidecar watches it): the old key's token is refused, the
#    new one passes;
#  - --check: a JWKS that is not one, a jwksUri of another scheme, no issuer, at file:line:col
#    (https:// jwksUri: test_proxy_jwks_fetch).
# variants: ns-implicit-w2 (tests/lib.sh: the documents in namespace shop through the Proxy's, two workers)
. "$(dirname "$0")/../lib.sh"

command -v node >/dev/null || fail "node is not installed"
JWT="node $OUTRIDER_SRC/tests/jwt_tool.mjs"
$JWT keys "$T/keys" k1 || fail "jwt_tool keys"
$JWT keys "$T/keys" k2 || fail "jwt_tool keys (rotation)"
cp "$T/keys/k1-jwks.json" "$T/jwks.json"
ISS=https://issuer.shop.example
tok() { # KID ALG CLAIMS_JSON
    $JWT sign "$T/keys" "$1" "$2" "$3" || fail "jwt_tool sign $*"
}
GOOD_CLAIMS="{\"iss\":\"$ISS\",\"sub\":\"alice\",\"aud\":\"reviews\",\"exp\":\"+600\",\"groups\":[\"dev\",\"admin\"],\"org\":{\"team\":\"blue\"}}"

start_backend reviews-app
APP=$BACKEND_PORT
B_IN=$(free_port)
b_yaml() { # EXTRA DOCUMENTS
    cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews, version: v1}}
spec:
  inbound: {listen: 127.0.0.1:$B_IN, forwardTo: 127.0.0.1:$APP}
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  workers: 2
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  jwtRules:
  - issuer: $ISS
    audiences: [reviews, "https://reviews.shop/"]
    jwksUri: file://$T/jwks.json
    outputClaimToHeaders:
    - {header: x-jwt-sub, claim: sub}
    - {header: x-jwt-team, claim: org.team}
    outputPayloadToHeader: x-jwt-payload
  - issuer: https://other.example
    jwksUri: file://$T/jwks.json
    fromHeaders: [{name: x-token, prefix: "Token "}]
    forwardOriginalToken: true
$1
YAML
}
b_yaml "" >"$T/b.yaml"
start_proxy b "$T/b.yaml"
B_PID=$PROXY_PID

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
refused() { # REASON TOKEN: 401 with REASON and WWW-Authenticate
    expect 401 /headers -H "Authorization: Bearer $2"
    [[ $(cat "$T/body") == "$1" ]] || fail "401 body '$(cat "$T/body")', expected '$1'"
    grep -qi '^www-authenticate: Bearer realm="outrider", error="invalid_token"' "$T/head" ||
        fail "no WWW-Authenticate: $(cat "$T/head")"
}
app_has() { grep -qxF "$1" "$T/body" || fail "the app did not get '$1': $(cat "$T/body")"; }
app_lacks() { grep -qi "^$1" "$T/body" && fail "the app got $1: $(cat "$T/body")"; true; }

# no token passes; good tokens of every kind pass
expect 200 /headers
for kind in rs:RS256 rs:PS256 es:ES256 ed:EdDSA; do
    t=$(tok "k1-${kind%%:*}" "${kind##*:}" "$GOOD_CLAIMS")
    expect 200 /headers -H "Authorization: Bearer $t"
done
GOOD=$(tok k1-rs RS256 "$GOOD_CLAIMS")
expect 200 /headers -H "Authorization: Bearer $GOOD" -H 'x-jwt-sub: mallory' -H 'x-jwt-payload: forged'
app_lacks authorization:
app_has 'x-jwt-sub: alice'
app_has 'x-jwt-team: blue'
app_has "x-jwt-payload: $(cut -d. -f2 <<<"$GOOD")"
grep -c '^x-jwt-sub:' "$T/body" | grep -qx 1 || fail "a client's x-jwt-sub reached the app: $(cat "$T/body")"
expect 200 "/headers?access_token=$GOOD&x=1"
app_has 'x-jwt-sub: alice'
OTHER=$(tok k1-es ES256 '{"iss":"https://other.example","sub":"bob","exp":"+600"}')
expect 200 /headers -H "x-token: Token $OTHER"
app_has "x-token: Token $OTHER" # forwardOriginalToken: true
app_lacks x-jwt-sub

# /config_dump names the rules and counts the keys, never more
dump=$(curl -sS "http://127.0.0.1:$PROXY_ADMIN/config_dump")
assert_eq "$ISS 3" "$(jq -r '.requestAuthentications[0].spec.jwtRules[0] | "\(.issuer) \(.jwksKeys)"' <<<"$dump")" \
    "RequestAuthentication in /config_dump"
grep -q '"kty"\|"n":' <<<"$dump" && fail "/config_dump holds key material: $dump"

# refusals, each with its reason
refused "Jwt is expired" "$(tok k1-rs RS256 "{\"iss\":\"$ISS\",\"sub\":\"a\",\"aud\":\"reviews\",\"exp\":\"-120\"}")"
refused "Jwt is not yet valid" "$(tok k1-rs RS256 "{\"iss\":\"$ISS\",\"sub\":\"a\",\"aud\":\"reviews\",\"nbf\":\"+600\"}")"
refused "Jwt issuer is not configured" "$(tok k1-rs RS256 '{"iss":"https://evil.example","sub":"a","exp":"+600"}')"
refused "Audiences in Jwt are not allowed" "$(tok k1-rs RS256 "{\"iss\":\"$ISS\",\"sub\":\"a\",\"aud\":\"ratings\"}")"
sig=${GOOD##*.}
flip=$([[ ${sig:5:1} == A ]] && echo B || echo A)
refused "Jwt verification fails" "${GOOD%.*}.${sig:0:5}$flip${sig:6}"
refused "Jwt alg is not allowed" "$($JWT none "{\"iss\":\"$ISS\",\"sub\":\"a\",\"aud\":\"reviews\"}")"
refused "Jwt alg is not allowed" "$($JWT hs256-with "$T/keys" k1-rs "{\"iss\":\"$ISS\",\"sub\":\"a\",\"aud\":\"reviews\"}")"
refused "Jwks doesn't have a key to match the kid or alg of the Jwt" "$(tok k2-rs RS256 "$GOOD_CLAIMS")"
refused "Jwt is not in the form of Header.Payload.Signature" "not-a-token"

# AuthorizationPolicy over the token: require one, then claims and the principal
b_yaml "---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  rules:
  - from: [{source: {requestPrincipals: [\"*\"]}}]" >"$T/b.yaml"
mesh_variant "$T/b.yaml"
kill -HUP "$B_PID"
requires() { [[ $(code /status/200) == 403 ]]; }
wait_until -n 100 -i 0.1 requires || fail "require-jwt not applied"
expect 200 /status/200 -H "Authorization: Bearer $GOOD"
b_yaml "---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: admins, namespace: shop}
spec:
  rules:
  - when:
    - {key: \"request.auth.claims[groups]\", values: [admin]}
    - {key: request.auth.principal, values: [\"$ISS/alice\"]}" >"$T/b.yaml"
mesh_variant "$T/b.yaml"
kill -HUP "$B_PID"
admins() { [[ $(code /status/200 -H "Authorization: Bearer $GOOD") == 200 && $(code /status/200) == 403 ]]; }
wait_until -n 100 -i 0.1 admins || fail "admins policy: $(code /status/200 -H "Authorization: Bearer $GOOD")"
DEV=$(tok k1-ed EdDSA "{\"iss\":\"$ISS\",\"sub\":\"alice\",\"aud\":\"reviews\",\"groups\":[\"dev\"]}")
expect 403 /status/200 -H "Authorization: Bearer $DEV"
BOB=$(tok k1-ed EdDSA "{\"iss\":\"$ISS\",\"sub\":\"bob\",\"aud\":\"reviews\",\"groups\":[\"admin\"]}")
expect 403 /status/200 -H "Authorization: Bearer $BOB"

# JWKS rotation: k2's keys replace k1's
NEW=$(tok k2-es ES256 "$GOOD_CLAIMS")
refused "Jwks doesn't have a key to match the kid or alg of the Jwt" "$NEW"
# (no SIGHUP: the sidecar watches the JWKS file as it watches its configuration, every 2 s)
cp "$T/keys/k2-jwks.json" "$T/jwks.json.new" && mv "$T/jwks.json.new" "$T/jwks.json"
rotated() { [[ $(code /status/200 -H "Authorization: Bearer $NEW") == 200 ]]; }
wait_until -n 100 -i 0.1 rotated || fail "the new key's token after rotation: $(cat "$T/body")"
refused "Jwks doesn't have a key to match the kid or alg of the Jwt" "$GOOD"

# --check
check_err() { # WANT (grep -E) then the RequestAuthentication spec on stdin
    {
        printf 'apiVersion: outrider.io/v1alpha1\nkind: Proxy\nmetadata: {name: p, namespace: shop}\n'
        printf 'spec:\n  inbound: {listen: 127.0.0.1:0, forwardTo: 127.0.0.1:9}\n---\n'
        printf 'apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: ra}\nspec:\n'
        cat
    } >"$T/bad.yaml"
    "$OUTRIDER_BIN/outrider-proxy" --check --config "$T/bad.yaml" >"$T/check.txt" 2>&1 && fail "accepted: $1"
    grep -Eq "$1" "$T/check.txt" || fail "--check: expected /$1/, got: $(cat "$T/check.txt")"
}
check_err "bad.yaml:13:12: RequestAuthentication ra: spec.jwtRules\[0\].jwks: not a usable JWKS" <<'YAML'
  jwtRules:
  - issuer: x
    jwks: '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}'
YAML
check_err "bad.yaml:13:14: RequestAuthentication ra: spec.jwtRules\[0\].jwksUri: .*expected an https://, http:// or file:// URI" <<'YAML'
  jwtRules:
  - issuer: x
    jwksUri: ldap://issuer.example/jwks
YAML
check_err "bad.yaml:12:5: RequestAuthentication ra: spec.jwtRules\[0\].issuer: missing required field" <<'YAML'
  jwtRules:
  - jwks: '{"keys": []}'
YAML
echo "1 passed, 0 failed"
