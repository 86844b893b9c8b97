/*
 * linger_set: the lingering thread; see linger_set.h.
 *
 * A slot holds a socket, when it must close (`end_ms`: the earlier of its
 * total time and its next read's deadline) and the bytes it may still
 * read. The thread sleeps in epoll_wait until the earliest `end_ms` (a scan
 * of the table: it is small and bounded), reads each ready socket once per
 * wake-up (64 KiB at most, so one fast sender cannot starve the others),
 * then closes the slots that are due. Only the thread closes slots, and
 * only the thread's epoll events name them, so an index read from an event
 * always means the socket still in that slot, or a slot freed earlier in
 * the same batch (skipped).
 */
#include "linger_set.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mono.h"

#define READ_BUFFER (64 * 1024)
#define EVENTS 64
#define WAKE UINT32_MAX /* epoll data of the eventfd */

typedef struct slot {
    int fd;             /* -1: free */
    uint64_t until_ms;  /* total bound */
    uint64_t end_ms;    /* min(until_ms, last read + timeout) */
    uint64_t left;      /* bytes it may still read */
    uint32_t next_free; /* free list link */
} slot_t;

struct linger_set {
    linger_set_opts_t o;
    pthread_t thread;
    pthread_mutex_t lock;
    int epfd;
    int wakefd;
    bool stop;
    slot_t *slots;
    uint32_t free_head; /* UINT32_MAX: full */
    uint32_t high;      /* slots [0, high) have been used; scans stop there */
};

/* Close slot i and put it on the free list; the lock is held. */
static void slot_close(linger_set_t *l, uint32_t i)
{
    /* the fd is a dup of one MHD may still hold open: close alone would leave the socket registered */
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, l->slots[i].fd, NULL);
    close(l->slots[i].fd);
    l->slots[i].fd = -1;
    l->slots[i].next_free = l->free_head;
    l->free_head = i;
}

/* One read of slot i: closes it on end of stream, an error or the byte bound. The lock is held. */
static void slot_read(linger_set_t *l, uint32_t i, char *buf, uint64_t now)
{
    slot_t *s = &l->slots[i];
    ssize_t n = recv(s->fd, buf, READ_BUFFER, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0 || (uint64_t)n >= s->left) {
        slot_close(l, i);
        return;
    }
    s->left -= (uint64_t)n;
    uint64_t next = now + l->o.timeout_ms;
    s->end_ms = next < s->until_ms ? next : s->until_ms;
}

/* Close the slots that are due; returns the epoll timeout until the next one (-1: none). The lock is held. */
static int expire(linger_set_t *l, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    for (uint32_t i = 0; i < l->high; i++) {
        if (l->slots[i].fd < 0)
            continue;
        if (l->slots[i].end_ms <= now)
            slot_close(l, i);
        else if (l->slots[i].end_ms < next)
            next = l->slots[i].end_ms;
    }
    if (next == UINT64_MAX)
        return -1;
    return next - now > 60000 ? 60000 : (int)(next - now);
}

static void *linger_set_main(void *arg)
{
    linger_set_t *l = arg;
    char *buf = malloc(READ_BUFFER);
    if (buf == NULL)
        log_fatal("linger_set: out of memory");
    struct epoll_event ev[EVENTS];
    int timeout = -1;
    for (;;) {
        int n = epoll_wait(l->epfd, ev, EVENTS, timeout);
        pthread_mutex_lock(&l->lock);
        if (l->stop) {
            pthread_mutex_unlock(&l->lock);
            break;
        }
        uint64_t now = mono_now_ms();
        for (int k = 0; k < n; k++) {
            uint32_t i = ev[k].data.u32;
            if (i == WAKE) {
                uint64_t v;
                if (read(l->wakefd, &v, sizeof v) < 0 && errno != EAGAIN)
                    log_warn("linger_set: eventfd read: %s", strerror(errno));
            } else if (l->slots[i].fd >= 0) {
                slot_read(l, i, buf, now);
            }
        }
        timeout = expire(l, now);
        pthread_mutex_unlock(&l->lock);
    }
    free(buf);
    return NULL;
}

linger_set_t *linger_set_create(const linger_set_opts_t *opts)
{
    linger_set_t *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->o = *opts;
    l->epfd = -1;
    l->wakefd = -1;
    l->slots = calloc(opts->max_conns, sizeof *l->slots);
    if (l->slots == NULL || opts->max_conns >= WAKE)
        goto fail;
    for (size_t i = 0; i < opts->max_conns; i++) {
        l->slots[i].fd = -1;
        l->slots[i].next_free = i + 1 < opts->max_conns ? (uint32_t)(i + 1) : UINT32_MAX;
    }
    l->free_head = 0;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->epfd < 0 || l->wakefd < 0)
        goto fail;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = WAKE};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &ev) != 0)
        goto fail;
    pthread_mutex_init(&l->lock, NULL);
    int rc = pthread_create(&l->thread, NULL, linger_set_main, l);
    if (rc != 0) {
        pthread_mutex_destroy(&l->lock);
        errno = rc;
        goto fail;
    }
    return l;
fail:
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->wakefd >= 0)
        close(l->wakefd);
    free(l->slots);
    free(l);
    return NULL;
}

int linger_set_add(linger_set_t *l, int fd)
{
    pthread_mutex_lock(&l->lock);
    uint32_t i = l->free_head;
    if (i == UINT32_MAX || l->stop) {
        pthread_mutex_unlock(&l->lock);
        close(fd);
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = i};
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        pthread_mutex_unlock(&l->lock);
        close(fd);
        return -1;
    }
    slot_t *s = &l->slots[i];
    l->free_head = s->next_free;
    uint64_t now = mono_now_ms();
    s->fd = fd;
    s->until_ms = now + l->o.time_ms;
    s->end_ms = now + (l->o.timeout_ms < l->o.time_ms ? l->o.timeout_ms : l->o.time_ms);
    s->left = l->o.bytes;
    if (i >= l->high)
        l->high = i + 1;
    pthread_mutex_unlock(&l->lock);
    uint64_t one = 1;
    if (write(l->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("linger_set: eventfd write: %s", strerror(errno));
    return 0;
}

void linger_set_destroy(linger_set_t *l)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->lock);
    l->stop = true;
    pthread_mutex_unlock(&l->lock);
    uint64_t one = 1;
    if (write(l->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_warn("linger_set: eventfd write: %s", strerror(errno));
    pthread_join(l->thread, NULL);
    for (uint32_t i = 0; i < l->high; i++)
        if (l->slots[i].fd >= 0)
            close(l->slots[i].fd);
    pthread_mutex_destroy(&l->lock);
    close(l->epfd);
    close(l->wakefd);
    free(l->slots);
    free(l);
}
