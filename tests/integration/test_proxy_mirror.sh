#!/usr/bin/env bash
# outrider-proxy traffic mirroring (VirtualService mirror, mirrorPercentage)
# against real backends: the shadow copy carries the body and a Host with
# "-shadow" added; mirrorPercentage 50 mirrors about half of 400 requests
# (+-5 standard deviations); a dead mirror and a mirror that never accepts
# its connection leave every primary request answered, without waiting for
# the mirror (the bound is a small fraction of one mirror connect timeout).
# outrider_proxy_mirror_requests_total at /stats/prometheus: result="sent"
# equals the copies the shadow backend got, result="failed" counts every
# copy to a dead port and to a mirror answering 503 (none to the live one),
# every cluster has both series, and promtool accepts the page.
# variants: ns-implicit-w2 ns-explicit (tests/lib.sh: the same scenario with the documents in namespace shop)
. "$(dirname "$0")/../lib.sh"

python3 "$OUTRIDER_SRC/tests/blackhole.py" "$T/blackhole.port" &
track_pid $!
wait_until test -s "$T/blackhole.port" || fail "blackhole listener did not start"
BH=$(cat "$T/blackhole.port")
start_backend app
APP=$BACKEND_PORT
start_backend shadow
SH=$BACKEND_PORT
start_backend five --status 503
FIVE=$BACKEND_PORT
DEAD=$(free_port)

se() { # NAME PORT
    printf -- '---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: %s}\n' "$1"
    printf 'spec: {hosts: [%s], ports: [{number: 80, name: http}], resolution: STATIC, ' "$1"
    printf 'endpoints: [{address: 127.0.0.1, ports: {http: %s}}]}\n' "$2"
}
{
    cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: client-v1, labels: {app: client}}
spec:
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app}
spec:
  hosts: [app]
  http:
  - match: [{queryParams: {m: {exact: half}}}]
    mirror: {host: shadowsvc}
    mirrorPercentage: {value: 50}
    route: [{destination: {host: app}}]
  - match: [{queryParams: {m: {exact: dead}}}]
    mirror: {host: deadsvc}
    route: [{destination: {host: app}}]
  - match: [{queryParams: {m: {exact: hole}}}]
    mirror: {host: holesvc}
    route: [{destination: {host: app}}]
  - match: [{queryParams: {m: {exact: five}}}]
    mirror: {host: fivesvc}
    route: [{destination: {host: app}}]
  - mirror: {host: shadowsvc}
    route: [{destination: {host: app}}]
YAML
    se app "$APP"
    se shadowsvc "$SH"
    se deadsvc "$DEAD"
    se holesvc "$BH"
    se fivesvc "$FIVE"
} >"$T/m.yaml"
start_proxy m "$T/m.yaml"
P=http://127.0.0.1:$PROXY_OUT
served_shadow() { curl -sS --max-time 10 "http://127.0.0.1:$SH/count"; }

# ---- a POST with a body is mirrored whole, with Host: app-shadow ----
head -c 100000 /dev/urandom >"$T/body.bin"
code=$(http_status POST "$P/echo" -H 'Host: app' --data-binary "@$T/body.bin")
assert_eq 200 "$code" "primary POST"
cmp -s "$T/body.bin" "$LAST_BODY" || fail "primary echo differs"
wait_until -n 100 -i 0.1 bash -c "curl -sS http://127.0.0.1:$SH/last | grep -q '^body-bytes: 100000'" ||
    fail "mirror did not get the whole body: $(curl -sS "http://127.0.0.1:$SH/last")"
last=$(curl -sS "http://127.0.0.1:$SH/last")
grep -q '^POST /echo$' <<<"$last" || fail "mirror request line: $last"
grep -q '^host: app-shadow$' <<<"$last" || fail "mirror Host: $last"

# ---- mirrorPercentage 50 over 400 requests: sd 10, so 150..250 ----
cat >"$T/count.py" <<'PY'
import http.client, sys, collections
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
seen = collections.Counter()
for i in range(int(sys.argv[2])):
    c.request("GET", sys.argv[3], headers={"Host": "app"})
    r = c.getresponse()
    r.read()
    seen[r.status] += 1
print(" ".join("%d=%d" % kv for kv in sorted(seen.items())))
PY
before=$(served_shadow)
assert_eq "200=400" "$(python3 "$T/count.py" "$PROXY_OUT" 400 '/?m=half')" "primary answers with a 50% mirror"
wait_until -n 50 -i 0.1 bash -c "[[ \$(curl -sS http://127.0.0.1:$SH/count) -ge $((before + 150)) ]]" || true
sleep 0.3
mirrored=$(($(served_shadow) - before))
note "mirrorPercentage 50: $mirrored of 400 mirrored"
((mirrored >= 150 && mirrored <= 250)) || fail "mirrored $mirrored of 400, configured 50%"

