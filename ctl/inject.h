/*
 * inject: add the Outrider sidecar to Kubernetes workloads, as
 * `istioctl kube-inject` does, by inserting text into the YAML as written:
 * everything else (comments, order, quoting, other documents) is kept byte
 * for byte.
 *
 * For each Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob and
 * bare Pod whose pod template is not opted out (annotation
 * `sidecar.istio.io/inject: "false"`) and has no `outrider-proxy` yet:
 *   - initContainers gets, first, `outrider-init` (`outriderctl redirect
 *     --proxy-uid 1337`, capabilities NET_ADMIN and NET_RAW only, as Istio's
 *     istio-init), then `outrider-proxy` as a native sidecar
 *     (`restartPolicy: Always`, Kubernetes 1.28+) with a startup probe on
 *     the outbound listener, so the app's containers start once the sidecar
 *     is ready; uid 1337, read-only root filesystem, no capabilities;
 *   - volumes gets the sidecar's configuration: the workload's Proxy
 *     document (a ConfigMap this adds at the end of the output), the mesh's
 *     documents (a ConfigMap the operator keeps, `--mesh-config`), the mesh
 *     CA's root certificate (ConfigMap `outrider-ca-root`) and the service
 *     account's bootstrap token for the mesh CA (Secret
 *     `outrider-token-<serviceAccount>`);
 *   - the workload's identity is its pod's service account.
 * Running it again changes nothing. Flow-style (`{...}`) pod specs are
 * refused with a message: there is no place to insert lines into.
 */
#ifndef OUTRIDER_CTL_INJECT_H
#define OUTRIDER_CTL_INJECT_H

#include <stddef.h>

#include "buf.h"

typedef struct inject_opts {
    const char *image;         /* the sidecar's image, default outrider/proxy:VERSION */
    const char *mesh_config;   /* the mesh ConfigMap's name, default outrider-mesh */
    const char *ca_address;    /* the mesh CA, default https://outrider-ca.outrider-system:15012 */
    const char *otlp_endpoint; /* the collector, default http://outrider-collector.outrider-system:4318 */
    const char *namespace;     /* for documents without metadata.namespace, default "default" */
} inject_opts_t;

void inject_opts_init(inject_opts_t *o);

/*
 * Inject into the YAML stream text (len bytes, named name in messages).
 * Appends the result to out; *n_injected gets the number of workloads
 * changed. -1 with "name:line:col: reason" in err when the input cannot be
 * read or a workload cannot be injected (nothing appended then).
 */
int inject_yaml(const inject_opts_t *o, const char *name, const char *text, size_t len, buf_t *out, size_t *n_injected,
                char *err, size_t errlen);

#endif
