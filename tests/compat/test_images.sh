#!/usr/bin/env bash
# The container images (issue 13): scripts/image.sh builds outrider/proxy and outrider/collector with
# podman from the release build (FROM scratch over the binaries and the shared libraries they load),
# and this checks them:
#  - dockerfilelint (npm, pinned) passes both Containerfiles;
#  - the proxy image (its mounted filesystem) is under 20 MB and runs as uid 1337, the collector's as 10001; the entrypoints;
#  - they run: `podman run` where this machine allows it; where it cannot start a container (here the
#    runtime may not set a container's rlimits: "setrlimit ... Operation not permitted"), the image's
#    own filesystem (podman image mount) is run instead, under chroot as the image's user: the proxy
#    serves a request to a backend, outriderctl installs the capture rules with the image's own
#    iptables-restore in a network namespace of the test's, and the collector answers /health.
# Skipped (exit 77) without podman or root.
. "$(dirname "$0")/../lib.sh"

command -v podman >/dev/null || { echo "SKIP: no podman (Debian: apt-get install podman)"; exit 77; }
[[ $(id -u) == 0 ]] || { echo "SKIP: needs root (podman image mount, chroot, network namespaces)"; exit 77; }
NODE_DIR=$OUTRIDER_SRC/tests/compat
# images are made of release binaries: a sanitizer build (the asan preset's run) uses the release build beside it
IMG_BIN=$OUTRIDER_BIN
if ldd "$OUTRIDER_BIN/outrider-proxy" | grep -q 'libasan\|libubsan'; then
    IMG_BIN=$OUTRIDER_SRC/build/release/bin
    [[ -x $IMG_BIN/outrider-proxy && -x $IMG_BIN/outriderctl && -x $IMG_BIN/outrider-collector ]] ||
        { echo "SKIP: $OUTRIDER_BIN is a sanitizer build and there is no release build to make images of"; exit 77; }
    note "the images are made of $IMG_BIN (the tests' binaries are a sanitizer build)"
fi
TAGP=localhost/outrider-test/proxy:$$
TAGC=localhost/outrider-test/collector:$$
NS=outrider-img-$$
cleanup_images() {
    podman image unmount "$TAGP" "$TAGC" >/dev/null 2>&1 || true
    podman rmi -f "$TAGP" "$TAGC" >/dev/null 2>&1 || true
    ip netns del "$NS" 2>/dev/null || true
}
trap '_t_rc=$?; cleanup_images; _lib_cleanup "$_t_rc"' EXIT

"$NODE_DIR/node_modules/.bin/dockerfilelint" "$OUTRIDER_SRC/deploy/images/proxy.Containerfile" \
    "$OUTRIDER_SRC/deploy/images/collector.Containerfile" >"$T/lint.out" 2>&1 || fail "dockerfilelint: $(cat "$T/lint.out")"

for x in proxy:$TAGP collector:$TAGC; do
    IMAGE_DIR=$T/image OUTRIDER_BIN=$IMG_BIN "$OUTRIDER_SRC/scripts/image.sh" "${x%%:*}" "${x#*:}" >"$T/build.out" 2>&1 ||
        fail "scripts/image.sh ${x%%:*}: $(cat "$T/build.out")"
    note "$(cat "$T/build.out")"
done
assert_eq "1337:1337" "$(podman image inspect "$TAGP" --format '{{.Config.User}}')" "the proxy image's user"
assert_eq "10001:10001" "$(podman image inspect "$TAGC" --format '{{.Config.User}}')" "the collector image's user"
assert_eq "[/usr/local/bin/outrider-proxy]" "$(podman image inspect "$TAGP" --format '{{.Config.Entrypoint}}')" "entrypoint"

# ---- run ----
if podman run --rm "$TAGP" --version >"$T/run.out" 2>&1; then
    grep -q '^outrider-proxy ' "$T/run.out" || fail "podman run: $(cat "$T/run.out")"
    note "podman run: $(cat "$T/run.out")"
