#!/usr/bin/env bash
# /metrics on a large mesh (issue 10, "Benchmark"): what one Prometheus scrape of the collector
# costs when 1000 Istio-style sidecars report to it. Bounded in count and time; uses the release
# build in build/release (or $OUTRIDER_BIN); starts everything on ephemeral loopback ports and
# kills only the processes it started.
#
# For each size in WORKLOADS, a fresh collector is loaded by metrics_load with WORKLOADS sidecars x
# DESTINATIONS peers x CODES response codes label sets (1000 x 5 x 3 = 15,000), each in
# istio_requests_total and three histograms (duration 19 buckets, request and response bytes 10)
# with Istio's full 25-label set, ROUNDS rounds of DELTA points. Then, each the median (and
# min-max) of SCRAPES scrapes after one first scrape that is reported apart ("first_s") and saved
# for the line count and the local compression references; first_byte is the median time to the
# first byte of the answer:
#   text          GET /metrics                           curl's time_total, bytes on the wire
#   gzip          the same with Accept-Encoding: gzip    (Content-Encoding as the collector answers)
#   openmetrics   Accept: application/openmetrics-text; version=1.0.0
#   memory        the collector's peak RSS during a scrape (VmHWM, reset before each scrape through
#                 /proc/PID/clear_refs), the largest of the mode's scrapes: peak_MiB; over_load, the
#                 same over the RSS after load (what serving scrapes adds); rise_MiB, the largest rise
#                 over the RSS just before a scrape (later scrapes reuse what the allocator kept)
#   gzip -1 / zstd -1 of the saved text: local reference sizes and times
#   peer          prometheus_client (python3-prometheus-client) serving the same label sets in the
#                 same families, through its own HTTP server, scraped by the same loop (sizes up
#                 to PEER_MAX_WORKLOADS: a 3000-workload scrape of it takes minutes)
# and last, for several sizes, how the figures grow with the number of label sets.
#
# usage: tests/bench/metrics_scrape_bench.sh
# env:   WORKLOADS ("1000"; a list like "100 1000 3000" runs each), DESTINATIONS (5), CODES (3),
#        ROUNDS (2), SCRAPES (5), PEER (1; 0 skips the peer), PEER_MAX_WORKLOADS (1000),
#        PEER_SCRAPES (3), BYTES_HISTOGRAMS (1), SCRAPE_TIMEOUT (300 s a scrape)
# The machine has 2 cores: curl, gzip and the collector compete for them, and other test suites
# may be running; compare figures from the same run.
. "$(dirname "$0")/../lib.sh" # set -euo pipefail, $T, start_collector, track_pid, stop_pid
BIN=$OUTRIDER_BIN
WORKLOADS=${WORKLOADS:-1000}
DESTINATIONS=${DESTINATIONS:-5}
CODES=${CODES:-3}
ROUNDS=${ROUNDS:-2}
SCRAPES=${SCRAPES:-5}
PEER=${PEER:-1}
PEER_MAX_WORKLOADS=${PEER_MAX_WORKLOADS:-1000}
PEER_SCRAPES=${PEER_SCRAPES:-3}
BYTES_HISTOGRAMS=${BYTES_HISTOGRAMS:-1}
SCRAPE_TIMEOUT=${SCRAPE_TIMEOUT:-300}
PY=/usr/bin/python3
OM='application/openmetrics-text; version=1.0.0'

for tool in outrider-collector metrics_load; do
  [ -x "$BIN/$tool" ] || { echo "no $BIN/$tool: build the release preset first"; exit 1; }
done

kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; } # pid field -> kB
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }
kv() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p"; }
median() { sort -g | awk '{a[NR] = $1} END {if (NR) printf "%s %s-%s", a[int((NR + 1) / 2)], a[1], a[NR]; else print "- -"}'; }

