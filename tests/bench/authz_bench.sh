#!/usr/bin/env bash
# AuthorizationPolicy cost (issue 14; figures go to docs/benchmarks.md): one outrider-proxy inbound
# sidecar in front of nginx (1 KiB body, keep-alive), with 0, 10 and 100 AuthorizationPolicies, and
# HAProxy in the same place with 0 and 100 `http-request deny` rules as the peer, all measured in the
# same run, alternately (the order rotates every round).
#
# The policies are the shape a mesh has, and the worst case for a request that is allowed: half are
# DENY policies that do not match (a path prefix and method, and a header condition), the rest ALLOW
# policies of which only the last one matches (an ipBlocks source and a {*} path template that do not
# match, then `paths: ["/"]`), so every request runs through all of them. Paths are normalized first
# (that is part of the cost). HAProxy's rules are the same checks as ACLs (path_beg + method, a
# header, src). Every request has a fresh path (/items/N-RANDOM) and a fresh x-request-id (a wrk
# script), as users send them, not one path the index could remember.
# Per round and variant: wrk -t2 -c64 -dDUR (requests/s, p50, p99) and the proxy's CPU per request
# (utime+stime from /proc/PID/stat). The summary is the median of the rounds and the ratio to the
# variant without policies. Telemetry off, 1 worker (nbthread 1).
#   usage: tests/bench/authz_bench.sh
#   env:   DUR (5 s), ROUNDS (3), OUTRIDER_BIN
# Needs: nginx haproxy wrk curl (Debian packages).
NAME=authz_bench
. "$(dirname "$0")/wrk_rounds.sh"
start_backend

# ---- the sidecars ----
policies() { # N: N AuthorizationPolicy documents, as described above
    local n=$1 i
    ((n == 0)) && return
    for ((i = 0; i < n / 2; i++)); do
        cat <<YAML
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-$i, namespace: shop}
spec:
  action: DENY
  rules:
  - to: [{operation: {paths: ["/internal-$i/*"], methods: ["DELETE", "PUT"]}}]
  - when: [{key: "request.headers[x-block-$i]", values: ["1"]}]
YAML
    done
    for ((i = n / 2; i < n - 1; i++)); do
        cat <<YAML
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-$i, namespace: shop}
spec:
  rules:
  - from: [{source: {ipBlocks: ["10.$((i % 250)).0.0/16"]}}]
  - to: [{operation: {paths: ["/app-$i/{*}"], methods: ["GET"]}}]
YAML
    done
    cat <<YAML
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-root, namespace: shop}
spec:
  rules:
  - to: [{operation: {paths: ["/", "/items/*"], methods: ["GET"]}}]
YAML
}
for n in 0 10 100; do
    p=$(free_port)
    {
        outrider_yaml "$p"
        policies "$n"
    } >"$W/p$n.yaml"
    start_variant "outrider-$n" "$p" "$W/p$n.yaml"
done
for n in 0 100; do
    p=$(free_port)
    {
        haproxy_head "$p"
        for ((i = 0; i < n / 2; i++)); do
            printf '  http-request deny if { path_beg /internal-%s/ } { method DELETE PUT }\n' "$i"
            printf '  http-request deny if { req.hdr(x-block-%s) -m str 1 }\n' "$i"
        done
        for ((i = n / 2; i < n - 1; i++)); do
            # one ACL name declared many times: HAProxy ORs the declarations
            printf '  acl allowed src 10.%s.0.0/16\n  acl allowed path_reg ^/app-%s/[^/]+$\n' $((i % 250)) "$i"
        done
        ((n > 0)) && printf '  http-request deny unless allowed or { path / } or { path_beg /items/ }\n'
        haproxy_tail
    } >"$W/h$n.cfg"
    start_variant "haproxy-$n" "$p" "$W/h$n.cfg"
done
VARIANTS="outrider-0 outrider-10 outrider-100 haproxy-0 haproxy-100"
for v in $VARIANTS; do
    code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:${PORT[$v]}/")
    [[ $code == 200 ]] || die "$v: GET / got $code"
    code=$(curl -sS -o /dev/null -w '%{http_code}' -H 'x-block-3: 1' "http://127.0.0.1:${PORT[$v]}/")
    [[ $v == *-0 || $code == 403 ]] || die "$v: a request a DENY rule matches got $code"
    wrk -t2 -c64 -d1s "http://127.0.0.1:${PORT[$v]}/" >/dev/null 2>&1 # warm up
done

# the shape users send: a fresh path and a fresh request id in every request
cat >"$W/fresh.lua" <<'LUA'
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/items/" .. n .. "-" .. math.random(1, 1000000000),
                    {["x-request-id"] = tostring(math.random(1, 1000000000000))})
end
LUA

wrk_rounds "AuthorizationPolicy benchmark" "$W/fresh.lua" 0
