/*
 * first_touch: how fast this machine hands a process fresh memory, which
 * the collector needs for every span it stores while its store grows
 * (docs/benchmarks.md, "Ingest as the store fills").
 *
 * Maps SIZE GiB of anonymous memory (transparent huge pages asked for, as
 * the store's large allocations do), writes one byte per 4 KiB page (the
 * first touch: the kernel zeroes each page, and on a virtual machine the
 * host may have to back it first), then writes all of it again, and prints
 * both rates. Run it twice in a row and then after a pause: on the
 * project's VM the second run, reusing what the first just freed, is ten
 * times faster than either of the others.
 *
 * Build and run from the repository root (not part of the CMake build):
 *   gcc -O2 -o /tmp/first_touch tests/bench/first_touch.c && /tmp/first_touch 2
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long gib = argc > 1 ? atol(argv[1]) : 2;
    if (gib < 1 || gib > 64) {
        fprintf(stderr, "usage: first_touch [GiB, 1..64]\n");
        return 2;
    }
    size_t n = (size_t)gib << 30;
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    madvise(p, n, MADV_HUGEPAGE);
    double t0 = now_s();
    for (size_t i = 0; i < n; i += 4096)
        p[i] = 1;
    double t1 = now_s();
    memset(p, 2, n);
    double t2 = now_s();
    printf("first touch %.2f GiB/s, rewrite %.2f GiB/s\n", (double)gib / (t1 - t0), (double)gib / (t2 - t1));
    munmap(p, n);
    return 0;
}
