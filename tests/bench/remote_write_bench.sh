#!/usr/bin/env bash
# Prometheus remote write on a large mesh (issue 10): remote-write samples pushed per CPU-second
# by the collector, with 1000 Istio-style sidecars reporting to it, and in the same run the peer
# that sends the same series to the same kind of receiver: Prometheus in agent mode scraping the
# collector's /metrics. Bounded in count and time; uses the release build in build/release (or
# $OUTRIDER_BIN); starts everything on ephemeral loopback ports and kills only the processes it
# started (lib.sh's trap, by PID).
#
# Shape: metrics_load with WORKLOADS sidecars x DESTINATIONS peers x CODES response codes label
# sets (1000 x 5 x 3 = 15,000), istio_requests_total and istio_request_duration_milliseconds (and
# with BYTES_HISTOGRAMS=1 the two byte-size histograms), Istio's full label set, DELTA points.
# A push holds every series of the store: 15,000 x (1 + 22) = 345,000 samples.
#
# Receiver: Debian's Prometheus 2.42 with --web.enable-remote-write-receiver, a fresh one (fresh
# TSDB) per sender. Its prometheus_tsdb_head_samples_appended_total, read from its /metrics every
# 0.5 s, tells when a push has fully arrived: a window starts and ends at a quiet moment, the count
# on a whole number of pushes in two reads in a row (nothing of the next one in yet).
#
#   outrider   the collector with remoteWrite.url at the receiver, remoteWrite.interval=INTERVAL.
#              One load round, then a first push (the receiver creates the series: its CPU is
#              reported apart), then PUSHES measured pushes with one more metrics_load round
#              before each (so the values change between pushes, as on a live mesh).
#              sender CPU-s = the collector's utime+stime (/proc/PID/stat) over the window minus
#              what it spent in the load rounds (its CPU read around each round; the remote write
#              thread, named outrider-rw, must not run meanwhile, or the row is marked);
#              rw_thread_cpu_s = that thread's own utime+stime (/proc/PID/task/TID/stat).
#              samples pushed = the rise of outrider_remote_write_samples_total{result="sent"}.
#   agent      prometheus --enable-feature=agent scraping the collector's /metrics every INTERVAL
#              (metric_relabel_configs keep istio_.*: the same series, plus its 5 report series
#              such as up), remote-writing 2000 samples a request (the collector's default;
#              2.42's is 500) to its own fresh receiver. Its first scrapes create the series and
#              take it minutes: its window starts at the first quiet moment after two scrapes
#              (that warm-up is reported apart). The same load rounds between scrapes.
#              sender CPU-s = the agent's utime+stime over the window (scrape, parse, WAL,
#              remote write); samples pushed = the rise of its prometheus_remote_storage_samples_total.
#              The collector's CPU serving those scrapes (minus the load rounds) is printed too.
# receiver CPU-s is the receiver's utime+stime over the same window, accepted its appended samples.
# Memory: the collector's peak RSS (VmHWM) over the run, and its RSS after the first load.
#
# usage: tests/bench/remote_write_bench.sh
# env:   WORKLOADS (1000), DESTINATIONS (5), CODES (3), BYTES_HISTOGRAMS (0), PUSHES (3 measured
#        pushes a sender), INTERVAL (30 s between pushes and between the agent's scrapes: the
#        receiver needs about 15 s of wall time for one push here), PEER (1; 0 skips the agent),
#        PROMETHEUS (the prometheus binary), WAIT_MAX (600 s: the longest wait for one push to
#        arrive before giving up; a hang guard, not a figure)
# The machine has 2 cores: receiver, sender and load generator share them; CPU seconds are not
# wall time, but compare figures from the same run.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh" # set -euo pipefail, $T, start_collector, track_pid, stop_pid, free_port
BIN=$OUTRIDER_BIN
WORKLOADS=${WORKLOADS:-1000}
DESTINATIONS=${DESTINATIONS:-5}
CODES=${CODES:-3}
BYTES_HISTOGRAMS=${BYTES_HISTOGRAMS:-0}
PUSHES=${PUSHES:-3}
INTERVAL=${INTERVAL:-30}
PEER=${PEER:-1}
WAIT_MAX=${WAIT_MAX:-600}
PROMETHEUS=${PROMETHEUS:-$(command -v prometheus || true)}
HZ=$(getconf CLK_TCK)

