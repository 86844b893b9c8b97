#!/usr/bin/env bash
# deploy/kubernetes (issue 13), checked without a cluster: each overlay (single, scale-out) is rendered
# with `kubectl kustomize` and
#  - every object passes schema validation against the Kubernetes OpenAPI schemas (npm kubernetes-models,
#    @kubernetes-models/prometheus-operator for the ServiceMonitor; pinned in package-lock.json), and the
#    validator itself refuses a broken object;
#  - every namespaced object is in outrider-system;
#  - each collector container runs non-root with a read-only root filesystem, no privilege escalation,
#    no capabilities, resource requests and a memory limit, readiness and liveness probes on /health,
#    and its pod carries the Prometheus scrape annotations;
#  - selectors hold together: each Deployment's selector matches its pod labels, each Service selects
#    some pod, the ServiceMonitor selects Services that have its port, each ConfigMap a pod mounts is
#    there, and outrider-collector --check accepts the settings file it holds;
#  - scale-out: one Deployment per role (ingest, store, query), the query member's dns+NAME peer is a
#    headless Service selecting the store members, OTLP is served by the ingest Service;
#  - Grafana: the dashboards ConfigMap holds the five dashboards (each valid JSON) and the data
#    sources ConfigMap the two uids the dashboards use.
. "$(dirname "$0")/../lib.sh"

