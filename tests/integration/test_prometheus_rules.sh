#!/usr/bin/env bash
# The Prometheus rules of deploy/prometheus/ (recording rules, SLO burn-rate
# and operational alerts), without any Outrider binary:
#  1. `promtool check rules --lint=all --lint-fatal` passes on every
#     deploy/prometheus/*.rules.yml and prints nothing but its SUCCESS lines;
#  2. `promtool test rules` passes on every deploy/prometheus/tests/*.test.yml
#     (synthetic series; each test file runs three times, as promtool evaluates
#     rule groups in no fixed order and a test must not depend on it);
#  3. the rules' structure, read with python3-yaml:
#     - every alert is named Outrider*, once, has a `for`, a severity of page or
#       ticket, and non-empty summary, description and runbook annotations; the
#       runbook is text (WHAT IT MEANS / HOW TO LOOK / WHAT TO DO), not a link;
#     - recording rule names are unique, and the two the dashboards are built on
#       keep their exact expressions (names and label sets are a contract);
#     - the SLO targets are recorded once each (outrider-slo-objectives);
#     - every metric the rules read that the collector or the sidecars export is
#       still written by their sources (collector/, proxy/), so a rename fails here;
#  4. coverage: every alert has a unit test where it fires and one where it
#     does not, and every recording rule is queried by some promql_expr_test.
# shellcheck source=../lib.sh
. "$(dirname "$0")/../lib.sh"

PROMTOOL=${PROMTOOL:-$(command -v promtool || true)}
[[ -x $PROMTOOL ]] || fail "promtool is not installed (Debian package prometheus)"
python3 -c 'import yaml' 2>/dev/null || fail "python3-yaml is needed (Debian package python3-yaml)"

