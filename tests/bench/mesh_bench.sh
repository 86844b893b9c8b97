#!/usr/bin/env bash
# The service graph (/mesh, /api/mesh) on a large mesh (issue 11): what the collector's sampler costs
# as the number of workloads grows, what one /api/mesh answer costs alone and under many concurrent
# clients, and the same graph asked from Prometheus the way Kiali asks it, measured in the same run.
# Bounded in count and time; uses the release build in build/release (or $OUTRIDER_BIN); starts
# everything on ephemeral loopback ports and kills only the processes it started.
#
# For each size in WORKLOADS a fresh collector (mesh limits from MESH_SETTINGS) is loaded by
# metrics_load (tests/tools) with WORKLOADS sidecars x DESTINATIONS peers x CODES response codes
# label sets, istio_requests_total and the duration histogram, 25 Istio labels each, fresh names
# (about one in sixteen non-ASCII), ROUNDS DELTA rounds. Then:
#   sampler     the sampler's CPU per sample, from outrider_mesh_sample_cpu_seconds_total over the
#               samples it took in SAMPLE_WAIT seconds (every 5 s), and the wall time of the last;
#               rows and series it followed, what it dropped for mesh.maxRows / mesh.maxSeries, and
#               its memory (outrider_mesh_bytes); beside it, one /metrics scrape of the same store
#               (the sampler visits every series, as a scrape does)
#   api         /api/mesh?window=5m: the median and max of BUILT requests each over 1 s after the
#               last sample (so it samples again and builds its answer), then of SEQ back to back
#               (mostly the same answer served again until the next sample), and wrk with
#               CONCURRENCY connections for WRK_SECONDS (requests/s, p50, p99; its p99 is a request
#               that sampled and built)
#   peer        (sizes up to PEER_MAX_WORKLOADS) a real Prometheus scraping the collector every 2 s;
#               after PEER_SCRAPES scrapes, the median of 5 runs of the queries Kiali's versioned-app
#               graph sends for one refresh (requests by source and destination for both reporters,
#               and the p99 response time by edge), each timed by curl against /api/v1/query
#
# usage: tests/bench/mesh_bench.sh
# env:   WORKLOADS ("100 1000 3000"), DESTINATIONS (5), CODES (3), ROUNDS (2), SAMPLE_WAIT (16),
#        BUILT (5), SEQ (20), CONCURRENCY ("1 16 64"), WRK_SECONDS (5), PEER (1), PEER_MAX_WORKLOADS (1000),
#        PEER_SCRAPES (4), MESH_SETTINGS ("" : the defaults; e.g. "--set mesh.maxRows=8192")
# The machine has 2 cores: wrk, Prometheus and the collector compete for them; compare figures
# from the same run.
. "$(dirname "$0")/../lib.sh" # set -euo pipefail, $T, start_collector, track_pid, stop_pid
BIN=$OUTRIDER_BIN
WORKLOADS=${WORKLOADS:-100 1000 3000}
DESTINATIONS=${DESTINATIONS:-5}
CODES=${CODES:-3}
ROUNDS=${ROUNDS:-2}
SAMPLE_WAIT=${SAMPLE_WAIT:-16}
SEQ=${SEQ:-20}
BUILT=${BUILT:-5}
CONCURRENCY=${CONCURRENCY:-1 16 64}
WRK_SECONDS=${WRK_SECONDS:-5}
PEER=${PEER:-1}
PEER_MAX_WORKLOADS=${PEER_MAX_WORKLOADS:-1000}
PEER_SCRAPES=${PEER_SCRAPES:-4}
read -r -a MESH_SETTINGS <<<"${MESH_SETTINGS:-}"
PROMETHEUS=${PROMETHEUS:-$(command -v prometheus || true)}

for tool in outrider-collector metrics_load; do
  [ -x "$BIN/$tool" ] || { echo "no $BIN/$tool: build the release preset first"; exit 1; }
done
command -v wrk >/dev/null || { echo "wrk is not installed (scripts/deps.sh)"; exit 1; }

kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
metric() { awk -v n="$1" '$1 == n {print $2}' "$2"; }
median() { sort -g | awk '{a[NR] = $1} END {if (NR) printf "%s %s\n", a[int((NR + 1) / 2)], a[NR]; else print "- -"}'; }
ms() { awk -v s="$1" 'BEGIN {printf "%.2f", s * 1000}'; }

echo "# service graph benchmark, $(date -u +%F), $(nproc) cores, $(uname -r); load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# shape: WORKLOADS x $DESTINATIONS destinations x $CODES codes label sets, 25 Istio labels each;" \
  "istio_requests_total + duration histogram; $ROUNDS DELTA rounds; mesh settings: ${MESH_SETTINGS[*]:-defaults}"