for tool in outrider-collector metrics_load; do
  [ -x "$BIN/$tool" ] || { echo "no $BIN/$tool: build the release preset first"; exit 1; }
done
[ -x "$PROMETHEUS" ] || { echo "prometheus is not installed (Debian package prometheus)"; exit 1; }

ticks() { # PID [TID]: utime+stime in clock ticks (fields 14 and 15; comm may hold spaces)
  local f=/proc/$1/stat s a
  [ -n "${2:-}" ] && f=/proc/$1/task/$2/stat
  s=$(cat "$f") || return 1
  s=${s##*) }
  read -ra a <<<"$s"
  echo $((a[11] + a[12]))
}
thread_of() { # PID NAME: the id of PID's thread named NAME
  local t
  for t in /proc/"$1"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = "$2" ] && { basename "$t"; return 0; }
  done
  return 1
}
cpu_s() { awk -v t="$1" -v hz="$HZ" 'BEGIN {printf "%.2f", t / hz}'; }
kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; } # PID FIELD -> kB
mib() { awk -v k="$1" 'BEGIN {printf "%.0f", k / 1024}'; }
kv() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p"; }
per() { awk -v n="$1" -v s="$2" 'BEGIN {if (s > 0) printf "%.0f", n / s; else print "-"}'; }

