#!/usr/bin/env bash
# outrider-proxy traffic policies against real backends (tests/backend.py):
# LEAST_REQUEST avoids the busy endpoint, RANDOM reaches every endpoint;
# retries on each retryOn condition (reset, gateway-error, retriable-4xx,
# listed status codes; a status not listed is not retried) with the number
# of upstream attempts counted at the backends; perTryTimeout (504 UT,
# then URX); maxRequestsPerConnection and the upstream idleTimeout seen as
# new upstream connections; the downstream header timeout (408) and idle
# timeout; incoming traceparent and b3 contexts continued; Expect:
# 100-continue. The retry counters at /stats/prometheus
# (outrider_proxy_upstream_rq_retry{,_success,_limit_exceeded}_total) count
# exactly the retries above, one series per cluster, their
# destination_service is istio_requests_total's, and promtool accepts the page.
# variants: ns-implicit ns-explicit (tests/lib.sh: the same scenario with the documents in namespace shop)
. "$(dirname "$0")/../lib.sh"

# a listener that never accepts, its accept queue filled: connects to it hang in SYN_SENT
python3 "$OUTRIDER_SRC/tests/blackhole.py" "$T/blackhole.port" &
track_pid $!
wait_until test -s "$T/blackhole.port" || fail "blackhole listener did not start"
BH=$(cat "$T/blackhole.port")

start_backend a
BA=$BACKEND_PORT
start_backend b
BB=$BACKEND_PORT
start_backend c
BC=$BACKEND_PORT
start_backend f --status 503
BF=$BACKEND_PORT

cat >"$T/p.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: client-v1, labels: {app: client}}
spec:
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  limits: {headerTimeout: 400ms, idleTimeout: 600ms}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: blackhole}
spec:
  host: blackhole
  trafficPolicy: {connectionPool: {tcp: {connectTimeout: 300ms}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: blackhole}
spec:
  hosts: [blackhole]
  http: [{retries: {attempts: 0}, route: [{destination: {host: blackhole}}]}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: least}
spec:
  host: least
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
  subsets: [{name: pair, labels: {set: pair}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: random}
spec:
  host: random
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: single}
spec:
  host: single
  subsets: [{name: c, labels: {name: c}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reuse}
spec:
  host: reuse
  subsets:
  - name: c-once
    labels: {name: c}
    trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: 1}}}
  - {name: c, labels: {name: c}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: idle}
