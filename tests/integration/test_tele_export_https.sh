#!/usr/bin/env bash
# The proxy's telemetry exporter over HTTPS, with a base path (telemetry.otlpEndpoint
# https://HOST:PORT/PATH, telemetry.caFile), as users put a TLS-terminating gateway in front
# of their OTLP collector: nginx with a certificate from the mesh CA (outriderctl) forwards
# /otlp/ to the collector's OTLP port.
#  - with the CA that signed nginx's certificate: every span and log record is accepted, the
#    spans are queryable at the collector, and no export fails;
#  - with another CA, or a certificate that does not name the host asked for: nothing is
#    accepted, every export fails and is counted, and tele_drive still ends within its deadline;
#  - an http:// endpoint with the same base path works too (the path is kept, not only HOST:PORT).
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

DRIVE=$OUTRIDER_BIN/tele_drive
CTL=$OUTRIDER_BIN/outriderctl
[[ -x $DRIVE && -x $CTL ]] || fail "no tele_drive or outriderctl in $OUTRIDER_BIN"
command -v nginx >/dev/null || fail "nginx is not installed"

start_collector
OTLP_PORT=${OTLP_URL##*:}
"$CTL" ca init "$T/ca" --trust-domain example.org >/dev/null 2>&1 || fail "outriderctl ca init"
"$CTL" ca init "$T/other-ca" --trust-domain other.org >/dev/null 2>&1 || fail "outriderctl ca init (other)"
"$CTL" cert issue --ca "$T/ca" --namespace shop --service-account otel-gateway --dns localhost --out "$T/gw" \
    >/dev/null 2>&1 || fail "outriderctl cert issue"

TLS_PORT=$(free_port)
PLAIN_PORT=$(free_port)
cat >"$T/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $T/nginx.pid; error_log $T/nginx.err;
events { worker_connections 64; }
http { access_log $T/nginx-access.log; client_body_temp_path $T; proxy_temp_path $T; fastcgi_temp_path $T;
  uwsgi_temp_path $T; scgi_temp_path $T;
  server { listen 127.0.0.1:$TLS_PORT ssl; ssl_certificate $T/gw/cert-chain.pem; ssl_certificate_key $T/gw/key.pem;
    location /otlp/ { proxy_pass http://127.0.0.1:$OTLP_PORT/; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:$PLAIN_PORT;
    location /otlp/ { proxy_pass http://127.0.0.1:$OTLP_PORT/; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
nginx -c "$T/nginx.conf" >"$T/nginx.out" 2>&1 &
track_pid $!
# serving, not only listening: a TLS handshake and an answer from the collector behind it
nginx_serves() { curl -s -o /dev/null --cacert "$T/ca/root-cert.pem" "https://localhost:$TLS_PORT/otlp/health"; }
wait_until -n 200 -i 0.1 nginx_serves || fail "nginx did not start: $(cat "$T/nginx.err" "$T/nginx.out" 2>/dev/null)"

N=20
stat() { sed -n "s/^$1=//p" "$2"; }

# ---- the right CA ----
TELE_DRIVE_CA=$T/ca/root-cert.pem timeout 60 "$DRIVE" "https://localhost:$TLS_PORT/otlp/" - "$N" 100 20000 \
    >"$T/ok.out" 2>"$T/ok.err" || fail "tele_drive (https): $(cat "$T/ok.out" "$T/ok.err")"
note "https: $(tr '\n' ' ' <"$T/ok.out")"
assert_eq "$N" "$(stat spans_exported "$T/ok.out")" "spans accepted over https"
assert_eq "$N" "$(stat logs_exported "$T/ok.out")" "log records accepted over https"
assert_eq 0 "$(stat export_failures "$T/ok.out")" "export failures over https"
grep -q '"POST /otlp/v1/traces HTTP/1.1" 200' "$T/nginx-access.log" ||
    fail "nginx saw no POST /otlp/v1/traces: $(head -5 "$T/nginx-access.log")"
traces_seen() { [[ $(curl -sS "$ZIPKIN_URL/api/v2/traces?serviceName=tele-drive.default&limit=100" | jq 'length') -ge 1 ]]; }
wait_until -n 100 -i 0.1 traces_seen || fail "the spans sent over https are not at the collector"

# ---- another CA: refused and counted, within the deadline ----
TELE_DRIVE_CA=$T/other-ca/root-cert.pem timeout 60 "$DRIVE" "https://localhost:$TLS_PORT/otlp" - "$N" 100 1500 \
    >"$T/bad.out" 2>"$T/bad.err" || fail "tele_drive (wrong CA) did not end cleanly: $(cat "$T/bad.out" "$T/bad.err")"
note "wrong CA: $(tr '\n' ' ' <"$T/bad.out")"
assert_eq 0 "$(stat spans_exported "$T/bad.out")" "spans accepted with a certificate from another CA"
[[ $(stat export_failures "$T/bad.out") -ge 1 ]] || fail "no export failure counted with the wrong CA: $(cat "$T/bad.out")"

# ---- the right CA, but the certificate does not name the host asked for (127.0.0.1: not an IP SAN) ----
TELE_DRIVE_CA=$T/ca/root-cert.pem timeout 60 "$DRIVE" "https://127.0.0.1:$TLS_PORT/otlp" - "$N" 100 1500 \
    >"$T/name.out" 2>"$T/name.err" || fail "tele_drive (host mismatch) did not end cleanly: $(cat "$T/name.out" "$T/name.err")"
assert_eq 0 "$(stat spans_exported "$T/name.out")" "spans accepted from a server whose certificate names another host"
[[ $(stat export_failures "$T/name.out") -ge 1 ]] || fail "no export failure counted for the host mismatch"

# ---- plain http with the same base path ----
timeout 60 "$DRIVE" "http://127.0.0.1:$PLAIN_PORT/otlp" - "$N" 100 20000 >"$T/plain.out" 2>"$T/plain.err" ||
    fail "tele_drive (http with a path): $(cat "$T/plain.out" "$T/plain.err")"
assert_eq "$N" "$(stat spans_exported "$T/plain.out")" "spans accepted over http with a base path"
collector_alive
echo "1 passed, 0 failed"
