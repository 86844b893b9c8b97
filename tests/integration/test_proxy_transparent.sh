#!/usr/bin/env bash
# Transparent capture (issue 13), for real, in two network namespaces this test makes (a veth pair
# between them, 10.213.X.1 <-> 10.213.X.2, X from the PID), one per "pod":
#  - pod A runs app A (curl) and its sidecar; pod B runs app B (tests/backend.py on 0.0.0.0:9080) and
#    its sidecar. Each sidecar runs as uid 1337 with spec.interceptionMode REDIRECT, listening on
#    0.0.0.0:15001 (outbound) and 0.0.0.0:15006 (inbound, forwardTo 127.0.0.1:9080), and each pod
#    gets `outriderctl redirect --proxy-uid 1337` (iptables nat, as Istio's init container);
#  - the sidecars have identities (certificate files from `outriderctl cert issue`); B is STRICT and
#    reviews' endpoint is labelled security.istio.io/tlsMode: istio, so A -> B is mutual TLS (B counts
#    A's SPIFFE id and mutual_tls), and plain text to B's captured port is refused;
#  - a plain `curl http://reviews:9080/` in A (the name resolved by --resolve to B's address, no proxy
#    settings) goes through both sidecars: A routes it by a VirtualService (header x-canary -> port
#    9081 of B, another app), B's inbound forwards it to the port the client asked for; A and B count
#    it (istio_requests_total at their /stats/prometheus, reporter source and destination), the app
#    sees the trace context and x-forwarded-for, and the collector (in B's namespace) holds the
#    trace: A's CLIENT span the parent of B's SERVER span;
#  - a request whose Host names nothing goes by its original destination: to B's address (an
#    endpoint of reviews) it is reviews' and is routed so; to the ServiceEntry's virtual IP
#    (addresses) too; to an address nobody registered it is passed through (PassthroughCluster,
#    ALLOW_ANY), and refused with 502 under REGISTRY_ONLY (SIGHUP);
#  - it works again after A's sidecar restarts; `outriderctl redirect --remove` takes the rules
#    out (then curl reaches B's app directly, no sidecar counts it);
#  - the rules: --dry-run prints what is installed, and a second install leaves one set.
# Skipped (exit 77, reported by CTest as skipped, with the reason) where namespaces or iptables
# cannot be used: not root, no `ip netns`, no iptables nat in a new namespace.
. "$(dirname "$0")/../lib.sh"

CTL=$OUTRIDER_BIN/outriderctl
skip() {
    echo "SKIP: $*"
    exit 77
}
[[ $(id -u) == 0 ]] || skip "needs root to make network namespaces and iptables rules"
command -v ip >/dev/null || skip "no ip (iproute2)"
command -v iptables-restore >/dev/null || skip "no iptables-restore (Debian: apt-get install iptables)"
command -v setpriv >/dev/null || skip "no setpriv (util-linux) to run the sidecars as uid 1337"

X=$(($$ % 200 + 20))
NA=outrider-ta-$$
NB=outrider-tb-$$
A_IP=10.213.$X.1
B_IP=10.213.$X.2
VIP=10.214.$X.10   # reviews' virtual IP (ServiceEntry addresses): routed nowhere, only captured
cleanup_ns() {
    ip netns del "$NA" 2>/dev/null || true
    ip netns del "$NB" 2>/dev/null || true
}
trap '_t_rc=$?; cleanup_ns; _lib_cleanup "$_t_rc"' EXIT
ip netns add "$NA" 2>/dev/null || skip "cannot make a network namespace (ip netns add)"
ip netns add "$NB" || fail "ip netns add $NB"
ip link add "va$$" type veth peer name "vb$$" || fail "veth pair"
ip link set "va$$" netns "$NA" && ip link set "vb$$" netns "$NB" || fail "veth into the namespaces"
ip -n "$NA" addr add "$A_IP/24" dev "va$$" && ip -n "$NB" addr add "$B_IP/24" dev "vb$$" || fail "addresses"
for n in "$NA" "$NB"; do
    ip -n "$n" link set lo up
