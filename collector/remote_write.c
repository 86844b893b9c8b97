/*
 * remote_write: the sending thread; see remote_write.h for the design.
 */
#include "remote_write.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "collector.h"
#include "log.h"
#include "mono.h"
#include "prom_text.h"
#include "remote_write_enc.h"
#include "xalloc.h"

enum { RES_QUEUED = 0, RES_SENT, RES_FAILED, RES_DROPPED, RES_RETRIED, RES_COUNT };
static const char *const result_names[RES_COUNT] = {"queued", "sent", "failed", "dropped", "retried"};

#define CODES 600 /* requests by status 100..599; [0]: no answer */

/* Guarded by remote_write_t.mu, so that a scrape sees them consistent. */
typedef struct rw_stats {
    uint64_t samples[RES_COUNT];
    uint64_t requests[CODES];
    uint64_t queue_samples;
    uint64_t last_success_ms; /* wall clock; 0 = never */
} rw_stats_t;

struct remote_write {
    metric_store_t *store;
    char *url;
    uint64_t interval_ms, timeout_ms, drain_ms, min_backoff_ms, max_backoff_ms;
    uint32_t batch_samples; /* min(maxSamplesPerSend, queue.maxSamples) */
    CURL *h;
    struct curl_slist *headers;
    char errbuf[CURL_ERROR_SIZE];
    char answer[256]; /* the start of the last answer's body, for logs */
    size_t answer_len;
    /* the thread's own */
    rw_queue_t q;
    rw_series_buf_t sb;
    buf_t body;
    int failing; /* the last answer was not a success: logged once until one is */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    rw_stats_t st;
};

static void count(remote_write_t *rw, int result, uint64_t n)
{
    pthread_mutex_lock(&rw->mu);
    rw->st.samples[result] += n;
    rw->st.queue_samples = rw->q.samples;
    pthread_mutex_unlock(&rw->mu);
}

/* Queue the first k series of the push being encoded as one batch. */
static void enqueue(remote_write_t *rw, size_t k)
{
    if (rw_snappy_compress(rw->sb.data.data, rw_series_buf_bytes(&rw->sb, k), &rw->body) != 0) {
        log_error("remote write: snappy could not compress a batch of %zu samples; dropped", k);
        rw_series_buf_take(&rw->sb, k);
        pthread_mutex_lock(&rw->mu);
        rw->st.samples[RES_QUEUED] += k;
        rw->st.samples[RES_DROPPED] += k;
        pthread_mutex_unlock(&rw->mu);
        return;
    }
    rw_series_buf_take(&rw->sb, k);
    uint64_t dropped = rw_queue_push(&rw->q, rw_batch_create(rw->body.data, rw->body.len, (uint32_t)k));
    pthread_mutex_lock(&rw->mu);
    rw->st.samples[RES_QUEUED] += k;
    rw->st.samples[RES_DROPPED] += dropped;
    rw->st.queue_samples = rw->q.samples;
    pthread_mutex_unlock(&rw->mu);
}

/* Every series of the store as it is now, in batches of batch_samples, stamped with the push time. */
static void push(remote_write_t *rw)
{
    metric_render_cursor_t cur = {0};
    rw->sb.ts_ms = (int64_t)collector_now_ms();
    int more;
    do {
        more =
            metric_store_visit_chunk(rw->store, &cur, rw_encode_series, &rw->sb, rw->batch_samples, collector_now_ms());
        while (rw->sb.n >= rw->batch_samples)
            enqueue(rw, rw->batch_samples);
    } while (more);
    if (rw->sb.n > 0)
        enqueue(rw, rw->sb.n);
    metric_render_cursor_dispose(&cur);
}

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    remote_write_t *rw = ctx;
    size_t len = size * n, room = sizeof(rw->answer) - 1 - rw->answer_len;
    size_t take = len < room ? len : room;
    memcpy(rw->answer + rw->answer_len, p, take);
    rw->answer_len += take;
    rw->answer[rw->answer_len] = '\0';
    return len;
}

/* POST one batch within timeout_ms; returns the status, 0 when no answer came (*retry_after_s: its Retry-After). */
static long post(remote_write_t *rw, const rw_batch_t *b, uint64_t timeout_ms, int64_t *retry_after_s)
{
    rw->answer_len = 0;
    rw->answer[0] = '\0';
    rw->errbuf[0] = '\0';
    curl_easy_setopt(rw->h, CURLOPT_POSTFIELDS, b->body);
    curl_easy_setopt(rw->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->len);
    curl_easy_setopt(rw->h, CURLOPT_TIMEOUT_MS, (long)(timeout_ms ? timeout_ms : 1));
    CURLcode rc = curl_easy_perform(rw->h);
    long code = 0;
    curl_off_t ra = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(rw->h, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(rw->h, CURLINFO_RETRY_AFTER, &ra);
    } else {
        snprintf(rw->answer, sizeof(rw->answer), "%s", rw->errbuf[0] ? rw->errbuf : curl_easy_strerror(rc));
    }
    *retry_after_s = (int64_t)ra;
    pthread_mutex_lock(&rw->mu);
    rw->st.requests[code > 0 && code < CODES ? code : 0]++;
    pthread_mutex_unlock(&rw->mu);
    return code;
}

