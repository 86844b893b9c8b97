#!/usr/bin/env bash
# Mutual TLS between two sidecars (issue 12; figures go to docs/benchmarks.md): an outrider-proxy pair
# against an HAProxy pair of the same shape, same certificates, same TLS 1.3 suites, same keep-alive,
# both measured in the same run, alternately.
#
#   client --HTTP--> A --mTLS--> B --HTTP--> backend (nginx, 1 KiB body, keep-alive)
#
# Outrider pair (namespace shop): A (productpage) takes plain HTTP on its outbound listener and sends
# Host reviews:9080 over auto mTLS (a ServiceEntry endpoint labelled security.istio.io/tlsMode: istio)
# to B's inbound listener (reviews, PeerAuthentication STRICT), which forwards to the backend. Host
# reviews-fresh:9080 goes the same way under a DestinationRule maxRequestsPerConnection: 1, so every
# request is a new A -> B TLS connection. Identities from `outriderctl ca init` + `cert issue` (files),
# telemetry off, spec.workers = W.
# HAProxy pair: A has two plain frontends, one to a backend with `http-reuse always` (keep-alive) and
# one with `http-reuse never` + `option http-server-close` (a new connection per request); both
# servers are `ssl verify required ca-file ROOT crt A.pem sni str(reviews) alpn http/1.1`. B binds
# `ssl crt B.pem ca-file ROOT verify required alpn http/1.1` and forwards to the backend with
# `http-reuse always`. nbthread W. TLS 1.3 suites (both sides) and B's groups pinned to outrider's
# transport list (TLS_AES_128_GCM_SHA256 first, server preference; X25519:P-256:P-384).
# Certificates: EC P-256, one root; B's certificate also names DNS reviews so that HAProxy A can check a
# name (it checks the SNI against the certificate; outrider checks the SPIFFE URI SAN instead).
#
# Before measuring, for each pair: a request on each path answers 200; plain HTTP and a TLS client
# without a certificate get no HTTP answer from B; B's handshake counters rise (outrider:
# outrider_proxy_tls_handshakes_total{side="inbound",result="ok"}; haproxy: ssl_sess + ssl_reused_sess
# of B's frontend, `show stat typed`); and the protocol, suite, group, SNI and ALPN of a real A -> B
# handshake are read off the wire (ClientHello and ServerHello, an AF_PACKET socket on lo; needs root).
# Per round (ROUNDS), each measurement runs for both pairs back to back, the order swapped every round:
#   ka     wrk -t2 -c64 -dDUR through A, keep-alive everywhere: requests/s, p50, p99; also for haproxy+h,
#          HAProxy's pair with A adding the fields a sidecar adds to a request (x-forwarded-for/-proto,
#          traceparent, b3, x-b3-*, x-request-id: http-request set-header, fresh random ids) and B
#          appending to x-forwarded-for, so that the backend reads the same head as behind Outrider's;
#   1k     hey -z DUR -c 10 -q 100 (1000 requests/s offered) through A: p50, p99, p99.9 (hey's csv,
#          0.1 ms resolution);
#   fresh  wrk -t2 -c64 -dDUR on the new-connection path: requests/s = A -> B handshakes/s (checked:
#          B's handshakes per request, and the share resumed from a session ticket);
#   s_time openssl s_time -new -time DUR straight to B with A's certificate: full (not resumed)
#          handshakes + one request per connection, per second; one single-threaded client.
# During ka and fresh, the CPU time (user + system, /proc/PID/stat) of A and B per request. Then each
# proxy's VmRSS. The summary gives the median of the rounds and outrider/haproxy ratios; the load
# average and whether the test suite (ctest) or a compiler ran are printed per round.
#   usage: tests/bench/mtls_bench.sh
#   env:   DUR (5 s), ROUNDS (2), WORKERS ("1"; "1 2" also runs two workers / nbthread 2), OUTRIDER_BIN
#          (the binaries are copied to a temp dir first, so a rebuild during the run does not matter)
# Needs: nginx haproxy wrk hey curl openssl python3 (Debian packages), root for the wire check.
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${OUTRIDER_BIN:-$REPO/build/release/bin}
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-2}
WORKERS=${WORKERS:-1}
SUITES=TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256
GROUPS_=X25519:P-256:P-384

die() {
    echo "mtls_bench: $*" >&2
    exit 1
}

for b in outrider-proxy outriderctl; do
    [[ -x $BIN/$b ]] || die "no $BIN/$b: build the release first (cmake --preset release && cmake --build build/release)"
done
for t in nginx haproxy wrk hey curl openssl python3; do
    command -v "$t" >/dev/null || die "$t is not installed"
done
for t in wrk hey; do
    pgrep -x "$t" >/dev/null && die "a $t is already running (another benchmark?): wait for it"
done

W=$(mktemp -d "${TMPDIR:-/tmp}/mtls_bench.XXXXXX")
PIDS=()