done
ip -n "$NA" link set "va$$" up && ip -n "$NB" link set "vb$$" up || fail "links up"
ip -n "$NA" route add default dev "va$$" || fail "A's default route" # the VIP and "outside" go to the veth
ip -n "$NB" route add default dev "vb$$" || fail "B's default route"
ip netns exec "$NA" iptables -t nat -L >/dev/null 2>&1 || skip "no iptables nat table in a network namespace here"
inA() { ip netns exec "$NA" "$@"; }
inB() { ip netns exec "$NB" "$@"; }

# the binaries and files where uid 1337 can read them
chmod 755 "$T"
mkdir -p "$T/bin"
cp "$OUTRIDER_BIN/outrider-proxy" "$OUTRIDER_BIN/outriderctl" "$T/bin/"
chmod 755 "$T/bin" "$T/bin/"*

# the apps: B's on 9080 (reviews) and 9081 (reviews-canary), and an "outside" server in B's namespace
# at 10.213.X.2:7070 that no service names
start_in() { # NS NAME PORT ARGS...: tests/backend.py inside NS
    local ns=$1 name=$2 port=$3
    shift 3
    ip netns exec "$ns" python3 "$OUTRIDER_SRC/tests/backend.py" --host 0.0.0.0 --port "$port" --name "$name" \
        --port-file "$T/$name.port" "$@" >"$T/$name.log" 2>&1 &
    track_pid $!
    wait_until -n 200 -i 0.05 test -s "$T/$name.port" || fail "app $name did not start: $(cat "$T/$name.log")"
}
start_in "$NB" reviews 9080
start_in "$NB" canary 9081
start_in "$NB" outside 7070
# a server-first TCP service in B (a database's shape): a greeting, then each line echoed upper-cased
cat >"$T/tcpd.py" <<'PY'
import socket, sys, threading
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[2]))); ls.listen(8)
open(sys.argv[1], "w").write(sys.argv[2] + "\n")
def serve(c):
    c.sendall(b"220 db ready\n")
    f = c.makefile("rb")
    for line in f:
        c.sendall(line.upper())
    c.close()
while True:
    c, _ = ls.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
for port in 7071 7072; do # 7071: the db service's; 7072: a port no service names (passed through as TCP)
    # not through inB: a function in the background is a subshell, and its PID would not be the server's
    ip netns exec "$NB" python3 "$T/tcpd.py" "$T/tcpd-$port.port" "$port" >"$T/tcpd-$port.log" 2>&1 &
    track_pid $!
    wait_until -n 200 -i 0.05 test -s "$T/tcpd-$port.port" || fail "tcpd $port did not start: $(cat "$T/tcpd-$port.log")"
done

# identities (files, as a secret mount holds them) readable by the sidecars' uid
"$CTL" ca init "$T/ca" >/dev/null 2>&1 || fail "ca init"
for sa in productpage reviews; do
    "$CTL" cert issue --ca "$T/ca" --namespace shop --service-account "$sa" --out "$T/$sa" >/dev/null 2>&1 ||
        fail "cert issue $sa"
    chown -R 1337:1337 "$T/$sa"
done
chmod 755 "$T/ca" && chmod 644 "$T/ca/root-cert.pem" # (the CA key stays 0600, root's)
# the collector, in B's namespace on B's address (port 4318 is left out of B's inbound capture below)
ip netns exec "$NB" "$OUTRIDER_BIN/outrider-collector" --zipkin-listen 127.0.0.1:9411 --otlp-listen 0.0.0.0:4318 \
    >"$COLLECTOR_LOG" 2>&1 &