: >"$T/summary"
for n in $WORKLOADS; do
  sets=$((n * DESTINATIONS * CODES))
  echo
  echo "## $n workloads: $sets label sets, $((sets * 2)) series"
  start_collector --set metrics.maxSeries=$((sets * 2 + 10000)) --set limits.memoryLimit=16GiB "${MESH_SETTINGS[@]}"
  CPID=$COLLECTOR_PID
  "$BIN/metrics_load" --url "$OTLP_URL/v1/metrics" --workloads "$n" --destinations "$DESTINATIONS" \
    --codes "$CODES" --rounds "$ROUNDS" --connections 2 --seed 1 --bytes-histograms 0 >"$T/load.out" ||
    { echo "metrics_load failed: $(cat "$T/load.out")"; exit 1; }

  # ---- the sampler ----
  curl -sS "$ZIPKIN_URL/metrics" -o "$T/m0.txt"
  sleep "$SAMPLE_WAIT"
  t_scrape=$(curl -sS "$ZIPKIN_URL/metrics" -o "$T/m1.txt" -w '%{time_total}')
  samples=$(awk -v a="$(metric outrider_mesh_samples_total "$T/m0.txt")" -v b="$(metric outrider_mesh_samples_total "$T/m1.txt")" 'BEGIN {print b - a}')
  cpu=$(awk -v a="$(metric outrider_mesh_sample_cpu_seconds_total "$T/m0.txt")" \
    -v b="$(metric outrider_mesh_sample_cpu_seconds_total "$T/m1.txt")" -v n="$samples" 'BEGIN {printf "%.2f", n ? (b - a) / n * 1000 : 0}')
  last=$(ms "$(metric outrider_mesh_last_sample_seconds "$T/m1.txt")")
  rows=$(metric outrider_mesh_rows "$T/m1.txt")
  series=$(metric outrider_mesh_series "$T/m1.txt")
  drop_rows=$(metric 'outrider_mesh_dropped_total{what="rows"}' "$T/m1.txt")
  drop_series=$(metric 'outrider_mesh_dropped_total{what="series"}' "$T/m1.txt")
  mesh_mib=$(awk -v b="$(metric outrider_mesh_bytes "$T/m1.txt")" 'BEGIN {printf "%.1f", b / 1048576}')
  printf 'sampler: %s samples in %s s: %s ms CPU a sample (last %s ms wall); rows %s (limit %s), series %s (limit %s);' \
    "$samples" "$SAMPLE_WAIT" "$cpu" "$last" "$rows" "$(metric outrider_mesh_rows_limit "$T/m1.txt")" "$series" \
    "$(metric outrider_mesh_series_limit "$T/m1.txt")"
  full_mib=$(awk -v r="$rows" 'BEGIN {printf "%.0f", r * 122 * 26 * 4 / 1048576}') # 61 + 61 snapshots of 26 values
  printf ' dropped: row increases %s, series-samples %s; history %s MiB now, about %s MiB once its hour is full\n' \
    "$drop_rows" "$drop_series" "$mesh_mib" "$full_mib"
  printf 'beside it: one /metrics scrape of the same store %s ms, %s bytes; collector RSS %s MiB\n' "$(ms "$t_scrape")" \
    "$(wc -c <"$T/m1.txt")" "$(($(kb "$CPID" VmRSS) / 1024))"

  # ---- /api/mesh ----
  URL="$ZIPKIN_URL/api/mesh?window=5m"
  curl -sS "$URL" -o "$T/api.json"
  nodes=$(jq '.nodes | length' "$T/api.json")
  edges=$(jq '.edges | length' "$T/api.json")
  # built: each request over 1 s after the last sample, so it samples again and builds its answer
  : >"$T/built"
  for _ in $(seq "$BUILT"); do sleep 1.1; curl -sS -o /dev/null -w '%{time_total}\n' "$URL" >>"$T/built"; done
  read -r bmed bmax < <(median <"$T/built")
  : >"$T/seq"
  for _ in $(seq "$SEQ"); do curl -sS -o /dev/null -w '%{time_total}\n' "$URL" >>"$T/seq"; done
  read -r med max < <(median <"$T/seq")
  printf 'api: %s nodes, %s edges (truncated %s), %s bytes; sampled and built: median %s ms, max %s ms;' "$nodes" \
    "$edges" "$(jq .truncated "$T/api.json")" "$(wc -c <"$T/api.json")" "$(ms "$bmed")" "$(ms "$bmax")"
  printf ' back to back (mostly served again): median %s ms, max %s ms\n' "$(ms "$med")" "$(ms "$max")"
  for c in $CONCURRENCY; do
    wrk -t "$((c < 2 ? 1 : 2))" -c "$c" -d "${WRK_SECONDS}s" --latency "$URL" >"$T/wrk.out" 2>&1 || true
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$T/wrk.out")
    p50=$(awk '$1 == "50%" {print $2}' "$T/wrk.out")
    p99=$(awk '$1 == "99%" {print $2}' "$T/wrk.out")
    errs=$(awk '/Non-2xx|Socket errors/ {print}' "$T/wrk.out" | tr '\n' ' ')
    answers=$(curl -sS "$ZIPKIN_URL/metrics" | awk '$1 ~ /^outrider_mesh_answers_total/ {sub(/.*how="/, "", $1); sub(/".*/, "", $1); printf "%s %s ", $1, $2}')
    printf 'api under %3s connections: %s req/s, p50 %s, p99 %s %s(answers so far: %s)\n' "$c" "${rps:-?}" "${p50:-?}" \
      "${p99:-?}" "$errs" "$answers"
    echo "$n outrider c=$c rps=${rps:-?} p99=${p99:-?}" >>"$T/summary"
  done
  kill -0 "$CPID" 2>/dev/null || { echo "the collector died"; exit 1; }
  echo "$n sampler_cpu_ms=$cpu rows=$rows series=$series dropped_rows=$drop_rows history_MiB=$mesh_mib full_hour_MiB=$full_mib api_built_ms=$(ms "$bmed")" >>"$T/summary"

  # ---- the peer: the same graph from Prometheus, as Kiali asks it ----
  if [ "$PEER" = 1 ] && [ "$n" -le "$PEER_MAX_WORKLOADS" ] && [ -n "$PROMETHEUS" ]; then
    PROM_PORT=$(free_port)
    cat >"$T/prometheus.yml" <<YAML
