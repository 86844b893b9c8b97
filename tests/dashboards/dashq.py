#!/usr/bin/env python3
"""Checks of the Grafana dashboards for tests/integration/test_dashboards.sh (standard library only).

  dashq.py lint --datasources PROVISIONING.yaml --schema-version N DASHBOARD.json...
      The rules Grafana's types do not express: unique panel ids and dashboard
      uids, data source uids that the provisioning defines, every template
      variable used (and every variable used defined), a description on every
      panel, targets on every panel but text and row ones, unique refIds, panels
      inside the 24-column grid and not overlapping, schemaVersion N, and
      exemplar: true on every time series target that reads the raw duration
      histogram (recorded series carry no exemplars).

  dashq.py run --prom URL --start S --end E --bindings FILE [--step 1]
               [--rate-interval 4s] [--interval 1s] [--report FILE] DASHBOARD.json...
      Runs every panel target and every variable query of every dashboard
      against Prometheus at URL, with the template variables filled in as
      Grafana does (a single value as is; a multi-value or All variable as a
      regex alternation of the escaped values, or its allValue; $__rate_interval,
      $__interval, $__range...). Range targets go to /api/v1/query_range over
      [S, E], instant ones to /api/v1/query at E; variable queries
      (label_values) to /api/v1/label/NAME/values. FILE maps a dashboard uid to
      a list of variable bindings ({"var": "value" | ["v1", "v2"] | "$__all"});
      a target passes when one binding gives a result with a finite value.
      Every binding must give some panel data, and each bound value must be one
      the variable's query offers. Failures name the dashboard, the panel title
      and the query; exit 1 if any. Exemplar targets are also asked for
      exemplars (/api/v1/query_exemplars); the report lists the trace ids found.
      --frames FILE writes, for every panel with transformations, its targets
      with Prometheus's answers under the first binding where all of them have
      data, for transform.cjs.
"""
import argparse
import json
import math
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

BUILTINS = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms", "__all",
            "__url_time_range", "__data", "__value", "__field", "__series", "__from", "__to", "__dashboard",
            "__name", "__org", "__user", "timeFilter", "__timeFilter"}
VAR_RE = re.compile(r"\$(\w+)|\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]")
RAW_DURATION = re.compile(r"(?<![\w:])istio_request_duration_milliseconds_bucket(?![\w:])")


def all_panels(dash):
    for p in dash.get("panels", []):
        yield p
        for q in p.get("panels", []) or []:
            yield q


def var_refs(text):
    for m in VAR_RE.finditer(text or ""):
        yield m.group(1) or m.group(2) or m.group(3)


def datasource_uids(path):
    """uid: values of a Grafana data source provisioning file (no YAML parser needed for that)."""
    uids = set()
    for line in open(path, encoding="utf-8"):
        m = re.match(r"\s*(?:-\s*)?uid:\s*['\"]?([^'\"\s#]+)", line)
        if m:
            uids.add(m.group(1))
    return uids


