/*
 * redis_harness: a real redis-server for the unit tests that talk to Redis
 * (test_rlglobal, test_filters), started on a free loopback port chosen by
 * the test (redis_port) and killed by PID. Also the clocks those tests
 * share: wall_ms (the rate-limit windows are wall-clock aligned) and
 * sleep_ms. Header-only: each test program has its own copy of the state.
 */
#ifndef OUTRIDER_TEST_REDIS_HARNESS_H
#define OUTRIDER_TEST_REDIS_HARNESS_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t redis_pid = -1;
static uint16_t redis_port;

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Whether something accepts TCP connections on 127.0.0.1:port. */
static int port_accepts(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Start redis-server on redis_port; 0 once it accepts connections. */
static int redis_start(void)
{
    char port[16];
    snprintf(port, sizeof(port), "%u", (unsigned)redis_port);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly",
               "no", "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    redis_pid = pid;
    for (int i = 0; i < 500; i++) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "redis-server exited (status %d): is it installed?\n", status);
            redis_pid = -1;
            return -1;
        }
        if (port_accepts(redis_port))
            return 0;
        sleep_ms(10);
    }
    return -1;
}

/* Kill the redis-server (by PID) and reap it; a no-op when none runs. */
static void redis_kill(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGKILL);
        waitpid(redis_pid, NULL, 0);
        redis_pid = -1;
    }
}

#endif
