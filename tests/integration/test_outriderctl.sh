#!/usr/bin/env bash
# outriderctl's certificate authority, checked by the real openssl CLI and
# curl rather than by itself: ca init (files, modes, refusing to overwrite),
# cert issue (openssl verify, the SPIFFE URI SAN, EKU, expiry), bad names
# and TTLs refused with the option named, cert inspect, and ca serve's
# POST /v1/sign over HTTPS (the token's identity whatever the CSR asks for,
# 401/400/404/405/413, tokens re-read on SIGHUP, no token in its log).
. "$(dirname "$0")/../lib.sh"

CTL=$OUTRIDER_BIN/outriderctl
[[ -x $CTL ]] || fail "no outriderctl at $CTL (set OUTRIDER_BIN)"
command -v openssl >/dev/null || fail "openssl is not installed"
passed=0

# ctl WANT_RC NAME ARGS...: run outriderctl ARGS with stdout in $T/NAME.out and
# stderr in $T/NAME.err; fail unless it exits WANT_RC (an exact code, so a
# sanitizer's exit code fails too).
ctl() {
    local want=$1 name=$2 rc=0
    shift 2
    _SCANNED_LOGS+=("$T/$name.err")
    "$CTL" "$@" >"$T/$name.out" 2>"$T/$name.err" || rc=$?
    [[ $rc == "$want" ]] ||
        fail "outriderctl $*: exit $rc, expected $want; stdout: $(cat "$T/$name.out"); stderr: $(cat "$T/$name.err")"
}

# has FILE TEXT: FILE contains TEXT (fixed string)
has() {
    grep -qF -- "$2" "$1" || fail "expected \"$2\" in $(basename "$1"): $(cat "$1")"
}

# has_not FILE TEXT
has_not() {
    ! grep -qF -- "$2" "$1" || fail "did not expect \"$2\" in $(basename "$1"): $(cat "$1")"
}

ok() {
    passed=$((passed + 1))
    note "ok: $*"
}

# expires_between FILE LOW_S HIGH_S: the certificate is still valid LOW_S seconds from now and expired HIGH_S from now
expires_between() {
    openssl x509 -in "$1" -noout -checkend "$2" >/dev/null || fail "$1 expires before now+$2s: $(openssl x509 -in "$1" -noout -enddate)"
    ! openssl x509 -in "$1" -noout -checkend "$3" >/dev/null || fail "$1 is still valid at now+$3s: $(openssl x509 -in "$1" -noout -enddate)"
}

san_of() { openssl x509 -in "$1" -noout -ext subjectAltName; }
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }
pub_of_cert() { openssl x509 -in "$1" -noout -pubkey; }
pub_of_key() { openssl pkey -in "$1" -pubout; }

# --- usage -------------------------------------------------------------------
ctl 0 help --help
has "$T/help.out" "ca init       make the mesh's root CA"
has "$T/help.out" "cert inspect"
has "$T/help.out" "redirect      install (or print, or remove)"
ctl 2 noargs
ctl 2 unknown frobnicate
has "$T/unknown.err" 'unknown command "frobnicate"'
for c in "ca init" "ca serve" "cert issue" "cert inspect" redirect; do
    # shellcheck disable=SC2086 # the command is two words
    ctl 0 cmdhelp $c --help
    has "$T/cmdhelp.out" "usage: outriderctl $c"
done
ctl 2 badopt ca init "$T/x" --frobnicate
has "$T/badopt.err" 'outriderctl ca init: unknown option "--frobnicate"'
ctl 2 noval cert issue --ttl
has "$T/noval.err" 'option "--ttl" needs a value'
ctl 2 redirect_nouid redirect --dry-run
has "$T/redirect_nouid.err" 'outriderctl redirect: the proxy'"'"'s --proxy-uid or --proxy-gid is needed'
ctl 2 redirect_port redirect --proxy-uid 1337 --exclude-outbound-ports 3306,x --dry-run
has "$T/redirect_port.err" '--exclude-outbound-ports: "x" is not a port (1-65535)'
ctl 0 redirect_dry redirect --proxy-uid 1337 --dry-run
has "$T/redirect_dry.out" '-A OUTRIDER_REDIRECT -p tcp -j REDIRECT --to-ports 15001'
ok "usage, --help and exit code 2"

