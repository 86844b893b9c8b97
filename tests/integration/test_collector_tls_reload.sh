#!/usr/bin/env bash
# The collector's ingest.tls.* files read again on SIGHUP (certificates made with the openssl CLI):
#  - mutual TLS, certificate A of server CA A and client CA 1: clients see A; the files become
#    certificate B of server CA B and client CA 2, SIGHUP: new handshakes see B (polled), OTLP and
#    Zipkin posts over TLS with a client certificate of CA 2 succeed, one of CA 1 is refused in the
#    handshake, a curl trusting only CA A no longer connects, and a keep-alive connection opened
#    before the reload keeps A and still answers; the log and the gauges (reload success, notAfter
#    of B) say so;
#  - a broken key file, a key of another certificate, a client CA file without a certificate, a
#    missing file: each is logged with its file and reason, the reload gauge is 0, and handshakes
#    still get B with client CA 2; good files again set the gauge back to 1;
#  - without mutual TLS, files swapped as Kubernetes swaps a Secret volume (a symbolic link to a
#    directory) back and forth, a SIGHUP each time, while clients keep posting on both ingest
#    ports: every post succeeds;
#  - SIGTERM ends it cleanly (under ASan: no credentials of any generation leak or are used after
#    being freed); and a collector without TLS or tokens says SIGHUP has nothing to read.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

command -v openssl >/dev/null || fail "openssl is not installed"

# ---- certificates ----
SERIAL=4096
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null || fail "openssl genpkey $1"; }
mkca() { # NAME CN
    newkey "$T/$1.key"
    openssl req -x509 -new -key "$T/$1.key" -out "$T/$1.pem" -days 365 -subj "/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign >/dev/null 2>&1 ||
        fail "openssl: CA $1"
}
mkleaf() { # NAME CA CN DAYS EKU [SAN]
    newkey "$T/$1.key"
    openssl req -new -key "$T/$1.key" -out "$T/$1.csr" -subj "/CN=$3" >/dev/null 2>&1 || fail "openssl: CSR $1"
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n' "$5" >"$T/$1.ext"
    if [[ -n ${6:-} ]]; then printf 'subjectAltName=%s\n' "$6" >>"$T/$1.ext"; fi
    SERIAL=$((SERIAL + 1))
    openssl x509 -req -in "$T/$1.csr" -CA "$T/$2.pem" -CAkey "$T/$2.key" -set_serial "$SERIAL" -days "$4" \
        -extfile "$T/$1.ext" -out "$T/$1.pem" >/dev/null 2>&1 || fail "openssl: sign $1"
    cat "$T/$1.pem" "$T/$2.pem" >"$T/$1.chain.pem"
}
mkca ca-a "server CA A"
mkca ca-b "server CA B"
mkca client-ca-1 "client CA 1"
mkca client-ca-2 "client CA 2"
mkleaf srv-a ca-a collector-a 30 serverAuth DNS:localhost,IP:127.0.0.1
mkleaf srv-b ca-b collector-b 90 serverAuth DNS:localhost,IP:127.0.0.1
mkleaf cli-1 client-ca-1 sender-1 30 clientAuth
mkleaf cli-2 client-ca-2 sender-2 30 clientAuth
fingerprint() { openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2; }
FP_A=$(fingerprint "$T/srv-a.pem")
FP_B=$(fingerprint "$T/srv-b.pem")
NOT_AFTER_A=$(date -d "$(openssl x509 -noout -enddate -in "$T/srv-a.pem" | cut -d= -f2)" +%s)
NOT_AFTER_B=$(date -d "$(openssl x509 -noout -enddate -in "$T/srv-b.pem" | cut -d= -f2)" +%s)
[[ $NOT_AFTER_A != "$NOT_AFTER_B" ]] || fail "certificates A and B expire at the same second"

# put FILE DEST: replace DEST at once (rename), as a careful operator or an agent does
put() {
    cp "$1" "$2.new"
    mv -f "$2.new" "$2"
}
LIVE=$T/live
mkdir -p "$LIVE"
put "$T/srv-a.chain.pem" "$LIVE/cert.pem"
put "$T/srv-a.key" "$LIVE/key.pem"
put "$T/client-ca-1.pem" "$LIVE/client-ca.pem"