/* Send the head of the queue once; 1 when it left the queue, 0 when it waits for a retry. */
static int send_head(remote_write_t *rw, uint64_t timeout_ms)
{
    rw_batch_t *b = rw->q.head;
    int64_t retry_after = 0;
    long code = post(rw, b, timeout_ms, &retry_after);
    enum rw_outcome o = rw_classify(code);
    if (o == RW_RETRY) {
        b->attempts++;
        b->next_try_ms =
            mono_now_ms() + rw_backoff_ms(b->attempts, rw->min_backoff_ms, rw->max_backoff_ms, retry_after);
        count(rw, RES_RETRIED, b->samples);
        if (!rw->failing) {
            char what[32] = "no answer";
            if (code != 0)
                snprintf(what, sizeof(what), "HTTP %ld", code);
            log_warn("remote write: %s: %s: %s; retrying with back-off, new pushes queue up to "
                     "remoteWrite.queue.maxSamples",
                     rw->url, what, rw->answer);
        }
        rw->failing = 1;
        return 0;
    }
    b = rw_queue_pop(&rw->q);
    if (o == RW_SENT) {
        pthread_mutex_lock(&rw->mu);
        rw->st.samples[RES_SENT] += b->samples;
        rw->st.queue_samples = rw->q.samples;
        rw->st.last_success_ms = collector_now_ms();
        pthread_mutex_unlock(&rw->mu);
        if (rw->failing)
            log_info("remote write: %s accepts pushes again", rw->url);
        rw->failing = 0;
    } else {
        count(rw, RES_FAILED, b->samples);
        if (!rw->failing)
            log_warn("remote write: %s refused a batch of %u samples with HTTP %ld (not retried): %s", rw->url,
                     b->samples, code, rw->answer);
        rw->failing = 1;
    }
    rw_batch_free(b);
    return 1;
}

/* Wait until `until` (monotonic ms) or a stop; returns 1 when stopping. */
static int wait_until_ms(remote_write_t *rw, uint64_t until)
{
    pthread_mutex_lock(&rw->mu);
    while (!rw->stop && mono_now_ms() < until) {
        struct timespec ts = mono_timespec(until);
        int e = pthread_cond_timedwait(&rw->cv, &rw->mu, &ts);
        if (e != 0 && e != ETIMEDOUT && e != EINTR)
            break;
    }
    int stop = rw->stop;
    pthread_mutex_unlock(&rw->mu);
    return stop;
}