# --- ca init -------------------------------------------------------------------
CA=$T/ca
ctl 0 init ca init "$CA" --trust-domain example.org --ttl 8760h
has "$T/init.out" "created a root CA for trust domain example.org"
for f in root-key.pem root-cert.pem trust-domain; do
    [[ -f $CA/$f ]] || fail "ca init did not write $CA/$f"
done
assert_eq 600 "$(stat -c %a "$CA/root-key.pem")" "mode of root-key.pem"
assert_eq 700 "$(stat -c %a "$CA")" "mode of the CA directory"
assert_eq example.org "$(cat "$CA/trust-domain")" "trust-domain file"
openssl x509 -in "$CA/root-cert.pem" -noout -text >"$T/root.txt" || fail "openssl cannot read root-cert.pem"
has "$T/root.txt" "Subject: O = example.org"
has "$T/root.txt" "Issuer: O = example.org"
grep -A1 'X509v3 Basic Constraints: critical' "$T/root.txt" | grep -q 'CA:TRUE' || fail "root is not CA:TRUE critical: $(cat "$T/root.txt")"
grep -A1 'X509v3 Key Usage: critical' "$T/root.txt" | grep -q 'Certificate Sign, CRL Sign' || fail "root key usage: $(cat "$T/root.txt")"
has "$T/root.txt" "X509v3 Subject Key Identifier"
has "$T/root.txt" "X509v3 Authority Key Identifier"
has "$T/root.txt" "Signature Algorithm: ecdsa-with-SHA256"
openssl pkey -in "$CA/root-key.pem" -noout -text | grep -q 'ASN1 OID: prime256v1' || fail "root key is not EC P-256"
[[ $(pub_of_key "$CA/root-key.pem") == "$(pub_of_cert "$CA/root-cert.pem")" ]] || fail "root-key.pem is not root-cert.pem's key"
[[ $(serial_of "$CA/root-cert.pem") =~ ^[0-9A-F]{32}$ ]] || fail "root serial is not 128 bits: $(serial_of "$CA/root-cert.pem")"
openssl verify -CAfile "$CA/root-cert.pem" "$CA/root-cert.pem" >/dev/null || fail "the root does not verify as self-signed"
expires_between "$CA/root-cert.pem" $((8760 * 3600 - 120)) $((8760 * 3600 + 120))
ok "ca init: EC P-256 key (0600), self-signed CA:TRUE root for O=example.org, 8760h"