port_of() { echo "${1##*:}"; }
# served PORT: the SHA-256 fingerprint of the certificate a new handshake on PORT gets
served() {
    openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2
}
# post URL CA [CLIENT] [curl args...]: the status of a JSON POST over HTTPS trusting CA, with
# the client certificate CLIENT ("" for none); "000" when there was no HTTP answer
post() {
    local url=$1 ca=$2 client=${3:-}
    shift 3
    local cert=()
    [[ -z $client ]] || cert=(--cert "$T/$client.pem" --key "$T/$client.key")
    curl -sS -o "$LAST_BODY" -w '%{http_code}' --max-time 20 --cacert "$T/$ca.pem" "${cert[@]}" \
        -H 'Content-Type: application/json' "$url" "$@" 2>"$T/curl.err" || true
}
span_json() {
    printf '[{"traceId":"%s","id":"%s","name":"get","timestamp":%s000,"duration":1000,"localEndpoint":{"serviceName":"tls-reload"}}]' \
        "$1" "${1:16:16}" "$(date +%s%3N)"
}
new_trace() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
scrape() {
    [[ $(http_status GET "$METRICS_URL/metrics") == 200 ]] || fail "GET $METRICS_URL/metrics: $(cat "$LAST_BODY")"
    cp "$LAST_BODY" "$T/metrics.txt"
}
metric() { metric_values "$T/metrics.txt" "$@" | head -n1; }
reloads() { grep -c 'ingest\.tls: reload' "$COLLECTOR_LOG" || true; }
reloaded_since() { [[ $(reloads) -gt $1 ]]; }
# hup: SIGHUP, and wait until the collector logged how the reload went
hup() {
    local before
    before=$(reloads)
    kill -HUP "$COLLECTOR_PID"
    wait_until -n 400 reloaded_since "$before" || fail "no ingest.tls reload logged after SIGHUP"
}
serves() { [[ $(served "$1") == "$2" ]]; }

# ---- mutual TLS: A and client CA 1, then B and client CA 2 ----
start_collector --set "ingest.tls.certFile=$LIVE/cert.pem" --set "ingest.tls.keyFile=$LIVE/key.pem" \
    --set "ingest.tls.clientCaFile=$LIVE/client-ca.pem" --set metrics.listen=127.0.0.1:0
O=$(port_of "$OTLP_URL")
Z=$(port_of "$ZIPKIN_URL")
OTLPS=https://localhost:$O
ZIPS=https://localhost:$Z
grep -qF "ingest.tls: certificate $LIVE/cert.pem: subject CN=collector-a, serial 1001, valid until" "$COLLECTOR_LOG" ||
    fail "the certificate is not logged at the start"
assert_eq "$FP_A" "$(served "$O")" "the certificate of the OTLP port at the start"
assert_eq "$FP_A" "$(served "$Z")" "the certificate of the Zipkin port at the start"
assert_eq 200 "$(post "$OTLPS/v1/traces" ca-a cli-1 --data '{}')" "OTLP with A and a client of CA 1"
assert_eq 000 "$(post "$OTLPS/v1/traces" ca-a cli-2 --data '{}')" "a client of CA 2 before the reload"
scrape
assert_num_eq 1 "$(metric outrider_collector_ingest_tls_reload_success)" "reload success at the start"
assert_num_eq "$NOT_AFTER_A" "$(metric outrider_collector_ingest_tls_certificate_expiry_seconds)" "notAfter of A"