static void drain(remote_write_t *rw)
{
    uint64_t deadline = mono_now_ms() + rw->drain_ms;
    push(rw);
    for (uint64_t now = mono_now_ms(); rw->q.head != NULL && now < deadline; now = mono_now_ms()) {
        if (rw->q.head->next_try_ms > now) {
            uint64_t until = rw->q.head->next_try_ms < deadline ? rw->q.head->next_try_ms : deadline;
            struct timespec ts = {(time_t)((until - now) / 1000u), (long)((until - now) % 1000u) * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        uint64_t left = deadline - now;
        send_head(rw, left < rw->timeout_ms ? left : rw->timeout_ms);
    }
    uint64_t left = rw_queue_clear(&rw->q);
    count(rw, RES_FAILED, left);
    if (left > 0)
        log_warn("remote write: %llu samples were not sent within remoteWrite.drainTimeout; counted as failed",
                 (unsigned long long)left);
}

static void *rw_main(void *arg)
{
    remote_write_t *rw = arg;
    pthread_setname_np(pthread_self(), "outrider-rw"); /* for top -H and tests/bench/remote_write_bench.sh */
    uint64_t next_push = mono_now_ms();
    for (;;) {
        uint64_t until = next_push;
        if (rw->q.head != NULL && rw->q.head->next_try_ms < until)
            until = rw->q.head->next_try_ms;
        if (wait_until_ms(rw, until))
            break;
        uint64_t now = mono_now_ms();
        if (now >= next_push) {
            push(rw);
            next_push += rw->interval_ms;
            if (next_push <= now) /* a slow receiver made us miss pushes: skip them, keep the rhythm */
                next_push = now + rw->interval_ms;
        }
        while (rw->q.head != NULL && rw->q.head->next_try_ms <= mono_now_ms() && mono_now_ms() < next_push) {
            if (!send_head(rw, rw->timeout_ms))
                break;
            pthread_mutex_lock(&rw->mu);
            int stop = rw->stop;
            pthread_mutex_unlock(&rw->mu);
            if (stop)
                break;
        }
    }
    drain(rw);
    return NULL;
}

static int reserved_header(const char *name, size_t len)
{
    static const char *const names[] = {"Content-Type",
                                        "Content-Encoding",
                                        "Content-Length",
                                        "User-Agent",
                                        "X-Prometheus-Remote-Write-Version",
                                        "Authorization",
                                        "Host"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == len && strncasecmp(names[i], name, len) == 0)
            return 1;
    return 0;
}

/* "name: value1value2" (curl sends "name;" for an empty value, which Expect: needs as "Expect:") */
static int add_header(remote_write_t *rw, const char *name, const char *v1, const char *v2)
{
    char line[4096];
    int n = snprintf(line, sizeof(line), "%s:%s%s%s", name, v1[0] || v2[0] ? " " : "", v1, v2);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        log_error("remote write: header too long: %.60s...", line);
        return -1;
    }
    struct curl_slist *l = curl_slist_append(rw->headers, line);
    if (l == NULL)
        log_fatal("remote write: out of memory");
    rw->headers = l;
    return 0;
}

static int setup_curl(remote_write_t *rw, const collector_config_t *cfg)
{
    int basic = cfg->remote_write_username[0] != '\0' || cfg->remote_write_password[0] != '\0';
    if (basic && cfg->remote_write_bearer_token[0] != '\0') {
        log_error("remoteWrite.basicAuth and remoteWrite.bearerToken are both set: choose one");
        return -1;
    }
    add_header(rw, "Content-Encoding", "snappy", "");
    add_header(rw, "Content-Type", "application/x-protobuf", "");
    add_header(rw, "X-Prometheus-Remote-Write-Version", "0.1.0", "");
    add_header(rw, "Expect", "", ""); /* no 100-continue round trip */
    if (cfg->remote_write_bearer_token[0] != '\0' &&
        add_header(rw, "Authorization", "Bearer ", cfg->remote_write_bearer_token) != 0)
        return -1;
    for (size_t i = 0; i < cfg->remote_write_headers.n; i++) {
        const char *item = cfg->remote_write_headers.items[i], *eq = strchr(item, '=');
        if (eq == NULL || eq == item || reserved_header(item, (size_t)(eq - item))) {
            log_error("remoteWrite.headers: %s: %s", item,
                      eq == NULL || eq == item ? "not NAME=VALUE"
                                               : "this header is the protocol's or an auth "
                                                 "setting's to set");
            return -1;
        }
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(eq - item) < 255 ? (int)(eq - item) : 255, item);
        if (add_header(rw, name, eq + 1, "") != 0)
            return -1;
    }
    rw->h = curl_easy_init();
    if (rw->h == NULL) {
        log_error("remote write: cannot create a libcurl handle");
        return -1;
    }
    CURL *h = rw->h;
    curl_easy_setopt(h, CURLOPT_URL, rw->url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, rw->headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "outrider-collector/" OUTRIDER_VERSION);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* as the query role: no proxy from the environment */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)rw->timeout_ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, rw->errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, rw);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (basic) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, cfg->remote_write_username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, cfg->remote_write_password);
    }
    if (cfg->remote_write_ca_file[0] != '\0')
        curl_easy_setopt(h, CURLOPT_CAINFO, cfg->remote_write_ca_file);
    if (cfg->remote_write_cert_file[0] != '\0')
        curl_easy_setopt(h, CURLOPT_SSLCERT, cfg->remote_write_cert_file);
    if (cfg->remote_write_key_file[0] != '\0')
        curl_easy_setopt(h, CURLOPT_SSLKEY, cfg->remote_write_key_file);
    if ((cfg->remote_write_cert_file[0] != '\0') != (cfg->remote_write_key_file[0] != '\0')) {
        log_error("remoteWrite.tls.certFile and remoteWrite.tls.keyFile go together: set both or neither");
        return -1;
    }
    if (cfg->remote_write_insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return 0;
}

static void rw_free(remote_write_t *rw)
{
    rw_queue_clear(&rw->q);
    rw_series_buf_dispose(&rw->sb);
    buf_dispose(&rw->body);
    if (rw->h != NULL)
        curl_easy_cleanup(rw->h);
    curl_slist_free_all(rw->headers);
    pthread_cond_destroy(&rw->cv);
    pthread_mutex_destroy(&rw->mu);
    free(rw->url);
    free(rw);
    curl_global_cleanup();
}