# scrape PID URL MODE OUT: one scrape into OUT; prints "time_s bytes content_encoding http_code peak_kB rise_kB
# first_byte_s": the process's peak RSS during the scrape, its rise over the RSS just before, and curl's
# time_starttransfer (a server that renders the whole page before sending spends it rendering)
scrape() {
  local pid=$1 url=$2 mode=$3 out=$4 hdr=()
  case $mode in
    gzip) hdr=(-H 'Accept-Encoding: gzip') ;;
    openmetrics) hdr=(-H "Accept: $OM") ;;
  esac
  local reset=0
  echo 5 >"/proc/$pid/clear_refs" 2>/dev/null && reset=1
  local rss0; rss0=$(kb "$pid" VmRSS)
  local hwm0; hwm0=$(kb "$pid" VmHWM)
  local w; w=$(curl -sS --max-time "$SCRAPE_TIMEOUT" "${hdr[@]}" -D "$T/h.txt" -o "$out" \
    -w '%{time_total} %{size_download} %{http_code} %{time_starttransfer}' "$url/metrics")
  local hwm1; hwm1=$(kb "$pid" VmHWM)
  local enc; enc=$(awk 'tolower($1) == "content-encoding:" {gsub(/\r/, "", $2); print $2}' "$T/h.txt")
  local base=$rss0; [ "$reset" = 1 ] || base=$hwm0
  set -- $w
  [ "$3" = 200 ] || { echo "scrape of $url ($mode) answered $3" >&2; exit 1; }
  echo "$1 $2 ${enc:-identity} $3 $hwm1 $((hwm1 > base ? hwm1 - base : 0)) $4"
}

# measure NAME PID URL N BASE_KB: the first scrape (kept as $T/NAME-MODE.out) and N more of each mode; one table
# row each; over_base is the peak over BASE_KB (the RSS after load)
measure() {
  local name=$1 pid=$2 url=$3 n=$4 base=$5 mode
  for mode in text gzip openmetrics; do
    local first; first=$(scrape "$pid" "$url" "$mode" "$T/$name-$mode.out")
    : >"$T/runs"
    for _ in $(seq "$n"); do scrape "$pid" "$url" "$mode" /dev/null >>"$T/runs"; done
    local lines=-
    [ "$mode" = gzip ] || lines=$(wc -l <"$T/$name-$mode.out")
    local t b fb
    t=$(awk '{print $1}' "$T/runs" | median)
    fb=$(awk '{print $7}' "$T/runs" | median | cut -d' ' -f1)
    b=$(awk '{print $2}' "$T/runs" | median | cut -d' ' -f1)
    local peak rise
    peak=$( (echo "$first"; cat "$T/runs") | awk '$5 > m {m = $5} END {print m + 0}')
    rise=$( (echo "$first"; cat "$T/runs") | awk '$6 > m {m = $6} END {print m + 0}')
    printf '%-30s %-9s %-20s %-9s %-8s %-11s %-9s %-9s %-8s %-9s %-9s %s\n' "$name $mode" "${t%% *}" "${t#* }" \
      "$fb" "$(echo "$first" | cut -d' ' -f1)" "$b" "$lines" "$(echo "$first" | cut -d' ' -f3)" "$(mib "$peak")" \
      "$(mib $((peak > base ? peak - base : 0)))" "$(mib "$rise")" \
      "$(awk -v b="$b" -v s="${t%% *}" 'BEGIN {printf "%.0f", (s > 0 ? b / s / 1048576 : 0)}')"
    if [ "$mode" = text ]; then echo "$t $b $lines $((peak > base ? peak - base : 0))" >"$T/$name.text"; fi
  done
}

header() {
  printf '%-30s %-9s %-20s %-9s %-8s %-11s %-9s %-9s %-8s %-9s %-9s %s\n' scrape median_s min-max_s first_byte first_s \
    bytes lines encoding peak_MiB over_load rise_MiB MiB_per_s
}

echo "# /metrics scrape benchmark, $(date -u +%F), $(nproc) cores, $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# shape: WORKLOADS x $DESTINATIONS destinations x $CODES codes label sets, 25 Istio labels each;" \
  "istio_requests_total + duration histogram$([ "$BYTES_HISTOGRAMS" = 1 ] && echo ' + request/response bytes histograms')," \
  "$ROUNDS DELTA rounds; median of $SCRAPES scrapes (peer: $PEER_SCRAPES) after a first one"
