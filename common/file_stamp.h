/*
 * file_stamp: what stat says of a file, to tell when it changed (a mounted
 * Secret or ConfigMap is replaced by a symlink swap, with no one to send a
 * signal): device, inode, size and modification time, through symlinks.
 * A file that cannot be stat'ed has the all-zero stamp.
 */
#ifndef OUTRIDER_FILE_STAMP_H
#define OUTRIDER_FILE_STAMP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

typedef struct file_stamp {
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
} file_stamp_t;

/* The stamp of what stat or fstat returned. */
file_stamp_t file_stamp_of(const struct stat *sb);

/* stat(path) as a stamp; all zero when it cannot be stat'ed. */
file_stamp_t file_stamp(const char *path);

bool file_stamp_eq(const file_stamp_t *a, const file_stamp_t *b);

#endif
