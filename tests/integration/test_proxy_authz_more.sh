#!/usr/bin/env bash
# AuthorizationPolicy and RequestAuthentication cases test_proxy_authz.sh and test_proxy_jwt.sh leave out, with
# real sidecars and mutual TLS: A (productpage, shop) is the client; B (reviews, shop) and D (ratings, other) serve
# an app each (tests/backend.py; /headers echoes what the app got) and are reached through A or straight (PERMISSIVE).
#  1. which documents apply: the root namespace's (istio-system) with a selector only where the labels match, in
#     any namespace; a policy in namespace other never on the shop workload, even with a selector its labels
#     match; spec.rootNamespace moves the root (--print-config);
#  2. when request.headers[x-team] with a UTF-8 value: the same bytes pass, any other bytes (another value, NFD
#     instead of NFC, Latin-1, other case) are denied; a YAML "\u00fc" escape is the same value;
#  3. a JWT with UTF-8 sub and claims, written raw and as \uXXXX escapes (surrogate pairs too): outputClaimToHeaders
#     gives the app the claim's exact bytes, requestPrincipals ["iss/Jürgen"] and when request.auth.claims[team]
#     match them exactly; a claim holding CR LF never becomes a header of its own;
#  4. a non-ASCII label value in a selector: --check (nothing validates label values: see the case);
#  5. 8 clients (keep-alive and not, through A and straight to B) while B's policies flip between two sets
#     (SIGHUP, and the file watch): every answer is 200 or 403 as both sets agree, never 5xx, a reset or a hang;
#     the last set holds afterwards.
. "$(dirname "$0")/../lib.sh"

CTL=$OUTRIDER_BIN/outriderctl
PROXY=$OUTRIDER_BIN/outrider-proxy
[[ -x $CTL ]] || fail "no outriderctl in $OUTRIDER_BIN"
command -v node >/dev/null || fail "node is not installed"
"$CTL" ca init "$T/ca" >/dev/null 2>&1 || fail "ca init"
ROOT=$T/ca/root-cert.pem
for who in shop:productpage:a shop:reviews:b other:ratings:d; do
    IFS=: read -r ns sa dir <<<"$who"
    "$CTL" cert issue --ca "$T/ca" --namespace "$ns" --service-account "$sa" --out "$T/$dir" >/dev/null 2>&1 ||
        fail "cert issue ($sa)"
done
JWT="node $OUTRIDER_SRC/tests/jwt_tool.mjs"
$JWT keys "$T/keys" k1 || fail "jwt_tool keys"
ISS=https://issuer.shop.example

start_backend reviews-app
APP_B=$BACKEND_PORT
start_backend ratings-app
APP_D=$BACKEND_PORT
B_IN=$(free_port)
D_IN=$(free_port)

server_yaml() { # NAME NAMESPACE LABELS SA DIR IN APP DOCUMENTS
    cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: $1, namespace: $2, labels: $3}
spec:
  inbound: {listen: 127.0.0.1:$6, forwardTo: 127.0.0.1:$7}
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  workers: 2
  identity:
    serviceAccount: $4
    rootCertificates: $ROOT
    certificateChain: $T/$5/cert-chain.pem
    privateKey: $T/$5/key.pem
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: $2}
spec:
  mtls: {mode: PERMISSIVE}
$8
YAML
}
b_yaml() { server_yaml reviews-v1 shop '{app: reviews, version: v1}' reviews b "$B_IN" "$APP_B" "$1"; }
d_yaml() { server_yaml ratings-v1 other '{app: ratings, version: v1}' ratings d "$D_IN" "$APP_D" "$1"; }
b_yaml "" >"$T/b.yaml"
start_proxy b "$T/b.yaml"
B_PID=$PROXY_PID B_ADMIN=$PROXY_ADMIN
d_yaml "" >"$T/d.yaml"
start_proxy d "$T/d.yaml"
D_PID=$PROXY_PID D_ADMIN=$PROXY_ADMIN
cat >"$T/a.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: productpage-v1, namespace: shop, labels: {app: productpage}}
spec:
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  identity:
    serviceAccount: productpage
    rootCertificates: $ROOT
    certificateChain: $T/a/cert-chain.pem
    privateKey: $T/a/key.pem
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.shop.svc.cluster.local]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $B_IN}, labels: {app: reviews, security.istio.io/tlsMode: istio}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings}
spec:
  hosts: [ratings.other.svc.cluster.local]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $D_IN}, labels: {app: ratings, security.istio.io/tlsMode: istio}}]