: >"$T/summary"
for n in $WORKLOADS; do
  sets=$((n * DESTINATIONS * CODES))
  metrics=$([ "$BYTES_HISTOGRAMS" = 1 ] && echo 4 || echo 2)
  echo
  echo "## $n workloads: $sets label sets, $((sets * metrics)) series"
  start_collector --set metrics.maxSeries=$((sets * metrics + 10000)) --set limits.memoryLimit=16GiB
  CPID=$COLLECTOR_PID
  rss0=$(kb "$CPID" VmRSS)
  load=$("$BIN/metrics_load" --url "$OTLP_URL/v1/metrics" --workloads "$n" --destinations "$DESTINATIONS" \
    --codes "$CODES" --rounds "$ROUNDS" --connections 2 --pid "$CPID" --seed 1 \
    --bytes-histograms "$BYTES_HISTOGRAMS" --labels-out "$T/labels.tsv" | tail -n1) || {
    echo "metrics_load failed: $load"; exit 1; }
  rss1=$(kb "$CPID" VmRSS)
  echo "load: $(echo "$load" | sed 's/^format=[^ ]* //')"
  echo "collector rss: before load $(mib "$rss0") MiB, after load $(mib "$rss1") MiB" \
    "($(awk -v a="$rss0" -v b="$rss1" -v s="$((sets * metrics))" 'BEGIN {printf "%.0f", (b - a) * 1024 / s}') bytes per series)"
  header
  measure outrider "$CPID" "$ZIPKIN_URL" "$SCRAPES" "$rss1"
  got=$(grep -c '^istio_requests_total{' "$T/outrider-text.out" || true)
  [ "$got" = "$sets" ] || echo "WARNING: the scrape holds $got istio_requests_total series, not $sets"
  for z in "gzip -1" "zstd -1 -q"; do
    t0=$(date +%s.%N)
    zb=$($z -c "$T/outrider-text.out" | wc -c)
    t1=$(date +%s.%N)
    printf '%-30s %-9s %-20s %-9s %-8s %-11s\n' "local ${z% -q} of text" "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')" \
      - - - "$zb"
  done
  read -r text_s _ text_b text_lines text_rise <"$T/outrider.text"
  echo "$n $sets $text_s $text_b $text_lines $rss1 $text_rise" >>"$T/summary"
  stop_pid "$CPID"
  rm -f "$T"/outrider-*.out
  if [ "$PEER" = 1 ] && [ "$n" -le "$PEER_MAX_WORKLOADS" ]; then
    if ! $PY -c 'import prometheus_client' 2>/dev/null; then
      echo "peer: skipped (no python3-prometheus-client; apt-get install python3-prometheus-client)"
    else
      $PY "$OUTRIDER_SRC/tests/bench/metrics_scrape_peer.py" "$T/labels.tsv" "$BYTES_HISTOGRAMS" >"$T/peer.out" 2>"$T/peer.err" &
      PPID_=$!; track_pid "$PPID_"
      for _ in $(seq 1200); do grep -q '^port=' "$T/peer.out" && break; sleep 0.25; done
      PP=$(kv port <<<" $(cat "$T/peer.out")")
      [ -n "$PP" ] || { echo "peer did not start: $(cat "$T/peer.err")"; exit 1; }
      prss=$(kb "$PPID_" VmRSS)
      echo "peer: prometheus_client $($PY -c 'import importlib.metadata as m; print(m.version("prometheus_client"))' 2>/dev/null || echo '?')," \
        "$(cat "$T/peer.out"), rss $(mib "$prss") MiB"
      measure prometheus_client "$PPID_" "http://127.0.0.1:$PP" "$PEER_SCRAPES" "$prss"
      stop_pid "$PPID_"
      rm -f "$T"/prometheus_client-*.out
    fi
  elif [ "$PEER" = 1 ]; then
    echo "peer: skipped above PEER_MAX_WORKLOADS=$PEER_MAX_WORKLOADS workloads"
  fi
done

if [ "$(wc -l <"$T/summary")" -gt 1 ]; then
  echo
  echo "## growth with size (outrider text scrape; ratios against the first size)"
  printf '%-10s %-11s %-10s %-9s %-12s %-10s %-12s %-13s %-12s %s\n' workloads label_sets text_s x_time MB x_bytes \
    us_per_line rss_load_MiB over_load_MiB x_sets
  awk '{ if (NR == 1) { s0 = $3; b0 = $4; n0 = $2 }
         printf "%-10s %-11s %-10s %-9.2f %-12.1f %-10.2f %-12.3f %-13.0f %-12.0f %.2f\n", $1, $2, $3, $3 / s0,
           $4 / 1e6, $4 / b0, ($5 > 0 ? $3 * 1e6 / $5 : 0), $6 / 1024, $7 / 1024, $2 / n0 }' "$T/summary"
fi
