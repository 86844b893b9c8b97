/* file_stamp: see file_stamp.h. */
#include "file_stamp.h"

file_stamp_t file_stamp_of(const struct stat *sb)
{
    return (file_stamp_t){sb->st_dev, sb->st_ino, sb->st_size,
                          (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec};
}

file_stamp_t file_stamp(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? file_stamp_of(&sb) : (file_stamp_t){0};
}

bool file_stamp_eq(const file_stamp_t *a, const file_stamp_t *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns;
}