track_pid $!
collector_up() { ip netns exec "$NB" curl -sf http://127.0.0.1:9411/health >/dev/null; }
wait_until -n 200 -i 0.05 collector_up || fail "the collector did not start: $(cat "$COLLECTOR_LOG")"
proxy_yaml() { # NAME APP SERVICE-ACCOUNT EXTRA
    cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: $1, namespace: shop, labels: {app: $2, version: v1}}
spec:
  interceptionMode: REDIRECT
  outbound: {listen: 0.0.0.0:15001}
  inbound: {listen: 0.0.0.0:15006, forwardTo: 127.0.0.1:9080${INBOUND_PORTS:-}}
  admin: {listen: 127.0.0.1:15000}
  workers: 2
  telemetry: {otlpEndpoint: http://${OTLP_HOST:-$B_IP}:4318, samplingPercent: 100, flushInterval: 200ms}
  identity:
    serviceAccount: $3
    rootCertificates: $T/ca/root-cert.pem
    certificateChain: $T/$3/cert-chain.pem
    privateKey: $T/$3/key.pem
$4
YAML
}
a_yaml() { # MODE: outboundTrafficPolicy
    proxy_yaml productpage-v1 productpage productpage "  outboundTrafficPolicy: {mode: $1}"
    cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  addresses: [$VIP]
  ports: [{number: 9080, name: http}, {number: 9081, name: http-canary}]
  resolution: STATIC
  endpoints:
  - {address: $B_IP, labels: {app: reviews, version: v1, security.istio.io/tlsMode: istio}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: reviews, port: {number: 9081}}}]
  - route: [{destination: {host: reviews, port: {number: 9080}}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: shop}
spec:
  hosts: [db]
  ports: [{number: 7071, name: tcp-db}]
  resolution: STATIC
  endpoints: [{address: $B_IP, labels: {app: db, security.istio.io/tlsMode: istio}}]
---
# makes 7070 an HTTP port (elsewhere): a request to an unknown address on it is taken as HTTP
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: partner, namespace: shop}
spec:
  hosts: [api.partner.example]
  ports: [{number: 7070, name: http}]
  resolution: STATIC
  endpoints: [{address: 10.213.$X.99}]
YAML
}
a_yaml ALLOW_ANY >"$T/a.yaml"
{
    # B reaches the collector beside it on loopback: its own pod address over lo would be captured
    # (Istio's rule for a proxy calling its own pod), as inbound traffic
    # its app's TCP port: a redirected connection to it is proxied as bytes, after the mTLS handshake
    OTLP_HOST=127.0.0.1 INBOUND_PORTS=", ports: [{number: 7071, name: tcp-db}]" proxy_yaml reviews-v1 reviews reviews ""
    printf -- '---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n'
    printf 'metadata: {name: default, namespace: shop}\nspec: {mtls: {mode: STRICT}}\n'
} >"$T/b.yaml"
start_sidecar() { # NS NAME FILE: as uid 1337, inside NS; its PID in SIDECAR_PID
    local log=$T/proxy-$2.log
    : >"$log"
    _SCANNED_LOGS+=("$log") # sanitizer builds: a report fails the test
    ip netns exec "$1" setpriv --reuid=1337 --regid=1337 --clear-groups \
        "$T/bin/outrider-proxy" --config "$3" >>"$log" 2>&1 &
    SIDECAR_PID=$!
    track_pid "$SIDECAR_PID"
    up() { grep -q 'listening admin http://' "$log"; }
    wait_until -n 400 -i 0.05 up || fail "sidecar $2 did not start: $(cat "$log")"
}
start_sidecar "$NB" b "$T/b.yaml"
B_PID=$SIDECAR_PID
cp "$T/b.yaml" "$T/b-base.yaml"
start_sidecar "$NA" a "$T/a.yaml"
A_PID=$SIDECAR_PID

# ---- the rules, as Istio's init container puts them ----
inA "$T/bin/outriderctl" redirect --proxy-uid 1337 --dry-run >"$T/rules.txt" || fail "redirect --dry-run"
grep -qx -- '-A OUTRIDER_OUTPUT -m owner --uid-owner 1337 -j RETURN' "$T/rules.txt" || fail "dry run: $(cat "$T/rules.txt")"
[[ $(inA iptables -t nat -S | grep -c OUTRIDER || true) == 0 ]] || fail "--dry-run installed rules"
inA "$T/bin/outriderctl" redirect --proxy-uid 1337 >"$T/redirect.out" 2>&1 ||
    fail "outriderctl redirect in A: $(cat "$T/redirect.out")"
# the "outside" servers' ports are not behind B's sidecar (they stand for hosts outside the mesh), nor
# the collector's
inB "$T/bin/outriderctl" redirect --proxy-uid 1337 --exclude-inbound-ports 15000,15020,15021,15090,7070,7072,4318 \
    >"$T/redirect.out" 2>&1 || fail "outriderctl redirect in B: $(cat "$T/redirect.out")"
