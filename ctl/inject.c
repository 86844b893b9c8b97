/*
 * inject: see inject.h. The input is parsed once for positions (common/yaml.h
 * keeps every node's line and column); the output is the input's lines with
 * blocks inserted before given lines, then the generated ConfigMaps.
 */
#include "inject.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xalloc.h"
#include "yaml.h"

#define DEFAULT_IMAGE "outrider/proxy:" OUTRIDER_VERSION

void inject_opts_init(inject_opts_t *o)
{
    o->image = DEFAULT_IMAGE;
    o->mesh_config = "outrider-mesh";
    o->ca_address = "https://outrider-ca.outrider-system:15012";
    o->otlp_endpoint = "http://outrider-collector.outrider-system:4318";
    o->namespace = "default";
}

typedef struct insert {
    int line; /* before this line (1-based); past the last line: at the end */
    buf_t text;
} insert_t;

typedef struct state {
    const inject_opts_t *o;
    const char *name;
    const char *text;
    size_t len;
    size_t *line_off; /* offset of each line (1-based index), n_lines + 2 entries */
    int n_lines;
    insert_t *ins;
    size_t n_ins, cap_ins;
    buf_t configmaps;
    char *err;
    size_t errlen;
    int failed;
} state_t;

static void fail_at(state_t *s, const yaml_node_t *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_at(state_t *s, const yaml_node_t *at, const char *fmt, ...)
{
    if (s->failed++)
        return;
    int n = snprintf(s->err, s->errlen, "%s:%d:%d: ", s->name, at ? at->line : 1, at ? at->col : 1);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < s->errlen)
        vsnprintf(s->err + n, s->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static buf_t *insert_before(state_t *s, int line)
{
    if (s->n_ins == s->cap_ins) {
        s->cap_ins = s->cap_ins ? 2 * s->cap_ins : 16;
        s->ins = xrealloc(s->ins, s->cap_ins * sizeof *s->ins);
    }
    insert_t *i = &s->ins[s->n_ins++];
    i->line = line;
    i->text = (buf_t)BUF_INIT;
    return &i->text;
}

static const char *scalar(const yaml_node_t *map, const char *key)
{
    const yaml_node_t *v = map != NULL && map->kind == YAML_MAP ? yaml_map_get(map, key) : NULL;
    return v != NULL && v->kind == YAML_SCALAR && !v->is_null ? v->str : NULL;
}

static const yaml_node_t *child(const yaml_node_t *map, const char *key)
{
    return map != NULL && map->kind == YAML_MAP ? yaml_map_get(map, key) : NULL;
}

/* The key node of key in map (for its position), or NULL. */
static const yaml_node_t *key_node(const yaml_node_t *map, const char *key)
{
    for (size_t i = 0; map != NULL && map->kind == YAML_MAP && i < map->n; i++)
        if (map->items[2 * i]->kind == YAML_SCALAR && strcmp(map->items[2 * i]->str, key) == 0)
            return map->items[2 * i];
    return NULL;
}

/* The character a node starts with in the text. */
static char first_char(const state_t *s, const yaml_node_t *n)
{
    if (n->line < 1 || n->line > s->n_lines)
        return 0;
    size_t off = s->line_off[n->line] + (size_t)(n->col - 1);
    return off < s->len ? s->text[off] : 0;
}

/* Whether a node is written in flow style: it starts with { or [, or it follows one (or a comma) on its line. */
static bool flow(const state_t *s, const yaml_node_t *n)
{
    char c = first_char(s, n);
    if (c == '{' || c == '[')
        return true;
    if (n->line < 1 || n->line > s->n_lines)
        return false;
    size_t start = s->line_off[n->line], off = start + (size_t)(n->col - 1);
    while (off > start && (s->text[off - 1] == ' ' || s->text[off - 1] == '\t'))
        off--;
    return off > start && (s->text[off - 1] == '{' || s->text[off - 1] == '[' || s->text[off - 1] == ',');
}

/* A YAML double-quoted scalar for any text. */
static void quoted(buf_t *b, const char *v)
{
    buf_append_char(b, '"');
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\') {
            buf_append_char(b, '\\');
            buf_append_char(b, (char)*p);
        } else if (*p < 0x20) {
            buf_printf(b, "\\x%02x", *p);
        } else {
            buf_append_char(b, (char)*p);
        }
    }
    buf_append_char(b, '"');
}

/* Append lines (a NUL-separated list ending in an empty string) as one sequence item at dash column ind. */
static void item(buf_t *b, int ind, const char *const *lines)
{
    for (size_t i = 0; lines[i] != NULL; i++)
        buf_printf(b, "%*s%s%s\n", ind, "", i == 0 ? "- " : "  ", lines[i]);
}