# end only what this script started, by PID; bounded, then SIGKILL
stop() { # PID
    local i
    kill "$1" 2>/dev/null || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    kill -9 "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop "$pid"; done
    rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}
wait_port() { # PORT: until something accepts on 127.0.0.1:PORT (10 s at most)
    local i
    for ((i = 0; i < 200; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
started() { # NAME PID PORT: the process listens on PORT, else its log and exit
    wait_port "$3" && kill -0 "$2" 2>/dev/null && return 0
    echo "$1 did not start; its log:" >&2
    sed 's/^/  | /' "$W/$1.log" | tail -20 >&2
    exit 1
}

# a copy of the binaries, so that a rebuild during the run cannot mix two versions
mkdir -p "$W/bin"
cp "$BIN/outrider-proxy" "$BIN/outriderctl" "$W/bin/" || die "cannot copy the binaries from $BIN"
BUILT=$(date -u -r "$BIN/outrider-proxy" '+%F %T')
BIN=$W/bin

# ---- certificates: one root, A = productpage, B = reviews (plus DNS reviews for HAProxy's name check) ----
CTL=$BIN/outriderctl
"$CTL" ca init "$W/ca" >/dev/null || die "outriderctl ca init"
"$CTL" cert issue --ca "$W/ca" --namespace shop --service-account productpage --out "$W/a" >/dev/null ||
    die "outriderctl cert issue (A)"
"$CTL" cert issue --ca "$W/ca" --namespace shop --service-account reviews --dns reviews --out "$W/b" >/dev/null ||
    die "outriderctl cert issue (B)"
ROOT=$W/ca/root-cert.pem
cat "$W/a/cert-chain.pem" "$W/a/key.pem" >"$W/a.pem" # HAProxy wants certificate and key in one file
cat "$W/b/cert-chain.pem" "$W/b/key.pem" >"$W/b.pem"

# ---- helpers run by python3: HAProxy's stats socket; the ClientHello/ServerHello of one handshake ----
cat >"$W/hasock.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
d = b""
while True:
    x = s.recv(65536)
    if not x:
        break
    d += x
sys.stdout.write(d.decode())
PY
cat >"$W/hello.py" <<'PY'
# hello.py PORT TIMEOUT: print "ready", then the first TLS handshake to 127.0.0.1:PORT seen on lo:
# protocol, suite and key-share group (ServerHello; in clear in TLS 1.3 too), SNI and ALPN (ClientHello).
import socket, struct, sys, time
port, timeout = int(sys.argv[1]), float(sys.argv[2])
SUITES = {0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384", 0x1303: "TLS_CHACHA20_POLY1305_SHA256"}
GROUPS = {0x001d: "X25519", 0x0017: "P-256", 0x0018: "P-384", 0x0019: "P-521", 0x001e: "X448"}
def exts(b, i):
    n = struct.unpack_from("!H", b, i)[0]; i += 2; end = i + n
    while i + 4 <= end:
        t, l = struct.unpack_from("!HH", b, i); yield t, b[i + 4:i + 4 + l]; i += 4 + l
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)); s.bind(("lo", 0)); s.settimeout(0.2)
print("ready", flush=True)
ch = sh = None; deadline = time.time() + timeout
while (ch is None or sh is None) and time.time() < deadline:
    try: f = s.recv(65536)
    except socket.timeout: continue
    if len(f) < 34 or f[12:14] != b"\x08\x00" or f[23] != 6: continue
    ip = f[14:]; tcp = ip[(ip[0] & 15) * 4:]
    sp, dp = struct.unpack_from("!HH", tcp); p = tcp[(tcp[12] >> 4) * 4:]
    if len(p) < 9 or p[0] != 0x16: continue
    h = p[5:]
    try:
        if h[0] == 1 and dp == port and ch is None:
            i = 4 + 2 + 32; i += 1 + h[i]; i += 2 + struct.unpack_from("!H", h, i)[0]; i += 1 + h[i]
            sni = alpn = "-"
            for t, v in exts(h, i):
                if t == 0: sni = v[5:].decode()
                if t == 16: alpn = v[3:3 + v[2]].decode()
            ch = "sni=%s alpn=%s" % (sni, alpn)
        elif h[0] == 2 and sp == port and sh is None:
            i = 4 + 2 + 32; i += 1 + h[i]; suite = struct.unpack_from("!H", h, i)[0]; i += 3
            ver, grp = "TLSv1.2", "-"
            for t, v in exts(h, i):
                if t == 43 and v == b"\x03\x04": ver = "TLSv1.3"
                if t == 51: grp = GROUPS.get(struct.unpack_from("!H", v)[0], "?")
            sh = "protocol=%s cipher=%s group=%s" % (ver, SUITES.get(suite, hex(suite)), grp)
    except (IndexError, struct.error):
        continue
print("%s %s" % (sh or "protocol=? cipher=? group=?", ch or "sni=? alpn=?"))
PY

# ---- backend: nginx, 1 KiB body, keep-alive (the peers script's shape), on a free port ----
BE=$(free_port)
mkdir -p "$W/www"
head -c 1024 /dev/zero | tr '\0' 'x' >"$W/www/body.txt"
temps="client_body_temp_path $W; proxy_temp_path $W; fastcgi_temp_path $W; uwsgi_temp_path $W; scgi_temp_path $W;"
cat >"$W/backend.conf" <<CONF
worker_processes 1; daemon off; pid $W/backend.pid; error_log $W/backend.err;
events { worker_connections 4096; }
http { access_log off; $temps
  server { listen 127.0.0.1:$BE backlog=4096; keepalive_requests 1000000;
    location / { root $W/www; try_files /body.txt =404; } } }
CONF
nginx -c "$W/backend.conf" >"$W/backend.log" 2>&1 &
PIDS+=($!)
started backend $! "$BE"
BE_WORKER=$(pgrep -P "${PIDS[-1]}" | head -1) # nginx's one worker process

busy() { # what else is running that skews the figures (the test suite, a compiler)
    pgrep -x ctest >/dev/null && printf ' (the test suite, ctest, is running)'
    pgrep -x cc1 >/dev/null && printf ' (a compiler is running)'
    true
}

# ---- per-pair probes ----
prom() { # ADMIN_PORT KEY: a sample's value from /stats/prometheus
    curl -fsS --max-time 5 "http://127.0.0.1:$1/stats/prometheus" 2>/dev/null | awk -v k="$2" '$1 == k {print $2}'
}
b_handshakes() { # PAIR: "ok resumed" on B's side so far
    if [[ $1 == outrider ]]; then
        echo "$(prom "$OB_ADM" 'outrider_proxy_tls_handshakes_total{side="inbound",result="ok"}') \
$(prom "$OB_ADM" 'outrider_proxy_tls_sessions_resumed_total{side="inbound"}')"
    else # frontend fe of B: new (full) and resumed sessions
        python3 "$W/hasock.py" "$W/hb.sock" "show stat typed" 2>/dev/null | awk -F: '
            /^F\.[0-9]+\.[0-9]+\.[0-9]+\.ssl_sess\./ {n += $4}
            /^F\.[0-9]+\.[0-9]+\.[0-9]+\.ssl_reused_sess\./ {r += $4}
            END {print n + r, r + 0}'
    fi
}
a_port() { # PAIR PATH(ka|fresh)
    if [[ $1 == outrider ]]; then echo "$OA_OUT"; elif [[ $1 == haproxy+h ]]; then echo "$HA_KAH"
    elif [[ $2 == ka ]]; then echo "$HA_KA"; else echo "$HA_FRESH"; fi
}
host_of() { [[ $1 == ka ]] && echo reviews:9080 || echo reviews-fresh:9080; } # same Host for both pairs
b_port() { [[ $1 == outrider ]] && echo "$OB_IN" || echo "$HB_IN"; }
pids_of() { [[ $1 == outrider ]] && echo "$OA_PID $OB_PID" || echo "$HA_PID $HB_PID"; } # A B

cpu_ticks() { # PID: utime+stime in clock ticks (fields 14 and 15 of /proc/PID/stat; comm may hold spaces)
    local s f
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    read -ra f <<<"$s"
    echo $((f[11] + f[12]))
}
HZ=$(getconf CLK_TCK)
machine_ticks() { # "busy idle softirq" clock ticks of the whole machine so far (/proc/stat's cpu line; iowait is idle)
    awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6, $8; exit}' /proc/stat
}
softirqs() { # "NET_RX TIMER SCHED RCU" softirqs run so far, all CPUs
    awk '{s = 0; for (i = 2; i <= NF; i++) s += $i} $1 == "NET_RX:" {a = s} $1 == "TIMER:" {b = s} $1 == "SCHED:" {c = s}
         $1 == "RCU:" {d = s} END {print a, b, c, d}' /proc/softirqs
}
wakeups() { # PID...: voluntary context switches so far (each a sleep in epoll_wait or the like, then a wake-up)
    local p t=0 v
    for p in "$@"; do
        v=$(awk '/^voluntary_ctxt_switches:/ {print $2}' /proc/"$p"/task/*/status 2>/dev/null | awk '{s += $1} END {print s + 0}')
        t=$((t + v))
    done
    echo "$t"
}
tcp_out_segs() { awk '$1 == "Tcp:" && $2 ~ /^[0-9]/ {print $12; exit}' /proc/net/snmp; } # sent so far
cpu_us() { # TICKS REQUESTS: CPU microseconds per request
    awk -v t="$1" -v n="$2" -v hz="$HZ" 'BEGIN { if (n > 0) printf "%.1f", t * 1e6 / hz / n; else print "-" }'
}

to_ms() { # wrk's "1.23ms" / "456.00us" / "1.20s" in ms
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else printf "nan" }'
}

# wrk through A; prints "rps p50_ms p99_ms requests bad" (bad = non-2xx + socket errors)
run_wrk() { # PAIR PATH
    local out rps p50 p99 n bad
    out=$(wrk -t2 -c64 -d"${DUR}s" --latency -H "Host: $(host_of "$2")" "http://127.0.0.1:$(a_port "$1" "$2")/" 2>&1)
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    bad=$(awk '/Non-2xx/ {b += $NF} /Socket errors/ {gsub(/[^0-9 ]/, " "); for (i = 1; i <= NF; i++) b += $i}
               END {print b + 0}' <<<"$out")
    echo "${rps:-0} $p50 $p99 ${n:-0} $bad"
}

# hey at 1000 requests/s offered (10 workers x 100/s); prints "rps p50 p99 p999 bad" (ms; rps = done / DUR)
run_hey() { # PAIR
    hey -z "${DUR}s" -c 10 -q 100 -o csv -host reviews:9080 "http://127.0.0.1:$(a_port "$1" ka)/" 2>/dev/null |
        awk -F, 'NR > 1 && NF >= 7 {print $1 * 1000, $7}' | sort -g |
        awk -v dur="$DUR" '{t[NR] = $1; if ($2 != 200) bad++}
            function q(p,  i) { i = int(p * NR + 0.999999); if (i < 1) i = 1; return t[i] }
            END { if (NR == 0) { print "0 nan nan nan 0"; exit }
                  printf "%.0f %.2f %.2f %.2f %d\n", NR / dur, q(0.50), q(0.99), q(0.999), bad }'
}

# s_time: new TLS connections (full handshakes, no resumption) straight to B with A's certificate, one
# request each (the -www page smuggles a Host header into s_time's "GET %s HTTP/1.0"); prints conns/s
run_stime() { # PAIR
    local t0 t1 n page=$'/ HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\nX-Pad:'
    t0=$(date +%s.%N)
    n=$(timeout $((DUR + 20)) openssl s_time -connect "127.0.0.1:$(b_port "$1")" -new -www "$page" \
        -cert "$W/a/cert-chain.pem" -key "$W/a/key.pem" -CAfile "$ROOT" -time "$DUR" 2>/dev/null |
        awk '/connections in .* real seconds/ {print $1}')
    t1=$(date +%s.%N)
    awk -v n="${n:-0}" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f\n", n / (b - a)}'
}

wire_check() { # PAIR: protocol/suite/group/SNI/ALPN of one real A -> B handshake
    local port out i
    port=$(b_port "$1")
    python3 "$W/hello.py" "$port" 5 >"$W/hello.out" 2>&1 &
    local hp=$!
    PIDS+=("$hp")
    for ((i = 0; i < 100; i++)); do
        grep -q ready "$W/hello.out" && break
        kill -0 "$hp" 2>/dev/null || break
        sleep 0.05
    done
    curl -sS --max-time 5 -o /dev/null -H "Host: $(host_of fresh)" "http://127.0.0.1:$(a_port "$1" fresh)/"
    wait "$hp" 2>/dev/null
    out=$(grep -v ready "$W/hello.out" | tail -1)
    echo "${out:-wire check failed: $(cat "$W/hello.out")}"
}

check_pair() { # PAIR: each path works, B refuses plain HTTP and a client without a certificate, counters rise
    local p=$1 code hs0 hs1 got
    hs0=$(b_handshakes "$p")
    for path in ka fresh; do
        code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H "Host: $(host_of "$path")" \
            "http://127.0.0.1:$(a_port "$p" "$path")/")
        [[ $code == 200 ]] || die "$p: a request on the $path path got $code"
    done
    hs1=$(b_handshakes "$p")
    [[ ${hs1%% *} -gt ${hs0%% *} ]] || die "$p: B's handshake counter did not rise ($hs0 -> $hs1)"
    code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(b_port "$p")/" 2>/dev/null)
    [[ $code == 000 ]] || die "$p: plain HTTP to B got $code"
    got=$(printf 'GET / HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n' |
        timeout 10 openssl s_client -quiet -connect "127.0.0.1:$(b_port "$p")" -CAfile "$ROOT" 2>&1)
    grep -q 'HTTP/1.1' <<<"$got" && die "$p: B answered a TLS client without a certificate"
    echo "$p: mTLS checked (200 on both paths; B refuses plain HTTP and a client without a certificate;" \
        "B's handshakes ${hs0%% *} -> ${hs1%% *})"
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

med() { # numbers...: their median ("-" when none)
    printf '%s\n' "$@" | grep -E '^[0-9.]+$' | sort -g |
        awk '{a[NR] = $1} END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2];
                                else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { if (v == "-" || v == "") print "-"; else printf f, v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }

echo "# mTLS sidecar pair benchmark, $(date -u '+%F %T') UTC, $(nproc) cores, $(uname -r), $(openssl version | cut -d' ' -f1-2)"
echo "# DUR=$DUR ROUNDS=$ROUNDS WORKERS='$WORKERS'; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)$(busy)"
echo "# outrider-proxy built $BUILT UTC; tree $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(
    [[ -n $(git -C "$REPO" status --porcelain -- proxy common 2>/dev/null) ]] && echo ' with uncommitted changes under proxy/ or common/')"

SUMMARY=()
for w in $WORKERS; do
    # ---- Outrider pair ----
    OB_IN=$(free_port) OB_ADM=$(free_port) OA_OUT=$(free_port) OA_ADM=$(free_port)
    cat >"$W/ob.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews, version: v1}}
spec:
  inbound: {listen: 127.0.0.1:$OB_IN, forwardTo: 127.0.0.1:$BE}
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:$OB_ADM}
  workers: $w
  identity:
    serviceAccount: reviews
    rootCertificates: $ROOT
    certificateChain: $W/b/cert-chain.pem
    privateKey: $W/b/key.pem
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec:
  mtls: {mode: STRICT}
YAML
    se() { # NAME: a ServiceEntry for host NAME whose one endpoint is B, auto mTLS
        printf -- '---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: %s, namespace: shop}\n' "$1"
        printf 'spec:\n  hosts: [%s]\n  ports: [{number: 9080, name: http}]\n  resolution: STATIC\n  endpoints:\n' "$1"
        printf '  - {address: 127.0.0.1, ports: {http: %s}, labels: {app: reviews, security.istio.io/tlsMode: istio}}\n' "$OB_IN"
    }
    {
        cat <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: productpage-v1, namespace: shop, labels: {app: productpage, version: v1}}
spec:
  outbound: {listen: 127.0.0.1:$OA_OUT}
  admin: {listen: 127.0.0.1:$OA_ADM}
  workers: $w
  identity:
    serviceAccount: productpage
    rootCertificates: $ROOT
    certificateChain: $W/a/cert-chain.pem
    privateKey: $W/a/key.pem
YAML
        se reviews
        se reviews-fresh
        cat <<YAML
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-fresh, namespace: shop}
spec:
  host: reviews-fresh
  trafficPolicy:
    connectionPool: {http: {maxRequestsPerConnection: 1}}
YAML
    } >"$W/oa.yaml"
    "$BIN/outrider-proxy" --config "$W/ob.yaml" >"$W/ob.log" 2>&1 &
    OB_PID=$!
    PIDS+=("$OB_PID")
    started ob "$OB_PID" "$OB_IN"
    "$BIN/outrider-proxy" --config "$W/oa.yaml" >"$W/oa.log" 2>&1 &
    OA_PID=$!
    PIDS+=("$OA_PID")
    started oa "$OA_PID" "$OA_OUT"

    # ---- HAProxy pair ----
    HB_IN=$(free_port) HA_KA=$(free_port) HA_FRESH=$(free_port) HA_KAH=$(free_port)
    rm -f "$W/hb.sock"
    cat >"$W/hb.cfg" <<CONF
global
  nbthread $w
  maxconn 4096
  stats socket $W/hb.sock
  ssl-default-bind-ciphersuites $SUITES
  ssl-default-bind-curves $GROUPS_
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:$HB_IN ssl crt $W/b.pem ca-file $ROOT verify required alpn http/1.1
  http-request set-header x-forwarded-for "%[req.hdr(x-forwarded-for)], %[src]" if { req.hdr(traceparent) -m found }
  default_backend app
backend app
  server s1 127.0.0.1:$BE
CONF
    srv="server b 127.0.0.1:$HB_IN ssl verify required ca-file $ROOT crt $W/a.pem sni str(reviews) alpn http/1.1"
    cat >"$W/ha.cfg" <<CONF
global
  nbthread $w
  maxconn 4096
  ssl-default-server-ciphersuites $SUITES
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend ka
  bind 127.0.0.1:$HA_KA
  default_backend b_ka
frontend fresh
  bind 127.0.0.1:$HA_FRESH
  default_backend b_fresh
frontend kah
  bind 127.0.0.1:$HA_KAH
  http-request set-var(txn.tid) uuid(4),regsub(-,,g)
  http-request set-var(txn.sid) uuid(4),regsub(-,,g),bytes(0,16)
  http-request set-var(txn.pid) uuid(4),regsub(-,,g),bytes(16,16)
  http-request set-header x-forwarded-for "%[src]"
  http-request set-header traceparent "00-%[var(txn.tid)]-%[var(txn.sid)]-00"
  http-request set-header x-request-id "%[uuid(4)]"
  http-request set-header b3 "%[var(txn.tid)]-%[var(txn.sid)]-0-%[var(txn.pid)]"
  http-request set-header x-b3-traceid "%[var(txn.tid)]"
  http-request set-header x-b3-spanid "%[var(txn.sid)]"
  http-request set-header x-b3-parentspanid "%[var(txn.pid)]"
  http-request set-header x-b3-sampled 0
  http-request set-header x-forwarded-proto http
  default_backend b_ka
backend b_ka
  $srv
backend b_fresh
  http-reuse never
  option http-server-close
  $srv
CONF
    haproxy -db -f "$W/hb.cfg" >"$W/hb.log" 2>&1 &
    HB_PID=$!
    PIDS+=("$HB_PID")
    started hb "$HB_PID" "$HB_IN"
    haproxy -db -f "$W/ha.cfg" >"$W/ha.log" 2>&1 &
    HA_PID=$!
    PIDS+=("$HA_PID")
    started ha "$HA_PID" "$HA_KA"

    echo
    echo "== workers=$w: outrider A :$OA_OUT -> B :$OB_IN; haproxy A :$HA_KA (fresh :$HA_FRESH) -> B :$HB_IN; backend :$BE =="
    declare -A R=() TLS=()
    for p in outrider haproxy; do
        check_pair "$p"
        TLS[$p]=$(wire_check "$p")
        echo "$p: A -> B on the wire: ${TLS[$p]}"
        wrk -t2 -c64 -d1s -H "Host: reviews:9080" "http://127.0.0.1:$(a_port "$p" ka)/" >/dev/null 2>&1 # warm up
    done
    code=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H "Host: reviews:9080" "http://127.0.0.1:$HA_KAH/")
    [[ $code == 200 ]] || die "haproxy+h: a request got $code"

    for ((r = 1; r <= ROUNDS; r++)); do
        echo "round $r: load average $(cut -d' ' -f1-3 /proc/loadavg)$(busy)"
        if ((r % 2)); then order="outrider haproxy"; else order="haproxy outrider"; fi
        for m in ka 1k fresh stime; do
            # haproxy+h: HAProxy's pair adding the fields a sidecar adds (ka only; first or last, by round)
            list=$order
            [[ $m == ka ]] && { ((r % 2)) && list="$order haproxy+h" || list="haproxy+h $order"; }
            for p in $list; do
                case $m in
                ka)
                    read -r pa pb < <(pids_of "$p")
                    h0=$(b_handshakes "$p") ca0=$(cpu_ticks "$pa") cb0=$(cpu_ticks "$pb")
                    read -r mb0 mi0 ms0 < <(machine_ticks)
                    ng0=$(cpu_ticks "$BE_WORKER") sg0=$(tcp_out_segs) si0=$(softirqs)
                    wn0=$(wakeups "$BE_WORKER") wp0=$(wakeups "$pa" "$pb")
                    read -r rps p50 p99 n bad < <(run_wrk "$p" ka)
                    read -r mb1 mi1 ms1 < <(machine_ticks)
                    ng=$(($(cpu_ticks "$BE_WORKER") - ng0)) sg=$(($(tcp_out_segs) - sg0)) si1=$(softirqs)
                    wn=$(($(wakeups "$BE_WORKER") - wn0)) wp=$(($(wakeups "$pa" "$pb") - wp0))
                    h1=$(b_handshakes "$p") ca=$(($(cpu_ticks "$pa") - ca0)) cb=$(($(cpu_ticks "$pb") - cb0))
                    cpa=$(cpu_us "$ca" "$n") cpb=$(cpu_us "$cb" "$n")
                    # the rest of the machine: wrk, nginx and the kernel's share not charged to A or B; and idle
                    cpo=$(cpu_us $((mb1 - mb0 - ca - cb)) "$n")
                    idle=$(awk -v i=$((mi1 - mi0)) -v b=$((mb1 - mb0)) 'BEGIN { if (i + b > 0) printf "%.0f", 100 * i / (i + b) }')
                    R[$p,ka_rps]+=" $rps" R[$p,ka_p50]+=" $p50" R[$p,ka_p99]+=" $p99"
                    R[$p,ka_ca]+=" $cpa" R[$p,ka_cb]+=" $cpb"
                    echo "round $r $p ka: rps=$rps p50=${p50}ms p99=${p99}ms requests=$n bad=$bad" \
                        "B_handshakes=$((${h1%% *} - ${h0%% *})) cpu_us/request A=$cpa B=$cpb rest=$cpo" \
                        "(nginx $(cpu_us "$ng" "$n"), softirq $(cpu_us $((ms1 - ms0)) "$n")); idle ${idle}%;" \
                        "TCP segments/request $(awk -v s="$sg" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", s / n }');" \
                        "softirqs/request (NET_RX TIMER SCHED RCU) $(awk -v a="$si0" -v b="$si1" -v n="$n" 'BEGIN {
                            split(a, x, " "); split(b, y, " "); for (i = 1; i <= 4; i++) printf "%.2f ", (y[i] - x[i]) / n }')" \
                        "wake-ups/request A+B $(awk -v w="$wp" -v n="$n" 'BEGIN { if (n > 0) printf "%.3f", w / n }')" \
                        "nginx $(awk -v w="$wn" -v n="$n" 'BEGIN { if (n > 0) printf "%.3f", w / n }');" \
                        "connections B -> backend $(ss -tnpH state established "( dport = :$BE )" | grep -c "pid=$pb,")," \
                        "A -> B $(ss -tnpH state established "( dport = :$(b_port "$p") )" | grep -c "pid=$pa,")"
                    ;;
                1k)
                    read -r rps p50 p99 p999 bad < <(run_hey "$p")
                    R[$p,k_p50]+=" $p50" R[$p,k_p99]+=" $p99" R[$p,k_p999]+=" $p999"
                    echo "round $r $p 1000rps: done=${rps}/s p50=${p50}ms p99=${p99}ms p99.9=${p999}ms bad=$bad"
                    ;;
                fresh)
                    read -r pa pb < <(pids_of "$p")
                    h0=$(b_handshakes "$p") ca0=$(cpu_ticks "$pa") cb0=$(cpu_ticks "$pb")
                    read -r rps p50 p99 n bad < <(run_wrk "$p" fresh)
                    h1=$(b_handshakes "$p") ca=$(($(cpu_ticks "$pa") - ca0)) cb=$(($(cpu_ticks "$pb") - cb0))
                    cpa=$(cpu_us "$ca" "$n") cpb=$(cpu_us "$cb" "$n")
                    read -r hs res < <(echo $((${h1%% *} - ${h0%% *})) $((${h1##* } - ${h0##* })))
                    per=$(awk -v h="$hs" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", h / n; else print "-" }')
                    pres=$(awk -v h="$hs" -v r="$res" 'BEGIN { if (h > 0) printf "%.0f", 100 * r / h; else print "-" }')
                    R[$p,hs_rps]+=" $rps" R[$p,hs_p99]+=" $p99" R[$p,hs_per]+=" $per" R[$p,hs_res]+=" $pres"
                    R[$p,hs_ca]+=" $cpa" R[$p,hs_cb]+=" $cpb"
                    echo "round $r $p fresh: rps=$rps p50=${p50}ms p99=${p99}ms requests=$n bad=$bad" \
                        "B_handshakes=$hs (${per}/request, ${pres}% resumed) cpu_us/request A=$cpa B=$cpb"
                    ;;
                stime)
                    cps=$(run_stime "$p")
                    R[$p,st]+=" $cps"
                    echo "round $r $p s_time -new: ${cps} connections/s"
                    ;;
                esac
            done
        done
    done

    for p in outrider haproxy haproxy+h; do
        for k in ka_rps ka_p50 ka_p99 ka_ca ka_cb k_p50 k_p99 k_p999 hs_rps hs_p99 hs_per hs_res hs_ca hs_cb st; do
            # shellcheck disable=SC2086 # the rounds' values, one word each
            R[$p,m.$k]=$(med ${R[$p,$k]:-})
        done
    done
    rss_pair() { echo "$(($(rss_kib "$1") / 1024))/$(($(rss_kib "$2") / 1024))"; } # PID_A PID_B: MiB
    R[outrider,rss]=$(rss_pair "$OA_PID" "$OB_PID") R[haproxy,rss]=$(rss_pair "$HA_PID" "$HB_PID")
    sleep 6 # then again, idle: what each keeps once the load is gone (Outrider's TLS sweep runs every 2 s)
    R[outrider,rss]+=" idle $(rss_pair "$OA_PID" "$OB_PID")" R[haproxy,rss]+=" idle $(rss_pair "$HA_PID" "$HB_PID")"
    for pid in "$OA_PID" "$OB_PID" "$HA_PID" "$HB_PID"; do
        kill -0 "$pid" 2>/dev/null || echo "warning: proxy $pid exited during the run" >&2
    done

    row() { # LABEL PAIR
        local p=$2
        printf '%-16s %8s %6s %6s %9s | %6s %6s %7s | %8s %6s %5s %5s %9s | %7s | %s\n' "$1" \
            "$(fmt "${R[$p,m.ka_rps]}" %.0f)" "$(fmt "${R[$p,m.ka_p50]}" %.2f)" "$(fmt "${R[$p,m.ka_p99]}" %.2f)" \
            "$(fmt "${R[$p,m.ka_ca]}" %.0f)/$(fmt "${R[$p,m.ka_cb]}" %.0f)" \
            "$(fmt "${R[$p,m.k_p50]}" %.2f)" "$(fmt "${R[$p,m.k_p99]}" %.2f)" "$(fmt "${R[$p,m.k_p999]}" %.2f)" \
            "$(fmt "${R[$p,m.hs_rps]}" %.0f)" "$(fmt "${R[$p,m.hs_p99]}" %.2f)" "$(fmt "${R[$p,m.hs_per]}" %.2f)" \
            "$(fmt "${R[$p,m.hs_res]}" %.0f)%" "$(fmt "${R[$p,m.hs_ca]}" %.0f)/$(fmt "${R[$p,m.hs_cb]}" %.0f)" \
            "$(fmt "${R[$p,m.st]}" %.0f)" "${R[$p,rss]}"
    }
    SUMMARY+=("workers=$w  ${TLS[outrider]}  |  haproxy: ${TLS[haproxy]}")
    SUMMARY+=("$(row "outrider w=$w" outrider)")
    SUMMARY+=("$(row "haproxy w=$w" haproxy)")
    SUMMARY+=("$(printf '%-16s %8s %6s %6s %9s |' "haproxy+h w=$w" "$(fmt "${R[haproxy+h,m.ka_rps]}" %.0f)" \
        "$(fmt "${R[haproxy+h,m.ka_p50]}" %.2f)" "$(fmt "${R[haproxy+h,m.ka_p99]}" %.2f)" \
        "$(fmt "${R[haproxy+h,m.ka_ca]}" %.0f)/$(fmt "${R[haproxy+h,m.ka_cb]}" %.0f)")")
    cpu_ratio() { # KEY_A KEY_B: outrider's A+B CPU per request over haproxy's
        awk -v a="${R[outrider,m.$1]}" -v b="${R[outrider,m.$2]}" -v c="${R[haproxy,m.$1]}" -v d="${R[haproxy,m.$2]}" \
            'BEGIN { if (c + d > 0 && a != "-" && c != "-") printf "%.2f", (a + b) / (c + d); else printf "-" }'
    }
    SUMMARY+=("$(printf '%-16s %8s %6s %6s %9s | %6s %6s %7s | %8s %6s %5s %5s %9s | %7s |' "outrider/haproxy" \
        "$(ratio "${R[outrider,m.ka_rps]}" "${R[haproxy,m.ka_rps]}")" "" \
        "$(ratio "${R[outrider,m.ka_p99]}" "${R[haproxy,m.ka_p99]}")" "$(cpu_ratio ka_ca ka_cb)" "" \
        "$(ratio "${R[outrider,m.k_p99]}" "${R[haproxy,m.k_p99]}")" \
        "$(ratio "${R[outrider,m.k_p999]}" "${R[haproxy,m.k_p999]}")" \
        "$(ratio "${R[outrider,m.hs_rps]}" "${R[haproxy,m.hs_rps]}")" \
        "$(ratio "${R[outrider,m.hs_p99]}" "${R[haproxy,m.hs_p99]}")" "" "" "$(cpu_ratio hs_ca hs_cb)" \
        "$(ratio "${R[outrider,m.st]}" "${R[haproxy,m.st]}")")")
    SUMMARY+=("$(printf '%-16s %8s %6s %6s %9s |' "outrider/hap+h" \
        "$(ratio "${R[outrider,m.ka_rps]}" "${R[haproxy+h,m.ka_rps]}")" "" \
        "$(ratio "${R[outrider,m.ka_p99]}" "${R[haproxy+h,m.ka_p99]}")" "")")

    for pid in "$OA_PID" "$OB_PID" "$HA_PID" "$HB_PID"; do stop "$pid"; done
done

echo
echo "== summary: median of $ROUNDS rounds x ${DUR}s; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)$(busy) =="
echo "ka: wrk -t2 -c64 keep-alive through A (rps, p50/p99 ms); 1000 rps: hey -c10 -q100 (p50/p99/p99.9 ms);"
echo "fresh: wrk -t2 -c64 with a new A->B TLS connection per request (rps = handshakes/s, p99 ms, B handshakes"
echo "per request, % resumed); s_time: openssl s_time -new straight to B (full handshakes + 1 request, /s);"
echo "cpu: A/B CPU (user+system) microseconds per request; RSS: A/B VmRSS MiB after the runs, and 6 s later."
echo "haproxy+h: HAProxy's pair with A adding what a sidecar adds to a request (x-forwarded-for, -proto,"
echo "traceparent, b3, x-b3-*, x-request-id; B appending to x-forwarded-for), so the backend reads the same head."
echo "Ratios: outrider/haproxy (rps: higher is better; latency and CPU, A+B: lower is better)."
printf '%-16s %8s %6s %6s %9s | %6s %6s %7s | %8s %6s %5s %5s %9s | %7s | %s\n' pair ka_rps p50 p99 cpu_A/B \
    p50 p99 p99.9 fresh_rps p99 hs/rq resum cpu_A/B s_time RSS_A/B
for line in "${SUMMARY[@]}"; do echo "$line"; done
