#!/usr/bin/env bash
# Builds Outrider and runs a small local mesh with embedded defaults (no Kafka,
# no Redis): the collector (Zipkin API and /metrics on :9411, OTLP/HTTP on
# :4318), two demo services, productpage and reviews (v1 and v2), each with an
# outrider-proxy sidecar, a canary split of reviews (80% v1, 20% v2; the user
# jason always gets v2), mutual TLS between the sidecars with identities from
# the mesh CA (outriderctl ca serve on :15012), some traffic, and where to look. Stays in the
# foreground; Ctrl-C stops everything it started.
#   scripts/run.sh                 the apps address their sidecars (Host: on 15001)
#   scripts/run.sh --transparent   root, Linux: each service in a network namespace of its own, the
#                                  apps unaware of the sidecars (scripts/transparent_mesh.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
case ${1:-} in
'' | --transparent) ;;
*) echo "usage: scripts/run.sh [--transparent]" >&2; exit 2 ;;
esac
scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
BIN=build/release/bin
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/outrider-mesh.XXXXXX")
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
start() { # name command...
    local name=$1
    shift
    "$@" >"$LOGS/$name.log" 2>&1 &
    PIDS+=($!)
}
wait_http() { # name url
    for _ in $(seq 100); do
        curl -sf -o /dev/null "$2" && return 0
        sleep 0.1
    done
    echo "$1 did not start; its log:" >&2
    cat "$LOGS/$1.log" >&2
    exit 1
}

for port in 9411 4318 9080 19081 19082 15000 15001 15006 15012 15100 15101 15106 15200 15201 15206; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is already in use (another demo mesh still running?): stop it first" >&2
        exit 1
    fi
done
# the mesh CA: a root made once (build/demo-pki/ca), a fresh bootstrap token per service account each run
PKI=build/demo-pki
mkdir -p "$PKI"
[ -f "$PKI/ca/root-cert.pem" ] || "$BIN/outriderctl" ca init "$PKI/ca" >/dev/null
(umask 077 && : >"$PKI/tokens")
for sa in productpage reviews; do
    tok=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
    (umask 077 && echo "$tok" >"$PKI/$sa.token")
    echo "$tok default $sa" >>"$PKI/tokens"
done
for f in deploy/demo/*.yaml; do "$BIN/outrider-proxy" --config "$f" --check >/dev/null; done
if [[ ${1:-} == --transparent ]]; then
    . scripts/transparent_mesh.sh # runs the transparent mesh in the foreground; never returns
    exit 0
fi
start ca "$BIN/outriderctl" ca serve --ca "$PKI/ca" --listen 127.0.0.1:15012 --tokens "$PKI/tokens"
for _ in $(seq 100); do grep -q 'listening https' "$LOGS/ca.log" && break; sleep 0.1; done
grep -q 'listening https' "$LOGS/ca.log" || { echo "the mesh CA did not start:" >&2; cat "$LOGS/ca.log" >&2; exit 1; }
start collector "$BIN/outrider-collector" --zipkin-listen 127.0.0.1:9411 --otlp-listen 127.0.0.1:4318
wait_http collector http://127.0.0.1:9411/health
start reviews-v1-app python3 scripts/demo_app.py reviews 19081 v1
start reviews-v2-app python3 scripts/demo_app.py reviews 19082 v2
start productpage-app python3 scripts/demo_app.py productpage 9080 127.0.0.1:15001
start reviews-v1-sidecar "$BIN/outrider-proxy" --config deploy/demo/reviews-v1.yaml
start reviews-v2-sidecar "$BIN/outrider-proxy" --config deploy/demo/reviews-v2.yaml
start productpage-sidecar "$BIN/outrider-proxy" --config deploy/demo/productpage.yaml
wait_http reviews-v1-sidecar http://127.0.0.1:15100/ready
wait_http reviews-v2-sidecar http://127.0.0.1:15200/ready
wait_http productpage-sidecar http://127.0.0.1:15000/ready
# the app itself first: a request through the sidecar before it listens is a real 503 UF in the figures
wait_http productpage-app http://127.0.0.1:9080/productpage
wait_http productpage-sidecar http://127.0.0.1:15006/productpage

echo "sending 200 requests to productpage (through its sidecar), 20 of them as the user jason..."
v1=0 v2=0 other=0
for i in $(seq 200); do
    user=()
    ((i % 10 == 0)) && user=(-H 'end-user: jason')
    out=$(curl -s "${user[@]}" http://127.0.0.1:15006/productpage || true)
    case $out in
        *'"version": "v1"'*) v1=$((v1 + 1)) ;;
        *'"version": "v2"'*) v2=$((v2 + 1)) ;;
        *)
            other=$((other + 1))
            echo "request $i: $out" >>"$LOGS/failed-requests.log"
            ;;
    esac
done
sleep 1.5 # one telemetry flush
cat <<TXT

Outrider demo mesh is running (logs in $LOGS).
  reviews answered: v1 $v1 times, v2 $v2 times (80/20 canary plus jason's 20 on v2), failed $other
  try it            curl -H 'end-user: jason' http://127.0.0.1:15006/productpage
  traces            http://127.0.0.1:9411/api/v2/traces?serviceName=productpage.default&limit=5
  services          http://127.0.0.1:9411/api/v2/services
  dependencies      http://127.0.0.1:9411/api/v2/dependencies?endTs=$(($(date +%s) * 1000 + 60000))
  mesh metrics      http://127.0.0.1:9411/metrics   (istio_requests_total, istio_request_duration_milliseconds...)
  sidecar admin     http://127.0.0.1:15000/stats/prometheus  /config_dump  /ready  (reviews: 15100, 15200)
  change routing    edit deploy/demo/productpage.yaml, then: kill -HUP ${PIDS[7]}
  mutual TLS        productpage -> reviews goes over mTLS (reviews' sidecars are STRICT); the principals:
                    curl -s http://127.0.0.1:9411/metrics | grep 'reporter="destination"' | grep -o 'source_principal="[^"]*"' | sort -u
                    curl -s http://127.0.0.1:15100/config_dump | jq .identityStatus   (certificate, renewal)
  service graph     http://127.0.0.1:9411/mesh
  dashboards        $PWD/dashboards/ (Grafana: mesh, service, workload, traffic policies, collector)

Prometheus, scraping the collector and the three sidecars' admin ports, with the rules of
deploy/prometheus/ (in another terminal):
  prometheus --config.file=$PWD/deploy/prometheus.yml --enable-feature=exemplar-storage \\
      --storage.tsdb.path=/tmp/outrider-prometheus --web.listen-address=127.0.0.1:9090
Grafana with the Prometheus and Zipkin data sources and the dashboards (folder Outrider), then
http://127.0.0.1:3000 (admin/admin):
  OUTRIDER_DASHBOARDS=$PWD/dashboards grafana-server --homepath /usr/share/grafana \\
      cfg:default.paths.provisioning=$PWD/dashboards/provisioning cfg:default.paths.data=/tmp/outrider-grafana
Ctrl-C stops everything.
TXT
wait "${PIDS[1]}"
