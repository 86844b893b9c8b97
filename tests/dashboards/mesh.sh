# shellcheck shell=bash
# tests/dashboards/mesh.sh: a small mesh that makes every series the Grafana
# dashboards read, for tests/integration/test_dashboards.sh (sourced after
# tests/lib.sh). Every port is a free one; nothing here uses the demo's fixed
# ports.
#
#   curl ─▶ productpage (shop) ─▶ reviews v1/v2 (shop), canary 80/20, mirrored
#            sidecar           ─▶ ratings (default): always 503 behind its sidecar;
#                                 retried (URX, retry counters), a fault abort (FI)
#                              ─▶ details (default): HTTP, a WebSocket tunnel (istio_tcp_*),
#                                 and an app that closes without answering (UC on both sides)
#                              ─▶ app (shop, no sidecar): retries that succeed,
#                                 timeouts (UT), a delay fault (DI), local and
#                                 global rate limits (RL), a dead Redis (RLSE)
#                              ─▶ narrow: maxConnections 1 (UO)
#                              ─▶ pool: one dead endpoint, outlier detection
#                                 (ejections, returns; UF)
#                              ─▶ gone: its only endpoint ejected (UH)
#                              ─▶ nowhere (NR)
#   productpage and reviews run two workers each (spec.workers: 2), the rest one.
#
# mesh_start: starts it all (collector with Kafka export and small store
# bounds, Redis, backends, sidecars); sets SIDECAR_ADMINS (host:port ...),
# PP_IN, PP_OUT.
# mesh_traffic_start / mesh_traffic_stop: bounded curl loops in the background.

mesh_start() {
    command -v redis-server >/dev/null || fail "redis-server is needed (scripts/deps.sh installs it)"
    start_kafka_mock --topic zipkin:2 --topic outrider-access-logs:2 --topic outrider-metrics:2
    # small trace store bounds, so that the collector dashboard's drop and eviction panels have data too
    start_collector --set kafka.brokers="$KAFKA_BOOTSTRAP" --set kafka.producer.linger.ms=5 \
        --set store.maxSpans=500 --set store.maxSpansPerTrace=2

    REDIS_PORT=$(free_port)
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >>"$T/redis.log" 2>&1 &
    track_pid $!
    wait_until bash -c "exec 3<>/dev/tcp/127.0.0.1/$REDIS_PORT" || fail "redis-server did not start: $(tail "$T/redis.log")"
    DEAD_REDIS=$(free_port)

    start_backend app
    APP=$BACKEND_PORT
    start_backend shadow
    SHADOW=$BACKEND_PORT
    start_backend ratings-app --status 503
    RATINGS_APP=$BACKEND_PORT
    start_backend details-app
    DETAILS_APP=$BACKEND_PORT
    DEAD=$(free_port)

    REV1_APP=$(free_port)
    REV2_APP=$(free_port)
    PP_APP=$(free_port)
    PP_IN=$(free_port)
    PP_OUT=$(free_port)
    REV1_IN=$(free_port)
    REV2_IN=$(free_port)
    RATINGS_IN=$(free_port)
    DETAILS_IN=$(free_port)

    local tele="telemetry: {otlpEndpoint: $OTLP_URL, samplingPercent: 100, flushInterval: 500ms}"
    sidecar() { # NAME NAMESPACE APP VERSION INBOUND FORWARD_TO [WORKERS]
        cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: $1, namespace: $2, labels: {app: $3, version: $4}}
spec:
  workers: ${7:-1}
  inbound: {listen: 127.0.0.1:$5, forwardTo: 127.0.0.1:$6}
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  $tele
YAML
    }
    sidecar reviews-v1 shop reviews v1 "$REV1_IN" "$REV1_APP" 2 >"$T/reviews-v1.yaml"
    sidecar reviews-v2 shop reviews v2 "$REV2_IN" "$REV2_APP" 2 >"$T/reviews-v2.yaml"
    sidecar ratings-v1 default ratings v1 "$RATINGS_IN" "$RATINGS_APP" >"$T/ratings-v1.yaml"
    sidecar details-v1 default details v1 "$DETAILS_IN" "$DETAILS_APP" >"$T/details-v1.yaml"

    se() { # NAME NAMESPACE HOST ENDPOINT_PORT...
        local name=$1 ns=$2 host=$3 p
        shift 3
        printf -- '---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: %s, namespace: %s}\n' "$name" "$ns"
        printf 'spec:\n  hosts: [%s]\n  ports: [{number: 80, name: http}]\n  resolution: STATIC\n  endpoints:\n' "$host"
        for p in "$@"; do printf '  - {address: 127.0.0.1, ports: {http: %s}}\n' "$p"; done
    }
    {
        cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: productpage-v1, namespace: shop, labels: {app: productpage, version: v1}}
