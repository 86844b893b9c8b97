#!/usr/bin/env bash
# Collector instructions and simulated last-level cache misses per span at a given fill level,
# for docs/benchmarks.md ("Deterministic cost"): the count repeats from run to run, where this
# machine's wall-clock rates move by 20-40%.
#
# Starts outrider-collector under `valgrind --tool=callgrind --cache-sim=yes` with a 32 MiB
# last-level cache, instrumentation off, one server thread and the store's limits raised; fills
# it with FILL requests of the issue-8 shape (1000 spans, 5 services x 50 traces of
# 4 spans, fresh random ids, start times spread over 10 minutes), warms with 20 more, then counts
# MEASURE requests with instrumentation on and prints:
#   fill_spans=... ir_per_span=... d1_read_misses_per_span=... ll_read_misses_per_span=... ll_write_misses_per_span=...
#   usage: tests/bench/collector_fill_callgrind.sh    env: FILL (0; requests of 1000 spans),
#          MEASURE (100), OUTRIDER_BIN (build/release/bin), KEEP=1 keeps the callgrind file,
#          COLLECTOR_ARGS (more collector flags, split on spaces); with kafka.brokers among them the
#          count goes on until every message the measured requests queued has its delivery report,
#          so the producer threads' work (encoding, compression, sending) is in it
# Needs: valgrind. Uses tests/lib.sh (temp dir, process cleanup).
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"
FILL=${FILL:-0}
MEASURE=${MEASURE:-100}
[[ -n ${KEEP:-} ]] && KEEP_TMP=1
for t in valgrind callgrind_control callgrind_annotate; do
    command -v "$t" >/dev/null || fail "$t is not installed"
done
[[ -x $OUTRIDER_BIN/outrider-collector && -x $OUTRIDER_BIN/span_load ]] || fail "build the release first"

ZP=$(free_port)
OP=$(free_port)
while [[ $OP == "$ZP" ]]; do OP=$(free_port); done
valgrind --tool=callgrind --instr-atstart=no --cache-sim=yes --LL=33554432,16,64 \
    --callgrind-out-file="$T/cg.out" "$OUTRIDER_BIN/outrider-collector" \
    --zipkin-listen "127.0.0.1:$ZP" --otlp-listen "127.0.0.1:$OP" --max-spans 20000000 \
    --set store.maxBytes=8GiB --set limits.memoryLimit=20GiB --set server.threads=1 ${COLLECTOR_ARGS:-} \
    >"$T/collector.log" 2>&1 &
CP=$!
track_pid "$CP"
wait_until -n 600 -i 0.1 port_open "$OP" || fail "collector did not start: $(tail -5 "$T/collector.log")"

send() { # requests seed
    "$OUTRIDER_BIN/span_load" send --url "http://127.0.0.1:$OP/v1/traces" --format otlp-proto-zstd \
        --requests "$1" --connections 1 --services 5 --spans-per-trace 4 --spread-ms 600000 \
        --seed "$2" >"$T/load.$2" 2>&1 || fail "span_load failed: $(tail -3 "$T/load.$2")"
}
((FILL > 0)) && send "$FILL" 3
send 20 7
callgrind_control -i on "$CP" >/dev/null 2>&1 || fail "callgrind_control -i on failed"
send "$MEASURE" 4
if [[ ${COLLECTOR_ARGS:-} == *kafka.brokers* ]]; then
    all_delivered() {
        curl -fsS "http://127.0.0.1:$ZP/metrics" | awk '
            /^outrider_kafka_messages_total\{.*result="queued"/ { q += $2 }
            /^outrider_kafka_messages_total\{.*result="(delivered|failed)"/ { d += $2 }
            END { exit !(q > 0 && q == d) }'
    }
    wait_until -n 3000 -i 0.1 all_delivered || fail "Kafka messages not all delivered"
fi
callgrind_control -i off "$CP" >/dev/null 2>&1 || fail "callgrind_control -i off failed"
stop_pid "$CP"
[[ -s $T/cg.out ]] || fail "no callgrind output"
# PROGRAM TOTALS: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw, each followed by its (100.0%)
callgrind_annotate "$T/cg.out" 2>/dev/null | awk -v n=$((MEASURE * 1000)) -v f=$((FILL * 1000)) '
    /PROGRAM TOTALS/ {
        for (i = 1; i <= NF; i++) gsub(",", "", $i)
        printf "fill_spans=%d ir_per_span=%.0f d1_read_misses_per_span=%.2f ll_read_misses_per_span=%.2f ll_write_misses_per_span=%.2f\n", f, $1 / n, $9 / n, $15 / n, $17 / n
    }'
[[ -n ${KEEP:-} ]] && echo "file=$T/cg.out"
exit 0