# ---- the mirror counters: sent is what the shadow backend got (the POST, then the 50% share) ----
ADMIN=http://127.0.0.1:$PROXY_ADMIN
MIRROR=outrider_proxy_mirror_requests_total
stats() { curl -sS --max-time 10 -o "$T/stats.txt" "$ADMIN/stats/prometheus"; }
# mirrors HOST RESULT: the value of the one series of the mirror family for cluster outbound|80||HOST
mirrors() {
    stats || return 1
    local v
    v=$(metric_values "$T/stats.txt" $MIRROR "cluster=outbound|80||$1" "destination_service=$1" "result=$2")
    [[ -n $v && $v != *$'\n'* ]] || v="no single series: '$v'"
    echo "$v"
}
mirrors_are() { [[ $(mirrors "$1" "$2") == "$3" ]]; }
sent=$(mirrors shadowsvc sent)
[[ $sent =~ ^[0-9]+$ ]] || fail "sent to shadowsvc: $sent"
# sent is counted when a copy starts: the shadow backend has every one of them once they land
wait_until -n 100 -i 0.1 bash -c "[[ \$(curl -sS http://127.0.0.1:$SH/count) -ge $sent ]]" || true
assert_eq "$sent" "$(served_shadow)" "mirror copies counted sent vs received by the shadow backend"
# the share counted again now that every copy has landed (under load some were still in flight above)
mirrored=$(($(served_shadow) - before))
assert_eq "$((mirrored + 1))" "$sent" "copies sent to shadowsvc: the POST and the 50% share"
assert_eq 0 "$(mirrors shadowsvc failed)" "copies to the live shadow failed"
assert_eq 0 "$(mirrors app sent)" "the primary's cluster is no mirror"
grep -qx "# TYPE $MIRROR counter" "$T/stats.txt" || fail "no TYPE line for $MIRROR"
grep -q "^# HELP $MIRROR .*subset" "$T/stats.txt" || fail "the HELP of $MIRROR does not say failed is a subset of sent"

# ---- dead and unresponsive mirrors never hold the primary ----
assert_eq "200=20" "$(python3 "$T/count.py" "$PROXY_OUT" 20 '/?m=dead')" "primary with a dead mirror"
start=$(date +%s%N)
assert_eq "200=20" "$(python3 "$T/count.py" "$PROXY_OUT" 20 '/?m=hole')" "primary with a mirror that never accepts"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
note "20 requests with an unresponsive mirror: $elapsed_ms ms"
# a mirror that held its primary would cost one 10 s connect timeout per request (200 s here)
[[ $elapsed_ms -lt 8000 ]] || fail "20 primary requests took $elapsed_ms ms beside an unresponsive mirror"

# ---- failed copies: connection refused (dead port), a 503 answer; the unresponsive one is still pending ----
wait_until -n 100 -i 0.1 mirrors_are deadsvc failed 20 || fail "failed copies to deadsvc: $(mirrors deadsvc failed)"
assert_eq 20 "$(mirrors deadsvc sent)" "copies sent to deadsvc"
assert_eq 20 "$(mirrors holesvc sent)" "copies sent to holesvc"
assert_eq "200=10" "$(python3 "$T/count.py" "$PROXY_OUT" 10 '/?m=five')" "primary with a mirror answering 503"
wait_until -n 100 -i 0.1 mirrors_are fivesvc failed 10 || fail "failed copies to fivesvc: $(mirrors fivesvc failed)"
assert_eq 10 "$(mirrors fivesvc sent)" "copies sent to fivesvc"
assert_eq 0 "$(mirrors shadowsvc failed)" "copies to the live shadow failed, at the end"
# every cluster has both series
for host in app shadowsvc deadsvc holesvc fivesvc; do
    for r in sent failed; do
        [[ $(mirrors $host $r) =~ ^[0-9]+$ ]] || fail "$MIRROR for $host, result $r: $(mirrors $host $r)"
    done
done
assert_eq 10 "$(grep -c "^$MIRROR{" "$T/stats.txt")" "$MIRROR series: 5 clusters, 2 results"

# the whole page passes promtool (Istio's own histogram draws its base-unit lint, as from Istio itself)
stats || fail "GET /stats/prometheus"
promtool check metrics <"$T/stats.txt" >"$T/promtool.out" 2>&1 || true
grep -v '^istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"$' "$T/promtool.out" \
    >"$T/promtool.rest" || true
[[ ! -s $T/promtool.rest ]] || fail "promtool check metrics on /stats/prometheus: $(cat "$T/promtool.rest")"

kill -0 "$PROXY_PID" || fail "proxy died"
stop_pid "$PROXY_PID"
assert_eq 0 "$STOP_RC" "exit code after SIGTERM (log: $(tail -3 "$PROXY_LOG"))"
note "proxy mirroring: all checks passed"