YAML
start_proxy a "$T/a.yaml"
A_OUT=$PROXY_OUT

code() { # WHO(b|d: through A; b-plain|d-plain: straight) PATH [curl args...]: the status; the body in $T/body
    local who=$1 path=$2 url host=
    shift 2
    case $who in
    b) url=http://127.0.0.1:$A_OUT$path host='Host: reviews.shop.svc.cluster.local:9080' ;;
    d) url=http://127.0.0.1:$A_OUT$path host='Host: ratings.other.svc.cluster.local:9080' ;;
    b-plain) url=http://127.0.0.1:$B_IN$path ;;
    d-plain) url=http://127.0.0.1:$D_IN$path ;;
    esac
    curl -sS --max-time 20 -o "$T/body" -w '%{http_code}' ${host:+-H "$host"} "$@" "$url" 2>"$T/curl.err" || true
}
expect() { # CODE WHO PATH [curl args...]
    local want=$1 got
    shift
    got=$(code "$@")
    [[ $got == "$want" ]] || fail "[$STEP] $*: $got, expected $want: $(head -c 300 "$T/body") $(cat "$T/curl.err")"
    if [[ $want == 403 ]]; then
        [[ $(cat "$T/body") == "RBAC: access denied" ]] || fail "[$STEP] $*: 403 body '$(cat "$T/body")'"
    fi
    return 0
}
# app_header NAME: the values of header NAME the app got (in $T/body from /headers), one a line, as the bytes that
# came on the wire (backend.py reads header bytes as Latin-1 and writes its body as UTF-8: undone here)
app_header() {
    python3 -c '
import sys
text = open(sys.argv[1], "rb").read().decode("utf-8")
for line in text.split("\n"):
    k, sep, v = line.partition(": ")
    if sep and k == sys.argv[2]:
        sys.stdout.buffer.write(v.encode("latin-1") + b"\n")' "$T/body" "$1"
}
app_got() { # NAME VALUE: the app got exactly one NAME, with exactly VALUE's bytes
    local got
    got=$(app_header "$1")
    [[ $got == "$2" ]] ||
        fail "[$STEP] the app's $1: '$got' ($(printf '%s' "$got" | od -An -tx1 | tr -d '\n')), expected '$2'"
}
stats() { curl -sS --max-time 20 "http://127.0.0.1:$1/stats/prometheus"; }
dump() { curl -sS --max-time 20 "http://127.0.0.1:$1/config_dump"; }
shows() { # ADMIN TEXT: /stats/prometheus has TEXT (read whole: grep -q may stop before curl has written it all)
    local s
    s=$(stats "$1") && grep -qF "$2" <<<"$s"
}
# reload PID FILE CONTENT CHECK...: FILE becomes CONTENT (atomically, as a ConfigMap changes), SIGHUP (PID 0: none,
# the sidecar's watch finds it), until CHECK (a command) passes
reload() {
    local pid=$1 file=$2 name=${2##*/}
    printf '%s\n' "$3" >"$file.new" && mv "$file.new" "$file"
    shift 3
    [[ $pid == 0 ]] || kill -HUP "$pid"
    wait_until -n 300 -i 0.1 "$@" || fail "[$STEP] $file not applied ($*): $(tail -3 "$T/proxy-${name%.yaml}.log")"
}
ap() { # NAMESPACE NAME SPEC (indented two spaces): one AuthorizationPolicy document
    printf -- '---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n'
    printf 'metadata: {name: %s, namespace: %s}\nspec:\n%s\n' "$2" "$1" "$3"
}

# ---- 1. root namespace, selectors, and namespaces ----
STEP=namespaces
MESH="$(ap istio-system root-reviews '  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules: [{to: [{operation: {paths: [/status/418]}}]}]')
$(ap istio-system root-all '  action: DENY
  rules: [{to: [{operation: {paths: [/status/451]}}]}]')
$(ap istio-system root-v1 '  selector: {matchLabels: {version: v1}}
  action: DENY
  rules: [{to: [{operation: {paths: [/status/426]}}]}]')
$(ap istio-system root-allow-reviews '  selector: {matchLabels: {app: reviews}}
  rules: [{to: [{operation: {paths: [/status/*, /headers]}}]}]')
$(ap other other-all '  action: DENY
  rules: [{to: [{operation: {paths: [/status/410]}}]}]')
$(ap other other-reviews '  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules: [{to: [{operation: {paths: [/status/409]}}]}]')
$(ap shop shop-ratings '  selector: {matchLabels: {app: ratings}}
  action: DENY
  rules: [{to: [{operation: {paths: [/status/402]}}]}]')"
reload "$B_PID" "$T/b.yaml" "$(b_yaml "$MESH")" shows "$B_ADMIN" 'policy="istio-system/root-reviews"'
reload "$D_PID" "$T/d.yaml" "$(d_yaml "$MESH")" shows "$D_ADMIN" 'policy="other/other-all"'
applying() { # ADMIN: the names of the policies that apply there
    dump "$1" | jq -r '[.authorizationPolicies[] | select(.appliesToThisProxy) | .metadata.name] | join(",")'
}
assert_eq root-reviews,root-all,root-v1,root-allow-reviews "$(applying "$B_ADMIN")" "policies for B (shop, app=reviews)"
assert_eq root-all,root-v1,other-all "$(applying "$D_ADMIN")" "policies for D (other, app=ratings)"
for via in b b-plain; do
    expect 403 $via /status/418 # root, selector app=reviews
    expect 403 $via /status/451 # root, no selector
    expect 403 $via /status/426 # root, selector version=v1
    expect 409 $via /status/409 # namespace other, selector app=reviews: not for shop's reviews
    expect 410 $via /status/410 # namespace other, no selector
    expect 402 $via /status/402 # shop, selector app=ratings
    expect 200 $via /status/200 # root ALLOW for app=reviews
    expect 403 $via /ratings    # ... which does not list it
done
for via in d d-plain; do
    expect 418 $via /status/418
    expect 403 $via /status/451
    expect 403 $via /status/426
    expect 409 $via /status/409
    expect 403 $via /status/410
    expect 402 $via /status/402 # shop's policy with a selector D's labels match: not D's namespace
    expect 404 $via /ratings    # no ALLOW policy applies to D: allowed
done
s=$(stats "$B_ADMIN")
assert_eq 2 "$(prom_sum outrider_proxy_authz_requests_total 'policy="istio-system/root-reviews"' <<<"$s")" \
    "B's denials by root-reviews"
assert_eq 2 "$(prom_sum outrider_proxy_authz_requests_total 'policy="none"' <<<"$s")" "B's denials by no ALLOW match"
grep -q 'policy="other/' <<<"$s" && fail "B counts a policy of namespace other: $(grep 'policy="other/' <<<"$s")"
# spec.rootNamespace moves the root: istio-system is then an ordinary namespace
sed 's/^  workers: 2$/  workers: 2\n  rootNamespace: mesh-root/; s/namespace: istio-system}/namespace: mesh-root}/' \
    "$T/b.yaml" >"$T/root.yaml"
printf '%s\n' "$(ap istio-system old-root '  rules: [{}]')" >>"$T/root.yaml"
"$PROXY" --print-config --config "$T/root.yaml" >"$T/root.json" 2>"$T/root.err" ||
    fail "--print-config: $(cat "$T/root.err")"
assert_eq "root-reviews mesh-root true,root-all mesh-root true,old-root istio-system false" \
    "$(jq -r '[.authorizationPolicies[] | select(.metadata.name | test("^root-(reviews|all)$|^old-root$"))
        | "\(.metadata.name) \(.metadata.namespace) \(.appliesToThisProxy)"] | join(",")' "$T/root.json")" \
    "policies with rootNamespace mesh-root"

# ---- 2. a header condition with a UTF-8 value ----
STEP=utf8-header
NFC=$'J\xc3\xbcrgen-\xe6\x97\xa5\xe6\x9c\xac' # Jürgen-日本, ü precomposed (NFC)
NFD=$'Ju\xcc\x88rgen-\xe6\x97\xa5\xe6\x9c\xac' # the same text with u + combining diaeresis (NFD)
LATIN1=$'J\xfcrgen-\xe6\x97\xa5\xe6\x9c\xac'   # ü as one Latin-1 byte
assert_eq "Jürgen-日本" "$NFC" "the NFC spelling"
reload "$B_PID" "$T/b.yaml" "$(b_yaml "$(ap shop by-team '  rules:
  - when: [{key: "request.headers[x-team]", values: ["Jürgen-日本", "東京*"]}]')")" shows "$B_ADMIN" 'policy="shop/by-team"'
for via in b b-plain; do
    expect 200 $via /headers -H "x-team: $NFC"
    app_got x-team "$NFC"
    expect 200 $via /headers -H "X-Team: $NFC"
    expect 200 $via /headers -H "x-team: 東京タワー" # "東京*": a prefix of whole characters' bytes
    app_got x-team "東京タワー"
    expect 403 $via /headers -H "x-team: $NFD"
    expect 403 $via /headers -H "x-team: $LATIN1"
    expect 403 $via /headers -H "x-team: JÜRGEN-日本"
    expect 403 $via /headers -H "x-team: ${NFC}x"
    expect 403 $via /headers -H "x-team: Jürgen-日"
    expect 403 $via /headers -H "x-team: 京都"
    expect 403 $via /headers
done
# a double-quoted YAML escape is the same value
reload "$B_PID" "$T/b.yaml" "$(b_yaml "$(ap shop by-team-escaped '  rules:
  - when: [{key: "request.headers[x-team]", values: ["J\u00fcrgen-\u65e5\u672c"]}]')")" \
    shows "$B_ADMIN" 'policy="shop/by-team-escaped"'
expect 200 b /headers -H "x-team: $NFC"
expect 403 b /headers -H "x-team: $NFD"
assert_eq '["Jürgen-日本"]' "$(dump "$B_ADMIN" | jq -c '.authorizationPolicies[0].spec.rules[0].when[0].values')" \
    "the escaped value in /config_dump"

# ---- 3. a JWT with UTF-8 claims ----
STEP=utf8-jwt
RA="---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  jwtRules:
  - issuer: $ISS
    jwksUri: file://$T/keys/k1-jwks.json
    outputClaimToHeaders:
    - {header: x-jwt-sub, claim: sub}
    - {header: x-jwt-team, claim: team}
    - {header: x-jwt-city, claim: org.city}
    - {header: x-jwt-kanji, claim: 部署}"
tok() { # SUB TEAM [raw|ascii]: a token of ISS for sub SUB with claims team and 部署 (DEPT, else TEAM), org.city
    local claims="\"iss\":\"$ISS\",\"sub\":\"$1\",\"exp\":\"+600\",\"team\":\"$2\",\"部署\":\"${DEPT:-$2}\""
    local form=()
    [[ ${3:-raw} == ascii ]] && form=(ascii)
    $JWT sign "$T/keys" k1-es ES256 "{$claims,\"org\":{\"city\":\"東京🗼\"}}" "${form[@]}" || fail "jwt_tool sign $*"
}
has_ra() { dump "$B_ADMIN" | jq -e '.requestAuthentications | length == 1' >/dev/null; }
reload "$B_PID" "$T/b.yaml" "$(b_yaml "$RA")" has_ra
NFD_SUB=$'Ju\xcc\x88rgen'
for form in raw ascii; do
    expect 200 b /headers -H "Authorization: Bearer $(tok Jürgen 東京 "$form")" -H "X-JWT-Sub: mallory"
    app_got x-jwt-sub "Jürgen"
    app_got x-jwt-team "東京"
    app_got x-jwt-city "東京🗼"
    app_got x-jwt-kanji "東京" # a claim with a UTF-8 name
    expect 200 b-plain /headers -H "Authorization: Bearer $(tok "$NFD_SUB" 東京 "$form")"
    app_got x-jwt-sub "$NFD_SUB"
done
# a claim holding CR LF (JSON "\r\n") or another control character is no field value: left out, as a missing
# claim is (never a field of its own at the app), the other claims still there
for sub in 'eve\r\nx-injected: 1' 'eve\nx-injected: 1' 'eve\u0001'; do
    expect 200 b-plain /headers -H "Authorization: Bearer $(tok "$sub" 東京)" -H 'x-jwt-sub: mallory'
    grep -qi '^x-injected' "$T/body" && fail "[$STEP] a claim made a header field of its own: $(cat "$T/body")"
    grep -qi '^x-jwt-sub:' "$T/body" && fail "[$STEP] the app got an x-jwt-sub for claim '$sub': $(cat "$T/body")"
    app_got x-jwt-team "東京"
done

reload "$B_PID" "$T/b.yaml" "$(b_yaml "$RA
$(ap shop by-principal '  rules:
  - from: [{source: {requestPrincipals: ["'"$ISS"'/Jürgen", "'"$ISS"'/東*"]}}]')")" shows "$B_ADMIN" 'policy="shop/by-principal"'
for form in raw ascii; do
    expect 200 b /status/200 -H "Authorization: Bearer $(tok Jürgen x "$form")"
    expect 200 b-plain /status/200 -H "Authorization: Bearer $(tok 東京 x "$form")"
    expect 403 b /status/200 -H "Authorization: Bearer $(tok "$NFD_SUB" x "$form")"
    expect 403 b /status/200 -H "Authorization: Bearer $(tok Jurgen x "$form")"
    expect 403 b /status/200 -H "Authorization: Bearer $(tok JÜRGEN x "$form")"
    expect 403 b-plain /status/200 -H "Authorization: Bearer $(tok 京都 x "$form")"
done
expect 403 b /status/200

reload "$B_PID" "$T/b.yaml" "$(b_yaml "$RA
$(ap shop by-claim '  rules:
  - when:
    - {key: "request.auth.claims[team]", values: ["東京"]}
    - {key: "request.auth.claims[org][city]", values: ["東京🗼"]}
    - {key: "request.auth.claims[部署]", values: ["東*"]}')")" shows "$B_ADMIN" 'policy="shop/by-claim"'
for form in raw ascii; do
    expect 200 b /status/200 -H "Authorization: Bearer $(tok x 東京 "$form")"
    expect 403 b /status/200 -H "Authorization: Bearer $(tok x 京都 "$form")"
    expect 403 b /status/200 -H "Authorization: Bearer $(tok x 東京x "$form")"
    expect 403 b /status/200 -H "Authorization: Bearer $(DEPT=京都 tok x 東京 "$form")"
    expect 403 b-plain /status/200 -H "Authorization: Bearer $(tok x 東 "$form")"
done

# ---- 4. a non-ASCII label value in a selector ----
STEP=label
# Kubernetes label values are [A-Za-z0-9_.-] (at most 63, alphanumeric at both ends); the configuration reads
# metadata.labels and selector.matchLabels as any string, for every kind, so --check takes a non-ASCII value and a
# selector compares it byte for byte with the Proxy's labels.
NFD_LABEL=$'re\xcc\x81vues'
cat >"$T/label.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: reviews-v1, namespace: shop, labels: {app: révues}}
spec:
  inbound: {listen: 127.0.0.1:0, forwardTo: 127.0.0.1:9}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: nfc}
spec:
  selector: {matchLabels: {app: révues}}
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: nfd}
spec:
  selector: {matchLabels: {app: $NFD_LABEL}}
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt}
spec:
  selector: {matchLabels: {app: révues}}
  jwtRules: [{issuer: $ISS, jwksUri: "file://$T/keys/k1-jwks.json"}]
YAML
"$PROXY" --check --config "$T/label.yaml" >"$T/check.txt" 2>&1 || fail "--check: $(cat "$T/check.txt")"
"$PROXY" --print-config --config "$T/label.yaml" >"$T/label.json" 2>"$T/check.txt" ||
    fail "--print-config: $(cat "$T/check.txt")"
assert_eq "nfc true,nfd false" \
    "$(jq -r '[.authorizationPolicies[] | "\(.metadata.name) \(.appliesToThisProxy)"] | join(",")' "$T/label.json")" \
    "a non-ASCII selector value matches the same bytes only"

# ---- 5. many clients while the policies flip ----
STEP=reload-under-load
# both sets: /status/200 allowed, /status/202 denied; /headers allowed by set one, denied by set two
SET1="$(ap shop flip-one '  rules: [{to: [{operation: {paths: [/status/200, /headers]}}]}]')
$(ap shop flip-deny '  action: DENY
  rules: [{to: [{operation: {paths: [/status/202]}}]}]')"
SET2="$(ap shop flip-two '  rules:
  - to: [{operation: {paths: [/status/200], methods: [GET]}}]
  - when: [{key: "request.headers[x-never]", values: ["1"]}]')"
reload "$B_PID" "$T/b.yaml" "$(b_yaml "$SET1")" shows "$B_ADMIN" 'policy="shop/flip-one"'
FLIPS=9       # set two, set one, ... ending on set two; every fourth through the file watch alone
MIN_ROUNDS=10 # each client: at least this many rounds of 30 requests (one curl each), and on until the flips end
MAX_ROUNDS=400
client() { # I VIA(a|plain) CONN(keep|close): rounds of 30 requests until $T/flipped (bounded), answers in client-I.out
    local url host=() conn=() r rc
    if [[ $2 == a ]]; then
        url="http://127.0.0.1:$A_OUT"
        host=(-H 'Host: reviews.shop.svc.cluster.local:9080')
    else
        url="http://127.0.0.1:$B_IN"
    fi
    [[ $3 == close ]] && conn=(-H 'Connection: close')
    for ((r = 1; r <= MAX_ROUNDS; r++)); do
        rc=0
        curl -s --max-time 20 "${host[@]}" "${conn[@]}" -w '\n@@ %{http_code} %{url_effective}\n' \
            "$url/{status/200,status/202,headers}?c=$1&r=$r.[1-10]" >>"$T/client-$1.out" 2>>"$T/client-$1.err" || rc=$?
        if ((rc != 0)); then
            echo "round $r: curl exit $rc" >"$T/client-$1.end"
            return
        fi
        if ((r >= MIN_ROUNDS)) && [[ -e $T/flipped ]]; then
            echo "stopped $r" >"$T/client-$1.end"
            return
        fi
    done
    echo "max $r" >"$T/client-$1.end"
}
pids=()
i=0
for via in a plain; do
    for conn in keep keep close close; do
        i=$((i + 1))
        client $i $via $conn &
        pids+=($!)
        track_pid $!
    done
done
for ((flip = 1; flip <= FLIPS; flip++)); do
    if ((flip % 2)); then set=$SET2 mark='policy="shop/flip-two"'; else set=$SET1 mark='policy="shop/flip-one"'; fi
    if ((flip % 4 == 3)); then pid=0; else pid=$B_PID; fi
    reload "$pid" "$T/b.yaml" "$(b_yaml "$set")" shows "$B_ADMIN" "$mark"
done
touch "$T/flipped"
for p in "${pids[@]}"; do wait "$p" || true; done
total=0
for ((i = 1; i <= 8; i++)); do
    end=$(cat "$T/client-$i.end" 2>/dev/null) || true
    [[ $end == stopped* ]] ||
        fail "client $i: '$end' (curl: $(head -3 "$T/client-$i.err"); last answers: $(tail -4 "$T/client-$i.out"))"
    n=$(grep -c '^@@ ' "$T/client-$i.out")
    assert_eq $((30 * ${end#stopped })) "$n" "client $i: answers"
    bad=$(awk '$1 == "@@" && !(($2 == 200 && $3 ~ /\/status\/200\?/) || ($2 == 403 && $3 ~ /\/status\/202\?/) ||
        (($2 == 200 || $2 == 403) && $3 ~ /\/headers\?/))' "$T/client-$i.out" | head -5)
    [[ -z $bad ]] || fail "client $i: answers neither policy set gives: $bad"
    total=$((total + n))
done
both=$(grep -h '^@@ ' "$T"/client-*.out | awk '$3 ~ /\/headers\?/ {print $2}' | sort -u | tr '\n' ' ')
note "$total answers while $FLIPS flips: all as a policy set says (/headers got: $both)"
# the last set (two) holds, on a new connection and on A's kept ones
s=$(stats "$B_ADMIN")
grep -qF 'policy="shop/flip-one"' <<<"$s" && fail "set one still counted after the last reload"
grep -qF 'outrider_proxy_config_reloads_total{result="refused"} 0' <<<"$s" ||
    fail "a reload was refused: $(grep refused "$T/proxy-b.log")"
expect 403 b-plain /headers
expect 403 b /headers
expect 200 b /status/200
expect 403 b-plain /status/202
expect 403 b-plain /status/200 -X POST
kill -0 "$B_PID" || fail "B exited"
echo "1 passed, 0 failed"
