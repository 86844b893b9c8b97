#!/usr/bin/env bash
# Installs the Debian packages Outrider builds, tests and runs with, when any is missing.
# Runs `apt-get update` once, then `apt-get install -y` only for what is absent.
set -euo pipefail
PKGS=(
  # build
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
  # libraries (DESIGN.md, Dependencies)
  libmicrohttpd-dev libprotobuf-c-dev protobuf-c-compiler libzstd-dev zlib1g-dev libfyaml-dev
  libyajl-dev libjansson-dev libxxhash-dev libcmocka-dev librdkafka-dev libhiredis-dev libuv1-dev
  libssl-dev libutf8proc-dev
  node-llhttp               # the proxy's HTTP/1 parser, packaged by Debian as C sources (docs/decisions.md)
  libcurl4-openssl-dev      # the collector's query role asks the store members over HTTP (docs/decisions.md)
  libsnappy-dev             # remote write bodies are snappy block-compressed, as the protocol requires
  libisal-dev               # gzip for /metrics scrapes: ISA-L's igzip, ~20x zlib's speed at level 1
  # tests: real peers and tools
  curl openssl jq zstd python3-prometheus-client prometheus redis-server nginx haproxy kcat wrk hey python3
  iptables                  # tests/integration/test_proxy_transparent.sh: `outriderctl redirect` in network namespaces
  podman                    # scripts/image.sh and tests/compat/test_images.sh: the container images
  protobuf-compiler         # protoc --decode: the Kafka tests read the proto3 and OTLP messages with it
  openjdk-17-jdk-headless   # tests/compat/test_java_text.sh: Java's lowercasing, as a Zipkin server's
  chromium                  # the /mesh service graph page is tested in headless Chromium (playwright-core drives it)
  python3-yaml              # tests read the Prometheus rule files and dashboards' provisioning YAML
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js (for the third-party client tests) may come from another apt source; install Debian's only if absent
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# kubectl (its kustomize renders deploy/kubernetes in tests/compat/test_kubernetes_manifests.sh): Debian's, if absent
command -v kubectl >/dev/null 2>&1 || missing+=(kubernetes-client)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