static void containers(state_t *s, buf_t *b, int ind)
{
    char image[512];
    buf_t q = BUF_INIT;
    quoted(&q, s->o->image);
    snprintf(image, sizeof image, "image: %s", q.data);
    buf_dispose(&q);
    const char *const init[] = {
        "name: outrider-init",
        image,
        "command: [outriderctl, redirect, --proxy-uid, \"1337\"]",
        "securityContext:",
        "  runAsUser: 0",
        "  runAsNonRoot: false",
        "  allowPrivilegeEscalation: false",
        "  readOnlyRootFilesystem: true",
        "  capabilities: {add: [NET_ADMIN, NET_RAW], drop: [ALL]}",
        "resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 100m, memory: 64Mi}}",
        NULL,
    };
    const char *const proxy[] = {
        "name: outrider-proxy",
        image,
        "restartPolicy: Always     # a native sidecar: the app's containers start once its startup probe passes",
        "command: [outrider-proxy]",
        "args: [--config, /etc/outrider/proxy/proxy.yaml, --config, /etc/outrider/mesh/mesh.yaml]",
        "startupProbe: {tcpSocket: {port: 15001}, periodSeconds: 1, failureThreshold: 60}",
        "readinessProbe: {tcpSocket: {port: 15001}, periodSeconds: 5}",
        "securityContext:",
        "  runAsUser: 1337",
        "  runAsGroup: 1337",
        "  runAsNonRoot: true",
        "  allowPrivilegeEscalation: false",
        "  readOnlyRootFilesystem: true",
        "  capabilities: {drop: [ALL]}",
        "resources: {requests: {cpu: 50m, memory: 32Mi}, limits: {memory: 128Mi}}",
        "volumeMounts:",
        "- {name: outrider-proxy-config, mountPath: /etc/outrider/proxy, readOnly: true}",
        "- {name: outrider-mesh, mountPath: /etc/outrider/mesh, readOnly: true}",
        "- {name: outrider-ca-root, mountPath: /etc/outrider/ca, readOnly: true}",
        "- {name: outrider-token, mountPath: /var/run/secrets/outrider, readOnly: true}",
        NULL,
    };
    item(b, ind, init);
    item(b, ind, proxy);
}

static void volumes(state_t *s, buf_t *b, int ind, const char *workload, const char *sa)
{
    buf_t l1 = BUF_INIT, l2 = BUF_INIT, l3 = BUF_INIT;
    buf_printf(&l1, "configMap: {name: %s-outrider-proxy}", workload);
    buf_printf(&l2, "configMap: {name: %s}", s->o->mesh_config);
    buf_printf(&l3, "secret: {secretName: outrider-token-%s}", sa);
    const char *const v1[] = {"name: outrider-proxy-config", l1.data, NULL};
    const char *const v2[] = {"name: outrider-mesh", l2.data, NULL};
    const char *const v3[] = {"name: outrider-ca-root", "configMap: {name: outrider-ca-root}", NULL};
    const char *const v4[] = {"name: outrider-token", l3.data, NULL};
    item(b, ind, v1);
    item(b, ind, v2);
    item(b, ind, v3);
    item(b, ind, v4);
    buf_dispose(&l1);
    buf_dispose(&l2);
    buf_dispose(&l3);
}

/* The ConfigMap holding the workload's Proxy document, appended after every input document. */
/*
 * The app's named container ports as spec.inbound.ports: the sidecar takes a
 * name such as "tcp-db" or "mongo" as Istio does (its protocol), so those
 * ports are proxied as bytes inbound.
 */
static void inbound_ports(buf_t *b, const yaml_node_t *containers)
{
    size_t n = 0;
    for (size_t c = 0; containers != NULL && containers->kind == YAML_SEQ && c < containers->n; c++) {
        const yaml_node_t *ports = child(containers->items[c], "ports");
        for (size_t i = 0; ports != NULL && ports->kind == YAML_SEQ && i < ports->n; i++) {
            const char *num = scalar(ports->items[i], "containerPort"), *name = scalar(ports->items[i], "name");
            if (num == NULL || name == NULL)
                continue;
            buf_append_str(b, n++ ? ", " : ", ports: [");
            buf_printf(b, "{number: %s, name: ", num);
            quoted(b, name);
            buf_append_char(b, '}');
        }
    }
    if (n > 0)
        buf_append_char(b, ']');
}

