#!/usr/bin/env bash
# outriderctl inject (issue 13), field by field and for idempotence, without a cluster: a file with
# a Deployment, a StatefulSet (init containers and volumes of its own, indented lists), a DaemonSet,
# a Job, a CronJob, a bare Pod, an opted-out Deployment and a Service, with comments:
#  - each workload gets outrider-init first (outriderctl redirect, NET_ADMIN and NET_RAW only, as
#    root) and outrider-proxy as a native sidecar (restartPolicy Always, a startup probe on 15001, uid
#    1337, read-only root, no capabilities), its own init containers after them, its containers and
#    other fields unchanged, the four volumes, and a ConfigMap with its Proxy document (its labels,
#    namespace and service account), which outrider-proxy --check accepts with a mesh file;
#  - the Service and the opted-out Deployment come out unchanged, and so do the comments;
#  - a second run changes nothing (byte for byte, "0 workloads injected");
#  - every object of the output passes the Kubernetes schemas (npm kubernetes-models);
#  - a flow-style pod spec and a file that is not YAML are refused with file:line:col.
. "$(dirname "$0")/../lib.sh"

CTL=$OUTRIDER_BIN/outriderctl
NODE_DIR=$OUTRIDER_SRC/tests/compat
[[ -d $NODE_DIR/node_modules/kubernetes-models ]] || fail "run npm ci in tests/compat (scripts/test.sh does)"

cat >"$T/app.yaml" <<'YAML'
# the shop's workloads, as their teams keep them
apiVersion: apps/v1
kind: Deployment
metadata:
  name: reviews-v1
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: reviews, version: v1}
  template:
    metadata:
      labels:
        app: reviews
        version: v1
        team: "équipe-ü"            # a non-ASCII label value travels into the Proxy document
    spec:
      serviceAccountName: reviews   # its identity in the mesh
      containers:
      - name: reviews
        image: example/reviews:1.0
        ports:
        - containerPort: 9080
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ratings-db, namespace: shop}
spec:
  serviceName: ratings-db
  selector: {matchLabels: {app: ratings-db}}
  template:
    metadata:
      labels: {app: ratings-db}
    spec:
        initContainers:
            - name: schema
              image: example/migrate:3
        containers:
            - name: db
              image: example/db:15
              ports: [{containerPort: 5432, name: tcp-postgres}]
        volumes:
            - name: data
              emptyDir: {}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent, namespace: shop}
spec:
  selector: {matchLabels: {app: node-agent}}
  template:
    metadata: {labels: {app: node-agent}}
    spec:
      containers:
      - name: agent
        image: example/agent:2
---
apiVersion: batch/v1
kind: Job
metadata: {name: backfill, namespace: shop}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: backfill
        image: example/backfill:1
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: shop}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: report
            image: example/report:1
---
apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: shop, labels: {app: debug}}
spec:
  containers:
  - name: shell
    image: example/shell:1
---
# the mesh leaves this one alone
apiVersion: apps/v1
kind: Deployment
metadata: {name: legacy, namespace: shop}
spec:
  selector: {matchLabels: {app: legacy}}
  template:
    metadata:
      labels: {app: legacy}
      annotations: {sidecar.istio.io/inject: "false"}
    spec:
      containers:
      - name: legacy
        image: example/legacy:0.9
---
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{port: 9080, name: http}]
YAML

"$CTL" inject -f "$T/app.yaml" >"$T/out.yaml" 2>"$T/inject.err" || fail "inject: $(cat "$T/inject.err")"
grep -qx 'outriderctl inject: 6 workloads injected' "$T/inject.err" || fail "inject said: $(cat "$T/inject.err")"
grep '^ *#' "$T/app.yaml" | while IFS= read -r line; do grep -qxF -- "$line" "$T/out.yaml" || fail "comment lost: $line"; done
grep -qF 'serviceAccountName: reviews   # its identity in the mesh' "$T/out.yaml" || fail "a line's comment was lost"

