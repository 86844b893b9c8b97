#!/usr/bin/env bash
# An OpenTelemetry SDK exporter (exporter-trace-otlp-proto) set up only through the standard
# OTEL_EXPORTER_OTLP_* variables sends to an ingest port behind TLS and bearer tokens, and to
# one behind mutual TLS (certificates from outriderctl):
#  - with the CA (OTEL_EXPORTER_OTLP_CERTIFICATE) and "Authorization=Bearer TOKEN"
#    (OTEL_EXPORTER_OTLP_HEADERS): the export succeeds and the span is queryable;
#  - without the header, or with another token: the export fails (401) and nothing arrives;
#  - mutual TLS: with OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and _CLIENT_KEY from the mesh CA
#    the export succeeds; without them it fails.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
HERE=$OUTRIDER_SRC/tests/compat
CTL=$OUTRIDER_BIN/outriderctl
[[ -x $CTL ]] || fail "no outriderctl in $OUTRIDER_BIN"

npm_ready "$HERE"
"$CTL" ca init "$T/ca" >/dev/null 2>&1 || fail "ca init"
"$CTL" cert issue --ca "$T/ca" --namespace obs --service-account collector --dns localhost --out "$T/coll" \
    >/dev/null 2>&1 || fail "cert issue (collector)"
"$CTL" cert issue --ca "$T/ca" --namespace shop --service-account otel --out "$T/otel" >/dev/null 2>&1 ||
    fail "cert issue (client)"
TOKEN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s node-sdk\n' "$TOKEN" >"$T/tokens"
TLS=(--set "ingest.tls.certFile=$T/coll/cert-chain.pem" --set "ingest.tls.keyFile=$T/coll/key.pem")

export_with() { # OUT [VAR=VALUE...]: run the client with the OTLP port of the collector and these variables
    local out=$1
    shift
    env OTEL_EXPORTER_OTLP_ENDPOINT="https://localhost:${OTLP_URL##*:}" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \
        OTEL_EXPORTER_OTLP_TIMEOUT=5000 OTEL_EXPORTER_OTLP_CERTIFICATE="$T/ca/root-cert.pem" "$@" \
        node "$HERE/otel_otlp_auth_client.mjs" "$out" >"$T/node.log" 2>&1 || fail "the client failed: $(cat "$T/node.log")"
}
queryable() { [[ $(http_status GET "$QUERY_URL/api/v2/trace/$1") == 200 ]]; }

# ---- TLS and a bearer token ----
start_collector "${TLS[@]}" --set "ingest.auth.tokens=$T/tokens" --set query.listen=127.0.0.1:0
export_with "$T/ok.json" OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20$TOKEN"
assert_eq 0 "$(jq .result "$T/ok.json")" "export with the CA and the token ($(jq -r .error "$T/ok.json"))"
TRACE=$(jq -r .traceId "$T/ok.json")
wait_until -n 200 queryable "$TRACE" || fail "the exported span is not queryable"
assert_eq auth-compat "$(http_get_json "$QUERY_URL/api/v2/trace/$TRACE" trace | jq -r '.[0].localEndpoint.serviceName')" \
    "the span's service"

export_with "$T/none.json"
assert_eq 1 "$(jq .result "$T/none.json")" "export without the token"
jq -r .error "$T/none.json" | grep -qE '401|Unauthorized' || fail "the exporter's error does not say 401: $(jq -r .error "$T/none.json")"
export_with "$T/wrong.json" OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer%20not-the-token-at-all"
assert_eq 1 "$(jq .result "$T/wrong.json")" "export with another token"
for f in none wrong; do
    if queryable "$(jq -r .traceId "$T/$f.json")"; then fail "a span refused for its token ($f) was stored"; fi
done
[[ $(http_status GET "$QUERY_URL/metrics") == 200 ]] || fail "/metrics"
assert_num_eq 1 "$(metric_values "$LAST_BODY" outrider_collector_ingest_auth_requests_total sender=node-sdk)" \
    "requests accepted for the node-sdk token"
stop_pid "$COLLECTOR_PID"

# ---- mutual TLS ----
start_collector "${TLS[@]}" --set "ingest.tls.clientCaFile=$T/ca/root-cert.pem" --set query.listen=127.0.0.1:0
export_with "$T/mtls.json" OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE="$T/otel/cert-chain.pem" \
    OTEL_EXPORTER_OTLP_CLIENT_KEY="$T/otel/key.pem"
assert_eq 0 "$(jq .result "$T/mtls.json")" "export with a client certificate ($(jq -r .error "$T/mtls.json"))"
wait_until -n 200 queryable "$(jq -r .traceId "$T/mtls.json")" || fail "the span sent with mutual TLS is not queryable"
export_with "$T/nocert.json"
assert_eq 1 "$(jq .result "$T/nocert.json")" "export without a client certificate"
collector_alive
echo "1 passed, 0 failed"