DIR=$OUTRIDER_SRC/deploy/prometheus
shopt -s nullglob
RULES=("$DIR"/*.rules.yml)
TESTS=("$DIR"/tests/*.test.yml)
[[ ${#RULES[@]} -ge 2 ]] || fail "expected the recording and alerting rules in $DIR, found ${RULES[*]:-none}"
[[ ${#TESTS[@]} -ge 1 ]] || fail "no unit tests in $DIR/tests"

# ---- 1. promtool check rules --------------------------------------------------
for f in "${RULES[@]}"; do
    "$PROMTOOL" check rules --lint=all --lint-fatal "$f" >"$T/check.out" 2>&1 ||
        fail "promtool check rules $(basename "$f"): $(cat "$T/check.out")"
    # anything besides "Checking FILE" and "  SUCCESS: N rules found" is a finding
    if grep -Ev '^(Checking .*|  SUCCESS: [0-9]+ rules found|)$' "$T/check.out" >"$T/check.rest"; then
        fail "promtool check rules $(basename "$f") is not clean: $(cat "$T/check.rest")"
    fi
    grep -q 'SUCCESS' "$T/check.out" || fail "promtool check rules $(basename "$f"): no SUCCESS line: $(cat "$T/check.out")"
done
note "promtool check rules: ${#RULES[@]} files clean"

# ---- 2. promtool test rules ---------------------------------------------------
for f in "${TESTS[@]}"; do
    for run in 1 2 3; do
        "$PROMTOOL" test rules "$f" >"$T/test.out" 2>&1 ||
            fail "promtool test rules $(basename "$f") (run $run): $(head -c 8000 "$T/test.out")"
    done
done
note "promtool test rules: ${#TESTS[@]} files pass (3 runs each)"

# ---- 3. and 4. structure and coverage ----------------------------------------
python3 - "$OUTRIDER_SRC" "${RULES[@]}" -- "${TESTS[@]}" <<'PY' || fail "deploy/prometheus rules: see above"
import glob, os, re, sys, yaml

src = sys.argv[1]
sep = sys.argv.index("--")
rule_files, test_files = sys.argv[2:sep], sys.argv[sep + 1:]
problems = []

def problem(msg):
    problems.append(msg)

alerts, records = {}, {}
for path in rule_files:
    name = os.path.basename(path)
    doc = yaml.safe_load(open(path))
    for g in doc["groups"]:
        for r in g["rules"]:
            if "alert" in r:
                a = r["alert"]
                where = f"{name}: alert {a}"
                if a in alerts:
                    problem(f"{where}: defined twice")
                alerts[a] = r
                if not a.startswith("Outrider"):
                    problem(f"{where}: alert names start with Outrider")
                if "for" not in r:
                    problem(f"{where}: no `for`")
                sev = (r.get("labels") or {}).get("severity")
                if sev not in ("page", "ticket"):
                    problem(f"{where}: severity is {sev!r}, not page or ticket")
                ann = r.get("annotations") or {}
                for k in ("summary", "description", "runbook"):
                    if not str(ann.get(k, "")).strip():
                        problem(f"{where}: no {k} annotation")
                rb = str(ann.get("runbook", ""))
                if re.fullmatch(r"\s*https?://\S+\s*", rb):
                    problem(f"{where}: the runbook is a link, not the runbook")
                for section in ("WHAT IT MEANS", "HOW TO LOOK", "WHAT TO DO"):
                    if section not in rb:
                        problem(f"{where}: runbook without a {section} section")
                if len(rb) < 400:
                    problem(f"{where}: runbook of {len(rb)} characters: too short to tell what to do")
                if "\n" in str(ann.get("summary", "")):
                    problem(f"{where}: the summary is one line")
            else:
                rec = r["record"]
                if rec in records:
                    problem(f"{name}: recording rule {rec} defined twice")
                records[rec] = r

# the dashboards' contract: exact expressions of the two fixed rules
def norm(e):
    return re.sub(r"\s+", "", e)
fixed = {
    "service:istio_requests:rate5m":
        "sum by (reporter, destination_service, destination_service_name, destination_service_namespace, "
        "destination_version, response_code, response_flags) (rate(istio_requests_total[5m]))",
    "service:istio_request_duration_milliseconds_bucket:rate5m":
        "sum by (reporter, destination_service, destination_service_name, destination_service_namespace, le) "
        "(rate(istio_request_duration_milliseconds_bucket[5m]))",
}
for rec, expr in fixed.items():
    if rec not in records:
        problem(f"recording rule {rec} (used by the dashboards) is missing")
    elif norm(records[rec]["expr"]) != norm(expr):
        problem(f"recording rule {rec} (used by the dashboards) changed: {records[rec]['expr']!r}, expected {expr!r}")

# the SLO targets: one recorded constant each, read by every burn-rate alert
for rec in ("outrider:slo_availability:objective", "outrider:slo_latency:objective"):
    if rec not in records:
        problem(f"SLO target {rec} is not recorded")
    elif not re.fullmatch(r"vector\(0\.\d+\)", norm(records[rec]["expr"])):
        problem(f"SLO target {rec} is not a plain vector(0.x): {records[rec]['expr']!r}")
for a, r in alerts.items():
    if a.startswith("OutriderService") and not re.search(r"outrider:slo_(availability|latency):objective", r["expr"]):
        problem(f"alert {a}: does not read its target from the recorded objective")
    if re.search(r"0\.99", r["expr"]):
        problem(f"alert {a}: a target written into the expression; use the recorded objective")

# every metric read from the collector or a sidecar still exists in their sources
code = ""
for d in ("collector", "proxy", "common", "exporters"):
    for f in glob.glob(os.path.join(src, d, "**", "*.[ch]"), recursive=True):
        code += open(f, errors="replace").read()
used = set()
for r in list(alerts.values()) + list(records.values()):
    expr = re.sub(r"[A-Za-z_][A-Za-z0-9_]*:[A-Za-z0-9_:]*", " ", r["expr"])  # recorded series
    for m in re.findall(r"\b((?:istio|zipkin|outrider)_[a-z0-9_]+)\b", expr):
        used.add(m)
for m in sorted(used):
    base = re.sub(r"_(total|bucket|count|sum)$", "", m)
    if f'"{base}' not in code:
        problem(f"metric {m} is read by the rules but no source under collector/ or proxy/ writes \"{base}...\"")

# coverage by the unit tests
fires, silent, queried = set(), set(), []
for path in test_files:
    doc = yaml.safe_load(open(path))
    for t in doc.get("tests", []):
        for at in t.get("alert_rule_test", []) or []:
            (fires if at.get("exp_alerts") else silent).add(at["alertname"])
            for e in at.get("exp_alerts") or []:
                got = set((e.get("exp_annotations") or {}).keys())
                if got != {"summary", "description", "runbook"}:
                    problem(f"{os.path.basename(path)}: {at['alertname']} at {at['eval_time']}: "
                            f"exp_annotations has {sorted(got)}")
        for pt in t.get("promql_expr_test", []) or []:
            queried.append(pt["expr"])
for a in sorted(alerts):
    if a not in fires:
        problem(f"alert {a}: no unit test where it fires")
    if a not in silent:
        problem(f"alert {a}: no unit test where it must not fire")
patterns = [p for e in queried for p in re.findall(r'__name__=~"([^"]+)"', e)]
for rec in sorted(records):
    if not any(rec in e for e in queried) and not any(re.fullmatch(p, rec) for p in patterns):
        problem(f"recording rule {rec}: no promql_expr_test queries it")

for p in problems:
    print("  " + p, file=sys.stderr)
print(f"{len(alerts)} alerts, {len(records)} recording rules, {len(test_files)} test files", file=sys.stderr)
sys.exit(1 if problems else 0)
PY

echo "PASS: deploy/prometheus rules check clean, their unit tests pass, every alert has severity, summary, description and a runbook, and is tested firing and silent"