# idempotent, byte for byte
"$CTL" inject -f - <"$T/out.yaml" >"$T/out2.yaml" 2>"$T/inject2.err" || fail "second inject: $(cat "$T/inject2.err")"
cmp -s "$T/out.yaml" "$T/out2.yaml" || fail "a second inject changed the file: $(diff "$T/out.yaml" "$T/out2.yaml" | head -20)"
grep -qx 'outriderctl inject: 0 workloads injected' "$T/inject2.err" || fail "second run said: $(cat "$T/inject2.err")"

# field by field
to_json() { python3 -c 'import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))' "$1"; }
to_json "$T/app.yaml" >"$T/in.json"
to_json "$T/out.yaml" >"$T/out.json"
mkdir -p "$T/proxies"
python3 - "$T/in.json" "$T/out.json" "$T/proxies" <<'PY' || fail "the injected fields (above)"
import json, sys, os, yaml
ins, outs, outdir = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
problems = []
def bad(m): problems.append(m)
def template(o):
    k = o["kind"]
    if k == "Pod": return o
    if k == "CronJob": return o["spec"]["jobTemplate"]["spec"]["template"]
    return o["spec"]["template"]
key = lambda o: (o["kind"], o["metadata"]["name"])
before = {key(o): o for o in ins}
after = {key(o): o for o in outs}
cms = {o["metadata"]["name"]: o for o in outs if o["kind"] == "ConfigMap"}
if set(before) - set(after): bad(f"objects lost: {set(before) - set(after)}")
workloads = [k for k in before if k[0] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod") and k[1] != "legacy"]
if len(workloads) != 6: bad(f"workloads in the input: {workloads}")
for k in workloads:
    b, a = before[k], after[k]
    tb, ta = template(b), template(a)
    sb, sa = tb["spec"], ta["spec"]
    name = f"{k[0]} {k[1]}"
    ic = sa.get("initContainers", [])
    if [c["name"] for c in ic[:2]] != ["outrider-init", "outrider-proxy"]:
        bad(f"{name}: initContainers {[c['name'] for c in ic]}"); continue
    init, proxy = ic[0], ic[1]
    if ic[2:] != sb.get("initContainers", []): bad(f"{name}: its own init containers changed: {ic[2:]}")
    if init["command"][:4] != ["outriderctl", "redirect", "--proxy-uid", "1337"]: bad(f"{name}: init command {init['command']}")
    c = init["securityContext"]["capabilities"]
    if sorted(c.get("add", [])) != ["NET_ADMIN", "NET_RAW"] or c.get("drop") != ["ALL"]: bad(f"{name}: init capabilities {c}")
    if proxy.get("restartPolicy") != "Always": bad(f"{name}: the sidecar is no native sidecar")
    if proxy.get("startupProbe", {}).get("tcpSocket", {}).get("port") != 15001: bad(f"{name}: startup probe {proxy.get('startupProbe')}")
    sc = proxy["securityContext"]
    if sc.get("runAsUser") != 1337 or sc.get("runAsNonRoot") is not True or sc.get("readOnlyRootFilesystem") is not True or sc.get("capabilities", {}).get("drop") != ["ALL"] or "add" in sc.get("capabilities", {}):
        bad(f"{name}: sidecar securityContext {sc}")
    if sa["containers"] != sb["containers"]: bad(f"{name}: the app's containers changed")
    for f in set(sb) | set(sa):
        if f not in ("initContainers", "volumes") and sa.get(f) != sb.get(f): bad(f"{name}: pod spec field {f} changed")
    vols = {v["name"]: v for v in sa.get("volumes", [])}
    want_sa = sb.get("serviceAccountName", "default")
    if vols.get("outrider-token", {}).get("secret", {}).get("secretName") != f"outrider-token-{want_sa}": bad(f"{name}: token volume {vols.get('outrider-token')}")
    for v in sb.get("volumes", []):
        if vols.get(v["name"]) != v: bad(f"{name}: its volume {v['name']} changed")
    mounts = {m["name"] for m in proxy["volumeMounts"]}
    if not mounts <= set(vols): bad(f"{name}: the sidecar mounts {mounts - set(vols)}, which are no volumes")
    cm_name = vols.get("outrider-proxy-config", {}).get("configMap", {}).get("name")
    cm = cms.get(cm_name)
    if cm is None: bad(f"{name}: no ConfigMap {cm_name}"); continue
    if cm["metadata"].get("namespace") != b["metadata"].get("namespace"): bad(f"{name}: ConfigMap namespace")
    p = yaml.safe_load(cm["data"]["proxy.yaml"])
    if p["kind"] != "Proxy" or p["metadata"]["name"] != k[1] or p["metadata"]["namespace"] != "shop": bad(f"{name}: Proxy {p['metadata']}")
    if p["metadata"]["labels"] != tb.get("metadata", {}).get("labels", {}): bad(f"{name}: Proxy labels {p['metadata']['labels']}")
    if p["spec"]["identity"]["serviceAccount"] != want_sa: bad(f"{name}: identity {p['spec']['identity']}")
    if p["spec"]["interceptionMode"] != "REDIRECT": bad(f"{name}: not REDIRECT")
    named = [{"number": q["containerPort"], "name": q["name"]} for c in sb["containers"] for q in c.get("ports", []) if "name" in q]
    if p["spec"]["inbound"].get("ports", []) != named: bad(f"{name}: inbound ports {p['spec']['inbound'].get('ports')}, want {named}")
    open(os.path.join(outdir, k[1] + ".yaml"), "w").write(cm["data"]["proxy.yaml"])
for k in [k for k in before if k[1] == "legacy" or k[0] == "Service"]:
    if after[k] != before[k]: bad(f"{k}: changed")
if len(cms) != 6: bad(f"{len(cms)} ConfigMaps")
if after[("Deployment", "reviews-v1")]["spec"]["template"]["spec"]["initContainers"][1]["image"] != "outrider/proxy:0.1.0": bad("image")
for m in problems: print("FAIL:", m)
sys.exit(1 if problems else 0)
PY

# the Proxy documents are valid configurations, with the mesh's documents beside them
cat >"$T/mesh.yaml" <<'YAML'
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews}
spec: {hosts: [reviews], ports: [{number: 9080, name: http}], resolution: STATIC, endpoints: [{address: 10.0.0.5}]}
YAML
"$CTL" ca init "$T/ca" >/dev/null 2>&1 || fail "ca init"
echo token >"$T/token"
for f in "$T/proxies"/*.yaml; do
    sed -e "s|/etc/outrider/ca/root-cert.pem|$T/ca/root-cert.pem|" -e "s|/var/run/secrets/outrider/token|$T/token|" \
        "$f" >"$f.local"
    "$OUTRIDER_BIN/outrider-proxy" --config "$f.local" --config "$T/mesh.yaml" --check >"$T/check.out" 2>&1 ||
        fail "$(basename "$f"): outrider-proxy --check: $(cat "$T/check.out")"
done

# the schemas
(cd "$NODE_DIR" && node k8s_validate.mjs <"$T/out.json") >"$T/valid.out" 2>&1 ||
    fail "schema validation: $(grep -v '^ok ' "$T/valid.out")"
note "$(grep -c '^ok ' "$T/valid.out") objects valid against the schemas"

# refusals
printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: b}]}\n' >"$T/flow.yaml"
"$CTL" inject -f "$T/flow.yaml" >"$T/flow.out" 2>"$T/flow.err" && fail "a flow-style pod spec was injected"
grep -qF "$T/flow.yaml:4:8: Pod p: the pod spec and its containers, initContainers and volumes must be in block style" "$T/flow.err" ||
    fail "flow style: $(cat "$T/flow.err")"
[[ ! -s $T/flow.out ]] || fail "output despite the error: $(cat "$T/flow.out")"
printf 'kind: [unclosed\n' >"$T/bad.yaml"
"$CTL" inject -f "$T/bad.yaml" >/dev/null 2>"$T/bad.err" && fail "not YAML was accepted"
grep -qE "$T/bad.yaml:[0-9]+:[0-9]+: " "$T/bad.err" || fail "not YAML: $(cat "$T/bad.err")"
echo "1 passed, 0 failed"
