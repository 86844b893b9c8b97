#!/usr/bin/env bash
# scripts/run.sh --transparent (root, Linux): the demo mesh with transparent capture. Each service runs
# in a network namespace of its own ("pod"), on a bridge with the host (10.215.0.1/24):
#   outrider-demo-productpage 10.215.0.11, outrider-demo-reviews-v1 .12, outrider-demo-reviews-v2 .13
# The apps change nothing: productpage calls reviews at its virtual IP 10.215.1.10:9080 (a ServiceEntry
# address), and the rules `outriderctl redirect` installs in each pod send that call through the
# sidecars, which run as uid 1337 with spec.interceptionMode REDIRECT, get their certificates from the
# mesh CA and talk mutual TLS. The collector and the CA run on the host, on the bridge address.
# Called by scripts/run.sh after the build (BIN, LOGS, PIDS and its helpers are set); stays in the
# foreground; Ctrl-C (or exit) removes the namespaces, the bridge and the rules with them.
set -euo pipefail
[[ $(id -u) == 0 ]] || { echo "--transparent needs root (network namespaces and iptables)" >&2; exit 1; }
for t in ip iptables-restore setpriv; do
    command -v "$t" >/dev/null || { echo "--transparent needs $t" >&2; exit 1; }
done
HOST=10.215.0.1
VIP=10.215.1.10
BR=outrider-demo0
PODS=(productpage:10.215.0.11 reviews-v1:10.215.0.12 reviews-v2:10.215.0.13)
ns_of() { echo "outrider-demo-$1"; }
teardown() {
    local p i
    cleanup # the processes first: a namespace with a process left in it outlives ip netns del
    for p in "${PODS[@]}"; do ip netns del "$(ns_of "${p%%:*}")" 2>/dev/null || true; done
    for i in 0 1 2; do ip link del "od$i" 2>/dev/null || true; done
    ip link del "$BR" 2>/dev/null || true
}
for p in "${PODS[@]}"; do
    ip netns list | grep -qw "$(ns_of "${p%%:*}")" && {
        echo "$(ns_of "${p%%:*}") exists: another transparent demo is running (or was killed): ip netns del it" >&2
        exit 1
    }
done
trap teardown EXIT

