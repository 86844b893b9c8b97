#!/usr/bin/env bash
# outrider-proxy outlier detection (DestinationRule outlierDetection)
# against a real backend and a dead endpoint: connection failures count as
# errors; after consecutive5xxErrors the endpoint is ejected and traffic
# moves to the healthy one; after baseEjectionTime it returns (and, failing
# again, is ejected for twice as long); with every endpoint ejected the
# answer is 503 UH. Ejections and returns show at /stats/prometheus and in
# the log.
# variants: ns-implicit ns-explicit (tests/lib.sh: the same scenario with the documents in namespace shop)
. "$(dirname "$0")/../lib.sh"

start_backend good
GOOD=$BACKEND_PORT
start_backend failing --status 503
FAILING=$BACKEND_PORT
start_backend failing2 --status 503
FAILING2=$BACKEND_PORT
DEAD=$(free_port)

cat >"$T/o.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: client-v1, labels: {app: client}}
spec:
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: pair}
spec:
  hosts: [pair]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $GOOD}}
  - {address: 127.0.0.1, ports: {http: $DEAD}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: pair}
spec:
  host: pair
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 1s, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: pair}
spec:
  hosts: [pair]
  http: [{retries: {attempts: 0}, route: [{destination: {host: pair}}]}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: fivexx}
spec:
  hosts: [fivexx]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $GOOD}}
  - {address: 127.0.0.1, ports: {http: $FAILING}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: fivexx}
spec:
  host: fivexx
  trafficPolicy:
    outlierDetection: {consecutiveGatewayErrors: 3, consecutive5xxErrors: 0, baseEjectionTime: 30s, maxEjectionPercent: 50}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: fivexx}
spec:
  hosts: [fivexx]
  http: [{retries: {attempts: 0}, route: [{destination: {host: fivexx}}]}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: twobad}
spec:
  hosts: [twobad]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints:
  - {address: 127.0.0.1, ports: {http: $GOOD}}
  - {address: 127.0.0.1, ports: {http: $FAILING}}
  - {address: 127.0.0.1, ports: {http: $FAILING2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: twobad}
spec:
  host: twobad
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 2, baseEjectionTime: 30s, maxEjectionPercent: 34}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: twobad}
spec:
  hosts: [twobad]
  http: [{retries: {attempts: 0}, route: [{destination: {host: twobad}}]}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: lonely}
spec:
  hosts: [lonely]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $DEAD}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: lonely}
spec:
  host: lonely
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1, baseEjectionTime: 30s, maxEjectionPercent: 100}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: lonely}
spec:
  hosts: [lonely]
  http: [{retries: {attempts: 0}, route: [{destination: {host: lonely}}]}]
YAML
start_proxy o "$T/o.yaml"
ADMIN=http://127.0.0.1:$PROXY_ADMIN

cat >"$T/count.py" <<'PY'
import http.client, sys, collections
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
seen = collections.Counter()
for i in range(int(sys.argv[2])):
    c.request("GET", "/", headers={"Host": sys.argv[3]})
    r = c.getresponse()
    r.read()
    seen[r.status] += 1
    if r.getheader("connection", "").lower() == "close":
        c.close()
print(" ".join("%d=%d" % kv for kv in sorted(seen.items())))
PY
served_by() { curl -sS --max-time 10 "http://127.0.0.1:$1/count"; }
stat_of() { # NAME CLUSTER-SUBSTRING: the value at /stats/prometheus
    curl -sS "$ADMIN/stats/prometheus" | grep "^$1{cluster=\"[^\"]*$2" | awk '{print $NF}' | head -1
}

# round robin over good and dead: the dead one fails twice, is ejected, then only good answers
out=$(python3 "$T/count.py" "$PROXY_OUT" 40 pair)
assert_eq "200=38 503=2" "$out" "40 requests with one dead endpoint (2 failures, then ejected)"
assert_eq 1 "$(stat_of outrider_proxy_outlier_ejections_total pair)" "ejections after the first 40"
assert_eq 1 "$(stat_of outrider_proxy_outlier_ejected pair)" "endpoints ejected now"
grep -q "outlier detection: ejected 127.0.0.1:$DEAD from outbound|80||pair" "$PROXY_LOG" ||
    fail "no ejection line in the log: $(tail -5 "$PROXY_LOG")"

# after baseEjectionTime (1 s) it returns, fails twice more, and is ejected again (for 2 s)
sleep 1.5
out=$(python3 "$T/count.py" "$PROXY_OUT" 40 pair)
assert_eq "200=38 503=2" "$out" "40 requests after the ejection time"
assert_eq 1 "$(stat_of outrider_proxy_outlier_returns_total pair)" "returns"
assert_eq 2 "$(stat_of outrider_proxy_outlier_ejections_total pair)" "ejections"
grep -q "outlier detection: 127.0.0.1:$DEAD returns to outbound|80||pair" "$PROXY_LOG" || fail "no return line in the log"
grep -q "for 2000 ms" "$PROXY_LOG" || fail "the second ejection should last 2 x baseEjectionTime: $(grep outlier "$PROXY_LOG")"

# an endpoint answering 503: ejected after 3 gateway errors in a row (consecutiveGatewayErrors)
out=$(python3 "$T/count.py" "$PROXY_OUT" 40 fivexx)
assert_eq "200=37 503=3" "$out" "40 requests with one endpoint answering 503"
assert_eq 1 "$(stat_of outrider_proxy_outlier_ejections_total fivexx)" "ejections of the 503 endpoint"
[[ $(served_by "$FAILING") -eq 3 ]] || fail "the ejected endpoint got $(served_by "$FAILING") requests, expected 3"

# two failing endpoints of three, maxEjectionPercent 34: only one may be out at a time
b1=$(served_by "$FAILING")
b2=$(served_by "$FAILING2")
python3 "$T/count.py" "$PROXY_OUT" 60 twobad >/dev/null
assert_eq 1 "$(stat_of outrider_proxy_outlier_ejections_total twobad)" "ejections within maxEjectionPercent 34"
f1=$(($(served_by "$FAILING") - b1))
f2=$(($(served_by "$FAILING2") - b2))
note "maxEjectionPercent: failing endpoints got $f1 and $f2 of 60 requests"
[[ $((f1 < f2 ? f1 : f2)) -le 2 && $((f1 > f2 ? f1 : f2)) -ge 15 ]] ||
    fail "one failing endpoint should be ejected after 2 errors and the other kept: $f1 / $f2 of 60"

# the only endpoint ejected: 503 UH, no connection attempted
code=$(http_status GET "http://127.0.0.1:$PROXY_OUT/" -H 'Host: lonely')
assert_eq 503 "$code" "first failure on the lonely service"
grep -q 'connection failure' "$LAST_BODY" || fail "first failure body: $(cat "$LAST_BODY")"
code=$(http_status GET "http://127.0.0.1:$PROXY_OUT/" -H 'Host: lonely')
assert_eq 503 "$code" "every endpoint ejected"
assert_eq "no healthy upstream" "$(cat "$LAST_BODY")" "UH body"

stop_pid "$PROXY_PID"
assert_eq 0 "$STOP_RC" "exit code after SIGTERM"
note "proxy outlier detection: all checks passed"