static void configmap(state_t *s, const char *kind, const char *workload, const char *ns, const yaml_node_t *labels,
                      const char *sa, const char *app_port, const yaml_node_t *containers)
{
    buf_t *b = &s->configmaps;
    buf_printf(b, "---\n# outriderctl inject: the sidecar's Proxy document of %s %s\n", kind, workload);
    buf_printf(b, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: %s-outrider-proxy\n", workload);
    if (ns != NULL)
        buf_printf(b, "  namespace: %s\n", ns);
    buf_printf(b, "  labels: {app.kubernetes.io/managed-by: outriderctl-inject}\ndata:\n  proxy.yaml: |\n");
    buf_printf(b, "    apiVersion: outrider.io/v1alpha1\n    kind: Proxy\n    metadata:\n      name: %s\n", workload);
    buf_printf(b, "      namespace: %s\n      labels: {", ns != NULL ? ns : s->o->namespace);
    for (size_t i = 0; labels != NULL && labels->kind == YAML_MAP && i < labels->n; i++) {
        const yaml_node_t *k = labels->items[2 * i], *v = labels->items[2 * i + 1];
        if (k->kind != YAML_SCALAR || v->kind != YAML_SCALAR)
            continue;
        buf_append_str(b, i ? ", " : "");
        quoted(b, k->str);
        buf_append_str(b, ": ");
        quoted(b, v->str);
    }
    buf_printf(b, "}\n    spec:\n      interceptionMode: REDIRECT\n");
    buf_printf(b, "      outbound: {listen: 0.0.0.0:15001}\n");
    buf_printf(b, "      inbound: {listen: 0.0.0.0:15006, forwardTo: 127.0.0.1:%s", app_port);
    inbound_ports(b, containers);
    buf_append_str(b, "}\n");
    buf_printf(b, "      admin: {listen: 127.0.0.1:15000}\n");
    buf_printf(b, "      telemetry: {otlpEndpoint: %s}\n", s->o->otlp_endpoint);
    buf_printf(b, "      identity:\n        serviceAccount: %s\n", sa);
    buf_printf(b, "        rootCertificates: /etc/outrider/ca/root-cert.pem\n");
    buf_printf(b, "        caAddress: %s\n        tokenFile: /var/run/secrets/outrider/token\n", s->o->ca_address);
}

/* Whether a container list already holds the sidecar. */
static bool has_sidecar(const yaml_node_t *list)
{
    for (size_t i = 0; list != NULL && list->kind == YAML_SEQ && i < list->n; i++) {
        const char *n = scalar(list->items[i], "name");
        if (n != NULL && strcmp(n, "outrider-proxy") == 0)
            return true;
    }
    return false;
}

/* Where a new sequence goes when the pod spec has no such key: before its first key, items at the containers' dash
 * column. */
static void new_list(state_t *s, const yaml_node_t *spec, const char *key, int dash,
                     void (*fill)(state_t *, buf_t *, int), const char *workload, const char *sa)
{
    const yaml_node_t *first = spec->items[0];
    buf_t *b = insert_before(s, first->line);
    buf_printf(b, "%*s%s:\n", first->col - 1, "", key);
    if (fill != NULL)
        fill(s, b, dash);
    else
        volumes(s, b, dash, workload, sa);
}

static void inject_doc(state_t *s, const yaml_node_t *doc, size_t *n_injected)
{
    const char *kind = scalar(doc, "kind");
    if (kind == NULL)
        return;
    const yaml_node_t *tmpl = NULL;
    if (strcmp(kind, "Pod") == 0)
        tmpl = doc;
    else if (strcmp(kind, "Deployment") == 0 || strcmp(kind, "StatefulSet") == 0 || strcmp(kind, "DaemonSet") == 0 ||
             strcmp(kind, "ReplicaSet") == 0 || strcmp(kind, "Job") == 0)
        tmpl = child(child(doc, "spec"), "template");
    else if (strcmp(kind, "CronJob") == 0)
        tmpl = child(child(child(child(doc, "spec"), "jobTemplate"), "spec"), "template");
    else
        return; /* not a workload: kept as it is */
    const yaml_node_t *meta = child(doc, "metadata");
    const char *workload = scalar(meta, "name");
    const yaml_node_t *spec = child(tmpl, "spec");
    if (workload == NULL || spec == NULL || spec->kind != YAML_MAP || spec->n == 0) {
        fail_at(s, tmpl != NULL ? tmpl : doc, "%s %s: no pod spec to inject into", kind, workload ? workload : "?");
        return;
    }
    const yaml_node_t *tmeta = child(tmpl, "metadata");
    const char *opt = scalar(child(tmeta, "annotations"), "sidecar.istio.io/inject");
    if (opt != NULL && strcmp(opt, "false") == 0)
        return;
    const yaml_node_t *cs = child(spec, "containers"), *ics = child(spec, "initContainers"),
                      *vols = child(spec, "volumes");
    if (has_sidecar(cs) || has_sidecar(ics))
        return; /* injected before */
    if (flow(s, spec) || cs == NULL || cs->kind != YAML_SEQ || cs->n == 0 || flow(s, cs) || flow(s, cs->items[0]) ||
        (ics != NULL && (flow(s, ics) || (ics->kind == YAML_SEQ && ics->n > 0 && flow(s, ics->items[0])))) ||
        (vols != NULL && (flow(s, vols) || (vols->kind == YAML_SEQ && vols->n > 0 && flow(s, vols->items[0]))))) {
        fail_at(s, spec, "%s %s: the pod spec and its containers, initContainers and volumes must be in block style",
                kind, workload);
        return;
    }
    /* the file's own style: the containers' dash column */
    int dash = cs->items[0]->col - 3;
    if (dash < 0 || first_char(s, cs->items[0]) == '-') {
        fail_at(s, cs, "%s %s: unexpected layout of containers", kind, workload);
        return;
    }
    const char *sa = scalar(spec, "serviceAccountName");
    if (sa == NULL)
        sa = scalar(spec, "serviceAccount");
    if (sa == NULL)
        sa = "default";
    if (ics != NULL && ics->kind == YAML_SEQ && ics->n > 0)
        containers(s, insert_before(s, ics->items[0]->line), ics->items[0]->col - 3);
    else if (ics != NULL) {
        fail_at(s, key_node(spec, "initContainers"), "%s %s: initContainers is empty or not a list", kind, workload);
        return;
    } else
        new_list(s, spec, "initContainers", dash, containers, workload, sa);
    if (vols != NULL && vols->kind == YAML_SEQ && vols->n > 0)
        volumes(s, insert_before(s, vols->items[0]->line), vols->items[0]->col - 3, workload, sa);
    else if (vols != NULL) {
        fail_at(s, key_node(spec, "volumes"), "%s %s: volumes is empty or not a list", kind, workload);
        return;
    } else
        new_list(s, spec, "volumes", dash, NULL, workload, sa);
    /* the app's port for connections made to the inbound listener itself: its first containerPort */
    const char *port = "8080";
    const yaml_node_t *ports = child(cs->items[0], "ports");
    if (ports != NULL && ports->kind == YAML_SEQ && ports->n > 0 && scalar(ports->items[0], "containerPort") != NULL)
        port = scalar(ports->items[0], "containerPort");
    configmap(s, kind, workload, scalar(meta, "namespace"), child(tmeta, "labels"), sa, port, cs);
    (*n_injected)++;
}

static void yaml_err(void *ctx, const char *message)
{
    state_t *s = ctx;
    if (!s->failed++)
        snprintf(s->err, s->errlen, "%s", message);
}

int inject_yaml(const inject_opts_t *o, const char *name, const char *text, size_t len, buf_t *out, size_t *n_injected,
                char *err, size_t errlen)
{
    state_t s = {.o = o, .name = name, .text = text, .len = len, .err = err, .errlen = errlen};
    *n_injected = 0;
    err[0] = '\0';
    int n = 1;
    for (size_t i = 0; i < len; i++)
        n += text[i] == '\n';
    s.line_off = xcalloc((size_t)n + 2, sizeof *s.line_off);
    s.n_lines = 0;
    for (size_t i = 0, start = 0; i <= len; i++)
        if (i == len || text[i] == '\n') {
            s.line_off[++s.n_lines] = start;
            start = i + 1;
        }
    s.line_off[s.n_lines + 1] = len;
    yaml_stream_t ys;
    if (yaml_parse(name, text, len, 0, &ys, yaml_err, &s) != 0 && !s.failed)
        fail_at(&s, NULL, "not YAML");
    for (size_t d = 0; !s.failed && d < ys.n_docs; d++)
        inject_doc(&s, ys.docs[d], n_injected);
    yaml_stream_dispose(&ys);
    if (!s.failed) {
        /* the input's lines with the blocks before theirs, in the order they were made */
        for (int l = 1; l <= s.n_lines + 1; l++) {
            for (size_t i = 0; i < s.n_ins; i++)
                if (s.ins[i].line == l || (l == s.n_lines + 1 && s.ins[i].line > s.n_lines))
                    buf_append(out, s.ins[i].text.data, s.ins[i].text.len);
            if (l <= s.n_lines) {
                size_t a = s.line_off[l], b = l < s.n_lines ? s.line_off[l + 1] : len;
                buf_append(out, text + a, b - a);
            }
        }
        if (s.configmaps.len > 0) {
            if (out->len > 0 && out->data[out->len - 1] != '\n')
                buf_append_char(out, '\n');
            buf_append(out, s.configmaps.data, s.configmaps.len);
        }
    }
    for (size_t i = 0; i < s.n_ins; i++)
        buf_dispose(&s.ins[i].text);
    free(s.ins);
    free(s.line_off);
    buf_dispose(&s.configmaps);
    return s.failed ? -1 : 0;
}