once=$(inA iptables -t nat -S | grep -c OUTRIDER)
inA "$T/bin/outriderctl" redirect --proxy-uid 1337 >/dev/null 2>&1 || fail "a second install"
assert_eq "$once" "$(inA iptables -t nat -S | grep -c OUTRIDER)" "a second install leaves one set of rules"

prom() { # NS: the sidecar's /stats/prometheus
    ip netns exec "$1" curl -sS --max-time 10 http://127.0.0.1:15000/stats/prometheus
}
count() { prom "$1" | prom_sum istio_requests_total "${@:2}"; } # NS FILTER...: the sum of samples with every FILTER
count_is() { [[ $(count "${@:2}") == "$1" ]]; } # EXPECTED NS FILTER...
app_get() { # ARGS...: curl in pod A, no proxy settings; body to $LAST_BODY, head to $T/resp.h; prints the status
    inA curl -sS --max-time 20 --noproxy '*' -D "$T/resp.h" -o "$LAST_BODY" -w '%{http_code}' "$@"
}
served_by() { tr -d '\r' <"$T/resp.h" | grep -qix "x-backend: $1" || fail "$2: answered by $(grep -i x-backend "$T/resp.h")"; }

# ---- a plain curl by name: A routes it (VirtualService), B forwards it to the port asked for ----
TRACE=0af7651916cd43dd8448eb211c80319c
assert_eq 200 "$(app_get --resolve "reviews:9080:$B_IP" -H "traceparent: 00-$TRACE-b7ad6b7169203331-01" \
    http://reviews:9080/headers)" "curl http://reviews:9080/ in A"
served_by reviews "curl http://reviews:9080/"
grep -q "^traceparent: 00-$TRACE-" "$LAST_BODY" || fail "the trace did not reach app B: $(cat "$LAST_BODY")"
# traced: A's CLIENT span and B's SERVER span, linked, at the collector
zipkin() { ip netns exec "$NB" curl -sS "http://127.0.0.1:9411$1"; }
two_spans() { zipkin "/api/v2/trace/$TRACE" | jq -e 'length == 2' >/dev/null 2>&1; }
wait_until -n 200 -i 0.1 two_spans || fail "trace $TRACE at the collector: $(zipkin "/api/v2/trace/$TRACE")"
linked=$(zipkin "/api/v2/trace/$TRACE" | jq -r '([.[] | select(.kind == "CLIENT")][0].id) == ([.[] | select(.kind == "SERVER")][0].parentId)')
assert_eq true "$linked" "the SERVER span's parent is the CLIENT span"
grep -q "^x-forwarded-for: .*$A_IP" "$LAST_BODY" || fail "x-forwarded-for at app B: $(cat "$LAST_BODY")"
assert_eq 200 "$(app_get --resolve "reviews:9080:$B_IP" -H 'x-canary: yes' http://reviews:9080/headers)" "canary"
served_by canary "x-canary: yes (the VirtualService's first route)"
wait_until -n 100 -i 0.05 count_is 2 "$NA" 'reporter="source"' 'destination_service_name="reviews"' 'response_code="200"' ||
    fail "A's count: $(prom "$NA" | grep '^istio_requests_total{')"
wait_until -n 100 -i 0.05 count_is 2 "$NB" 'reporter="destination"' 'source_workload="productpage-v1"' \
    'source_principal="spiffe://cluster.local/ns/shop/sa/productpage"' 'connection_security_policy="mutual_tls"' ||
    fail "B's count (mutual TLS, A's identity): $(prom "$NB" | grep '^istio_requests_total{')"
# B is STRICT: app A's own plain connection to B's app port, made without its sidecar (as uid 1337), is refused
plain=$(inA setpriv --reuid=1337 --regid=1337 --clear-groups curl -sS --max-time 10 -o /dev/null -w '%{http_code}' \
    "http://$B_IP:9080/" 2>/dev/null) || true
assert_eq 000 "$plain" "plain text to B's captured port under STRICT"

