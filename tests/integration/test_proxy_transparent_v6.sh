#!/usr/bin/env bash
# Transparent capture over IPv6 (issue 13's rules, ip6tables side), in two network namespaces this
# test makes, joined by a veth pair with only IPv6 addresses (fd00:213:X::1 <-> fd00:213:X::2):
#  - each pod's sidecar runs as uid 1337 with interceptionMode REDIRECT on [::]:15001 / [::]:15006,
#    and `outriderctl redirect --proxy-uid 1337` installs the IPv4 and IPv6 rules;
#  - `curl -6 http://[fd00:213:X::2]:9080/` in A, with no proxy settings, goes through A's sidecar
#    (routed by its IPv6 original destination, an endpoint of reviews), over mutual TLS to B's
#    inbound capture, and on to B's app at the port asked for; A and B count it with the peer's
#    SPIFFE id; the app sees the trace context and x-forwarded-for;
#  - a port no service names on B's address is passed through (ALLOW_ANY) to the server there (B
#    leaves that port uncaptured), which sees A's IPv6 address;
#  - plain text to B's captured port is refused (B is STRICT);
#  - the sidecar's own traffic (uid 1337) is not captured: no loop.
# Skipped (exit 77) where namespaces or ip6tables nat cannot be used.
. "$(dirname "$0")/../lib.sh"

CTL=$OUTRIDER_BIN/outriderctl
skip() {
    echo "SKIP: $*"
    exit 77
}
[[ $(id -u) == 0 ]] || skip "needs root to make network namespaces and ip6tables rules"
command -v ip >/dev/null || skip "no ip (iproute2)"
command -v ip6tables-restore >/dev/null || skip "no ip6tables-restore (Debian: apt-get install iptables)"
command -v setpriv >/dev/null || skip "no setpriv (util-linux) to run the sidecars as uid 1337"
[[ -e /proc/net/if_inet6 ]] || skip "no IPv6 in this kernel"

X=$(printf '%x' $(($$ % 200 + 20)))
NA=outrider-6a-$$
NB=outrider-6b-$$
A_IP=fd00:213:$X::1
B_IP=fd00:213:$X::2
cleanup_ns() {
    ip netns del "$NA" 2>/dev/null || true
    ip netns del "$NB" 2>/dev/null || true
}
trap '_t_rc=$?; cleanup_ns; _lib_cleanup "$_t_rc"' EXIT
ip netns add "$NA" 2>/dev/null || skip "cannot make a network namespace (ip netns add)"
ip netns add "$NB" || fail "ip netns add $NB"
ip link add "v6a$$" type veth peer name "v6b$$" || fail "veth pair"
ip link set "v6a$$" netns "$NA" && ip link set "v6b$$" netns "$NB" || fail "veth into the namespaces"
ip -n "$NA" -6 addr add "$A_IP/64" dev "v6a$$" nodad && ip -n "$NB" -6 addr add "$B_IP/64" dev "v6b$$" nodad ||
    fail "addresses"
for n in "$NA" "$NB"; do ip -n "$n" link set lo up; done
ip -n "$NA" link set "v6a$$" up && ip -n "$NB" link set "v6b$$" up || fail "links up"
ip netns exec "$NA" ip6tables -t nat -L >/dev/null 2>&1 || skip "no ip6tables nat table in a network namespace here"
inA() { ip netns exec "$NA" "$@"; }
inB() { ip netns exec "$NB" "$@"; }
reach() { inA ping -6 -c1 -W1 "$B_IP" >/dev/null 2>&1 || inA bash -c "exec 3<>/dev/tcp/$B_IP/9080" 2>/dev/null; }

chmod 755 "$T"
mkdir -p "$T/bin"
cp "$OUTRIDER_BIN/outrider-proxy" "$OUTRIDER_BIN/outriderctl" "$T/bin/"
chmod 755 "$T/bin" "$T/bin/"*