sum_before=$(cat "$CA"/* | sha256sum)
ctl 1 init_again ca init "$CA" --trust-domain example.org
has "$T/init_again.err" "already holds a CA"
has "$T/init_again.err" "--force"
assert_eq "$sum_before" "$(cat "$CA"/* | sha256sum)" "CA files after a refused init"
ctl 0 init_force ca init "$T/ca-forced" --trust-domain example.org
ctl 0 init_force2 ca init "$T/ca-forced" --trust-domain example.net --force
assert_eq example.net "$(cat "$T/ca-forced/trust-domain")" "trust domain after --force"
assert_eq 600 "$(stat -c %a "$T/ca-forced/root-key.pem")" "mode of a replaced root-key.pem"
ctl 0 init_default ca init "$T/ca-default"
assert_eq cluster.local "$(cat "$T/ca-default/trust-domain")" "default trust domain"
ok "ca init refuses to overwrite a CA without --force"

ctl 2 td_upper ca init "$T/bad" --trust-domain Example.org
has "$T/td_upper.err" "--trust-domain \"Example.org\": uppercase 'E' at byte 1"
ctl 2 td_utf8 ca init "$T/bad" --trust-domain exämple.org
has "$T/td_utf8.err" '--trust-domain "exämple.org": non-ASCII byte 0xc3 at byte 3'
ctl 2 td_dots ca init "$T/bad" --trust-domain example..org
has "$T/td_dots.err" "empty label"
ctl 2 td_long ca init "$T/bad" --trust-domain "$(printf 'a%.0s' {1..256})"
has "$T/td_long.err" "256 bytes long; at most 255"
ctl 2 ttl_bad ca init "$T/bad" --ttl 5x
has "$T/ttl_bad.err" '--ttl "5x": unknown unit'
[[ ! -e $T/bad ]] || fail "a refused ca init created $T/bad"
ok "ca init refuses bad trust domains and TTLs, naming the option"

# --- cert issue ----------------------------------------------------------------
W=$T/web
ctl 0 issue cert issue --ca "$CA" --namespace shop --service-account web --ttl 12h --out "$W" \
    --dns web.shop.svc.cluster.local --dns web
has "$T/issue.out" "issued spiffe://example.org/ns/shop/sa/web"
assert_eq 600 "$(stat -c %a "$W/key.pem")" "mode of key.pem"
cmp -s "$W/root-cert.pem" "$CA/root-cert.pem" || fail "root-cert.pem is not the CA's"
assert_eq 1 "$(grep -c 'BEGIN CERTIFICATE' "$W/cert-chain.pem")" "certificates in cert-chain.pem (leaf only)"
openssl verify -CAfile "$W/root-cert.pem" "$W/cert-chain.pem" >"$T/verify.out" 2>&1 || fail "openssl verify: $(cat "$T/verify.out")"
has "$T/verify.out" "cert-chain.pem: OK"
for purpose in sslserver sslclient; do
    openssl verify -purpose "$purpose" -CAfile "$W/root-cert.pem" "$W/cert-chain.pem" >/dev/null 2>&1 ||
        fail "openssl verify -purpose $purpose failed"
done
openssl x509 -in "$W/cert-chain.pem" -noout -text >"$T/leaf.txt"
has "$T/leaf.txt" "URI:spiffe://example.org/ns/shop/sa/web"
has "$T/leaf.txt" "DNS:web.shop.svc.cluster.local"
has "$T/leaf.txt" "DNS:web"
assert_eq 1 "$(grep -o 'URI:' "$T/leaf.txt" | wc -l)" "URI SANs in the leaf"
has "$T/leaf.txt" "X509v3 Subject Alternative Name: critical"
has "$T/leaf.txt" "TLS Web Server Authentication, TLS Web Client Authentication"
grep -A1 'X509v3 Key Usage: critical' "$T/leaf.txt" | grep -q 'Digital Signature, Key Encipherment' || fail "leaf key usage: $(cat "$T/leaf.txt")"
grep -A1 'X509v3 Basic Constraints: critical' "$T/leaf.txt" | grep -q 'CA:FALSE' || fail "leaf is not CA:FALSE"
[[ $(pub_of_key "$W/key.pem") == "$(pub_of_cert "$W/cert-chain.pem")" ]] || fail "key.pem is not cert-chain.pem's key"
expires_between "$W/cert-chain.pem" $((12 * 3600 - 120)) $((12 * 3600 + 120))
nb=$(date -u -d "$(openssl x509 -in "$W/cert-chain.pem" -noout -startdate | cut -d= -f2)" +%s)
now=$(date +%s)
((nb <= now && nb >= now - 180)) || fail "notBefore $nb is not about a minute before now ($now)"
ok "cert issue: openssl verifies the chain; one URI SAN, DNS SANs, serverAuth+clientAuth, 12h"

first_serial=$(serial_of "$W/cert-chain.pem")
ctl 0 reissue cert issue --ca "$CA" --namespace shop --service-account web --out "$W"
[[ $(serial_of "$W/cert-chain.pem") != "$first_serial" ]] || fail "a reissue kept the serial"
expires_between "$W/cert-chain.pem" $((24 * 3600 - 120)) $((24 * 3600 + 120))
[[ $(pub_of_key "$W/key.pem") == "$(pub_of_cert "$W/cert-chain.pem")" ]] || fail "reissued key.pem does not match"
ok "cert issue rotates the files in place; default TTL 24h"

ctl 2 ns_upper cert issue --ca "$CA" --namespace Shop --service-account web --out "$T/nope"
has "$T/ns_upper.err" "--namespace \"Shop\": uppercase 'S' at byte 1"
ctl 2 sa_utf8 cert issue --ca "$CA" --namespace shop --service-account wéb --out "$T/nope"
has "$T/sa_utf8.err" '--service-account "wéb": non-ASCII byte 0xc3 at byte 2'
ctl 2 sa_cyr cert issue --ca "$CA" --namespace shop --service-account сервис --out "$T/nope"
has "$T/sa_cyr.err" '--service-account "сервис": non-ASCII'
ctl 2 sa_under cert issue --ca "$CA" --namespace shop --service-account my_sa --out "$T/nope"
has "$T/sa_under.err" "'_' at byte 3 is not allowed"
ctl 2 sa_long cert issue --ca "$CA" --namespace shop --service-account "$(printf 'a%.0s' {1..64})" --out "$T/nope"
has "$T/sa_long.err" "64 bytes long; at most 63"
ctl 2 sa_slash cert issue --ca "$CA" --namespace shop --service-account ../admin --out "$T/nope"
has "$T/sa_slash.err" '--service-account "../admin"'
ctl 2 dns_bad cert issue --ca "$CA" --namespace shop --service-account web --dns 'a,DNS:evil' --out "$T/nope"
has "$T/dns_bad.err" '--dns "a,DNS:evil"'
ctl 2 missing cert issue --namespace shop
has "$T/missing.err" "missing --ca"
has "$T/missing.err" "missing --service-account"
ctl 1 past_ca cert issue --ca "$CA" --namespace shop --service-account web --ttl 9000h --out "$T/nope"
has "$T/past_ca.err" "--ttl 9000h: the certificate would expire at"
has "$T/past_ca.err" "after the CA itself"
ctl 1 no_ca cert issue --ca "$T/no-such-ca" --namespace shop --service-account web --out "$T/nope"
has "$T/no_ca.err" "--ca $T/no-such-ca: cannot open $T/no-such-ca/trust-domain"
[[ ! -e $T/nope ]] || fail "a refused cert issue wrote $T/nope"
ok "cert issue refuses bad names, a TTL past the CA and a missing CA, naming the option"

# --- cert inspect --------------------------------------------------------------
ctl 0 issue_dns cert issue --ca "$CA" --namespace shop --service-account api --ttl 2h --out "$T/api" \
    --dns api.shop.svc --dns '*.api.shop.svc'
ctl 0 inspect cert inspect "$T/api/cert-chain.pem" --ca "$CA"
has "$T/inspect.out" "spiffe id:   spiffe://example.org/ns/shop/sa/api"
has "$T/inspect.out" "dns names:   api.shop.svc, *.api.shop.svc"
has "$T/inspect.out" "subject:     (empty)"
has "$T/inspect.out" "issuer:      O=example.org"
has "$T/inspect.out" "serial:      $(serial_of "$T/api/cert-chain.pem")"
end_iso=$(date -u -d "$(openssl x509 -in "$T/api/cert-chain.pem" -noout -enddate | cut -d= -f2)" +%Y-%m-%dT%H:%M:%SZ)
has "$T/inspect.out" "not after:   $end_iso"
has "$T/inspect.out" "ca:          no"
has "$T/inspect.out" "key:         EC prime256v1"
has "$T/inspect.out" "chain:       ok: chains to $CA/root-cert.pem"
ctl 0 inspect_file cert inspect "$T/api/cert-chain.pem" --ca "$CA/root-cert.pem"
has "$T/inspect_file.out" "chain:       ok"
ctl 0 inspect_noca cert inspect "$T/api/cert-chain.pem"
has_not "$T/inspect_noca.out" "chain:"
ctl 0 inspect_root cert inspect "$CA/root-cert.pem"
has "$T/inspect_root.out" "ca:          yes"
has "$T/inspect_root.out" "spiffe id:   none (no URI subjectAltName)"
has "$T/inspect_root.out" "subject:     O=example.org"

ctl 0 other_ca ca init "$T/ca2" --trust-domain example.org
ctl 1 inspect_other cert inspect "$T/api/cert-chain.pem" --ca "$T/ca2"
has "$T/inspect_other.out" "chain:       FAILED: unable to get local issuer certificate"
has "$T/inspect_other.err" "does not chain to $T/ca2/root-cert.pem"
echo "not a certificate" >"$T/junk.pem"
ctl 1 inspect_junk cert inspect "$T/junk.pem"
has "$T/inspect_junk.err" "holds no PEM certificate"
ctl 2 inspect_none cert inspect
has "$T/inspect_none.err" "missing FILE"
ok "cert inspect: SPIFFE id, DNS names, validity; exit 1 when it does not chain to --ca"

# --- ca serve ------------------------------------------------------------------
TOK_WEB=$(openssl rand -hex 32)
TOK_API=$(openssl rand -hex 32)
TOK_WRONG=$(openssl rand -hex 32)
printf '# sidecar tokens: TOKEN NAMESPACE SERVICE-ACCOUNT\n%s shop web\n' "$TOK_WEB" >"$T/tokens"
chmod 600 "$T/tokens"

# a bad tokens file stops the server before it listens, naming file and line, never a token
printf '%s shop wéb\n' "$TOK_API" >"$T/tokens-bad"
ctl 1 serve_badtokens ca serve --ca "$CA" --listen 127.0.0.1:0 --tokens "$T/tokens-bad"
has "$T/serve_badtokens.err" "$T/tokens-bad:1: service account \"wéb\": non-ASCII byte 0xc3"
has_not "$T/serve_badtokens.err" "$TOK_API"
ctl 2 serve_usage ca serve --ca "$CA" --listen 127.0.0.1:0 --cert "$W/cert-chain.pem"
has "$T/serve_usage.err" "missing --tokens FILE"
has "$T/serve_usage.err" "--cert needs --key too"
ctl 1 serve_listen ca serve --ca "$CA" --listen ca.example.org:0 --tokens "$T/tokens"
has "$T/serve_listen.err" '--listen "ca.example.org:0": the host must be an IPv4 or IPv6 address'
ok "ca serve refuses a bad tokens file, a half --cert/--key pair and a non-numeric listen host"

SERVE_LOG=$T/serve.log
_SCANNED_LOGS+=("$SERVE_LOG")
"$CTL" ca serve --ca "$CA" --listen 127.0.0.1:0 --tokens "$T/tokens" --max-ttl 24h >"$SERVE_LOG" 2>&1 &
SERVE_PID=$!
track_pid "$SERVE_PID"
wait_until -n 400 grep -q 'listening https://127\.0\.0\.1:' "$SERVE_LOG" ||
    { cat "$SERVE_LOG" >&2; fail "ca serve did not start"; }
PORT=$(grep -o 'listening https://127\.0\.0\.1:[0-9]*' "$SERVE_LOG" | head -n1 | sed 's/.*://')
URL=https://127.0.0.1:$PORT
note "ca serve pid $SERVE_PID on $URL"

# the server's own certificate comes from the CA, for its IP address (checked by openssl, then by curl below)
openssl s_client -connect "127.0.0.1:$PORT" -CAfile "$CA/root-cert.pem" -verify_ip 127.0.0.1 -verify_return_error \
    </dev/null >"$T/s_client.out" 2>&1 || fail "openssl s_client: $(tail -n 20 "$T/s_client.out")"
has "$T/s_client.out" "Verify return code: 0 (ok)"
ok "ca serve: its TLS certificate verifies against the root for 127.0.0.1"

# a sidecar's CSR that asks for someone else's identity
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/sc-key.pem" -subj /CN=evil \
    -addext "subjectAltName=URI:spiffe://example.org/ns/kube-system/sa/admin,DNS:evil.example" \
    -out "$T/sc.csr" 2>"$T/req.err" || fail "openssl req: $(cat "$T/req.err")"

# sign TOKEN FILE [QUERY] [curl args...]: POST FILE to /v1/sign; prints the status, the body is in $LAST_BODY
sign() {
    local tok=$1 file=$2 query=$3
    shift 3
    local auth=()
    [[ -n $tok ]] && auth=(-H "Authorization: Bearer $tok")
    http_status POST "$URL/v1/sign$query" --cacert "$CA/root-cert.pem" "${auth[@]}" \
        -H 'Content-Type: application/pkcs10' --data-binary "@$file" "$@"
}

# split_chain: $LAST_BODY into $T/leaf.pem and $T/chain-root.pem
split_chain() {
    assert_eq 2 "$(grep -c 'BEGIN CERTIFICATE' "$LAST_BODY")" "certificates in the answer (leaf + root)"
    awk -v a="$T/leaf.pem" -v b="$T/chain-root.pem" '/BEGIN CERTIFICATE/ {n++} {print > (n == 1 ? a : b)}' "$LAST_BODY"
}

code=$(sign "$TOK_WEB" "$T/sc.csr" '?ttl=12h' -D "$T/headers")
assert_eq 200 "$code" "POST /v1/sign with the web token: $(cat "$LAST_BODY")"
grep -qi '^content-type: application/pem-certificate-chain' "$T/headers" || fail "content type: $(cat "$T/headers")"
split_chain
cmp -s <(openssl x509 -in "$T/chain-root.pem") <(openssl x509 -in "$CA/root-cert.pem") || fail "the chain's second certificate is not the root"
openssl verify -CAfile "$CA/root-cert.pem" "$T/leaf.pem" >/dev/null 2>&1 || fail "openssl verify of the signed leaf failed"
san_of "$T/leaf.pem" >"$T/leaf.san"
has "$T/leaf.san" "URI:spiffe://example.org/ns/shop/sa/web"
has_not "$T/leaf.san" "kube-system"
has_not "$T/leaf.san" "evil"
assert_eq 1 "$(grep -o 'URI:' "$T/leaf.san" | wc -l)" "URI SANs in the signed leaf"
openssl x509 -in "$T/leaf.pem" -noout -subject | grep -q evil && fail "the CSR's subject leaked into the certificate"
[[ $(pub_of_key "$T/sc-key.pem") == "$(pub_of_cert "$T/leaf.pem")" ]] || fail "the leaf does not certify the CSR's key"
openssl x509 -in "$T/leaf.pem" -noout -text | grep -q 'TLS Web Server Authentication, TLS Web Client Authentication' ||
    fail "signed leaf lacks serverAuth+clientAuth"
expires_between "$T/leaf.pem" $((12 * 3600 - 120)) $((12 * 3600 + 120))
web_serial=$(serial_of "$T/leaf.pem")
wait_until grep -qF "signed spiffe://example.org/ns/shop/sa/web serial $web_serial" "$SERVE_LOG" ||
    fail "no access line with the SPIFFE id and serial $web_serial: $(cat "$SERVE_LOG")"
ok "POST /v1/sign: 200 with leaf+root for the token's SPIFFE id, not the CSR's; ttl=12h; logged with its serial"

code=$(sign "$TOK_WEB" "$T/sc.csr" '?ttl=48h')
assert_eq 200 "$code" "ttl above --max-ttl"
split_chain
expires_between "$T/leaf.pem" $((24 * 3600 - 120)) $((24 * 3600 + 120))
code=$(sign "$TOK_WEB" "$T/sc.csr" '')
assert_eq 200 "$code" "no ttl"
split_chain
expires_between "$T/leaf.pem" $((24 * 3600 - 120)) $((24 * 3600 + 120))
code=$(sign "$TOK_WEB" "$T/sc.csr" '?ttl=5x')
assert_eq 400 "$code" "bad ttl"
has "$LAST_BODY" 'ttl "5x": unknown unit'
ok "ttl is capped at --max-ttl (24h), defaults to it, and a bad one is a 400"

openssl req -in "$T/sc.csr" -outform DER -out "$T/sc.der"
code=$(sign "$TOK_WEB" "$T/sc.der" '')
assert_eq 200 "$code" "DER CSR"
python3 -c 'import sys; b = bytearray(open(sys.argv[1], "rb").read()); b[-1] ^= 1; open(sys.argv[2], "wb").write(b)' \
    "$T/sc.der" "$T/tampered.der"
code=$(sign "$TOK_WEB" "$T/tampered.der" '')
assert_eq 400 "$code" "CSR with a broken signature"
has "$LAST_BODY" "signature does not verify"
printf 'garbage' >"$T/garbage"
code=$(sign "$TOK_WEB" "$T/garbage" '')
assert_eq 400 "$code" "garbage body"
has "$LAST_BODY" "not a certificate signing request"
openssl req -new -newkey rsa:1024 -nodes -keyout "$T/weak-key.pem" -subj /CN=weak -out "$T/weak.csr" 2>/dev/null ||
    fail "openssl req rsa:1024"
code=$(sign "$TOK_WEB" "$T/weak.csr" '')
assert_eq 400 "$code" "RSA-1024 CSR"
has "$LAST_BODY" "RSA key of 1024 bits"
ok "DER CSRs work; a tampered CSR, garbage and a weak key are 400 with a reason"

code=$(sign "" "$T/sc.csr" '' -D "$T/headers")
assert_eq 401 "$code" "no Authorization"
grep -qi '^www-authenticate: Bearer' "$T/headers" || fail "401 without WWW-Authenticate: $(cat "$T/headers")"
code=$(sign "$TOK_WRONG" "$T/sc.csr" '')
assert_eq 401 "$code" "unknown token"
has "$LAST_BODY" "unknown token"
code=$(http_status POST "$URL/v1/sign" --cacert "$CA/root-cert.pem" -H "Authorization: Basic $TOK_WEB" --data-binary @"$T/sc.csr")
assert_eq 401 "$code" "Basic instead of Bearer"
code=$(sign "$TOK_API" "$T/sc.csr" '')
assert_eq 401 "$code" "the api token before it is in the file"
ok "401 without a token, with an unknown one, or with another scheme"

head -c 20000 /dev/zero | tr '\0' 'x' >"$T/big"
code=$(sign "$TOK_WEB" "$T/big" '')
assert_eq 413 "$code" "20000-byte body"
code=$(sign "$TOK_WEB" "$T/big" '' -H 'Transfer-Encoding: chunked')
assert_eq 413 "$code" "20000-byte chunked body"
code=$(http_status GET "$URL/v1/sign" --cacert "$CA/root-cert.pem" -D "$T/headers")
assert_eq 405 "$code" "GET /v1/sign"
grep -qi '^allow: POST' "$T/headers" || fail "405 without Allow: POST: $(cat "$T/headers")"
code=$(http_status POST "$URL/v1/other" --cacert "$CA/root-cert.pem" -H "Authorization: Bearer $TOK_WEB" --data-binary @"$T/sc.csr")
assert_eq 404 "$code" "POST /v1/other"
code=$(http_status GET "$URL/" --cacert "$CA/root-cert.pem")
assert_eq 404 "$code" "GET /"
ok "413 over 16 KiB (with Content-Length or chunked), 405 for GET, 404 elsewhere"

printf '%s shop api # added later\n' "$TOK_API" >>"$T/tokens"
kill -HUP "$SERVE_PID"
wait_until -n 400 grep -q 'tokens: reloaded .*: 2 tokens' "$SERVE_LOG" || fail "no reload after SIGHUP: $(cat "$SERVE_LOG")"
code=$(sign "$TOK_API" "$T/sc.csr" '?ttl=1h')
assert_eq 200 "$code" "the api token after SIGHUP: $(cat "$LAST_BODY")"
split_chain
has <(san_of "$T/leaf.pem") "URI:spiffe://example.org/ns/shop/sa/api"
code=$(sign "$TOK_WEB" "$T/sc.csr" '?ttl=1h')
assert_eq 200 "$code" "the web token after SIGHUP"
# a broken file on SIGHUP is refused and the loaded tokens stay
printf 'short shop web\n' >>"$T/tokens"
kill -HUP "$SERVE_PID"
wait_until -n 400 grep -q 'not reloaded' "$SERVE_LOG" || fail "no refusal of the broken tokens file: $(cat "$SERVE_LOG")"
has "$SERVE_LOG" "$T/tokens:4: the token is 5 bytes long"
code=$(sign "$TOK_API" "$T/sc.csr" '')
assert_eq 200 "$code" "the api token after a refused reload"
ok "SIGHUP re-reads the tokens file; a broken one keeps the loaded tokens"

kill -0 "$SERVE_PID" 2>/dev/null || fail "ca serve died: $(cat "$SERVE_LOG")"
stop_pid "$SERVE_PID"
assert_eq 0 "$STOP_RC" "ca serve's exit code after SIGTERM"
has "$SERVE_LOG" "stopped"
for tok in "$TOK_WEB" "$TOK_API" "$TOK_WRONG"; do
    ! grep -qF "$tok" "$SERVE_LOG" || fail "a token is in the server's log"
done
has_not "$SERVE_LOG" "PRIVATE KEY"
has_not "$SERVE_LOG" "short"
has "$SERVE_LOG" "access: POST /v1/sign 401"
has "$SERVE_LOG" "access: POST /v1/sign 413"
ok "the server's log has access lines and never a token or a key; SIGTERM exits 0"

# --cert/--key: the server presents the given certificate instead of issuing one
ctl 0 issue_srv cert issue --ca "$CA" --namespace outrider-system --service-account ca --dns localhost --out "$T/srv"
printf '%s shop web\n' "$TOK_WEB" >"$T/tokens-ok"
chmod 644 "$T/tokens-ok"
SERVE2_LOG=$T/serve2.log
_SCANNED_LOGS+=("$SERVE2_LOG")
"$CTL" ca serve --ca "$CA" --listen 127.0.0.1:0 --tokens "$T/tokens-ok" --cert "$T/srv/cert-chain.pem" \
    --key "$T/srv/key.pem" >"$SERVE2_LOG" 2>&1 &
SERVE2_PID=$!
track_pid "$SERVE2_PID"
wait_until -n 400 grep -q 'listening https://127\.0\.0\.1:' "$SERVE2_LOG" ||
    { cat "$SERVE2_LOG" >&2; fail "ca serve --cert did not start"; }
PORT2=$(grep -o 'listening https://127\.0\.0\.1:[0-9]*' "$SERVE2_LOG" | head -n1 | sed 's/.*://')
has "$SERVE2_LOG" "can be read by other users (mode 0644)"
code=$(http_status POST "https://localhost:$PORT2/v1/sign" --resolve "localhost:$PORT2:127.0.0.1" \
    --cacert "$CA/root-cert.pem" -H "Authorization: Bearer $TOK_WEB" --data-binary @"$T/sc.csr")
assert_eq 200 "$code" "POST to the server with --cert (as https://localhost)"
openssl s_client -connect "127.0.0.1:$PORT2" </dev/null 2>/dev/null | openssl x509 -noout -serial >"$T/served.serial" ||
    fail "no certificate from the --cert server"
assert_eq "serial=$(serial_of "$T/srv/cert-chain.pem")" "$(cat "$T/served.serial")" "the certificate the server presents"
stop_pid "$SERVE2_PID"
assert_eq 0 "$STOP_RC" "exit code of the --cert server"
ok "ca serve --cert/--key presents that certificate; a world-readable tokens file is warned about"

echo "$passed passed, 0 failed"
