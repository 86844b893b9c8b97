#!/usr/bin/env bash
# Builds the container images from the release build, with podman (or buildah):
#   scripts/image.sh proxy|collector [TAG]     (default tag outrider/NAME:VERSION)
# The rootfs (build/image/NAME/rootfs) holds the binaries, every shared library they load (as ldd
# lists them, with the dynamic loader), /etc/passwd and /etc/group with the image's user, and for the
# proxy iptables-restore / ip6tables-restore with their extension modules; then
# deploy/images/NAME.Containerfile is built FROM scratch over it. Prints the image's size.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:?usage: scripts/image.sh proxy|collector [TAG]}
VERSION=$(sed -n 's/^project(outrider VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
TAG=${2:-outrider/$NAME:${VERSION:-0.1.0}}
BIN=${OUTRIDER_BIN:-build/release/bin}
OUT=${IMAGE_DIR:-build/image}/$NAME
case $NAME in
proxy) BINS=("$BIN/outrider-proxy" "$BIN/outriderctl") USER_LINE="outrider:x:1337:1337::/:/sbin/nologin" ;;
collector) BINS=("$BIN/outrider-collector") USER_LINE="outrider:x:10001:10001::/:/sbin/nologin" ;;
*) echo "image.sh: proxy or collector, not $NAME" >&2; exit 2 ;;
esac
for b in "${BINS[@]}"; do [[ -x $b ]] || { echo "image.sh: no $b: build the release first" >&2; exit 1; }; done
command -v podman >/dev/null || command -v buildah >/dev/null || { echo "image.sh: needs podman or buildah" >&2; exit 1; }

rm -rf "$OUT"
R=$OUT/rootfs
mkdir -p "$R/usr/local/bin" "$R/etc" "$R/tmp"
chmod 1777 "$R/tmp"
files=()
for b in "${BINS[@]}"; do
    cp "$b" "$R/usr/local/bin/"
    strip --strip-unneeded "$R/usr/local/bin/$(basename "$b")" # the release build keeps its debug information
    files+=("$b")
done
if [[ $NAME == proxy ]]; then
    # the init container's iptables: the nft backend, its two restore commands and the match/target modules
    x=$(command -v xtables-nft-multi) || { echo "image.sh: no xtables-nft-multi (apt-get install iptables)" >&2; exit 1; }
    mkdir -p "$R/usr/sbin"
    cp "$x" "$R/usr/sbin/xtables-nft-multi"
    for c in iptables-restore ip6tables-restore iptables ip6tables; do ln -s xtables-nft-multi "$R/usr/sbin/$c"; done
    files+=("$x")
    mods=/usr/lib/x86_64-linux-gnu/xtables
    mkdir -p "$R$mods"
    for m in libxt_standard libxt_tcp libxt_owner libxt_REDIRECT libxt_comment libipt_REDIRECT libip6t_REDIRECT; do
        [[ -f $mods/$m.so ]] && { cp "$mods/$m.so" "$R$mods/"; files+=("$mods/$m.so"); }
    done
fi
# every shared library any of them loads, at its own path, and the loader
for f in "${files[@]}"; do
    ldd "$f" 2>/dev/null | awk '/=> \// {print $3} /^\t\// {print $1}'
done | sort -u | while read -r lib; do
    mkdir -p "$R$(dirname "$lib")"
    cp -L "$lib" "$R$lib"
done
printf 'root:x:0:0::/:/sbin/nologin\n%s\n' "$USER_LINE" >"$R/etc/passwd"
printf 'root:x:0:\n%s\n' "$(echo "$USER_LINE" | awk -F: '{print $1 ":x:" $4 ":"}')" >"$R/etc/group"
printf 'hosts: files dns\n' >"$R/etc/nsswitch.conf"
[[ -f /etc/ssl/certs/ca-certificates.crt ]] && { mkdir -p "$R/etc/ssl/certs"; cp /etc/ssl/certs/ca-certificates.crt "$R/etc/ssl/certs/"; }
cp "deploy/images/$NAME.Containerfile" "$OUT/Containerfile"
if command -v podman >/dev/null; then
    podman build -q -t "$TAG" -f "$OUT/Containerfile" "$OUT" >/dev/null
    size=$(podman image inspect "$TAG" --format '{{.Size}}')
else
    buildah bud -q -t "$TAG" -f "$OUT/Containerfile" "$OUT" >/dev/null
    size=$(buildah inspect --type image --format '{{.FromImage}}' "$TAG" >/dev/null; du -sb "$R" | cut -f1)
fi
echo "$TAG: $size bytes ($(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1048576}') MiB)"
