#!/usr/bin/env bash
# outrider-proxy traffic mirroring (VirtualService mirror, mirrorPercentage)
# against real backends: the shadow copy carries the body and a Host with
# "-shadow" added; mirrorPercentage 50 mirrors about half of 400 requests
# (+-5 standard deviations); a dead mirror and a mirror that never accepts
# its connection leave every primary request answered, without waiting for
# the mirror (the bound is a small fraction of one mirror connect timeout).
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
  - mirror: {host: shadowsvc}
    route: [{destination: {host: app}}]
YAML
    se app "$APP"
    se shadowsvc "$SH"
    se deadsvc "$DEAD"
    se holesvc "$BH"
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

# ---- dead and unresponsive mirrors never hold the primary ----
assert_eq "200=20" "$(python3 "$T/count.py" "$PROXY_OUT" 20 '/?m=dead')" "primary with a dead mirror"
start=$(date +%s%N)
assert_eq "200=20" "$(python3 "$T/count.py" "$PROXY_OUT" 20 '/?m=hole')" "primary with a mirror that never accepts"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
note "20 requests with an unresponsive mirror: $elapsed_ms ms"
# a mirror that held its primary would cost one 10 s connect timeout per request (200 s here)
[[ $elapsed_ms -lt 8000 ]] || fail "20 primary requests took $elapsed_ms ms beside an unresponsive mirror"

kill -0 "$PROXY_PID" || fail "proxy died"
stop_pid "$PROXY_PID"
assert_eq 0 "$STOP_RC" "exit code after SIGTERM (log: $(tail -3 "$PROXY_LOG"))"
note "proxy mirroring: all checks passed"