# a keep-alive connection opened now: it keeps A after the reload, and goes on answering
cat >"$T/keep.py" <<'PY'
import http.client, os, ssl, sys, time
port, ca, cert, key, ready, go = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
conn = http.client.HTTPSConnection("localhost", int(port), context=ctx)
def post():
    conn.request("POST", "/v1/traces", body="{}", headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    return r.status, dict(x[0] for x in conn.sock.getpeercert()["subject"])["commonName"]
first = post()
sock = conn.sock
print("before", *first, flush=True)
open(ready, "w").close()
for _ in range(4000):
    if os.path.exists(go):
        break
    time.sleep(0.05)
second = post()
print("after", *second, "same-connection" if conn.sock is sock else "new-connection", flush=True)
PY
python3 "$T/keep.py" "$O" "$T/ca-a.pem" "$T/cli-1.pem" "$T/cli-1.key" "$T/keep.ready" "$T/keep.go" \
    >"$T/keep.out" 2>&1 &
KEEP_PID=$!
track_pid "$KEEP_PID"
wait_until -n 400 test -e "$T/keep.ready" || fail "the keep-alive client did not start: $(cat "$T/keep.out")"

put "$T/srv-b.chain.pem" "$LIVE/cert.pem"
put "$T/srv-b.key" "$LIVE/key.pem"
put "$T/client-ca-2.pem" "$LIVE/client-ca.pem"
kill -HUP "$COLLECTOR_PID"
wait_until -n 400 serves "$O" "$FP_B" || fail "new OTLP handshakes do not get B after SIGHUP: $(served "$O")"
assert_eq "$FP_B" "$(served "$Z")" "the certificate of the Zipkin port after the reload"
grep -q 'SIGHUP: reading the ingest.tls.\* files (certFile, keyFile, clientCaFile) again' "$COLLECTOR_LOG" ||
    fail "SIGHUP does not say what it reads"
grep -qF "ingest.tls: reloaded; new handshakes get certificate $LIVE/cert.pem: subject CN=collector-b, serial 1002," \
    "$COLLECTOR_LOG" || fail "the reload is not logged"
grep -qF "; 1 client CA from $LIVE/client-ca.pem (open connections keep theirs)" "$COLLECTOR_LOG" ||
    fail "the reload does not count the client CAs"
assert_eq 200 "$(post "$OTLPS/v1/traces" ca-b cli-2 --data '{}')" "OTLP with B and a client of CA 2"
assert_eq 202 "$(post "$ZIPS/api/v2/spans" ca-b cli-2 --data "$(span_json "$(new_trace)")")" \
    "Zipkin with B and a client of CA 2"
assert_eq 000 "$(post "$OTLPS/v1/traces" ca-b cli-1 --data '{}')" "a client of CA 1 after the reload"
assert_eq 000 "$(post "$OTLPS/v1/traces" ca-a cli-2 --data '{}')" "a client trusting only CA A after the reload"
grep -qi 'certificate' "$T/curl.err" || fail "curl trusting CA A failed for another reason: $(cat "$T/curl.err")"
touch "$T/keep.go"
wait "$KEEP_PID" || fail "the keep-alive client: $(cat "$T/keep.out")"
grep -qx 'before 200 collector-a' "$T/keep.out" || fail "keep-alive client before: $(cat "$T/keep.out")"
grep -qx 'after 200 collector-a same-connection' "$T/keep.out" ||
    fail "a connection opened before the reload: $(cat "$T/keep.out")"
scrape
assert_num_eq 1 "$(metric outrider_collector_ingest_tls_reload_success)" "reload success after B"
assert_num_eq "$NOT_AFTER_B" "$(metric outrider_collector_ingest_tls_certificate_expiry_seconds)" "notAfter of B"

# ---- bad files: each refused with its file and reason; B and client CA 2 stay ----
still_b() { # WHAT
    assert_eq "$FP_B" "$(served "$O")" "the certificate after $1"
    assert_eq 200 "$(post "$OTLPS/v1/traces" ca-b cli-2 --data '{}')" "OTLP with B and a client of CA 2 after $1"
    assert_eq 000 "$(post "$OTLPS/v1/traces" ca-b cli-1 --data '{}')" "a client of CA 1 after $1"
    scrape
    assert_num_eq 0 "$(metric outrider_collector_ingest_tls_reload_success)" "reload success after $1"
    assert_num_eq "$NOT_AFTER_B" "$(metric outrider_collector_ingest_tls_certificate_expiry_seconds)" \
        "notAfter after $1"
}
printf -- '-----BEGIN PRIVATE KEY-----\nthis is not a key\n-----END PRIVATE KEY-----\n' >"$T/broken.key"
put "$T/broken.key" "$LIVE/key.pem"
hup
grep -qF "ingest.tls: reload failed: $LIVE/key.pem: not an unencrypted PEM private key" "$COLLECTOR_LOG" ||
    fail "a broken key file is not reported with its name"
grep -qF "new handshakes keep the certificate before (subject CN=collector-b" "$COLLECTOR_LOG" ||
    fail "the failed reload does not say which certificate stays"
still_b "a broken key file"

put "$T/srv-a.key" "$LIVE/key.pem"
hup
grep -qF "ingest.tls: reload failed: $LIVE/cert.pem with $LIVE/key.pem: the key does not belong to the certificate" \
    "$COLLECTOR_LOG" || fail "a key of another certificate is not reported"
still_b "a key of another certificate"

put "$T/srv-b.key" "$LIVE/key.pem"
printf '# the client CAs moved\n' >"$T/empty-ca.pem"
put "$T/empty-ca.pem" "$LIVE/client-ca.pem"
hup
grep -qF "ingest.tls: reload failed: $LIVE/client-ca.pem: no PEM certificate in it" "$COLLECTOR_LOG" ||
    fail "a client CA file without a certificate is not reported"
still_b "a client CA file without a certificate"

put "$T/client-ca-2.pem" "$LIVE/client-ca.pem"
rm "$LIVE/cert.pem"
hup
grep -qF "ingest.tls: reload failed: $LIVE/cert.pem: No such file or directory" "$COLLECTOR_LOG" ||
    fail "a missing certificate file is not reported"
still_b "a missing certificate file"

put "$T/srv-b.chain.pem" "$LIVE/cert.pem"
hup
scrape
assert_num_eq 1 "$(metric outrider_collector_ingest_tls_reload_success)" "reload success after good files again"
assert_eq 200 "$(post "$OTLPS/v1/traces" ca-b cli-2 --data '{}')" "OTLP after good files again"
collector_alive
stop_pid "$COLLECTOR_PID"
assert_eq 0 "$STOP_RC" "the collector's exit code after SIGTERM"

# ---- no mutual TLS: swaps of a Secret-like volume under SIGHUP, with clients posting all along ----
mkdir -p "$T/vol/set-a" "$T/vol/set-b"
cp "$T/srv-a.chain.pem" "$T/vol/set-a/cert.pem"
cp "$T/srv-a.key" "$T/vol/set-a/key.pem"
cp "$T/srv-b.chain.pem" "$T/vol/set-b/cert.pem"
cp "$T/srv-b.key" "$T/vol/set-b/key.pem"
ln -s set-a "$T/vol/..data"
ln -s ..data/cert.pem "$T/vol/cert.pem"
ln -s ..data/key.pem "$T/vol/key.pem"
swap_to() { # set-a | set-b: one rename, as the kubelet does
    ln -sfn "$1" "$T/vol/..data.new"
    mv -T "$T/vol/..data.new" "$T/vol/..data"
}
cat "$T/ca-a.pem" "$T/ca-b.pem" >"$T/both.pem"
start_collector --set "ingest.tls.certFile=$T/vol/cert.pem" --set "ingest.tls.keyFile=$T/vol/key.pem" \
    --set metrics.listen=127.0.0.1:0 --set server.threads=4
O=$(port_of "$OTLP_URL")
Z=$(port_of "$ZIPKIN_URL")
grep -q "listening otlp https://127.0.0.1:$O\$" "$COLLECTOR_LOG" || fail "mutual TLS is on without clientCaFile"
client_loop() { # URL BODY OUT: post until $T/stop exists, one status a line
    while [[ ! -e $T/stop ]]; do
        curl -sS -o /dev/null -w '%{http_code}\n' --max-time 20 --cacert "$T/both.pem" \
            -H 'Content-Type: application/json' --data "$2" "$1" 2>>"$3.err" || true
    done >"$3"
}
client_loop "https://localhost:$O/v1/traces" '{}' "$T/loop-otlp" &
track_pid $!
LOOP1=$!
client_loop "https://localhost:$Z/api/v2/spans" '[]' "$T/loop-zipkin" &
track_pid $!
LOOP2=$!
for i in 1 2 3 4 5 6 7 8 9 10; do
    if ((i % 2)); then swap_to set-b; else swap_to set-a; fi
    hup
done
touch "$T/stop"
wait "$LOOP1" "$LOOP2"
n1=$(wc -l <"$T/loop-otlp")
n2=$(wc -l <"$T/loop-zipkin")
note "posts during the swaps: $n1 OTLP, $n2 Zipkin"
[[ $n1 -ge 1 && $n2 -ge 1 ]] || fail "the clients did not post during the swaps"
if grep -qvx 200 "$T/loop-otlp"; then
    fail "OTLP posts failed during the swaps: $(sort "$T/loop-otlp" | uniq -c) $(head -5 "$T/loop-otlp.err")"
fi
if grep -qvx 202 "$T/loop-zipkin"; then
    fail "Zipkin posts failed during the swaps: $(sort "$T/loop-zipkin" | uniq -c) $(head -5 "$T/loop-zipkin.err")"
fi
if grep -q 'ingest.tls: reload failed' "$COLLECTOR_LOG"; then
    fail "a reload failed while the volume was swapped at once: $(grep 'reload failed' "$COLLECTOR_LOG" | head -3)"
fi
assert_eq 10 "$(grep -c 'ingest.tls: reloaded' "$COLLECTOR_LOG")" "reloads logged"
assert_eq "$FP_A" "$(served "$O")" "the certificate after an even number of swaps"
scrape
assert_num_eq "$NOT_AFTER_A" "$(metric outrider_collector_ingest_tls_certificate_expiry_seconds)" "notAfter after the swaps"
collector_alive
stop_pid "$COLLECTOR_PID"
assert_eq 0 "$STOP_RC" "the collector's exit code after SIGTERM"

# ---- neither TLS nor tokens: SIGHUP has nothing to read ----
start_collector
kill -HUP "$COLLECTOR_PID"
nothing_logged() { grep -q 'SIGHUP: nothing to reload (only ingest.auth.tokens and the ingest.tls.\* files' "$COLLECTOR_LOG"; }
wait_until -n 400 nothing_logged || fail "SIGHUP without TLS or tokens"
collector_alive
stop_pid "$COLLECTOR_PID"
assert_eq 0 "$STOP_RC" "the collector's exit code after SIGTERM"
echo "1 passed, 0 failed"
