/*
 * loadgen: the HTTP client, sender threads and measurements the load tools
 * share (see loadgen.h). Each sender thread owns one connection and its
 * buffers; they share only the read-only bodies and their failure counts,
 * read after join.
 */
#include "loadgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

double loadgen_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t loadgen_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

int loadgen_parse_url(const char *url, loadgen_target_t *t)
{
    if (strncmp(url, "http://", 7) != 0)
        return -1;
    const char *h = url + 7;
    const char *colon = strchr(h, ':');
    const char *slash = strchr(h, '/');
    if (colon == NULL || (slash != NULL && slash < colon) || (size_t)(colon - h) >= sizeof(t->host))
        return -1;
    memcpy(t->host, h, (size_t)(colon - h));
    t->host[colon - h] = '\0';
    t->port = atoi(colon + 1);
    snprintf(t->path, sizeof(t->path), "%s", slash ? slash : "/");
    return 0;
}

int loadgen_connect(const loadgen_target_t *t)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port)};
    inet_pton(AF_INET, t->host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("connect");
        exit(1);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

void loadgen_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            perror("write");
            exit(1);
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Append what one read() gives to `in`; exits with `eof` when the peer has closed. */
static void read_more(int fd, buf_t *in, const char *eof)
{
    buf_reserve(in, 65536);
    ssize_t r = read(fd, in->data + in->len, 65536);
    if (r <= 0) {
        fprintf(stderr, "%s\n", eof);
        exit(1);
    }
    in->len += (size_t)r;
    in->data[in->len] = '\0';
}

int loadgen_read_response(int fd, buf_t *in, buf_t *body)
{
    for (;;) {
        char *end = in->data ? strstr(in->data, "\r\n\r\n") : NULL;
        if (end != NULL) {
            size_t head = (size_t)(end - in->data) + 4;
            int status = atoi(in->data + 9);
            size_t clen = 0;
            char *cl = strcasestr(in->data, "\r\ncontent-length:");
            if (cl != NULL && cl < end)
                clen = strtoul(cl + 17, NULL, 10);
            while (in->len < head + clen)
                read_more(fd, in, "connection closed mid-response");
            if (body != NULL) {
                body->len = 0;
                buf_append(body, in->data + head, clen);
            }
            memmove(in->data, in->data + head + clen, in->len - head - clen);
            in->len -= head + clen;
            in->data[in->len] = '\0';
            return status;
        }
        read_more(fd, in, "connection closed before a response");
    }
}

double loadgen_cpu_seconds(int pid, double *user)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    *user = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[2048];
    double s = 0;
    if (fgets(line, sizeof(line), f) != NULL) {
        char *p = strrchr(line, ')');
        unsigned long long ut = 0, st = 0;
        /* fields after the command: state(3) ... utime(14) stime(15) */
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2) {
            s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
            *user = (double)ut / (double)sysconf(_SC_CLK_TCK);
        }
    }
    fclose(f);
    return s;
}

typedef struct sender {
    const loadgen_post_t *p;
    int first;
    int failures;
    pthread_t th;
} sender_t;

static void *send_worker(void *arg)
{
    sender_t *w = arg;
    const loadgen_post_t *p = w->p;
    const loadgen_target_t *t = p->target;
    int fd = loadgen_connect(t);
    buf_t in = BUF_INIT, body = BUF_INIT, head = BUF_INIT;
    for (int i = w->first; i < p->n; i += p->connections) {
        const buf_t *b = &p->bodies[i];
        head.len = 0;
        buf_printf(&head, "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: %s\r\n", t->path, t->host, t->port,
                   p->content_type);
        if (p->content_encoding != NULL)
            buf_printf(&head, "Content-Encoding: %s\r\n", p->content_encoding);
        buf_printf(&head, "Content-Length: %zu\r\n\r\n", b->len);
        loadgen_write_all(fd, head.data, head.len);
        loadgen_write_all(fd, b->data, b->len);
        int status = loadgen_read_response(fd, &in, &body);
        if (status < 200 || status > 299) {
            if (w->failures++ < 3)
                fprintf(stderr, "status %d: %.*s\n", status, (int)(body.len > 200 ? 200 : body.len),
                        body.data ? body.data : "");
        } else if (p->check != NULL && p->check(p->check_ctx, &body) != 0) {
            w->failures++; /* the check says why */
        }
    }
    close(fd);
    buf_dispose(&in);
    buf_dispose(&body);
    buf_dispose(&head);
    return NULL;
}

int loadgen_post_all(const loadgen_post_t *p)
{
    sender_t *ws = calloc((size_t)p->connections, sizeof(*ws));
    if (ws == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (int i = 0; i < p->connections; i++) {
        ws[i] = (sender_t){.p = p, .first = i};
        pthread_create(&ws[i].th, NULL, send_worker, &ws[i]);
    }
    int failures = 0;
    for (int i = 0; i < p->connections; i++) {
        pthread_join(ws[i].th, NULL);
        failures += ws[i].failures;
    }
    free(ws);
    return failures;
}