def lint(args):
    errors = []
    known_ds = datasource_uids(args.datasources) | {"-- Grafana --"}
    uids = {}
    for path in args.dashboards:
        def err(msg):
            errors.append(f"{path}: {msg}")
        try:
            dash = json.load(open(path, encoding="utf-8"))
        except ValueError as e:
            err(f"not JSON: {e}")
            continue
        if dash.get("schemaVersion") != args.schema_version:
            err(f"schemaVersion {dash.get('schemaVersion')}, expected {args.schema_version} (@grafana/schema's default)")
        uid = dash.get("uid")
        if not uid:
            err("no uid")
        elif uid in uids:
            err(f"uid {uid} also in {uids[uid]}")
        uids[uid] = path
        if not dash.get("title"):
            err("no title")

        def check_ds(ds, where):
            if isinstance(ds, dict) and "uid" in ds and not str(ds["uid"]).startswith("$"):
                if ds["uid"] not in known_ds:
                    err(f"{where}: data source uid {ds['uid']!r} is not provisioned ({sorted(known_ds)})")

        variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
        used_text = []  # everything a variable can be used in
        for v in variables.values():
            check_ds(v.get("datasource"), f"variable {v['name']}")
            q = v.get("query")
            used_text.append(json.dumps(q) if isinstance(q, dict) else str(q or ""))
            if not v.get("description"):
                err(f"variable {v['name']}: no description")
        for a in dash.get("annotations", {}).get("list", []):
            check_ds(a.get("datasource"), f"annotation {a.get('name')}")
        ids = {}
        cells = []
        for p in all_panels(dash):
            title = p.get("title", "")
            where = f"panel {p.get('id')} {title!r}"
            pid = p.get("id")
            if not isinstance(pid, int):
                err(f"{where}: id is not an integer")
            elif pid in ids:
                err(f"{where}: id {pid} also used by {ids[pid]!r}")
            ids[pid] = title
            if not title:
                err(f"{where}: no title")
            g = p.get("gridPos") or {}
            if not all(isinstance(g.get(k), int) for k in ("x", "y", "w", "h")):
                err(f"{where}: gridPos incomplete: {g}")
            else:
                if g["x"] < 0 or g["w"] < 1 or g["x"] + g["w"] > 24 or g["h"] < 1:
                    err(f"{where}: gridPos outside the 24-column grid: {g}")
                if p in dash.get("panels", []):  # panels of a collapsed row have a layout of their own
                    for other, og in cells:
                        if g["x"] < og["x"] + og["w"] and og["x"] < g["x"] + g["w"] and g["y"] < og["y"] + og["h"] and og["y"] < g["y"] + g["h"]:
                            err(f"{where}: overlaps panel {other!r}")
                    cells.append((title, g))
            used_text.append(title)
            used_text.append(p.get("description", ""))
            used_text.append(json.dumps(p.get("fieldConfig", {})))
            used_text.append(json.dumps(p.get("links", [])))
            if p.get("type") == "row":
                continue
            if not (p.get("description") or "").strip():
                err(f"{where}: no description")
            check_ds(p.get("datasource"), where)
            targets = p.get("targets") or []
            if p.get("type") != "text" and not targets:
                err(f"{where}: no targets")
            refids = set()
            for t in targets:
                tw = f"{where} target {t.get('refId')}"
                if not t.get("refId"):
                    err(f"{tw}: no refId")
                elif t["refId"] in refids:
                    err(f"{tw}: refId used twice")
                refids.add(t.get("refId"))
                check_ds(t.get("datasource"), tw)
                expr = t.get("expr", "")
                if not expr.strip():
                    err(f"{tw}: empty expr")
                used_text.append(expr)
                used_text.append(t.get("legendFormat", ""))
                for name in var_refs(expr):
                    if name not in variables and name not in BUILTINS and not name.isdigit():
                        err(f"{tw}: uses ${name}, which is not a variable of this dashboard")
                if p.get("type") == "timeseries" and RAW_DURATION.search(expr) and not t.get("exemplar"):
                    err(f"{tw}: a latency graph of istio_request_duration_milliseconds_bucket without exemplar: true")
        blob = "\n".join(used_text)
        for name, v in variables.items():
            # a variable counts as used when another text names it (its own query does not count)
            own = json.dumps(v.get("query")) if isinstance(v.get("query"), dict) else str(v.get("query") or "")
            rest = blob.replace(own, "", 1)
            if name not in set(var_refs(rest)):
                err(f"variable {name} is never used")
    for e in errors:
        print("LINT:", e)
    print(f"lint: {len(args.dashboards)} dashboards, {len(errors)} problems")
    return 1 if errors else 0


# --------------------------------------------------------------------------- interpolation, as Grafana's Prometheus data source does it
def regular_escape(v):
    return v.replace("\\", "\\\\").replace("'", "\\\\'")


def special_regex_escape(v):
    v = v.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), v)


def format_value(var, value, options):
    multi_like = var.get("multi") or var.get("includeAll")
    if value == "$__all" or value == ["$__all"]:
        if var.get("allValue") is not None:
            return var["allValue"]
        value = list(options)
    if not multi_like:
        return regular_escape(value if isinstance(value, str) else value[0])
    if isinstance(value, str):
        return special_regex_escape(value)
    esc = [special_regex_escape(x) for x in value]
    return esc[0] if len(esc) == 1 else "(" + "|".join(esc) + ")"