# ---- the network: a bridge on the host, a veth into each pod ----
ip link add "$BR" type bridge
ip addr add "$HOST/24" dev "$BR"
ip link set "$BR" up
i=0
for p in "${PODS[@]}"; do
    name=${p%%:*} ip=${p#*:} ns=$(ns_of "${p%%:*}")
    ip netns add "$ns"
    ip link del "od$i" 2>/dev/null || true # a leftover of a demo killed with SIGKILL
    ip link add "od$i" type veth peer name "odp$i"
    ip link set "od$i" master "$BR" up
    ip link set "odp$i" netns "$ns"
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "odp$i" name eth0
    ip -n "$ns" addr add "$ip/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "$HOST"
    i=$((i + 1))
done

# ---- files the sidecars (uid 1337) read: the CA root, their tokens, their configurations ----
D=$LOGS/transparent
mkdir -p "$D"
cp "$PKI/ca/root-cert.pem" "$D/root-cert.pem"
cp "$PKI/productpage.token" "$D/productpage.token"
cp "$PKI/reviews.token" "$D/reviews.token"
# the mesh's documents, one file for every sidecar (as a ConfigMap would hold them): reviews at its
# virtual IP, its two versions' pods, and productpage.yaml's DestinationRule and VirtualService (the
# canary split and jason's route) as they are
{
    cat <<YAML
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec:
  hosts: [reviews.default.svc.cluster.local]
  addresses: [$VIP]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints:
  - {address: 10.215.0.12, labels: {app: reviews, version: v1, security.istio.io/tlsMode: istio}}
  - {address: 10.215.0.13, labels: {app: reviews, version: v2, security.istio.io/tlsMode: istio}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: reviews-strict}
spec:
  selector: {matchLabels: {app: reviews}}
  mtls: {mode: STRICT}
YAML
    python3 -c 'import sys, yaml
for d in yaml.safe_load_all(open(sys.argv[1])):
    if d and d["kind"] in ("DestinationRule", "VirtualService"):
        print("---"); print(yaml.safe_dump(d, sort_keys=False), end="")' deploy/demo/productpage.yaml
} >"$D/mesh.yaml"
proxy_doc() { # NAME APP VERSION SA
    cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: $1, namespace: default, labels: {app: $2, version: $3}}
spec:
  interceptionMode: REDIRECT
  outbound: {listen: 0.0.0.0:15001}
  inbound: {listen: 0.0.0.0:15006, forwardTo: 127.0.0.1:9080}
  admin: {listen: 0.0.0.0:15000}
  telemetry: {otlpEndpoint: http://$HOST:4318, samplingPercent: 100, flushInterval: 1s}
  identity:
    serviceAccount: $4
    rootCertificates: $D/root-cert.pem
    caAddress: https://$HOST:15012
    tokenFile: $D/$4.token
YAML
}
proxy_doc productpage-v1 productpage v1 productpage >"$D/productpage.yaml"
proxy_doc reviews-v1 reviews v1 reviews >"$D/reviews-v1.yaml"
proxy_doc reviews-v2 reviews v2 reviews >"$D/reviews-v2.yaml"
for f in productpage reviews-v1 reviews-v2; do
    "$BIN/outrider-proxy" --config "$D/$f.yaml" --config "$D/mesh.yaml" --check >/dev/null
done
cp "$BIN/outrider-proxy" "$BIN/outriderctl" "$D/"
chown -R 1337:1337 "$D"
chmod 755 "$LOGS"

# ---- the host's services on the bridge: the mesh CA and the collector ----
start ca "$BIN/outriderctl" ca serve --ca "$PKI/ca" --listen "$HOST:15012" --tokens "$PKI/tokens"
for _ in $(seq 100); do grep -q 'listening https' "$LOGS/ca.log" && break; sleep 0.1; done
grep -q 'listening https' "$LOGS/ca.log" || { echo "the mesh CA did not start:" >&2; cat "$LOGS/ca.log" >&2; exit 1; }
start collector "$BIN/outrider-collector" --zipkin-listen 0.0.0.0:9411 --otlp-listen "$HOST:4318"
wait_http collector http://127.0.0.1:9411/health

# ---- each pod: the capture rules, the app, the sidecar (uid 1337) ----
# (ip netns exec, then setpriv, exec the program itself: the PID start records is the process to stop)
for p in "${PODS[@]}"; do
    name=${p%%:*} ns=$(ns_of "${p%%:*}")
    ip netns exec "$ns" "$D/outriderctl" redirect --proxy-uid 1337 >"$LOGS/$name-redirect.log"
    case $name in
    productpage) start productpage-app ip netns exec "$ns" python3 scripts/demo_app.py productpage 9080 "$VIP:9080" ;;
    reviews-v1) start reviews-v1-app ip netns exec "$ns" python3 scripts/demo_app.py reviews 9080 v1 ;;
    reviews-v2) start reviews-v2-app ip netns exec "$ns" python3 scripts/demo_app.py reviews 9080 v2 ;;
    esac
    start "$name-sidecar" ip netns exec "$ns" setpriv --reuid=1337 --regid=1337 --clear-groups \
        "$D/outrider-proxy" --config "$D/$name.yaml" --config "$D/mesh.yaml"
done
for p in "${PODS[@]}"; do
    name=${p%%:*} ns=$(ns_of "${p%%:*}")
    wait_http "$name-sidecar" "http://${p#*:}:15000/ready"
    # the app answers on its own loopback (not captured), so the first requests find it up
    for _ in $(seq 100); do
        [[ $(ip netns exec "$ns" curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9080/ 2>/dev/null) != 000 ]] && break
        sleep 0.1
    done
done

echo "sending 200 requests to productpage at 10.215.0.11:9080 (no proxy settings anywhere), 20 as jason..."
v1=0 v2=0 other=0
for i in $(seq 200); do
    user=()
    ((i % 10 == 0)) && user=(-H 'end-user: jason')
    out=$(curl -s --noproxy '*' "${user[@]}" http://10.215.0.11:9080/productpage || true)
    case $out in
    *'"version": "v1"'*) v1=$((v1 + 1)) ;;
    *'"version": "v2"'*) v2=$((v2 + 1)) ;;
    *) other=$((other + 1)); echo "request $i: $out" >>"$LOGS/failed-requests.log" ;;
    esac
done
sleep 1.5
cat <<TXT

Outrider demo mesh, transparent, is running (logs and configurations in $LOGS).
  reviews answered: v1 $v1 times, v2 $v2 times, failed $other
  pods              ip netns list | grep outrider-demo   (productpage 10.215.0.11, reviews v1 .12, v2 .13)
  try it            curl -H 'end-user: jason' http://10.215.0.11:9080/productpage
  the app's call    ip netns exec outrider-demo-productpage curl -s http://$VIP:9080/reviews  (captured, routed)
  capture rules     ip netns exec outrider-demo-productpage iptables -t nat -S
  traces            http://127.0.0.1:9411/api/v2/traces?serviceName=productpage.default&limit=5
  sidecar admin     http://10.215.0.11:15000/stats/prometheus  /config_dump  (reviews: .12, .13)
  service graph     http://127.0.0.1:9411/mesh
  change routing    edit $D/mesh.yaml: every sidecar applies it within 2 s
Ctrl-C stops everything and removes the namespaces, the bridge and the rules.
TXT
wait "${PIDS[1]}"
