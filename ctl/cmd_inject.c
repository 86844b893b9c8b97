/*
 * cmd_inject: `outriderctl inject -f FILE`, the sidecar added to the
 * workloads of a Kubernetes YAML file (inject.h), written to stdout.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "cmd.h"
#include "inject.h"

#define CMD "inject"
#define INJECT_MAX_BYTES (16u << 20)

static void usage(FILE *out)
{
    fprintf(out, "usage: outriderctl inject -f FILE|- [OPTIONS] > injected.yaml\n"
                 "\n"
                 "Add the Outrider sidecar to the Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs,\n"
                 "CronJobs and Pods of a Kubernetes YAML file (several documents allowed), as istioctl\n"
                 "kube-inject does, and write the file back on stdout: an init container that installs the\n"
                 "capture rules (outriderctl redirect; NET_ADMIN and NET_RAW), the sidecar as a native sidecar\n"
                 "(Kubernetes 1.28+: the app starts once it is ready), its volumes, and a ConfigMap per\n"
                 "workload with its Proxy document (identity: the pod's service account). Comments, order and\n"
                 "the other documents are kept; a workload injected before, or annotated\n"
                 "sidecar.istio.io/inject: \"false\", is left as it is.\n"
                 "\n"
                 "  -f, --filename FILE      the input (- for stdin)\n"
                 "      --image IMAGE        the sidecar's image (default outrider/proxy:" OUTRIDER_VERSION ")\n"
                 "      --mesh-config NAME   the ConfigMap with the mesh's documents in key mesh.yaml\n"
                 "                           (default outrider-mesh)\n"
                 "      --ca-address URL     the mesh CA (default https://outrider-ca.outrider-system:15012)\n"
                 "      --otlp-endpoint URL  the collector (default http://outrider-collector.outrider-system:4318)\n"
                 "  -n, --namespace NS       of documents without metadata.namespace (default default)\n"
                 "\n"
                 "The pods also need ConfigMap outrider-ca-root (root-cert.pem, the mesh CA's root) and, per\n"
                 "service account SA, Secret outrider-token-SA (token, its bootstrap token for the CA).\n");
}

static int read_all(const char *path, buf_t *out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (f == NULL) {
        cmd_error(CMD, "%s: %s", path, strerror(errno));
        return -1;
    }
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        buf_append(out, chunk, got);
        if (out->len > INJECT_MAX_BYTES) {
            cmd_error(CMD, "%s: larger than %u bytes", path, INJECT_MAX_BYTES);
            if (f != stdin)
                fclose(f);
            return -1;
        }
    }
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad) {
        cmd_error(CMD, "%s: read error", path);
        return -1;
    }
    return 0;
}

int cmd_inject(int argc, char **argv)
{
    enum { O_IMAGE = 1000, O_MESH, O_CA, O_OTLP };
    static const struct option opts[] = {
        {"filename", required_argument, NULL, 'f'},
        {"image", required_argument, NULL, O_IMAGE},
        {"mesh-config", required_argument, NULL, O_MESH},
        {"ca-address", required_argument, NULL, O_CA},
        {"otlp-endpoint", required_argument, NULL, O_OTLP},
        {"namespace", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    inject_opts_t o;
    inject_opts_init(&o);
    const char *file = NULL;
    int opt;
    cmd_getopt_reset();
    while ((opt = getopt_long(argc, argv, ":f:n:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'f': file = optarg; break;
        case 'n': o.namespace = optarg; break;
        case O_IMAGE: o.image = optarg; break;
        case O_MESH: o.mesh_config = optarg; break;
        case O_CA: o.ca_address = optarg; break;
        case O_OTLP: o.otlp_endpoint = optarg; break;
        case 'h': usage(stdout); return CMD_OK;
        default: return cmd_bad_option(CMD, argv, opt);
        }
    }
    static const char *const names[] = {"-f FILE"};
    const char *given[] = {file};
    if (cmd_check_args(CMD, argc, argv, names, given, 1) > 0)
        return CMD_USAGE;
    buf_t in = BUF_INIT, out = BUF_INIT;
    if (read_all(file, &in) != 0) {
        buf_dispose(&in);
        return CMD_FAIL;
    }
    char err[512];
    size_t n = 0;
    int rc = CMD_OK;
    if (inject_yaml(&o, strcmp(file, "-") == 0 ? "<stdin>" : file, in.data ? in.data : "", in.len, &out, &n, err,
                    sizeof err) != 0) {
        cmd_error(CMD, "%s", err);
        rc = CMD_FAIL;
    } else {
        fwrite(out.data ? out.data : "", 1, out.len, stdout);
        fprintf(stderr, "outriderctl inject: %zu workload%s injected\n", n, n == 1 ? "" : "s");
    }
    buf_dispose(&in);
    buf_dispose(&out);
    return rc;
}