spec:
  host: idle
  trafficPolicy: {connectionPool: {http: {idleTimeout: 2s}}}
  subsets: [{name: c, labels: {name: c}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: least}
spec:
  hosts: [least]
  http: [{route: [{destination: {host: least, subset: pair}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: single}
spec:
  hosts: [single]
  http:
  - match: [{uri: {prefix: /close}}]
    retries: {attempts: 2, retryOn: reset}
    route: [{destination: {host: single, subset: c}}]
  - match: [{uri: {prefix: /status/502}}]
    retries: {attempts: 2, retryOn: gateway-error}
    route: [{destination: {host: single, subset: c}}]
  - match: [{uri: {prefix: /status/409}}]
    retries: {attempts: 2, retryOn: retriable-4xx}
    route: [{destination: {host: single, subset: c}}]
  - match: [{uri: {prefix: /status/}}]
    retries: {attempts: 2, retryOn: "503,504"}
    route: [{destination: {host: single, subset: c}}]
  - match: [{uri: {prefix: /delay/}}]
    retries: {attempts: 1, perTryTimeout: 200ms, retryOn: 5xx}
    route: [{destination: {host: single, subset: c}}]
  - route: [{destination: {host: single, subset: c}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reuse}
spec:
  hosts: [reuse]
  http:
  - match: [{headers: {x-once: {exact: "1"}}}]
    route: [{destination: {host: reuse, subset: c-once}}]
  - route: [{destination: {host: reuse, subset: c}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: idle}
spec:
  hosts: [idle]
  http: [{route: [{destination: {host: idle, subset: c}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: always503}
spec:
  hosts: [always503]
  http: [{retries: {attempts: 3, retryOn: "503"}, route: [{destination: {host: always503}}]}]
YAML
# service_entry NAME PORT...: a ServiceEntry NAME with one endpoint per backend port (labels name: a/b/c)
service_entry() {
    local name=$1
    shift
    printf -- '---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: %s}\nspec:\n' "$name"
    printf '  hosts: [%s]\n  ports: [{number: 80, name: http}]\n  resolution: STATIC\n  endpoints:\n' "$name"
    local p
    for p in "$@"; do
        local l=c
        [[ $p == "$BA" ]] && l=a
        [[ $p == "$BB" ]] && l=b
        printf '  - {address: 127.0.0.1, ports: {http: %s}, labels: {name: %s, set: %s}}\n' "$p" "$l" \
            "$([[ $l == c ]] && echo single || echo pair)"
    done
}
{
    service_entry least "$BA" "$BB"
    service_entry random "$BA" "$BB" "$BC"
    service_entry single "$BC"
    service_entry reuse "$BC"
    service_entry idle "$BC"
    service_entry blackhole "$BH"
    service_entry always503 "$BF"
} >>"$T/p.yaml"
start_proxy p "$T/p.yaml"
P=http://127.0.0.1:$PROXY_OUT
proxy_alive() { kill -0 "$PROXY_PID" 2>/dev/null || { cat "$PROXY_LOG" >&2; fail "proxy died: $1"; }; }

# served PORT: how many requests backend PORT has served (its /count, asked directly)
served() { curl -sS --max-time 10 "http://127.0.0.1:$1/count"; }
# attempts_for HOST PATH: the status through the proxy, then how many requests backend c got for it
attempts_for() {
    local before after code
    before=$(served "$BC")
    code=$(http_status GET "$P$2" -H "Host: $1")
    after=$(served "$BC")
    echo "$code $((after - before))"
}

# ---- load balancing ----
curl -sS --max-time 20 -o /dev/null -H 'Host: least' "$P/delay/3000" &
HOLD=$!
track_pid "$HOLD"
busy=
for ((i = 0; i < 100; i++)); do # the backend that got the slow request
    [[ $(served "$BA") -gt 0 ]] && busy=a && break
    [[ $(served "$BB") -gt 0 ]] && busy=b && break
    sleep 0.05
done
[[ -n $busy ]] || fail "the slow request reached neither endpoint"
seen=$(for i in $(seq 10); do curl -sS -D - -o /dev/null -H 'Host: least' "$P/"; done | tr -d '\r' | awk -F': ' 'tolower($1)=="x-backend" {print $2}' | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' ')
idle=$([[ $busy == a ]] && echo b || echo a)
assert_eq "$idle=10 " "$seen" "LEAST_REQUEST while $busy holds a request"
wait "$HOLD" || true

seen=$(for i in $(seq 60); do curl -sS -D - -o /dev/null -H 'Host: random' "$P/"; done | tr -d '\r' | awk -F': ' 'tolower($1)=="x-backend" {print $2}' | sort -u | tr '\n' ' ')
assert_eq "a b c " "$seen" "RANDOM reaches every endpoint in 60 requests"

# ---- retry conditions: attempts counted at backend c ----
assert_eq "503 3" "$(attempts_for single /close)" "retryOn reset: /close tried 3 times"
assert_eq "502 3" "$(attempts_for single /status/502)" "retryOn gateway-error on 502"
assert_eq "409 3" "$(attempts_for single /status/409)" "retryOn retriable-4xx on 409"
assert_eq "503 3" "$(attempts_for single /status/503)" "retryOn 503 (listed code)"
assert_eq "500 1" "$(attempts_for single /status/500)" "500 is not listed: no retry"
code=$(http_status GET "$P/delay/1000" -H 'Host: single')
assert_eq 504 "$code" "perTryTimeout 200ms on a 1 s backend"
grep -q 'upstream request timeout' "$LAST_BODY" || fail "perTryTimeout body: $(cat "$LAST_BODY")"

# ---- retry counters at /stats/prometheus ----
ADMIN=http://127.0.0.1:$PROXY_ADMIN
RETRY=outrider_proxy_upstream_rq_retry_total
RETRY_OK=outrider_proxy_upstream_rq_retry_success_total
RETRY_LIMIT=outrider_proxy_upstream_rq_retry_limit_exceeded_total
MIRROR=outrider_proxy_mirror_requests_total
stats() { curl -sS --max-time 10 -o "$T/stats.txt" "$ADMIN/stats/prometheus" || fail "GET /stats/prometheus"; }
# counter NAME CLUSTER [LABEL=VALUE...]: the value of the one series of NAME for CLUSTER in $T/stats.txt
counter() {
    local v
    v=$(metric_values "$T/stats.txt" "$1" "cluster=$2" "${@:3}")
    [[ -n $v && $v != *$'\n'* ]] || v="no single series: '$v'"
    echo "$v"
}
# retries CLUSTER: "retry success limit_exceeded" for CLUSTER
retries() { echo "$(counter $RETRY "$1") $(counter $RETRY_OK "$1") $(counter $RETRY_LIMIT "$1")"; }
stats
for f in $RETRY $RETRY_OK $RETRY_LIMIT $MIRROR; do
    grep -qx "# TYPE $f counter" "$T/stats.txt" || fail "no TYPE line for $f"
    grep -q "^# HELP $f [A-Z]" "$T/stats.txt" || fail "no HELP line for $f"
done
# 2 retries each for /close, /status/502, /status/409 and /status/503, none for /status/500, 1 for /delay/1000;
# each of those 5 ended wanting one more retry than its attempts allow
assert_eq "9 0 5" "$(retries 'outbound|80|c|single')" "retry, success, limit exceeded on outbound|80|c|single"
assert_eq "0 0 0" "$(retries 'outbound|80||random')" "no retries on outbound|80||random after 60 answers"
# every cluster is listed, with or without a policy (least x2, random, single x2, reuse x3, idle x2, blackhole,
# always503), each family once per cluster, and the mirror family per cluster and result
for f in $RETRY $RETRY_OK $RETRY_LIMIT; do
    assert_eq 12 "$(grep -c "^$f{cluster=\"outbound|" "$T/stats.txt")" "$f series"
done
assert_eq 24 "$(grep -c "^$MIRROR{cluster=\"outbound|" "$T/stats.txt")" "$MIRROR series"
assert_eq 0 "$(counter $MIRROR 'outbound|80||random' result=failed)" "no mirror traffic"

# the route without a retries block has Istio's default (2 retries on 503): /fail/1/KEY fails once, then succeeds
for k in 1 2 3; do
    assert_eq 200 "$(http_status GET "$P/fail/1/retry-ok-$k" -H 'Host: single')" "a request failing once, retried"
done
stats
assert_eq "12 3 5" "$(retries 'outbound|80|c|single')" "3 requests retried once each, the retry succeeding"

# attempts: 3 against an endpoint that always answers 503: 3 retries a request (4 attempts), then 503 URX
before=$(served "$BF")
for i in 1 2 3 4; do
    assert_eq 503 "$(http_status GET "$P/" -H 'Host: always503')" "always503 request $i"
done
assert_eq 16 "$(($(served "$BF") - before))" "4 attempts for each of 4 requests at the always-503 backend"
stats
assert_eq "12 0 4" "$(retries 'outbound|80||always503')" "retry, success, limit exceeded on outbound|80||always503"
assert_eq "12 3 5" "$(retries 'outbound|80|c|single')" "outbound|80|c|single unchanged"
# dashboards divide these by istio_requests_total of the same destination_service: the label is the same string
ds=$(grep "^$RETRY{cluster=\"outbound|80||always503\"," "$T/stats.txt" | sed -n 's/.*,destination_service="\([^"]*\)"}.*/\1/p')
assert_eq always503 "$ds" "destination_service of outbound|80||always503"
requests_to() { # DESTINATION_SERVICE: the source-reported istio_requests_total for it at /stats/prometheus
    curl -sS --max-time 10 -o "$T/stats-req.txt" "$ADMIN/stats/prometheus" &&
        metric_values "$T/stats-req.txt" istio_requests_total reporter=source "destination_service=$1" |
        awk '{s += $1} END {print s + 0}'
}
requests_are() { [[ $(requests_to "$1") == "$2" ]]; }
wait_until -n 100 -i 0.1 requests_are "$ds" 4 ||
    fail "istio_requests_total{destination_service=\"$ds\"}: $(requests_to "$ds"), expected the 4 requests"

# the whole page passes promtool (Istio's own histogram draws its base-unit lint, as from Istio itself)
promtool check metrics <"$T/stats.txt" >"$T/promtool.out" 2>&1 || true
grep -v '^istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"$' "$T/promtool.out" \
    >"$T/promtool.rest" || true
[[ ! -s $T/promtool.rest ]] || fail "promtool check metrics on /stats/prometheus: $(cat "$T/promtool.rest")"

# ---- upstream connection policy ----
port_of() { curl -sS --max-time 10 -H "Host: $1" "${@:2}" "$P/headers" | awk '$1=="peer-port:" {print $2}'; }
p1=$(port_of reuse)
p2=$(port_of reuse)
assert_eq "$p1" "$p2" "keep-alive: the pooled upstream connection is reused"
p1=$(port_of reuse -H 'x-once: 1')
p2=$(port_of reuse -H 'x-once: 1')
[[ -n $p1 && $p1 != "$p2" ]] || fail "maxRequestsPerConnection 1: both requests on port $p1"
p1=$(port_of idle)
p2=$(port_of idle)
assert_eq "$p1" "$p2" "idle pool reused right away"
sleep 2.6
p3=$(port_of idle)
[[ -n $p3 && $p3 != "$p1" ]] || fail "idleTimeout 2s: the connection was still reused after 2.6 s"

# connectTimeout 300ms against a peer that never completes the handshake: 503 UF long before
# the 10 s default would give up (the bound only tells the two apart; it is not a speed test)
out=$(curl -sS --max-time 60 -o "$LAST_BODY" -w '%{http_code} %{time_total}' -H 'Host: blackhole' "$P/")
read -r code secs <<<"$out"
assert_eq 503 "$code" "connect timeout status"
grep -q 'connection failure' "$LAST_BODY" || fail "connect timeout body: $(cat "$LAST_BODY")"
awk -v s="$secs" 'BEGIN {exit !(s < 5)}' || fail "connectTimeout 300ms: the request took $secs s (the 10 s default applied?)"

# ---- downstream timeouts ----
cat >"$T/slow.py" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
if sys.argv[2] == "partial":
    s.sendall(b"GET / HTTP/1.1\r\nHost: single\r\n")   # the head never ends
out = b""
while True:
    d = s.recv(4096)
    if not d: break
    out += d
print(out.split(b"\r\n")[0].decode() if out else "closed-without-response")
PY
assert_eq "HTTP/1.1 408 Request Timeout" "$(python3 "$T/slow.py" "$PROXY_OUT" partial)" "header timeout"
assert_eq "closed-without-response" "$(python3 "$T/slow.py" "$PROXY_OUT" idle)" "idle keep-alive connection closed"

# ---- incoming trace contexts are continued ----
curl -sS -o "$T/h.txt" -H 'Host: single' \
    -H 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' "$P/headers"
grep -q '^traceparent: 00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]\{16\}-01$' "$T/h.txt" ||
    fail "traceparent not continued: $(cat "$T/h.txt")"
grep -q '^traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331' "$T/h.txt" &&
    fail "the hop kept the caller's span id instead of its own"
grep -qx 'x-b3-parentspanid: b7ad6b7169203331' "$T/h.txt" || fail "parent span id: $(cat "$T/h.txt")"
curl -sS -o "$T/h.txt" -H 'Host: single' -H 'b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1' "$P/headers"
grep -qx 'x-b3-traceid: 80f198ee56343ba864fe8b2a57d3eff7' "$T/h.txt" || fail "b3 single not continued: $(cat "$T/h.txt")"
grep -qx 'x-b3-sampled: 1' "$T/h.txt" || fail "b3 sampled flag: $(cat "$T/h.txt")"
grep -q '^b3: 80f198ee56343ba864fe8b2a57d3eff7-[0-9a-f]\{16\}-1-e457b5a2e4d86bd1$' "$T/h.txt" ||
    fail "outgoing b3: $(cat "$T/h.txt")"
curl -sS -o "$T/h.txt" -H 'Host: single' -H 'x-request-id: req-42' "$P/headers"
grep -qx 'x-request-id: req-42' "$T/h.txt" || fail "x-request-id not kept: $(cat "$T/h.txt")"

# ---- Expect: 100-continue with a body ----
head -c 200000 /dev/urandom >"$T/body.bin"
code=$(http_status POST "$P/echo" -H 'Host: single' -H 'Expect: 100-continue' --data-binary "@$T/body.bin")
assert_eq 200 "$code" "POST with Expect: 100-continue"
cmp -s "$T/body.bin" "$LAST_BODY" || fail "echoed body differs"

# ---- back-pressure: a client that stops reading does not make the proxy buffer the response ----
cat >"$T/stall.py" <<'PY'
import socket, sys, time
port, pid, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
def rss_kib():
    for line in open("/proc/%s/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.connect(("127.0.0.1", port))
s.settimeout(30)
before = rss_kib()
s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: single\r\n\r\n" % size)
got = len(s.recv(1024))
time.sleep(1.5)          # stalled: the proxy must stop reading the upstream, not queue 40 MB
stalled = rss_kib()
while got < size:        # then read everything: the transfer completes
    d = s.recv(1 << 20)
    if not d: break
    got += len(d)
print(stalled - before, got)
PY
read -r grew got < <(python3 "$T/stall.py" "$PROXY_OUT" "$PROXY_PID" 40000000)
note "proxy RSS grew by $grew KiB while the client stalled on a 40 MB response"
[[ $grew -lt 8192 ]] || fail "proxy RSS grew by $grew KiB while the client did not read (back-pressure)"
[[ $got -gt 40000000 ]] || fail "the stalled transfer did not complete: $got bytes"

proxy_alive "at the end"
stop_pid "$PROXY_PID"
assert_eq 0 "$STOP_RC" "exit code after SIGTERM"
note "proxy policies: all checks passed"
