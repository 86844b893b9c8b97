#!/usr/bin/env bash
# outrider-proxy fault injection (VirtualService fault.delay / fault.abort)
# against a real backend: the observed abort and delay rates over 1000
# requests fall within +-5 standard deviations of the configured
# percentages (counted exactly through the FI and DI response flags at
# /stats/prometheus), aborts never reach the backend, a delayed request
# takes at least its delay, and a delay does not hold up the worker's
# other requests.
# variants: ns-implicit-w2 ns-explicit (tests/lib.sh: the same scenario with the documents in namespace shop)
. "$(dirname "$0")/../lib.sh"

start_backend app
BE=$BACKEND_PORT

cat >"$T/f.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: client-v1, labels: {app: client}}
spec:
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  telemetry: {flushInterval: 200ms}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: app}
spec:
  hosts: [app]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $BE}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app}
spec:
  hosts: [app]
  http:
  - name: abort-30
    match: [{queryParams: {fault: {exact: abort}}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 30}}}
    route: [{destination: {host: app}}]
  - name: delay-20
    match: [{queryParams: {fault: {exact: delay}}}]
    fault: {delay: {fixedDelay: 1ms, percentage: {value: 20}}}
    route: [{destination: {host: app}}]
  - name: slow
    match: [{queryParams: {fault: {exact: slow}}}]
    fault: {delay: {fixedDelay: 1500ms}}
    route: [{destination: {host: app}}]
  - route: [{destination: {host: app}}]
YAML
start_proxy f "$T/f.yaml"
P=http://127.0.0.1:$PROXY_OUT
ADMIN=http://127.0.0.1:$PROXY_ADMIN

cat >"$T/count.py" <<'PY'
import http.client, sys, collections
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
seen = collections.Counter()
for i in range(int(sys.argv[2])):
    c.request("GET", sys.argv[3], headers={"Host": "app"})
    r = c.getresponse()
    body = r.read()
    seen[r.status] += 1
print(" ".join("%d=%d" % kv for kv in sorted(seen.items())))
PY
# flag_count FLAG: istio_requests_total summed over the series with response_flags=FLAG
flag_count() {
    curl -sS "$ADMIN/stats/prometheus" | grep '^istio_requests_total{' | grep "response_flags=\"$1\"" |
        awk '{s += $NF} END {print s + 0}'
}

# ---- abort 30% of 1000: binomial sd 14.5, so 228..372 ----
before=$(curl -sS "http://127.0.0.1:$BE/count")
out=$(python3 "$T/count.py" "$PROXY_OUT" 1000 "/?fault=abort")
after=$(curl -sS "http://127.0.0.1:$BE/count")
aborted=$(tr ' ' '\n' <<<"$out" | awk -F= '$1==503 {print $2}')
ok=$(tr ' ' '\n' <<<"$out" | awk -F= '$1==200 {print $2}')
note "abort 30%: $out"
[[ $((aborted + ok)) -eq 1000 ]] || fail "abort route answered other statuses: $out"
((aborted >= 228 && aborted <= 372)) || fail "aborted $aborted of 1000, configured 30%"
assert_eq "$ok" "$((after - before))" "requests that reached the backend (aborts must not)"
wait_until -n 100 -i 0.1 bash -c "[[ \$(curl -sS '$ADMIN/stats/prometheus' | grep '^istio_requests_total{' | grep 'response_flags=\"FI\"' | awk '{s += \$NF} END {print s + 0}') == $aborted ]]" ||
    fail "FI count at /stats/prometheus: $(flag_count FI), expected $aborted"

# ---- delay 20% of 1000: sd 12.6, so 137..263, counted by the DI flag ----
out=$(python3 "$T/count.py" "$PROXY_OUT" 1000 "/?fault=delay")
assert_eq "200=1000" "$out" "delay route statuses"
wait_until -n 100 -i 0.1 bash -c "curl -sS '$ADMIN/stats/prometheus' | grep -q 'response_flags=\"DI\"'" ||
    fail "no DI series"
sleep 0.5 # one more flush
delayed=$(flag_count DI)
note "delay 20%: $delayed of 1000 delayed"
((delayed >= 137 && delayed <= 263)) || fail "delayed $delayed of 1000, configured 20%"

# ---- a delayed request takes its delay, without holding the worker ----
curl -sS --max-time 30 -o "$T/slow.out" -w '%{time_total}' -H 'Host: app' "$P/?fault=slow" >"$T/slow.time" &
SLOW=$!
track_pid "$SLOW"
wait_until -n 200 bash -c "curl -sS '$ADMIN/stats/prometheus' >/dev/null" # the proxy answers meanwhile
code=$(http_status GET "$P/" -H 'Host: app')
assert_eq 200 "$code" "a request beside the delayed one"
kill -0 "$SLOW" 2>/dev/null || fail "the 1.5 s delayed request finished before the one sent after it"
wait "$SLOW" || fail "the delayed request failed"
awk -v t="$(cat "$T/slow.time")" 'BEGIN {exit !(t >= 1.5)}' || fail "delayed request took $(cat "$T/slow.time") s, less than 1.5 s"
assert_eq "app" "$(cat "$T/slow.out")" "delayed request's body"

stop_pid "$PROXY_PID"
assert_eq 0 "$STOP_RC" "exit code after SIGTERM"
note "proxy faults: all checks passed"