# B's app on 9080 (IPv4: B's sidecar forwards to 127.0.0.1)
for app in reviews:9080; do
    ip netns exec "$NB" python3 "$OUTRIDER_SRC/tests/backend.py" --host 0.0.0.0 --port "${app#*:}" --name "${app%%:*}" \
        --port-file "$T/${app%%:*}.port" >"$T/${app%%:*}.log" 2>&1 &
    track_pid $!
    wait_until -n 200 -i 0.05 test -s "$T/${app%%:*}.port" || fail "app ${app%%:*} did not start: $(cat "$T/${app%%:*}.log")"
done
# the server no service names listens on [::]:7071 and says whom it saw
cat >"$T/v6echo.py" <<'PY'
import socket, sys
ls = socket.socket(socket.AF_INET6); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("::", int(sys.argv[2]))); ls.listen(8)
open(sys.argv[1], "w").write(sys.argv[2] + "\n")
while True:
    c, peer = ls.accept()
    data = b""
    while b"\r\n\r\n" not in data:
        d = c.recv(4096)
        if not d:
            break
        data += d
    body = ("v6 outside, from %s\n" % peer[0]).encode()
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    c.close()
PY
ip netns exec "$NB" python3 "$T/v6echo.py" "$T/v6echo.port" 7071 >"$T/v6echo.log" 2>&1 &
track_pid $!
wait_until -n 200 -i 0.05 test -s "$T/v6echo.port" || fail "the IPv6 server did not start: $(cat "$T/v6echo.log")"

"$CTL" ca init "$T/ca" >/dev/null 2>&1 || fail "ca init"
for sa in productpage reviews; do
    "$CTL" cert issue --ca "$T/ca" --namespace shop --service-account "$sa" --out "$T/$sa" >/dev/null 2>&1 ||
        fail "cert issue $sa"
    chown -R 1337:1337 "$T/$sa"
done
chmod 755 "$T/ca" && chmod 644 "$T/ca/root-cert.pem"
proxy_yaml() { # NAME APP SERVICE-ACCOUNT
    cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: $1, namespace: shop, labels: {app: $2, version: v1}}
spec:
  interceptionMode: REDIRECT
  outbound: {listen: "[::]:15001"}
  inbound: {listen: "[::]:15006", forwardTo: 127.0.0.1:9080}
  admin: {listen: 127.0.0.1:15000}
  workers: 2
  identity:
    serviceAccount: $3
    rootCertificates: $T/ca/root-cert.pem
    certificateChain: $T/$3/cert-chain.pem
    privateKey: $T/$3/key.pem
YAML
}
{
    proxy_yaml productpage-v1 productpage productpage
    cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  ports: [{number: 9080, name: http}]
  resolution: STATIC
  endpoints: [{address: "$B_IP", labels: {app: reviews, security.istio.io/tlsMode: istio}}]
YAML
} >"$T/a.yaml"
{
    proxy_yaml reviews-v1 reviews reviews
    printf -- '---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n'
    printf 'metadata: {name: default, namespace: shop}\nspec: {mtls: {mode: STRICT}}\n'
} >"$T/b.yaml"
"$T/bin/outrider-proxy" --check --config "$T/a.yaml" >"$T/check.txt" 2>&1 || fail "a.yaml: $(cat "$T/check.txt")"
start_sidecar() { # NS NAME FILE
    local log=$T/proxy-$2.log
    : >"$log"
    _SCANNED_LOGS+=("$log")
    ip netns exec "$1" setpriv --reuid=1337 --regid=1337 --clear-groups \
        "$T/bin/outrider-proxy" --config "$3" >>"$log" 2>&1 &
    track_pid $!
    up() { grep -q 'listening admin http://' "$log"; }
    wait_until -n 400 -i 0.05 up || fail "sidecar $2 did not start: $(cat "$log")"
}
start_sidecar "$NB" b "$T/b.yaml"
start_sidecar "$NA" a "$T/a.yaml"
grep -q 'listening outbound http://\[::\]:15001' "$T/proxy-a.log" || fail "A's listener: $(head -3 "$T/proxy-a.log")"