spec:
  workers: 2
  inbound: {listen: 127.0.0.1:$PP_IN, forwardTo: 127.0.0.1:$PP_APP}
  outbound: {listen: 127.0.0.1:$PP_OUT}
  admin: {listen: 127.0.0.1:0}
  $tele
$(yaml_reviews_v1_v2 "$REV1_IN" "$REV2_IN")
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match: [{headers: {end-user: {exact: jason}}}]
    mirror: {host: mirror-dead}
    route: [{destination: {host: reviews, subset: v2}}]
  - name: canary
    mirror: {host: mirror-ok}
    mirrorPercentage: {value: 50}
    route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
YAML
        se mirror-ok shop mirror-ok "$SHADOW"
        se mirror-dead shop mirror-dead "$DEAD"
        se ratings default ratings.default.svc.cluster.local "$RATINGS_IN"
        cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - name: abort
    match: [{headers: {x-fault: {exact: abort}}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: ratings}}]
  - name: retried
    retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: ratings}}]
YAML
        se details default details.default.svc.cluster.local "$DETAILS_IN"
        se app shop app.shop.svc.cluster.local "$APP"
        cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app}
spec:
  hosts: [app]
  http:
  - name: flaky
    match: [{uri: {prefix: /fail/}}]
    retries: {attempts: 2, retryOn: 5xx}
    route: [{destination: {host: app}}]
  - name: slow
    match: [{uri: {prefix: /delay/}}]
    timeout: 100ms
    retries: {attempts: 0}
    route: [{destination: {host: app}}]
  - name: delayed
    match: [{headers: {x-fault: {exact: delay}}}]
    fault: {delay: {fixedDelay: 20ms, percentage: {value: 100}}}
    route: [{destination: {host: app}}]
  - name: limited
    match: [{uri: {prefix: /limited}}]
    route: [{destination: {host: app}}]
  - name: global
    match: [{uri: {prefix: /global}}]
    route: [{destination: {host: app}}]
  - name: broken
    match: [{uri: {prefix: /broken}}]
    route: [{destination: {host: app}}]
  - name: rest
    route: [{destination: {host: app}}]
---
apiVersion: outrider.io/v1alpha1
kind: RateLimit
metadata: {name: app-local}
spec:
  hosts: [app]
  routes: [limited]
  local: {maxTokens: 1, tokensPerFill: 1, fillInterval: 2s}
---
apiVersion: outrider.io/v1alpha1
kind: RateLimit
metadata: {name: app-global}
spec:
  hosts: [app]
  routes: [global]
  global:
    redis: 127.0.0.1:$REDIS_PORT
    timeout: 500ms
    limits:
    - name: per-path
      key: [{path: true}]
      requestsPerUnit: 1
      unit: second
---
apiVersion: outrider.io/v1alpha1
kind: RateLimit
metadata: {name: app-redis-down}
spec:
  hosts: [app]
  routes: [broken]
  global:
    redis: 127.0.0.1:$DEAD_REDIS
    timeout: 50ms
    failureMode: deny
    limits:
    - name: per-path
      key: [{path: true}]
      requestsPerUnit: 1000
      unit: second
YAML
        se narrow shop narrow.shop.svc.cluster.local "$APP"
        cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: narrow}
spec:
  host: narrow
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRetries: 0}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: narrow}
spec:
  hosts: [narrow]
  http: [{retries: {attempts: 0}, route: [{destination: {host: narrow}}]}]
YAML
        se pool shop pool.shop.svc.cluster.local "$APP" "$DEAD"
        cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pool}
spec:
  host: pool
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 1s, maxEjectionPercent: 50}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pool}
spec:
  hosts: [pool]
  http: [{retries: {attempts: 0}, route: [{destination: {host: pool}}]}]
YAML
        se gone shop gone.shop.svc.cluster.local "$DEAD"
        cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: gone}
spec:
  host: gone
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 300s, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gone}
spec:
  hosts: [gone]
  http: [{retries: {attempts: 0}, route: [{destination: {host: gone}}]}]
YAML
    } >"$T/productpage-v1.yaml"

    local f
    for f in productpage-v1 reviews-v1 reviews-v2 ratings-v1 details-v1; do
        "$OUTRIDER_BIN/outrider-proxy" --config "$T/$f.yaml" --check >"$T/$f.check" 2>&1 ||
            fail "test bug: $f.yaml does not check: $(cat "$T/$f.check")"
    done

    python3 "$OUTRIDER_SRC/scripts/demo_app.py" reviews "$REV1_APP" v1 >>"$T/reviews-v1-app.log" 2>&1 &
    track_pid $!
    python3 "$OUTRIDER_SRC/scripts/demo_app.py" reviews "$REV2_APP" v2 >>"$T/reviews-v2-app.log" 2>&1 &
    track_pid $!
    python3 "$OUTRIDER_SRC/scripts/demo_app.py" productpage "$PP_APP" "127.0.0.1:$PP_OUT" >>"$T/productpage-app.log" 2>&1 &
    track_pid $!

    SIDECAR_ADMINS=()
    for f in reviews-v1 reviews-v2 ratings-v1 details-v1 productpage-v1; do
        start_proxy "$f" "$T/$f.yaml"
        SIDECAR_ADMINS+=("127.0.0.1:$PROXY_ADMIN")
    done
    local p
    for p in "$REV1_APP" "$REV2_APP" "$PP_APP"; do
        wait_until -n 200 port_open "$p" || fail "demo app on :$p did not start"
    done
    assert_eq 200 "$(http_status GET "http://127.0.0.1:$PP_IN/productpage")" "productpage through its sidecar"
}