# ---- by original destination: an endpoint's address, the virtual IP; else passthrough ----
assert_eq 200 "$(app_get "http://$B_IP:9080/headers")" "by B's address (Host is the IP)"
served_by reviews "by B's address"
assert_eq 200 "$(app_get -H 'x-canary: yes' "http://$VIP:9080/headers")" "by the ServiceEntry's virtual IP"
served_by canary "by the virtual IP, with the VirtualService's header route"
wait_until -n 100 -i 0.05 count_is 4 "$NA" 'reporter="source"' 'destination_service_name="reviews"' 'response_code="200"' ||
    fail "requests by address not counted as reviews': $(prom "$NA" | grep '^istio_requests_total{')"
assert_eq 200 "$(app_get "http://$B_IP:7070/headers")" "an unregistered destination, ALLOW_ANY"
served_by outside "passthrough"
wait_until -n 100 -i 0.05 count_is 1 "$NA" 'destination_service_name="PassthroughCluster"' ||
    fail "passthrough not counted: $(prom "$NA" | grep '^istio_requests_total{')"

# ---- a TCP service port (tcp-db): proxied as bytes from the start, so the server speaks first ----
cat >"$T/tcpc.py" <<'PY'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 7071), timeout=20)
f = s.makefile("rb")
greeting = f.readline()
s.sendall(b"select 1\n")
answer = f.readline()
s.close()
print(greeting.decode().strip() + "|" + answer.decode().strip())
PY
assert_eq "220 db ready|SELECT 1" "$(inA python3 "$T/tcpc.py" "$B_IP")" "a server-first TCP exchange through A"
tcp_count() { prom "$NA" | prom_sum "$@"; } # METRIC FILTER...: at A
tcp_closed() { [[ $(tcp_count istio_tcp_connections_closed_total 'destination_service_name="db"') == 1 ]]; }
wait_until -n 100 -i 0.05 tcp_closed || fail "istio_tcp_* at A: $(prom "$NA" | grep '^istio_tcp')"
assert_eq 1 "$(tcp_count istio_tcp_connections_opened_total 'reporter="source"' 'destination_service_name="db"')" \
    "TCP connections opened"
assert_eq 9 "$(tcp_count istio_tcp_received_bytes_total 'destination_service_name="db"')" "bytes from the client"
assert_eq 22 "$(tcp_count istio_tcp_sent_bytes_total 'destination_service_name="db"')" "bytes to the client"
assert_eq 0 "$(count "$NA" 'destination_service_name="db"')" "no HTTP request counted for the TCP port"
# ... and it went over mutual TLS to B's sidecar, which proxied it as bytes to its app's TCP port
b_tcp() {
    [[ $(prom "$NB" | prom_sum istio_tcp_connections_closed_total 'reporter="destination"' \
        'source_principal="spiffe://cluster.local/ns/shop/sa/productpage"' 'connection_security_policy="mutual_tls"') == 1 ]]
}
wait_until -n 100 -i 0.05 b_tcp || fail "B's side of the TCP connection: $(prom "$NB" | grep '^istio_tcp')"
# a port no service names: passed through as TCP (ALLOW_ANY), the server still speaking first
assert_eq "220 db ready|SELECT 1" "$(inA python3 "$T/tcpc.py" "$B_IP" 7072)" "TCP to an unregistered destination"
tcp_pt() { [[ $(tcp_count istio_tcp_connections_closed_total 'destination_service_name="PassthroughCluster"') == 1 ]]; }
wait_until -n 100 -i 0.05 tcp_pt || fail "TCP passthrough not counted: $(prom "$NA" | grep '^istio_tcp')"