# metric_sum URL NAME: the sum of NAME's samples (any labels) on URL/metrics
metric_sum() {
  curl -sS --max-time 60 "$1/metrics" | awk -v n="$2" '
    /^#/ {next}
    {m = $1; sub(/\{.*/, "", m); if (m == n) s += $NF}
    END {printf "%.0f\n", s}'
}
appended() { metric_sum "$1" prometheus_tsdb_head_samples_appended_total; }

# quiet URL M BASE K: wait until the receiver's count of appended samples sits on BASE + k*M for
# some k >= K in two reads 0.5 s apart (every push up to the k-th has fully arrived and no later
# one has begun to); prints that count. At most WAIT_MAX s.
quiet() {
  local i a prev=-1
  for ((i = 0; i < WAIT_MAX * 2; i++)); do
    a=$(appended "$1")
    if [ "$a" = "$prev" ] && [ "$a" -ge $(($3 + $4 * $2)) ] && [ $(((a - $3) % $2)) = 0 ]; then
      echo "$a"
      return 0
    fi
    prev=$a
    sleep 0.5
  done
  echo "no quiet moment in $WAIT_MAX s: the receiver holds $a samples, pushes of $2 from $3" >&2
  return 1
}

# start_receiver NAME: a fresh Prometheus remote write receiver; sets RECV_PID and RECV_URL
start_receiver() {
  local port
  port=$(free_port)
  printf 'global:\n  evaluation_interval: 1m\n' >"$T/receiver.yml" # no scrape jobs: all by remote write
  "$PROMETHEUS" --web.enable-remote-write-receiver --storage.tsdb.path="$T/tsdb-$1" \
    --web.listen-address="127.0.0.1:$port" --config.file="$T/receiver.yml" >>"$T/prometheus-$1.log" 2>&1 &
  RECV_PID=$!
  track_pid "$RECV_PID"
  RECV_URL=http://127.0.0.1:$port
  wait_until -n 600 -i 0.05 curl -sf --max-time 2 "$RECV_URL/-/ready" ||
    { tail -n 20 "$T/prometheus-$1.log"; echo "the receiver did not become ready"; exit 1; }
}

# load_round: one metrics_load round into the collector; adds the collector's CPU ticks meanwhile
# to INGEST_TICKS, and counts in OVERLAPS a round during which the thread RW_TID (if set) ran
OVERLAPS=0
load_round() {
  local c0 c1 w0=0 w1=0 out
  c0=$(ticks "$CPID")
  [ -n "${RW_TID:-}" ] && w0=$(ticks "$CPID" "$RW_TID")
  out=$("$BIN/metrics_load" --url "$OTLP_URL/v1/metrics" --workloads "$WORKLOADS" --destinations "$DESTINATIONS" \
    --codes "$CODES" --rounds 1 --connections 2 --seed 1 --bytes-histograms "$BYTES_HISTOGRAMS" 2>&1 | tail -n1) ||
    { echo "metrics_load failed: $out"; exit 1; }
  c1=$(ticks "$CPID")
  [ -n "${RW_TID:-}" ] && w1=$(ticks "$CPID" "$RW_TID")
  [ "$(echo "$out" | kv failures)" = 0 ] || { echo "metrics_load: $out"; exit 1; }
  INGEST_TICKS=$((INGEST_TICKS + c1 - c0))
  [ $((w1 - w0)) -le 1 ] || OVERLAPS=$((OVERLAPS + 1))
}

collector_metrics() { curl -sS --max-time 60 -o "$T/collector.txt" "$ZIPKIN_URL/metrics"; }
rw() { metric_values "$T/collector.txt" outrider_remote_write_samples_total "result=$1"; } # after collector_metrics

start_load_collector() { # ARGS...: a collector sized for the shape, CPID set
  start_collector --set metrics.maxSeries=$((SETS * 4 + 10000)) --set limits.memoryLimit=16GiB "$@"
  CPID=$COLLECTOR_PID
}

SETS=$((WORKLOADS * DESTINATIONS * CODES))
echo "# remote write benchmark, $(date -u +%F), $(nproc) cores, $(uname -r), $("$PROMETHEUS" --version 2>&1 | head -n1);" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# shape: $WORKLOADS workloads x $DESTINATIONS destinations x $CODES codes = $SETS label sets, 25 Istio labels;" \
  "istio_requests_total + duration histogram$([ "$BYTES_HISTOGRAMS" = 1 ] && echo ' + request/response bytes histograms');" \
  "$PUSHES measured pushes a sender, $INTERVAL s apart, a metrics_load round before each"

# pushes M BASE: from the quiet moment BASE, a load round and the next quiet moment, until PUSHES
# pushes of M samples have arrived (more when one began before the last was in); sets A and N
pushes() {
  A=$2
  while [ $(((A - $2) / $1)) -lt "$PUSHES" ]; do
    load_round
    A=$(quiet "$RECV_URL" "$1" "$A" 1) || exit 1
  done
  N=$(((A - $2) / $1))
}

# === outrider: the collector pushes ===========================================================
start_receiver outrider
R_START=$(ticks "$RECV_PID")
start_load_collector --set "remoteWrite.url=$RECV_URL/api/v1/write" --set "remoteWrite.interval=${INTERVAL}s" \
  --set remoteWrite.drainTimeout=1s
RW_TID=
wait_until -n 100 -i 0.05 thread_of "$CPID" outrider-rw && RW_TID=$(thread_of "$CPID" outrider-rw)
[ -n "$RW_TID" ] || echo "WARNING: the collector has no thread named outrider-rw (older build): no rw_thread_cpu_s"
rw_ticks() { if [ -n "$RW_TID" ]; then ticks "$CPID" "$RW_TID"; else echo 0; fi; }
INGEST_TICKS=0
load_round
RSS_LOAD=$(kb "$CPID" VmRSS)
collector_metrics
S=$(grep -c '^istio_' "$T/collector.txt" || true) # one remote write sample per line
echo "collector: $S samples a push; rss after the first load $(mib "$RSS_LOAD") MiB"
A=$(quiet "$RECV_URL" "$S" 0 1) || exit 1
O_RFIRST=$(($(ticks "$RECV_PID") - R_START))
collector_metrics
Q0=$(rw queued) SENT0=$(rw sent)
C0=$(ticks "$CPID") W0=$(rw_ticks) R0=$(ticks "$RECV_PID") A0=$A
INGEST_TICKS=0 OVERLAPS=0
pushes "$S" "$A0"
C1=$(ticks "$CPID") W1=$(rw_ticks) R1=$(ticks "$RECV_PID")
collector_metrics
Q1=$(rw queued) SENT1=$(rw sent)
PEAK=$(kb "$CPID" VmHWM)
[ $((Q1 - Q0)) = $((N * S)) ] ||
  echo "WARNING: $((Q1 - Q0)) samples queued in the window, not $N pushes of $S (a push began before its end was read)"
[ "$(rw failed)" = 0 ] && [ "$(rw dropped)" = 0 ] && [ "$(rw retried)" = 0 ] ||
  echo "WARNING: remote write failed $(rw failed), dropped $(rw dropped) and retried $(rw retried) samples:" \
    "$(grep 'remote write' "$COLLECTOR_LOG" | tail -n 3)"
[ "$OVERLAPS" = 0 ] || echo "WARNING: the remote write thread ran during $OVERLAPS load rounds: its CPU is in the subtracted ingest"
O_N=$N O_PUSHED=$((SENT1 - SENT0)) O_ACC=$((A - A0))
O_CPU=$((C1 - C0 - INGEST_TICKS)) O_RW=$((W1 - W0)) O_RECV=$((R1 - R0)) O_INGEST=$INGEST_TICKS
stop_pid "$CPID"
stop_pid "$RECV_PID"
O_HAS_RW=$RW_TID
RW_TID=

# === agent: Prometheus scrapes /metrics and pushes ============================================
if [ "$PEER" = 1 ]; then
  start_receiver agent
  R_START=$(ticks "$RECV_PID")
  start_load_collector
  INGEST_TICKS=0
  load_round
  APORT=$(free_port)
  # queue_config: 2.42's defaults are 500 samples a request and 2500 a shard; 2000 is the
  # collector's remoteWrite.maxSamplesPerSend (and later Prometheus releases' default)
  cat >"$T/agent.yml" <<EOF
global:
  scrape_interval: ${INTERVAL}s
  scrape_timeout: $((INTERVAL * 3 / 4))s
scrape_configs:
  - job_name: outrider
    static_configs:
      - targets: ['${ZIPKIN_URL#http://}']
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: 'istio_.*'
        action: keep
remote_write:
  - url: $RECV_URL/api/v1/write
    queue_config:
      max_samples_per_send: 2000
      capacity: 10000
EOF
  "$PROMETHEUS" --enable-feature=agent --config.file="$T/agent.yml" --storage.agent.path="$T/agent-wal" \
    --web.listen-address="127.0.0.1:$APORT" >>"$T/agent.log" 2>&1 &
  AGENT_PID=$!
  track_pid "$AGENT_PID"
  AGENT_URL=http://127.0.0.1:$APORT
  G_START=$(ticks "$AGENT_PID") T_START=$(date +%s)
  wait_until -n 600 -i 0.05 curl -sf --max-time 2 "$AGENT_URL/-/ready" ||
    { tail -n 20 "$T/agent.log"; echo "the agent did not become ready"; exit 1; }
  # A scrape appends the istio_ series and 5 report series (up, scrape_duration_seconds,
  # scrape_samples_scraped, scrape_samples_post_metric_relabeling, scrape_series_added). The
  # first scrapes create the series in the agent and take it minutes to send: the window starts
  # at the first quiet moment after two scrapes.
  S2=$((S + 5))
  A=$(quiet "$RECV_URL" "$S2" 0 2) || exit 1
  G_WARM=$((A / S2)) G_WARM_S=$(($(date +%s) - T_START))
  G_WARM_CPU=$(($(ticks "$AGENT_PID") - G_START)) G_RFIRST=$(($(ticks "$RECV_PID") - R_START))
  G0=$(metric_sum "$AGENT_URL" prometheus_remote_storage_samples_total)
  C0=$(ticks "$AGENT_PID") CC0=$(ticks "$CPID") R0=$(ticks "$RECV_PID") A0=$A
  INGEST_TICKS=0
  pushes "$S2" "$A0"
  C1=$(ticks "$AGENT_PID") CC1=$(ticks "$CPID") R1=$(ticks "$RECV_PID")
  G1=$(metric_sum "$AGENT_URL" prometheus_remote_storage_samples_total)
  for m in failed retried dropped; do
    n=$(metric_sum "$AGENT_URL" "prometheus_remote_storage_samples_${m}_total")
    [ "$n" = 0 ] || echo "WARNING: the agent counts $n samples $m"
  done
  G_N=$N G_PUSHED=$((G1 - G0)) G_ACC=$((A - A0)) G_CPU=$((C1 - C0)) G_RECV=$((R1 - R0))
  G_COLL=$((CC1 - CC0 - INGEST_TICKS)) G_PEAK=$(kb "$AGENT_PID" VmHWM) G_INGEST=$INGEST_TICKS
  G_CPEAK=$(kb "$CPID" VmHWM)
  stop_pid "$AGENT_PID"
  stop_pid "$CPID"
  stop_pid "$RECV_PID"
fi

row() { printf '%-36s %-7s %-14s %-12s %-18s %-15s %-14s %-11s %-19s %s\n' "$@"; }
echo
row sender pushes samples_pushed sender_cpu_s samples_per_cpu_s rw_thread_cpu_s recv_accepted recv_cpu_s \
  recv_samples_per_cpu peak_rss_MiB
row "outrider remote write" "$O_N" "$O_PUSHED" "$(cpu_s "$O_CPU")" "$(per "$O_PUSHED" "$(cpu_s "$O_CPU")")" \
  "$([ -n "$O_HAS_RW" ] && cpu_s "$O_RW" || echo -)" "$O_ACC" "$(cpu_s "$O_RECV")" \
  "$(per "$O_ACC" "$(cpu_s "$O_RECV")")" "$(mib "$PEAK") (collector)"
if [ "$PEER" = 1 ]; then
  row "prometheus agent (scrapes /metrics)" "$G_N" "$G_PUSHED" "$(cpu_s "$G_CPU")" "$(per "$G_PUSHED" "$(cpu_s "$G_CPU")")" \
    - "$G_ACC" "$(cpu_s "$G_RECV")" "$(per "$G_ACC" "$(cpu_s "$G_RECV")")" "$(mib "$G_PEAK") (agent)"
fi
echo
echo "outrider: the load rounds cost the collector $(cpu_s "$O_INGEST") CPU-s, left out; rss after the first load" \
  "$(mib "$RSS_LOAD") MiB, peak $(mib "$PEAK") MiB; receiver, first push (creates the $S series): $(cpu_s "$O_RFIRST") CPU-s"
if [ "$PEER" = 1 ]; then
  echo "agent: warm-up of $G_WARM scrapes took ${G_WARM_S} s, the agent $(cpu_s "$G_WARM_CPU") CPU-s, the receiver" \
    "$(cpu_s "$G_RFIRST") CPU-s; in the window the collector spent $(cpu_s "$G_COLL") CPU-s serving $G_N scrapes" \
    "(the load rounds, $(cpu_s "$G_INGEST") CPU-s, left out), its peak rss $(mib "$G_CPEAK") MiB"
  echo "Prometheus spends $(cpu_s "$O_RECV") CPU-s to ingest what the collector spent $(cpu_s "$O_CPU") CPU-s to push;" \
    "the agent spends $(cpu_s "$G_CPU") CPU-s (+ $(cpu_s "$G_COLL") in the collector's /metrics) to push $G_N scrapes of the same series"
fi