# _loop NAME TRIES CMD...: run CMD until $T/traffic.stop exists, at most TRIES
# times (bounded), 100 ms apart, in the background.
_mesh_loop() {
    local name=$1 tries=$2
    shift 2
    (
        for ((i = 0; i < tries; i++)); do
            [[ -e $T/traffic.stop ]] && break
            "$@" >/dev/null 2>&1 || true
            sleep 0.1
        done
    ) >>"$T/traffic-$name.log" 2>&1 &
    track_pid $!
    _MESH_LOOPS+=($!)
}

_mesh_ws() {
    python3 - "$PP_OUT" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /ws HTTP/1.1\r\nHost: details.default\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
head = b""
while b"\r\n\r\n" not in head:
    d = s.recv(1)
    if not d:
        sys.exit("no 101")
    head += d
msg = b"x" * 5000
s.sendall(msg)
got = b""
while len(got) < len(msg):
    d = s.recv(65536)
    if not d:
        break
    got += d
s.close()
sys.exit(0 if got == msg else "echo differs")
PY
}

_mesh_narrow_burst() { # 6 concurrent slow requests on one connection slot: some overflow (UO)
    local i
    for i in 1 2 3 4 5 6; do
        curl -s -o /dev/null --max-time 10 -H 'Host: narrow' "http://127.0.0.1:$PP_OUT/delay/150" &
    done
    wait
}

# mesh_traffic_start [TRIES]: every kind of request, in bounded loops, until
# mesh_traffic_stop.
mesh_traffic_start() {
    local n=${1:-20000} pp=http://127.0.0.1:$PP_OUT
    rm -f "$T/traffic.stop"
    _MESH_LOOPS=()
    _mesh_loop productpage "$n" curl -s --max-time 10 "http://127.0.0.1:$PP_IN/productpage"
    _mesh_loop jason "$n" curl -s --max-time 10 -H 'end-user: jason' "http://127.0.0.1:$PP_IN/productpage"
    _mesh_loop ratings "$n" curl -s --max-time 10 -H 'Host: ratings.default' "$pp/"
    _mesh_loop fault "$n" curl -s --max-time 10 -H 'Host: ratings.default' -H 'x-fault: abort' "$pp/"
    _mesh_loop details "$n" curl -s --max-time 10 -H 'Host: details.default' --data-binary 'a request body' "$pp/echo"
    _mesh_loop reset "$n" curl -s --max-time 10 -H 'Host: details.default' "$pp/close"
    _mesh_loop tunnel "$n" _mesh_ws
    # shellcheck disable=SC2016 # expanded by that bash, a new key per request
    _mesh_loop flaky "$n" bash -c 'curl -s --max-time 10 -H "Host: app" "$0/fail/1/k-$RANDOM$RANDOM"' "$pp"
    _mesh_loop slow "$n" curl -s --max-time 10 -H 'Host: app' "$pp/delay/300"
    _mesh_loop delayed "$n" curl -s --max-time 10 -H 'Host: app' -H 'x-fault: delay' "$pp/"
    _mesh_loop limited "$n" curl -s --max-time 10 -H 'Host: app' "$pp/limited"
    _mesh_loop global "$n" curl -s --max-time 10 -H 'Host: app' "$pp/global"
    _mesh_loop broken "$n" curl -s --max-time 10 -H 'Host: app' "$pp/broken"
    _mesh_loop narrow "$n" _mesh_narrow_burst
    _mesh_loop pool "$n" curl -s --max-time 10 -H 'Host: pool' "$pp/"
    _mesh_loop gone "$n" curl -s --max-time 10 -H 'Host: gone' "$pp/"
    _mesh_loop nowhere "$n" curl -s --max-time 10 -H 'Host: nowhere' "$pp/"
    _mesh_loop refused "$n" curl -s --max-time 10 -H 'Content-Type: application/json' --data-binary 'not json' \
        "$ZIPKIN_URL/api/v2/spans"
}

mesh_traffic_stop() {
    touch "$T/traffic.stop"
    local pid
    for pid in "${_MESH_LOOPS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