else
    grep -qE 'setrlimit|OCI permission denied|cannot' "$T/run.out" || fail "podman run failed: $(cat "$T/run.out")"
    note "podman cannot start containers here ($(tail -1 "$T/run.out")): running the images' filesystems under chroot"
fi
P=$(podman image mount "$TAGP") || fail "podman image mount $TAGP"
C=$(podman image mount "$TAGC") || fail "podman image mount $TAGC"
# the size is what the image holds: its mounted filesystem. podman's own figure (.Size) once counted
# 43.9 MB for a 17.4 MiB image in one CI run out of about ten; it is only reported here.
size=$(du -sb "$P" | cut -f1)
[[ $size -lt 20000000 ]] || fail "the proxy image holds $size bytes, not under 20 MB (podman: $(podman image inspect "$TAGP" --format '{{.Size}}'))"
note "the proxy image holds $size bytes (podman .Size: $(podman image inspect "$TAGP" --format '{{.Size}}'))"
inP() { chroot --userspec=1337:1337 "$P" "$@"; }
assert_eq "outrider-proxy 0.1.0" "$(inP /usr/local/bin/outrider-proxy --version)" "the image's proxy runs"

# the proxy from the image serves a request; its configuration comes in as a mounted ConfigMap would:
# a directory of the test's bound over the image's /tmp, in a mount namespace of the proxy's own
start_backend app
mkdir -p "$T/cfg"
chmod 755 "$T" "$T/cfg"
cat >"$T/cfg/p.yaml" <<YAML
apiVersion: outrider.io/v1alpha1
kind: Proxy
metadata: {name: img, namespace: shop}
spec: {outbound: {listen: 127.0.0.1:0}, admin: {listen: 127.0.0.1:0}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: app}
spec: {hosts: [app], ports: [{number: 80, name: http}], resolution: STATIC, endpoints: [{address: 127.0.0.1, ports: {http: $BACKEND_PORT}}]}
YAML
chmod 644 "$T/cfg/p.yaml"
unshare --mount bash -c 'mount --bind "$1" "$2/tmp" && exec chroot --userspec=1337:1337 "$2" \
    /usr/local/bin/outrider-proxy --config /tmp/p.yaml' _ "$T/cfg" "$P" >"$T/img-proxy.log" 2>&1 &
track_pid $!
up() { grep -q 'listening admin http://' "$T/img-proxy.log"; }
wait_until -n 400 up || fail "the image's proxy did not start: $(cat "$T/img-proxy.log")"
OUT=$(grep -o 'listening outbound http://[^ ]*' "$T/img-proxy.log" | head -1 | sed 's/.*://')
assert_eq 200 "$(http_status GET "http://127.0.0.1:$OUT/" -H 'Host: app')" "a request through the image's proxy"

# the init container's job, with the image's own outriderctl and iptables-restore, in a namespace of ours
ip netns add "$NS" || fail "ip netns add"
ip netns exec "$NS" chroot "$P" /usr/local/bin/outriderctl redirect --proxy-uid 1337 >"$T/redirect.out" 2>&1 ||
    fail "the image's outriderctl redirect: $(cat "$T/redirect.out")"
ip netns exec "$NS" chroot "$P" /usr/sbin/iptables -t nat -S >"$T/rules.out" 2>&1 || fail "iptables -S: $(cat "$T/rules.out")"
grep -qx -- '-A OUTRIDER_OUTPUT -m owner --uid-owner 1337 -j RETURN' "$T/rules.out" || fail "rules: $(cat "$T/rules.out")"

# the collector from its image answers /health
ZP=$(free_port)
OP=$(free_port)
chroot --userspec=10001:10001 "$C" /usr/local/bin/outrider-collector --zipkin-listen "127.0.0.1:$ZP" \
    --otlp-listen "127.0.0.1:$OP" >"$T/img-collector.log" 2>&1 &
track_pid $!
healthy() { curl -sf "http://127.0.0.1:$ZP/health" >/dev/null; }
wait_until -n 200 -i 0.05 healthy || fail "the image's collector: $(cat "$T/img-collector.log")"
echo "1 passed, 0 failed"
