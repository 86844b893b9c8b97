#!/usr/bin/env bash
# outrider-proxy global rate limits in a real redis-server (kind: RateLimit,
# spec.global): two proxies share one limit and together admit the
# configured number per window (keyed by a request header, so another user
# has its own budget); 429 RL with x-ratelimit-* headers past it. Redis
# stopped mid-test: failureMode allow lets requests through and deny answers
# 500 RLSE, both counted, no crash or stuck worker; Redis back on the same
# port: the limit works again.
# variants: ns-implicit ns-explicit (tests/lib.sh: the same scenario with the documents in namespace shop)
. "$(dirname "$0")/../lib.sh"
command -v redis-server >/dev/null || fail "redis-server is needed"

RP=$(free_port)
start_redis() {
    redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly no >>"$T/redis.log" 2>&1 &
    REDIS_PID=$!
    track_pid "$REDIS_PID"
    wait_until bash -c "exec 3<>/dev/tcp/127.0.0.1/$RP" || fail "redis-server did not start: $(tail "$T/redis.log")"
}
start_redis
start_backend app
BE=$BACKEND_PORT

mesh() { # NAME
    cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: $1, labels: {app: client}}
spec:
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  workers: 2
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
kind: ServiceEntry
metadata: {name: strict}
spec:
  hosts: [strict]
  ports: [{number: 80, name: http}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: $BE}}]
---
apiVersion: outrider.io/v1alpha1
kind: RateLimit
metadata: {name: strict}
spec:
  hosts: [strict]
  global:
    redis: 127.0.0.1:$RP
    timeout: 200ms
    failureMode: deny
    algorithm: slidingWindow
    limits:
    - {name: all, key: [{destinationService: true}, {path: true}], requestsPerUnit: 1000, unit: minute}
---
apiVersion: outrider.io/v1alpha1
kind: RateLimit
metadata: {name: per-user}
spec:
  hosts: [app]
  global:
    redis: 127.0.0.1:$RP
    timeout: 200ms
    failureMode: allow
    limits:
    - {name: user, key: [{requestHeader: x-user}], requestsPerUnit: 10, unit: hour}
YAML
}
mesh proxy-a >"$T/a.yaml"
mesh proxy-b >"$T/b.yaml"
start_proxy a "$T/a.yaml"
A=$PROXY_OUT
A_ADMIN=$PROXY_ADMIN
A_PID=$PROXY_PID
start_proxy b "$T/b.yaml"
B=$PROXY_OUT
B_PID=$PROXY_PID

# codes PORT USER N: statuses of N requests as USER, space-separated
codes() {
    local i out=""
    for ((i = 0; i < $3; i++)); do
        out+="$(curl -sS -o /dev/null -w '%{http_code}' -H 'Host: app' -H "x-user: $2" "http://127.0.0.1:$1/") "
    done
    echo "$out"
}
count() { tr ' ' '\n' <<<"$1" | grep -c "^$2\$" || true; }

# 10 per hour for alice, shared: 6 through proxy a, then 8 through proxy b
out_a=$(codes "$A" alice 6)
out_b=$(codes "$B" alice 8)
assert_eq 6 "$(count "$out_a" 200)" "alice through proxy a: $out_a"
assert_eq 4 "$(count "$out_b" 200)" "alice through proxy b (the shared budget's rest): $out_b"
assert_eq 4 "$(count "$out_b" 429)" "alice refused by proxy b: $out_b"
assert_eq "200 200 " "$(codes "$A" bob 2)" "bob has a budget of his own"
assert_eq 200 "$(http_status GET "http://127.0.0.1:$B/" -H 'Host: strict')" "sliding window limit, Redis up"
curl -sS -D "$T/h.txt" -o /dev/null -H 'Host: app' -H 'x-user: alice' "http://127.0.0.1:$B/"
tr -d '\r' <"$T/h.txt" | grep -qix 'x-ratelimit-limit: 10' || fail "x-ratelimit-limit: $(cat "$T/h.txt")"
tr -d '\r' <"$T/h.txt" | grep -qix 'x-ratelimit-remaining: 0' || fail "x-ratelimit-remaining: $(cat "$T/h.txt")"

# Redis stops: failureMode allow lets every request through (counted as errors), nothing hangs
stop_pid "$REDIS_PID"
assert_eq "200 200 200 " "$(codes "$A" carol 3)" "Redis down, failureMode allow"
# (the page into a variable first: with pipefail, grep -q leaving early would fail curl's write, and the check)
stats=$(curl -sS "http://127.0.0.1:$A_ADMIN/stats/prometheus")
grep -q 'ratelimit="per-user",result="error"} [1-9]' <<<"$stats" || fail "errors not counted: $(grep global_rate <<<"$stats")"
code=$(http_status GET "http://127.0.0.1:$A/" -H 'Host: strict')
assert_eq 500 "$code" "Redis down, failureMode deny"
grep -q 'rate limit service unavailable' "$LAST_BODY" || fail "deny body: $(cat "$LAST_BODY")"
kill -0 "$A_PID" && kill -0 "$B_PID" || fail "a proxy died with Redis down"

# Redis back on the same port: after the client's back-off, the limit applies again
start_redis
# dave's first requests may pass while the client still backs off (allowed, counted as
# errors); once Redis answers again, his budget of 10 runs out and 429s come
limited() { [[ $(codes "$A" dave 1) == "429 " ]]; }
wait_until -n 200 -i 0.05 limited || fail "the limit did not apply again after Redis came back"
stop_pid "$A_PID"
assert_eq 0 "$STOP_RC" "proxy a exit code"
stop_pid "$B_PID"
assert_eq 0 "$STOP_RC" "proxy b exit code"
note "global rate limits: all checks passed"