# ---- AuthorizationPolicy over TCP (Istio's TCP task): B applies it to the TCP port, as Istio treats
# HTTP-only fields for TCP: an ALLOW rule with methods never matches, a DENY rule drops them ----
b_policy() { # NAME SPEC: B's file with one AuthorizationPolicy more, applied (SIGHUP), waited for
    { cat "$T/b-base.yaml"; printf -- '---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n'
      printf 'metadata: {name: %s, namespace: shop}\nspec:\n%s\n' "$1" "$2"; } >"$T/b.yaml"
    kill -HUP "$B_PID"
    policy_on() { prom "$NB" | grep -q "policy=\"shop/$1\""; }
    wait_until -n 100 -i 0.1 policy_on "$1" || fail "B did not apply $1: $(tail -3 "$T/proxy-b.log")"
}
db() { inA python3 "$T/tcpc.py" "$B_IP" 2>/dev/null || true; }
b_policy tcp-allow '  rules: [{from: [{source: {principals: ["cluster.local/ns/shop/sa/productpage"]}}], to: [{operation: {ports: ["7071"]}}]}]'
assert_eq "220 db ready|SELECT 1" "$(db)" "TCP allowed by principal and port"
b_policy tcp-allow-get '  rules: [{to: [{operation: {ports: ["7071"], methods: ["GET"]}}]}]'
assert_eq "|" "$(db)" "an ALLOW rule with methods never matches a TCP connection: closed, no byte through"
grep -q 'TCP connection from .* to port 7071 denied by AuthorizationPolicy (none matched)' "$T/proxy-b.log" ||
    fail "the denial is not logged: $(tail -3 "$T/proxy-b.log")"
b_policy tcp-deny-get "  action: DENY
  rules: [{to: [{operation: {ports: [\"7071\"], methods: [\"GET\"]}}]}]"
assert_eq "|" "$(db)" "a DENY rule with methods denies the TCP connection (methods left out)"
assert_eq 1 "$(prom "$NB" | prom_sum outrider_proxy_authz_requests_total 'policy="shop/tcp-deny-get"' 'result="denied"')" \
    "the TCP denial counted on its policy"
assert_eq 200 "$(app_get --resolve "reviews:9080:$B_IP" http://reviews:9080/headers)" "HTTP to B beside the TCP DENY"
cp "$T/b-base.yaml" "$T/b.yaml"
kill -HUP "$B_PID"
policies_gone() { ! prom "$NB" | grep -q outrider_proxy_authz_requests_total; }
wait_until -n 100 -i 0.1 policies_gone || fail "B kept its policies after the reload"
assert_eq "220 db ready|SELECT 1" "$(db)" "TCP again without policies"

# ---- REGISTRY_ONLY (SIGHUP): the unregistered destination is refused, reviews still works ----
a_yaml REGISTRY_ONLY >"$T/a.yaml"
kill -HUP "$A_PID"
refused() { [[ $(app_get "http://$B_IP:7070/headers") == 502 ]]; }
wait_until -n 100 -i 0.1 refused || fail "REGISTRY_ONLY: $(cat "$LAST_BODY")"
grep -q 'REGISTRY_ONLY' "$LAST_BODY" || fail "502 body: $(cat "$LAST_BODY")"
got=$(inA python3 "$T/tcpc.py" "$B_IP" 7072 2>&1) || true
assert_eq "|" "$got" "REGISTRY_ONLY: TCP to an unregistered destination is closed, no byte through"
assert_eq 200 "$(app_get --resolve "reviews:9080:$B_IP" http://reviews:9080/headers)" "reviews under REGISTRY_ONLY"

# ---- A's sidecar restarts: the rules stay, traffic flows again ----
stop_pid "$A_PID"
start_sidecar "$NA" a "$T/a.yaml"
A_PID=$SIDECAR_PID
assert_eq 200 "$(app_get --resolve "reviews:9080:$B_IP" http://reviews:9080/headers)" "after A's sidecar restarted"
wait_until -n 100 -i 0.05 count_is 1 "$NA" 'reporter="source"' 'destination_service_name="reviews"' ||
    fail "the new sidecar did not count it: $(prom "$NA" | grep '^istio_requests_total{')"

# ---- --remove: the app reaches B directly, A's sidecar sees nothing ----
inA "$T/bin/outriderctl" redirect --remove >/dev/null 2>&1 || fail "redirect --remove"
assert_eq 0 "$(inA iptables -t nat -S | grep -c OUTRIDER || true)" "rules left after --remove"
before=$(count "$NA" 'reporter="source"')
assert_eq 200 "$(app_get "http://$B_IP:7070/headers")" "without the rules (direct to the outside app)"
sleep 0.5 # a flush interval would have passed; nothing may have been counted (no wait can show an absence)
assert_eq "$before" "$(count "$NA" 'reporter="source"')" "A's sidecar saw no request after --remove"
echo "1 passed, 0 failed"