def interpolate(text, values):
    def sub(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return values.get(name, m.group(0))
    return VAR_RE.sub(sub, text)


class Prom:
    def __init__(self, url):
        self.url = url.rstrip("/")

    def get(self, path, params):
        q = urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{q}", timeout=60) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            return None, f"HTTP {e.code}: {e.read().decode(errors='replace')[:500]}"
        except OSError as e:
            return None, str(e)
        if body.get("status") != "success":
            return None, json.dumps(body)[:500]
        return body["data"], None


LABEL_VALUES = re.compile(r"^\s*label_values\((?:(.*),\s*)?(\w+)\s*\)\s*$", re.S)


def variable_options(prom, var, values, start, end):
    """The values a variable offers: (options, error)."""
    if var["type"] == "custom":
        return [x.strip() for x in str(var["query"]).split(",") if x.strip()], None
    if var["type"] != "query":
        return None, f"variable type {var['type']} not supported by dashq.py"
    q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
    q = interpolate(q, values)
    m = LABEL_VALUES.match(q)
    if not m:
        return None, f"variable query {q!r}: only label_values(...) is supported by dashq.py"
    params = {"start": start, "end": end}
    if m.group(1):
        params["match[]"] = m.group(1)
    data, error = prom.get(f"/api/v1/label/{m.group(2)}/values", params)
    if error:
        return None, f"{q}: {error}"
    return data, None


def finite_values(data, instant):
    """(finite points, non-zero finite points) of a query result"""
    n = nz = 0
    for s in data.get("result", []) if isinstance(data, dict) else []:
        points = [s["value"]] if instant else s.get("values", [])
        for _, v in points:
            if math.isfinite(float(v)):
                n += 1
                nz += float(v) != 0
    return n, nz


def run(args):
    prom = Prom(args.prom)
    bindings_all = json.load(open(args.bindings, encoding="utf-8"))
    failures, report, frames = [], [], []
    all_exemplar_ids = set()
    range_s = int(float(args.end) - float(args.start))
    builtins = {"__rate_interval": args.rate_interval, "__interval": args.interval,
                "__interval_ms": str(int(parse_duration(args.interval) * 1000)),
                "__range": f"{range_s}s", "__range_s": str(range_s), "__range_ms": str(range_s * 1000)}
    for path in args.dashboards:
        dash = json.load(open(path, encoding="utf-8"))
        name = f"{dash.get('title')} ({path.rsplit('/', 1)[-1]})"
        variables = dash.get("templating", {}).get("list", [])
        bindings = bindings_all.get(dash["uid"], [{}])
        targets = [(p, t) for p in all_panels(dash) for t in p.get("targets") or []]
        found = {}  # (panel id, refId) -> (binding index, series, finite points)
        exemplars = {}  # (panel id, refId) -> trace ids
        per_binding = [0] * len(bindings)
        answers = {}  # (panel id, binding index) -> {refId: data}, panels with transformations only
        for bi, binding in enumerate(bindings):
            values = dict(builtins)
            for var in variables:
                vname = var["name"]
                options, error = variable_options(prom, var, values, args.start, args.end)
                if error:
                    failures.append(f"{name}: variable {vname}: {error}")
                    options = []
                elif not options:
                    failures.append(f"{name}: variable {vname}: its query offers no value")
                chosen = binding.get(vname)
                if chosen is None:
                    cur = (var.get("current") or {}).get("value")
                    chosen = cur if cur not in (None, [], "") else (options[:1] or [""])[0]
                for x in ([chosen] if isinstance(chosen, str) else chosen):
                    if x != "$__all" and options and x not in options:
                        failures.append(f"{name}: variable {vname}: bound value {x!r} is not among its options {options}")
                values[vname] = format_value(var, chosen, options or [])
            for p, t in targets:
                key = (p["id"], t["refId"])
                expr = interpolate(t["expr"], values)
                instant = bool(t.get("instant")) and not t.get("range")
                if instant:
                    data, error = prom.get("/api/v1/query", {"query": expr, "time": args.end})
                else:
                    data, error = prom.get("/api/v1/query_range", {"query": expr, "start": args.start, "end": args.end,
                                                                    "step": args.step})
                if error:
                    failures.append(f"{name}: panel {p['title']!r} target {t['refId']}: query {expr!r}: {error}")
                    continue
                n, nz = finite_values(data, instant)
                if p.get("transformations") and n:
                    answers.setdefault((p["id"], bi), {})[t["refId"]] = data
                if n:
                    per_binding[bi] += 1
                    # the first binding with data, or a later one with non-zero values where that had only zeros
                    if key not in found or (nz and not found[key][3]):
                        found[key] = (bi, len(data["result"]), n, nz)
                if t.get("exemplar") and key not in exemplars:
                    ex, error = prom.get("/api/v1/query_exemplars", {"query": expr, "start": args.start, "end": args.end})
                    if error:
                        failures.append(f"{name}: panel {p['title']!r} target {t['refId']}: exemplars of {expr!r}: {error}")
                    else:
                        ids = sorted({e["labels"].get("trace_id", "") for s in ex for e in s.get("exemplars", [])} - {""})
                        if ids:
                            exemplars[key] = ids
        for p in all_panels(dash):
            if not p.get("transformations"):
                continue
            refs = [t["refId"] for t in p.get("targets") or []]
            got = [answers.get((p["id"], bi), {}) for bi in range(len(bindings))]
            full = next((a for a in got if all(r in a for r in refs)), None)
            if full is None:
                failures.append(f"{name}: panel {p['title']!r}: no binding gives all its queries data, "
                                "so its transformations cannot be run")
                continue
            frames.append({"dashboard": dash.get("title"), "uid": dash["uid"], "panel": p["id"], "title": p["title"],
                           "transformations": p["transformations"],
                           "targets": [{"refId": r, "result": full[r]} for r in refs]})
        all_exemplar_ids.update(i for ids in exemplars.values() for i in ids)
        for bi, n in enumerate(per_binding):
            if n == 0:
                failures.append(f"{name}: binding {bindings[bi]} gave no panel any data (wrong variable interpolation?)")
        for p, t in targets:
            key = (p["id"], t["refId"])
            if key in found:
                bi, series, points, nonzero = found[key]
                report.append(f"ok    {name} | {p['title']} | {t['refId']} | {series} series, {points} finite points"
                              f" ({nonzero} non-zero)"
                              f" | binding {json.dumps(bindings[bi])}"
                              + (f" | exemplar trace ids {exemplars[key]}" if key in exemplars else ""))
            else:
                failures.append(f"{name}: panel {p['title']!r} target {t['refId']}: no data under any binding: {t['expr']}")
                report.append(f"EMPTY {name} | {p['title']} | {t['refId']} | {t['expr']}")
    if args.report:
        with open(args.report, "w", encoding="utf-8") as f:
            f.write("\n".join(report) + "\n")
    if args.frames:
        with open(args.frames, "w", encoding="utf-8") as f:
            json.dump(frames, f)
    print(json.dumps({"targets": len(report), "failures": len(failures), "exemplar_trace_ids": sorted(all_exemplar_ids)}))
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


def parse_duration(s):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", s)
    if not m:
        raise SystemExit(f"bad duration {s}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    lp = sub.add_parser("lint")
    lp.add_argument("--datasources", required=True)
    lp.add_argument("--schema-version", type=int, required=True)
    lp.add_argument("dashboards", nargs="+")
    rp = sub.add_parser("run")
    rp.add_argument("--prom", required=True)
    rp.add_argument("--start", required=True)
    rp.add_argument("--end", required=True)
    rp.add_argument("--bindings", required=True)
    rp.add_argument("--step", default="1")
    rp.add_argument("--rate-interval", default="4s")
    rp.add_argument("--interval", default="1s")
    rp.add_argument("--report")
    rp.add_argument("--frames")
    rp.add_argument("dashboards", nargs="+")
    args = ap.parse_args()
    sys.exit(lint(args) if args.cmd == "lint" else run(args))


if __name__ == "__main__":
    main()
