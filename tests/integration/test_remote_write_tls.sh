#!/usr/bin/env bash
# Remote write over TLS with a client certificate and basic auth, to a real
# Prometheus (Debian's 2.42) whose web config requires all three
# (--web.config.file: tls_server_config with RequireAndVerifyClientCert,
# basic_auth_users). The certificates are made here with openssl: a CA, a
# server certificate for 127.0.0.1 and a client certificate.
#  - with remoteWrite.tls.caFile, certFile, keyFile and basicAuth the samples
#    arrive and read back through the query API;
#  - a wrong password is answered 401: counted by code, the samples failed
#    and never retried (each later push of the store is refused anew);
#  - without the CA the server is not trusted: no answer (code "none"),
#    retried, nothing reaches Prometheus;
#  - bearerToken goes out as "Authorization: Bearer" and custom headers as
#    given (checked on a plain listener that records what it gets).
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

PROMETHEUS=${PROMETHEUS:-$(command -v prometheus || true)}
[[ -x $PROMETHEUS ]] || fail "prometheus is not installed (Debian package prometheus)"
command -v openssl >/dev/null || fail "openssl is not installed"

# ---- certificates ----
cd "$T" || fail "no temp dir"
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=outrider-test-ca \
    >/dev/null 2>&1 || fail "openssl: CA"
leaf() { # NAME EXT
    openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" >/dev/null 2>&1 &&
        printf '%s\n' "$2" >"$1.ext" &&
        openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" -days 2 \
            -extfile "$1.ext" >/dev/null 2>&1 || fail "openssl: $1 certificate"
}
leaf server "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth"
leaf client "extendedKeyUsage=clientAuth"

# the bcrypt hash of "outrider-test" (Prometheus's basic_auth_users take bcrypt only)
cat >"$T/web.yml" <<'YML'
tls_server_config:
  cert_file: server.pem
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.pem
basic_auth_users:
  outrider: $2b$10$PCTJ5hI8y4kpjG5ISORToelIYp3qfrqk8sdR5TVNp.k2INUcWDXN6
YML
printf 'global:\n  evaluation_interval: 1m\n' >"$T/prometheus.yml"
PROM_PORT=$(free_port)
PROM_URL=https://127.0.0.1:$PROM_PORT
SECURE=(--cacert "$T/ca.pem" --cert "$T/client.pem" --key "$T/client.key" -u outrider:outrider-test)
"$PROMETHEUS" --web.enable-remote-write-receiver --storage.tsdb.path="$T/tsdb" --web.config.file="$T/web.yml" \
    --web.listen-address="127.0.0.1:$PROM_PORT" --config.file="$T/prometheus.yml" >>"$T/prometheus.log" 2>&1 &
PROM_PID=$!
track_pid "$PROM_PID"
prom_ready() { kill -0 "$PROM_PID" 2>/dev/null && [[ $(http_status GET "$PROM_URL/-/ready" "${SECURE[@]}") == 200 ]]; }
wait_until -n 600 -i 0.05 prom_ready || fail "prometheus did not become ready: $(tail -5 "$T/prometheus.log")"
# the web config holds: no client certificate, or a wrong password, is refused
[[ $(http_status GET "$PROM_URL/-/ready" --cacert "$T/ca.pem" -u outrider:outrider-test) == 200 ]] &&
    fail "prometheus answered without a client certificate"
assert_eq 401 "$(http_status GET "$PROM_URL/-/ready" --cacert "$T/ca.pem" --cert "$T/client.pem" \
    --key "$T/client.key" -u outrider:wrong)" "prometheus with a wrong password"

prom_value() { # QUERY: the value of a one-series vector
    [[ $(http_status GET "$PROM_URL/api/v1/query" "${SECURE[@]}" -G --data-urlencode "query=$1") == 200 ]] || return 1
    jq -r '.data.result | if length == 1 then .[0].value[1] else "series: \(length)" end' "$LAST_BODY"
}
prom_value_is() { [[ $(prom_value "$1") == "$2" ]]; }

post_counter() { # NAME VALUE
    local t
    t=$(date +%s)
    printf '%s' "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"$1\",\"sum\":{\"aggregationTemporality\":1,\"isMonotonic\":true,\"dataPoints\":[{\"attributes\":[{\"key\":\"reporter\",\"value\":{\"stringValue\":\"source\"}}],\"startTimeUnixNano\":\"$((t - 10))000000000\",\"timeUnixNano\":\"${t}000000000\",\"asInt\":\"$2\"}]}}]}]}]}" >"$T/c.json"
    assert_eq 200 "$(http_status POST "$OTLP_URL/v1/metrics" -H 'Content-Type: application/json' --data-binary "@$T/c.json")" \
        "POST /v1/metrics ($1)"
}
scrape() { curl -sS --max-time 20 -o "$T/metrics.txt" "$ZIPKIN_URL/metrics" || fail "GET /metrics failed"; }
rw() { metric_values "$T/metrics.txt" outrider_remote_write_samples_total "result=$1"; }
reqs() { metric_values "$T/metrics.txt" outrider_remote_write_requests_total "code=$1" | awk '{s += $1} END {print s + 0}'; }