for ns in "$NA" "$NB"; do
    # B leaves 7071 (the server no service names) uncaptured, as a pod's excluded port
    extra=()
    [[ $ns == "$NB" ]] && extra=(--exclude-inbound-ports 15000,15020,15021,15090,7071)
    ip netns exec "$ns" "$T/bin/outriderctl" redirect --proxy-uid 1337 "${extra[@]}" >"$T/redirect.out" 2>&1 ||
        fail "redirect: $(cat "$T/redirect.out")"
    grep -q "IPv4 and IPv6" "$T/redirect.out" || fail "redirect did not install the IPv6 rules: $(cat "$T/redirect.out")"
done
inA ip6tables -t nat -S | grep -q 'OUTRIDER_OUTPUT' || fail "no ip6tables rules in A: $(inA ip6tables -t nat -S)"
wait_until -n 100 -i 0.1 reach || fail "A cannot reach B over IPv6"

# the app's plain request, captured on both sides
get() { inA curl -6 -sS --max-time 20 -o "$T/body" -w '%{http_code}' "$@" 2>"$T/curl.err"; }
assert_eq 200 "$(get "http://[$B_IP]:9080/headers")" "curl -6 through both sidecars ($(cat "$T/curl.err"))"
grep -qi '^traceparent: 00-' "$T/body" || fail "the app got no trace context: $(cat "$T/body")"
grep -i '^x-forwarded-for:' "$T/body" | grep -qF "$A_IP" || fail "x-forwarded-for without A's address: $(cat "$T/body")"
stats() { ip netns exec "$1" curl -sS "http://127.0.0.1:15000/stats/prometheus"; }
counted() { # NS FILTERS...: istio_requests_total with every filter is at least 1
    local n
    n=$(stats "$1" | prom_sum istio_requests_total "${@:2}")
    ((n >= 1))
}
wait_until -n 100 -i 0.1 counted "$NA" 'reporter="source"' 'destination_service_name="reviews"' ||
    fail "A did not count it: $(stats "$NA" | grep istio_requests_total)"
wait_until -n 100 -i 0.1 counted "$NB" 'reporter="destination"' \
    'source_principal="spiffe://cluster.local/ns/shop/sa/productpage"' 'connection_security_policy="mutual_tls"' ||
    fail "B did not count it over mTLS: $(stats "$NB" | grep istio_requests_total)"

# a port no service names, on B's address: A's sidecar passes it through by its IPv6 original destination
# (ALLOW_ANY) to the server there, which B does not capture; A counts it as PassthroughCluster (TCP)
assert_eq 200 "$(get "http://[$B_IP]:7071/")" "passthrough to [$B_IP]:7071 ($(cat "$T/curl.err"))"
assert_eq "v6 outside, from $A_IP" "$(cat "$T/body")" "what the unnamed server saw"
tcp_passthrough() { # 7071 is no HTTP port of any service: a TCP connection, counted when it closes
    local n
    n=$(stats "$NA" | prom_sum istio_tcp_connections_closed_total 'destination_service_name="PassthroughCluster"')
    ((n >= 1))
}
wait_until -n 100 -i 0.1 tcp_passthrough || fail "A did not count the passthrough: $(stats "$NA" | grep istio_tcp_conn)"
# plain text to B's captured port from A's uid 1337 (not captured in A): STRICT refuses it
code=$(inA setpriv --reuid=1337 --regid=1337 --clear-groups curl -6 -sS --max-time 10 -o /dev/null -w '%{http_code}' \
    "http://[$B_IP]:9080/headers" 2>/dev/null || true)
[[ $code != 200 ]] || fail "plain text reached B's app past STRICT"

# the sidecars' logs: no loop (a request that came back to the outbound listener) and no error
grep -qi 'loop\|error' "$T/proxy-a.log" && fail "A's log: $(grep -i 'loop\|error' "$T/proxy-a.log" | head -3)"
echo "1 passed, 0 failed"