command -v kubectl >/dev/null || { echo "SKIP: no kubectl (kubectl kustomize renders the manifests)"; exit 77; }
kv=$(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\([0-9]*\).*/\1/p')
[[ ${kv:-0} -ge 4 ]] || { echo "SKIP: kubectl's kustomize is older than v4 (${kv:-none}): the overlays use its patches field"; exit 77; }
NODE_DIR=$OUTRIDER_SRC/tests/compat
[[ -d $NODE_DIR/node_modules/kubernetes-models ]] || fail "run npm ci in tests/compat (scripts/test.sh does)"

to_json() { python3 -c 'import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))'; }

# the validator is not vacuous: a Deployment with a string for replicas and a container without a name
printf '[{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"replicas":"two","selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"image":"i"}]}}}}]' \
    >"$T/broken.json"
(cd "$NODE_DIR" && node k8s_validate.mjs <"$T/broken.json") >"$T/broken.out" 2>&1 && fail "the validator accepted a broken Deployment"
grep -q 'INVALID Deployment' "$T/broken.out" || fail "validator: $(cat "$T/broken.out")"

for overlay in single scale-out; do
    dir=$OUTRIDER_SRC/deploy/kubernetes/overlays/$overlay
    kubectl kustomize "$dir" >"$T/$overlay.yaml" 2>"$T/$overlay.err" || fail "kubectl kustomize $overlay: $(cat "$T/$overlay.err")"
    to_json <"$T/$overlay.yaml" >"$T/$overlay.json" || fail "$overlay: not YAML"
    (cd "$NODE_DIR" && node k8s_validate.mjs <"$T/$overlay.json") >"$T/$overlay.valid" 2>&1 ||
        fail "$overlay: schema validation: $(grep -v '^ok ' "$T/$overlay.valid")"
    note "$overlay: $(grep -c '^ok ' "$T/$overlay.valid") objects valid against the schemas"

    # the structural checks, and each ConfigMap's collector settings written out for --check
    mkdir -p "$T/$overlay.settings"
    python3 - "$T/$overlay.json" "$overlay" "$T/$overlay.settings" <<'PY' || fail "$overlay: the checks above"
import json, sys, os
objs, overlay, outdir = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
problems = []
def bad(msg): problems.append(msg)
by_kind = {}
for o in objs:
    by_kind.setdefault(o["kind"], []).append(o)
    if o["kind"] != "Namespace" and o["metadata"].get("namespace") != "outrider-system":
        bad(f'{o["kind"]} {o["metadata"]["name"]}: namespace {o["metadata"].get("namespace")!r}')
def selects(sel, labels): return bool(sel) and all(labels.get(k) == v for k, v in sel.items())
deps = by_kind.get("Deployment", [])
cms = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
for d in deps:
    n, spec = d["metadata"]["name"], d["spec"]
    pod = spec["template"]
    if not selects(spec["selector"]["matchLabels"], pod["metadata"]["labels"]):
        bad(f"Deployment {n}: its selector does not match its pod labels")
    ann = pod["metadata"].get("annotations", {})
    if ann.get("prometheus.io/scrape") != "true" or ann.get("prometheus.io/port") != "9411" or ann.get("prometheus.io/path") != "/metrics":
        bad(f"Deployment {n}: Prometheus scrape annotations {ann}")
    ps = pod["spec"]
    if not ps.get("securityContext", {}).get("runAsNonRoot") or ps["securityContext"].get("runAsUser", 0) == 0:
        bad(f"Deployment {n}: not run as non-root")
    for c in ps["containers"]:
        sc = c.get("securityContext", {})
        if sc.get("readOnlyRootFilesystem") is not True or sc.get("allowPrivilegeEscalation") is not False or sc.get("capabilities", {}).get("drop") != ["ALL"]:
            bad(f"Deployment {n}/{c['name']}: securityContext {sc}")
        r = c.get("resources", {})
        if not r.get("requests", {}).get("cpu") or not r.get("requests", {}).get("memory") or not r.get("limits", {}).get("memory"):
            bad(f"Deployment {n}/{c['name']}: resources {r}")
        for p in ("readinessProbe", "livenessProbe"):
            g = c.get(p, {}).get("httpGet", {})
            if g.get("path") != "/health" or g.get("port") not in [x["name"] for x in c.get("ports", [])]:
                bad(f"Deployment {n}/{c['name']}: {p} {c.get(p)}")
    for v in ps.get("volumes", []):
        if "configMap" in v:
            name = v["configMap"]["name"]
            if name not in cms:
                bad(f"Deployment {n}: mounts ConfigMap {name}, which is not there")
            elif "collector.yaml" not in cms[name]["data"]:
                bad(f"ConfigMap {name}: no collector.yaml")
            else:
                open(os.path.join(outdir, n + ".yaml"), "w").write(cms[name]["data"]["collector.yaml"])
pods = [d["spec"]["template"]["metadata"]["labels"] for d in deps]
svcs = by_kind.get("Service", [])
for s in svcs:
    if not any(selects(s["spec"]["selector"], l) for l in pods):
        bad(f"Service {s['metadata']['name']} selects no pod")
mons = by_kind.get("ServiceMonitor", [])
if len(mons) != 1:
    bad(f"{len(mons)} ServiceMonitors")
for m in mons:
    chosen = [s for s in svcs if selects(m["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))]
    if not chosen:
        bad("the ServiceMonitor selects no Service")
    for s in chosen:
        for e in m["spec"]["endpoints"]:
            if e["port"] not in [p["name"] for p in s["spec"]["ports"]] or e.get("path") != "/metrics":
                bad(f"ServiceMonitor endpoint {e} not on Service {s['metadata']['name']}")
roles = {}
for d in deps:
    data = open(os.path.join(outdir, d["metadata"]["name"] + ".yaml")).read() if os.path.exists(os.path.join(outdir, d["metadata"]["name"] + ".yaml")) else ""
    role = next((l.split(":", 1)[1].strip() for l in data.splitlines() if l.startswith("role:")), "?")
    roles[role] = d
if overlay == "single":
    if set(roles) != {"all"} or deps[0]["spec"]["replicas"] != 1:
        bad(f"single: roles {sorted(roles)}")
else:
    if set(roles) != {"ingest", "store", "query"}:
        bad(f"scale-out: roles {sorted(roles)}")
    else:
        heads = [s for s in svcs if s["spec"].get("clusterIP") == "None"]
        store_labels = roles["store"]["spec"]["template"]["metadata"]["labels"]
        q = open(os.path.join(outdir, roles["query"]["metadata"]["name"] + ".yaml")).read()
        if not any(f"dns+{h['metadata']['name']}:9411" in q and selects(h["spec"]["selector"], store_labels) for h in heads):
            bad("scale-out: query.peers is no headless Service of the store members")
        ingest_labels = roles["ingest"]["spec"]["template"]["metadata"]["labels"]
        if not any(selects(s["spec"]["selector"], ingest_labels) and 4318 in [p["port"] for p in s["spec"]["ports"]] for s in svcs):
            bad("scale-out: no Service serves OTLP (4318) from the ingest members")
dash = [c for c in cms.values() if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
if len(dash) != 1 or len(dash[0]["data"]) != 5:
    bad(f"Grafana dashboards: {[sorted(c['data']) for c in dash]}")
else:
    for k, v in dash[0]["data"].items():
        d = json.loads(v)
        if not d.get("title") or not d.get("panels"):
            bad(f"dashboard {k}: no title or panels")
ds = [c for c in cms.values() if c["metadata"].get("labels", {}).get("grafana_datasource") == "1"]
if len(ds) != 1 or not all(u in next(iter(ds[0]["data"].values())) for u in ("uid: outrider-prometheus", "uid: outrider-zipkin")):
    bad("Grafana data sources: the two uids the dashboards use")
for p in problems:
    print("FAIL:", p)
sys.exit(1 if problems else 0)
PY
    for f in "$T/$overlay.settings"/*.yaml; do
        "$OUTRIDER_BIN/outrider-collector" --config "$f" --check >"$T/check.out" 2>&1 ||
            fail "$overlay: outrider-collector --check $(basename "$f"): $(cat "$T/check.out")"
    done
    note "$overlay: $(ls "$T/$overlay.settings" | wc -l) collector settings files pass --check"
done
echo "1 passed, 0 failed"