# ---- 1. TLS + client certificate + basic auth: the samples arrive ----
start_collector --set "remoteWrite.url=$PROM_URL/api/v1/write" --set remoteWrite.interval=500ms \
    --set "remoteWrite.tls.caFile=$T/ca.pem" --set "remoteWrite.tls.certFile=$T/client.pem" \
    --set "remoteWrite.tls.keyFile=$T/client.key" --set remoteWrite.basicAuth.username=outrider \
    --set remoteWrite.basicAuth.password=outrider-test
post_counter secure_requests_total 41
wait_until -n 400 -i 0.05 prom_value_is 'secure_requests_total{reporter="source"}' 41 ||
    fail "the pushed counter did not reach Prometheus over TLS: $(prom_value 'secure_requests_total') $(tail -5 "$COLLECTOR_LOG")"
scrape
assert_num_eq 0 "$(rw failed)" "failed samples over TLS"
[[ $(reqs 204) -gt 0 ]] || fail "no push answered 204: $(grep outrider_remote_write_requests_total "$T/metrics.txt")"
stop_pid "$COLLECTOR_PID"

# ---- 2. a wrong password: 401, counted, failed, never retried ----
start_collector --set "remoteWrite.url=$PROM_URL/api/v1/write" --set remoteWrite.interval=500ms \
    --set "remoteWrite.tls.caFile=$T/ca.pem" --set "remoteWrite.tls.certFile=$T/client.pem" \
    --set "remoteWrite.tls.keyFile=$T/client.key" --set remoteWrite.basicAuth.username=outrider \
    --set remoteWrite.basicAuth.password=wrong
post_counter wrong_password_total 3
refused() { scrape && [[ $(reqs 401) -ge 1 ]]; }
wait_until -n 400 -i 0.05 refused || fail "no 401 counted: $(grep outrider_remote_write "$T/metrics.txt")"
sleep 1.5 # three more intervals: each push of the store is refused again, none is retried
scrape
assert_num_eq 0 "$(rw retried)" "refused samples are not retried"
[[ $(rw failed) -ge 1 ]] || fail "the refused samples are not counted as failed: $(grep samples_total "$T/metrics.txt")"
assert_eq "series: 0" "$(prom_value wrong_password_total)" "nothing stored with a wrong password"
stop_pid "$COLLECTOR_PID"

# ---- 3. the server's certificate not trusted: no answer, retried, nothing stored ----
start_collector --set "remoteWrite.url=$PROM_URL/api/v1/write" --set remoteWrite.interval=200ms \
    --set remoteWrite.retry.maxBackoff=200ms --set "remoteWrite.tls.certFile=$T/client.pem" \
    --set "remoteWrite.tls.keyFile=$T/client.key" --set remoteWrite.basicAuth.username=outrider \
    --set remoteWrite.basicAuth.password=outrider-test
post_counter untrusted_total 5
untrusted() { scrape && [[ $(reqs none) -ge 2 && $(rw retried) -ge 1 ]]; }
wait_until -n 400 -i 0.05 untrusted ||
    fail "an untrusted server should give code=none, retried: $(grep outrider_remote_write "$T/metrics.txt")"
assert_eq "series: 0" "$(prom_value untrusted_total)" "nothing stored through an untrusted connection"
grep -qi 'certificate' "$COLLECTOR_LOG" || fail "the collector's log does not say why: $(tail -5 "$COLLECTOR_LOG")"
stop_pid "$COLLECTOR_PID"

# ---- 4. bearer token and custom headers, as a plain listener receives them ----
SINK_PORT=$(free_port)
python3 - "$SINK_PORT" "$T/sink.txt" >"$T/sink.log" 2>&1 <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(sys.argv[2], "a") as f:
            for k in ("Authorization", "X-Scope-OrgID", "Content-Encoding", "X-Prometheus-Remote-Write-Version"):
                f.write("%s: %s\n" % (k, self.headers.get(k)))
        self.send_response(204); self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
track_pid $!
wait_until -n 100 port_open "$SINK_PORT" || fail "the header sink did not start: $(cat "$T/sink.log")"
start_collector --set "remoteWrite.url=http://127.0.0.1:$SINK_PORT/push" --set remoteWrite.interval=200ms \
    --set remoteWrite.bearerToken=s3cr3t-token --set remoteWrite.headers.X-Scope-OrgID=tenant-a
post_counter bearer_total 1
wait_until -n 200 -i 0.05 test -s "$T/sink.txt" || fail "nothing reached the header sink"
grep -qx 'Authorization: Bearer s3cr3t-token' "$T/sink.txt" || fail "no bearer token: $(cat "$T/sink.txt")"
grep -qx 'X-Scope-OrgID: tenant-a' "$T/sink.txt" || fail "no custom header: $(cat "$T/sink.txt")"
grep -qx 'Content-Encoding: snappy' "$T/sink.txt" || fail "no Content-Encoding: snappy: $(cat "$T/sink.txt")"
grep -qx 'X-Prometheus-Remote-Write-Version: 0.1.0' "$T/sink.txt" || fail "no version header: $(cat "$T/sink.txt")"
collector_alive
note "remote write over TLS with a client certificate, basic auth and bearer tokens: all checks passed"
