#!/usr/bin/env bash
# Checks the Prometheus exposition output of exporters/prom_text and
# collector/metric_store with real parsers:
#   - text format 0.0.4: `promtool check metrics` must exit 0 and print nothing
#     (it parses with Prometheus' own text parser and lints names, HELP, types);
#   - OpenMetrics 1.0: promtool has no OpenMetrics check, so the structure is
#     verified line by line (HELP/TYPE/UNIT, sample and exemplar grammar,
#     exemplars only on _total/_bucket, a single `# EOF` last); when Python's
#     prometheus_client is importable its strict OpenMetrics parser runs too
#     (Debian: python3-prometheus-client).
# Input comes from tests/tools/prom_sample.c, built into $OUTRIDER_BIN.
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }

command -v promtool >/dev/null 2>&1 || fail "promtool not found (Debian package: prometheus)"
: "${OUTRIDER_BIN:?OUTRIDER_BIN must point at the bin directory of the build}"
sample="$OUTRIDER_BIN/prom_sample"
[ -x "$sample" ] || fail "$sample not built"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
text="$tmp/metrics.txt"
om="$tmp/metrics.om"
"$sample" "$text" "$om" || fail "prom_sample failed"
[ -s "$text" ] || fail "empty text output"
[ -s "$om" ] || fail "empty OpenMetrics output"

# ---- text format 0.0.4 ----
set +e
lint=$(promtool check metrics < "$text" 2>&1)
rc=$?
set -e
if [ $rc -ne 0 ] || [ -n "$lint" ]; then
    echo "$lint" >&2
    fail "promtool check metrics (exit $rc) is not clean on the text format"
fi
grep -q ' # {' "$text" && fail "exemplar in text format 0.0.4"
grep -q '^# EOF' "$text" && fail "# EOF in text format 0.0.4"
grep -q '^# UNIT' "$text" && fail "# UNIT in text format 0.0.4"
grep -q '^# TYPE [a-zA-Z_:0-9]*_total counter$' "$text" || fail "text format: no counter named *_total"

# ---- OpenMetrics 1.0 ----
[ "$(tail -n 1 "$om")" = "# EOF" ] || fail "OpenMetrics output does not end with # EOF"
[ "$(grep -c '^# EOF$' "$om")" -eq 1 ] || fail "more than one # EOF"
[ "$(tail -c 1 "$om" | od -An -c | tr -d ' ')" = '\n' ] || fail "# EOF line not terminated by a newline"

NAME='[a-zA-Z_:][a-zA-Z0-9_:]*'
LNAME='[a-zA-Z_][a-zA-Z0-9_]*'
LV='"([^"\\]|\\.)*"'
LABELS="\\{($LNAME=$LV(,$LNAME=$LV)*)?\\}"
NUM='(NaN|[+-]Inf|[-+]?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?)'
EXEMPLAR=" # \\{trace_id=\"([0-9a-f]{16}|[0-9a-f]{32})\"(,span_id=\"[0-9a-f]{16}\")?\\} $NUM( [0-9]+(\\.[0-9]+)?)?"
SAMPLE="^$NAME($LABELS)? $NUM($EXEMPLAR)?\$"
META="^# (HELP $NAME .*|TYPE $NAME (counter|gauge|histogram|summary|unknown|gaugehistogram|stateset|info)|UNIT $NAME $LNAME|EOF)\$"

bad=$(grep -Ev "$SAMPLE|$META" "$om" || true)
[ -z "$bad" ] || { echo "$bad" >&2; fail "malformed OpenMetrics lines"; }
bad=$(grep -E "$EXEMPLAR\$" "$om" | grep -Ev "^$NAME(_total|_bucket)($LABELS)? " || true)
[ -z "$bad" ] || { echo "$bad" >&2; fail "exemplar on a sample that is neither _total nor _bucket"; }
grep -Eq "_bucket\\{.*\\} $NUM$EXEMPLAR\$" "$om" || fail "no histogram bucket exemplar in OpenMetrics output"
grep -Eq "_total(\\{.*\\})? $NUM$EXEMPLAR\$" "$om" || fail "no counter exemplar in OpenMetrics output"
grep -Eq '^# TYPE [a-zA-Z_:0-9]*_total counter$' "$om" && fail "OpenMetrics counter family named *_total"

# UNIT must be a suffix of its family name; TYPE precedes samples; families unique
awk '
    /^# TYPE / { if (seen[$3]++) { print "duplicate family " $3; bad = 1 } fam = $3 }
    /^# UNIT / { n = length($3) - length($4); if ($3 != fam || n < 1 || substr($3, n) != "_" $4) { print "bad UNIT: " $0; bad = 1 } }
    END { exit bad }
' "$om" || fail "OpenMetrics metadata inconsistent"

# both formats carry the same samples once exemplars are removed
n_text=$(grep -vc '^#' "$text")
n_om=$(grep -vc '^#' "$om")
[ "$n_text" -eq "$n_om" ] || fail "sample count differs: text $n_text, OpenMetrics $n_om"
diff <(grep -v '^#' "$text") <(grep -v '^#' "$om" | sed -E "s/$EXEMPLAR\$//") >/dev/null ||
    fail "samples differ between the formats"

if python3 -c 'import prometheus_client.openmetrics.parser' >/dev/null 2>&1; then
    python3 - "$om" <<'EOF' || fail "prometheus_client rejected the OpenMetrics output"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
text = open(sys.argv[1], encoding="utf-8").read()
n = sum(len(f.samples) for f in text_string_to_metric_families(text))
assert n > 0
EOF
    echo "OpenMetrics output parsed by prometheus_client"
else
    echo "note: python3 prometheus_client not installed; OpenMetrics checked structurally only"
fi

echo "PASS: text format clean under promtool, OpenMetrics well formed"
