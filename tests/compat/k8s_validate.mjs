// Validates Kubernetes objects against the OpenAPI schemas, through the npm `kubernetes-models`
// packages (pinned in package.json): kubernetes-models for the built-in kinds,
// @kubernetes-models/prometheus-operator for ServiceMonitor.
//   node k8s_validate.mjs < objects.json     (a JSON array of objects; tests/compat/test_kubernetes_manifests.sh)
// Prints "ok KIND NAME" per valid object, or the schema's complaints, and exits 1 if any is invalid
// or of a kind it has no schema for.
import { readFileSync } from "node:fs";

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  const path =
    group === "monitoring.coreos.com"
      ? `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`
      : group === ""
        ? `kubernetes-models/${version}/${kind}`
        : `kubernetes-models/${group}/${version}/${kind}`;
  const m = await import(path);
  return m[kind];
}

const objects = JSON.parse(readFileSync(0, "utf8"));
let bad = 0;
for (const o of objects) {
  const name = `${o.kind} ${o.metadata?.namespace ?? "-"}/${o.metadata?.name ?? "?"}`;
  let Model;
  try {
    Model = await modelFor(o.apiVersion, o.kind);
  } catch (e) {
    console.log(`no schema for ${o.apiVersion} ${name}: ${e.message}`);
    bad++;
    continue;
  }
  try {
    new Model(o).validate();
    console.log(`ok ${name}`);
  } catch (e) {
    console.log(`INVALID ${name}: ${e.message}`);
    bad++;
  }
}
process.exit(bad ? 1 : 0);