remote_write_t *remote_write_start(const collector_config_t *cfg, metric_store_t *store)
{
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        log_error("remote write: cannot initialise libcurl: %s", curl_easy_strerror(rc));
        return NULL;
    }
    remote_write_t *rw = xcalloc(1, sizeof(*rw));
    rw->store = store;
    rw->url = xstrdup(cfg->remote_write_url);
    rw->interval_ms = cfg->remote_write_interval_ms;
    rw->timeout_ms = cfg->remote_write_timeout_ms;
    rw->drain_ms = cfg->remote_write_drain_ms;
    rw->min_backoff_ms = cfg->remote_write_min_backoff_ms;
    rw->max_backoff_ms = cfg->remote_write_max_backoff_ms;
    rw->q.max_samples = cfg->remote_write_queue_max_samples;
    uint64_t batch = cfg->remote_write_max_samples_per_send;
    if (batch > rw->q.max_samples)
        batch = rw->q.max_samples; /* a batch always fits the queue */
    rw->batch_samples = (uint32_t)batch;
    pthread_mutex_init(&rw->mu, NULL);
    mono_cond_init(&rw->cv);
    if (strncmp(rw->url, "http://", 7) != 0 && strncmp(rw->url, "https://", 8) != 0) {
        log_error("remoteWrite.url=%s: not an http:// or https:// URL", rw->url);
        rw_free(rw);
        return NULL;
    }
    if (setup_curl(rw, cfg) != 0) {
        rw_free(rw);
        return NULL;
    }
    if (pthread_create(&rw->thread, NULL, rw_main, rw) != 0) {
        log_error("remote write: cannot start its thread");
        rw_free(rw);
        return NULL;
    }
    log_info("remote write: pushing the metric store to %s every %llu ms", rw->url,
             (unsigned long long)rw->interval_ms);
    return rw;
}

void remote_write_stop(remote_write_t *rw)
{
    if (rw == NULL)
        return;
    pthread_mutex_lock(&rw->mu);
    rw->stop = 1;
    pthread_cond_signal(&rw->cv);
    pthread_mutex_unlock(&rw->mu);
    pthread_join(rw->thread, NULL);
    rw_free(rw);
}

static void write_one(buf_t *b, const char *name, const char *suffix, enum prom_type type, const char *help, double v,
                      int om)
{
    prom_write_family_header(b, name, type, help, strlen(help), NULL, om);
    prom_write_sample(b, name, suffix, NULL, 0, NULL, NULL, v, NULL, om);
}

void remote_write_render_metrics(remote_write_t *rw, buf_t *b, int om)
{
    if (rw == NULL)
        return;
    rw_stats_t st;
    pthread_mutex_lock(&rw->mu);
    st = rw->st;
    pthread_mutex_unlock(&rw->mu);
    const char *name = "outrider_remote_write_samples";
    const char *help = "Samples pushed by remote write, by result: queued, then sent, failed (refused or left at "
                       "shutdown) or dropped (queue full); retried counts each retry";
    prom_write_family_header(b, name, PROM_COUNTER, help, strlen(help), NULL, om);
    for (int r = 0; r < RES_COUNT; r++) {
        metric_label_t l = {STR_LIT("result"), {result_names[r], (uint32_t)strlen(result_names[r])}};
        prom_write_sample(b, name, "_total", &l, 1, NULL, NULL, (double)st.samples[r], NULL, om);
    }
    name = "outrider_remote_write_requests";
    help = "Remote write requests by HTTP status (code=\"none\": no answer)";
    prom_write_family_header(b, name, PROM_COUNTER, help, strlen(help), NULL, om);
    for (int c = 0; c < CODES; c++) {
        if (st.requests[c] == 0)
            continue;
        char code[8];
        int n = c == 0 ? snprintf(code, sizeof(code), "none") : snprintf(code, sizeof(code), "%d", c);
        metric_label_t l = {STR_LIT("code"), {code, (uint32_t)n}};
        prom_write_sample(b, name, "_total", &l, 1, NULL, NULL, (double)st.requests[c], NULL, om);
    }
    write_one(b, "outrider_remote_write_queue_samples", "", PROM_GAUGE, "Samples waiting in the remote write queue",
              (double)st.queue_samples, om);
    write_one(b, "outrider_remote_write_last_success_timestamp_seconds", "", PROM_GAUGE,
              "When the receiver last accepted a batch (0: never)", (double)st.last_success_ms / 1000.0, om);
}