global: {scrape_interval: 2s, scrape_timeout: 2s}
scrape_configs:
  - job_name: outrider-collector
    static_configs: [{targets: ['${ZIPKIN_URL#http://}']}]
YAML
    rm -rf "$T/tsdb"
    "$PROMETHEUS" --config.file="$T/prometheus.yml" --storage.tsdb.path="$T/tsdb" \
      --web.listen-address="127.0.0.1:$PROM_PORT" >"$T/prometheus.log" 2>&1 &
    PPID_=$!
    track_pid "$PPID_"
    P="http://127.0.0.1:$PROM_PORT"
    scrapes() { curl -sS "$P/api/v1/query" --data-urlencode 'query=count_over_time(up[1h])' | jq -r '.data.result[0].value[1] // 0'; }
    for _ in $(seq 300); do [ "$(scrapes 2>/dev/null || echo 0)" -ge "$PEER_SCRAPES" ] && break; sleep 1; done
    # Kiali's versioned-app graph: requests by edge for each reporter, and the response time by edge
    by='source_workload_namespace,source_workload,source_canonical_service,source_canonical_revision,destination_service_namespace,destination_service,destination_service_name,destination_workload_namespace,destination_workload,destination_canonical_service,destination_canonical_revision,request_protocol,response_code,grpc_response_status,response_flags'
    qs=("sum(rate(istio_requests_total{reporter=\"source\"}[5m])) by ($by)"
      "sum(rate(istio_requests_total{reporter=\"destination\"}[5m])) by ($by)"
      "histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket{reporter=\"source\"}[5m])) by (le,source_workload_namespace,source_canonical_service,destination_service_namespace,destination_service_name,destination_canonical_revision))")
    : >"$T/peer"
    for _ in 1 2 3 4 5; do
      total=0
      for q in "${qs[@]}"; do
        t=$(curl -sS -o "$T/q.json" -w '%{time_total}' "$P/api/v1/query" --data-urlencode "query=$q")
        total=$(awk -v a="$total" -v b="$t" 'BEGIN {print a + b}')
      done
      echo "$total" >>"$T/peer"
    done
    read -r pmed pmax < <(median <"$T/peer")
    prss=$(($(kb "$PPID_" VmRSS) / 1024))
    printf 'peer: Prometheus (%s series scraped) answers the refresh'"'"'s 3 queries in %s ms (median of 5, max %s ms); RSS %s MiB\n' \
      "$(curl -sS "$P/api/v1/query" --data-urlencode 'query=scrape_samples_scraped' | jq -r '.data.result[0].value[1]')" \
      "$(ms "$pmed")" "$(ms "$pmax")" "$prss"
    echo "$n prometheus_refresh_ms=$(ms "$pmed") prometheus_rss_MiB=$prss" >>"$T/summary"
    stop_pid "$PPID_"
  fi
  stop_pid "$CPID"
done
echo
echo "## summary (how the cost grows with the mesh)"
cat "$T/summary"
