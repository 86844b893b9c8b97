#!/usr/bin/env bash
# outrider-proxy inbound data path against a real backend (a small python3
# HTTP/1.1 server): GET and HEAD pass status and body through; keep-alive
# reuses the client connection; a 1 MiB POST arrives whole (content-length
# and chunked); x-forwarded-for/-proto reach the backend and hop-by-hop
# headers do not; pipelined requests are answered in order; a huge header
# gives 431; a dead backend gives 503; the proxy survives all of it and,
# on SIGTERM, finishes the request in flight and exits 0.
. "$(dirname "$0")/../lib.sh"

BIN=$OUTRIDER_BIN/outrider-proxy
[[ -x $BIN ]] || fail "no proxy binary at $BIN (set OUTRIDER_BIN)"
command -v python3 >/dev/null || fail "python3 is needed for the backend"

# ---- backend: GET /file (1 KiB), GET /headers (the request's headers as text),
# GET /n/K (body K), POST /echo (the body back; content-length or chunked) ----
cat >"$T/backend.py" <<'PY'
import http.server, os, sys, time
FILE = bytes((i * 7) % 251 for i in range(1024))
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, code, body, ctype="application/octet-stream"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
    def do_HEAD(self): self.do_GET()
    def do_GET(self):
        if self.path == "/file": return self.reply(200, FILE)
        if self.path == "/headers":
            text = "".join("%s: %s\n" % (k.lower(), v) for k, v in self.headers.items())
            return self.reply(200, text.encode(), "text/plain")
        if self.path.startswith("/n/"): return self.reply(200, self.path[3:].encode(), "text/plain")
        if self.path == "/reset":
            # promise 100000 bytes, send 10, then close: a reset mid-response
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path == "/slow":
            # held until the test creates the release file: an in-flight request during the drain
            open(sys.argv[1] + ".slow", "w").close()
            while not os.path.exists(sys.argv[1] + ".release"):
                time.sleep(0.02)
            return self.reply(200, b"slow", "text/plain")
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.reply(404, b"not found\n", "text/plain")
    def do_POST(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""): pass
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.reply(200, body)
s = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2]) if len(sys.argv) > 2 else 0), H)
with open(sys.argv[1] + ".tmp", "w") as f: f.write(str(s.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
s.serve_forever()
PY
python3 "$T/backend.py" "$T/backend.port" &
BACKEND_PID=$!
track_pid "$BACKEND_PID"
wait_until test -s "$T/backend.port" || fail "backend did not start"
BPORT=$(cat "$T/backend.port")

# ---- proxy: inbound on a free port -> backend, two workers (a fixed port,
# so that a second proxy on the same port can be tried below) ----
LPORT=$(free_port)
cat >"$T/proxy.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: inbound-test}
spec:
  inbound: {listen: 127.0.0.1:$LPORT, forwardTo: 127.0.0.1:$BPORT}
  outbound: {listen: 127.0.0.1:0}
  admin: {listen: 127.0.0.1:0}
  workers: 2
YAML
PLOG=$T/proxy.log
"$BIN" --config "$T/proxy.yaml" >"$PLOG" 2>&1 &
PROXY_PID=$!
track_pid "$PROXY_PID"
wait_until grep -q 'listening inbound http://' "$PLOG" || { cat "$PLOG" >&2; fail "proxy did not start"; }
PPORT=$(grep -o 'listening inbound http://127\.0\.0\.1:[0-9]*' "$PLOG" | head -1 | sed 's/.*://')
assert_eq "$LPORT" "$PPORT" "port in the 'listening inbound' line"

# a second proxy on the same port is refused, not silently sharing it through SO_REUSEPORT
rc=0
"$BIN" --config "$T/proxy.yaml" >"$T/second.log" 2>&1 || rc=$?
assert_eq 4 "$rc" "exit code of a second proxy on the same port (log: $(cat "$T/second.log"))"
grep -q "another process listens there" "$T/second.log" || fail "second proxy's reason: $(cat "$T/second.log")"
P=http://127.0.0.1:$PPORT
note "backend :$BPORT, proxy :$PPORT"

proxy_alive() { kill -0 "$PROXY_PID" 2>/dev/null || { cat "$PLOG" >&2; fail "proxy died: $1"; }; }

# GET: status and body of the backend
code=$(http_status GET "$P/file")
assert_eq 200 "$code" "GET /file status"
python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); sys.exit(d != bytes((i*7)%251 for i in range(1024)))' "$LAST_BODY" ||
    fail "GET /file body differs from the backend's"
code=$(http_status GET "$P/nope")
assert_eq 404 "$code" "GET /nope status (the backend's 404 passes through)"

# HEAD: the backend's Content-Length, no body
curl -sS --max-time 20 --head "$P/file" -o "$T/head.txt" || fail "HEAD failed"
grep -qi '^content-length: 1024' "$T/head.txt" || fail "HEAD lost Content-Length: $(cat "$T/head.txt")"

# keep-alive: two URLs in one curl reuse one connection
out=$(curl -sS --http1.1 --max-time 20 -o /dev/null -o /dev/null -w '%{num_connects} ' "$P/n/1" "$P/n/2")
assert_eq "1 0 " "$out" "connections opened for two requests on one curl (keep-alive)"

# x-forwarded-for / x-forwarded-proto added; hop-by-hop fields removed
curl -sS --max-time 20 -H 'X-Forwarded-For: 203.0.113.9' -H 'Connection: keep-alive, x-secret' -H 'X-Secret: 1' \
    -H 'Keep-Alive: timeout=5' "$P/headers" -o "$T/h.txt" || fail "GET /headers failed"
grep -qx 'x-forwarded-for: 203.0.113.9, 127.0.0.1' "$T/h.txt" || fail "x-forwarded-for not appended: $(cat "$T/h.txt")"
grep -qx 'x-forwarded-proto: http' "$T/h.txt" || fail "x-forwarded-proto missing: $(cat "$T/h.txt")"
! grep -qiE '^(x-secret|keep-alive):' "$T/h.txt" || fail "hop-by-hop fields reached the backend: $(cat "$T/h.txt")"

# 1 MiB POST arrives whole, with Content-Length and re-chunked
head -c 1048576 /dev/urandom >"$T/big.bin"
want=$(sha256sum <"$T/big.bin" | cut -d' ' -f1)
code=$(http_status POST "$P/echo" --data-binary "@$T/big.bin" -H 'Content-Type: application/octet-stream')
assert_eq 200 "$code" "POST 1 MiB status"
assert_eq "$want" "$(sha256sum <"$LAST_BODY" | cut -d' ' -f1)" "POST 1 MiB echoed body (content-length)"
code=$(http_status POST "$P/echo" --data-binary "@$T/big.bin" -H 'Transfer-Encoding: chunked')
assert_eq 200 "$code" "POST 1 MiB chunked status"
assert_eq "$want" "$(sha256sum <"$LAST_BODY" | cut -d' ' -f1)" "POST 1 MiB echoed body (chunked)"

# raw-socket helpers: send bytes, read until the proxy closes
cat >"$T/raw.py" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
s.sendall(sys.stdin.buffer.read())
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d: break
        out += d
except ConnectionResetError:
    pass
sys.stdout.buffer.write(out)
PY

# pipelining: three requests in one write, answered in order
printf 'GET /n/first HTTP/1.1\r\nHost: a\r\n\r\nGET /n/second HTTP/1.1\r\nHost: a\r\n\r\nGET /n/third HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' |
    python3 "$T/raw.py" "$PPORT" >"$T/pipe.txt"
assert_eq 3 "$(grep -o 'HTTP/1.1 200' "$T/pipe.txt" | wc -l)" "pipelined responses: $(cat "$T/pipe.txt")"
bodies=$(python3 -c 'import sys,re; d=open(sys.argv[1],"rb").read().decode(); print(" ".join(re.findall(r"\r\n\r\n(first|second|third)", d)))' "$T/pipe.txt")
assert_eq "first second third" "$bodies" "pipelined response order"

# a huge header: 431 from the codec's limit, then the connection closes
python3 -c 'import sys; sys.stdout.buffer.write(b"GET /file HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")' |
    python3 "$T/raw.py" "$PPORT" >"$T/431.txt"
head -1 "$T/431.txt" | grep -q '^HTTP/1.1 431' || fail "huge header: expected 431, got: $(head -c 300 "$T/431.txt")"

# malformed and smuggling shapes: 400
printf 'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' |
    python3 "$T/raw.py" "$PPORT" >"$T/400.txt"
head -1 "$T/400.txt" | grep -q '^HTTP/1.1 400' || fail "CL+TE: expected 400, got: $(head -c 300 "$T/400.txt")"

# a chunked response is streamed back chunked (HTTP/1.1) and read whole
code=$(http_status GET "$P/chunked")
assert_eq 200 "$code" "GET /chunked status"
assert_eq "hello chunked world" "$(cat "$LAST_BODY")" "GET /chunked body"

# upstream reset mid-response: the client sees a short body and a closed connection
rc=0
curl -sS --max-time 20 -o "$T/reset.out" "$P/reset" 2>"$T/reset.err" || rc=$?
[[ $rc -ne 0 ]] || fail "a reset mid-response should not look like a complete response"
assert_eq 0123456789 "$(cat "$T/reset.out")" "bytes before the reset"

proxy_alive "after the edge cases"
code=$(http_status GET "$P/n/still")
assert_eq 200 "$code" "GET after the edge cases"

# backend down: 503 with a short text body; the proxy keeps serving
kill "$BACKEND_PID"
wait "$BACKEND_PID" 2>/dev/null || true
code=$(http_status GET "$P/file")
assert_eq 503 "$code" "GET with the backend down"
grep -q 'upstream' "$LAST_BODY" || fail "503 body: $(cat "$LAST_BODY")"
code=$(http_status GET "$P/file")
assert_eq 503 "$code" "second GET with the backend down"
proxy_alive "after 503s"

# the backend comes back on the same port: the proxy serves again
rm -f "$T/backend.port"
python3 "$T/backend.py" "$T/backend.port" "$BPORT" &
BACKEND_PID=$!
track_pid "$BACKEND_PID"
wait_until test -s "$T/backend.port" || fail "backend did not restart"
code=$(http_status GET "$P/n/back")
assert_eq 200 "$code" "GET after the backend came back"

# SIGTERM drains: a request in flight when the signal arrives is answered, then the proxy exits 0
curl -sS --max-time 30 -o "$T/slow.out" -w '%{http_code}' "$P/slow" >"$T/slow.code" 2>"$T/slow.err" &
CURL_PID=$!
track_pid "$CURL_PID"
wait_until test -e "$T/backend.port.slow" || fail "the slow request did not reach the backend"
kill -TERM "$PROXY_PID"
wait_until grep -q 'draining' "$PLOG" || fail "no 'draining' line after SIGTERM: $(cat "$PLOG")"
touch "$T/backend.port.release"
wait "$CURL_PID" || fail "in-flight request failed during the drain: $(cat "$T/slow.err")"
assert_eq 200 "$(cat "$T/slow.code")" "status of the request in flight at SIGTERM"
assert_eq slow "$(cat "$T/slow.out")" "body of the request in flight at SIGTERM"
rc=0
wait "$PROXY_PID" || rc=$?
assert_eq 0 "$rc" "proxy exit code after SIGTERM (log: $(tail -5 "$PLOG"))"
if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$PLOG"; then
    cat "$PLOG" >&2
    fail "sanitizer report in the proxy log"
fi
note "proxy inbound: all checks passed"
