/*
 * files: the few file operations outriderctl needs, each with an error
 * message that names the path. Writes are atomic (a temporary file in the
 * same directory, fsync, rename), so a sidecar reading key.pem while it is
 * rotated sees the old or the new key, never half of one, and a crash
 * never leaves a truncated CA behind.
 */
#ifndef OUTRIDER_CTL_FILES_H
#define OUTRIDER_CTL_FILES_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * Make dir (one level) with mode when it does not exist; succeed when it
 * is a directory already (its mode is left alone). Returns 0, or -1 with
 * the reason in err.
 */
int files_ensure_dir(const char *dir, mode_t mode, char *err, size_t errlen);

/* Whether path exists (as anything; a broken symlink counts). */
bool files_exists(const char *path);

/*
 * Replace path atomically with len bytes of data and exactly mode (the
 * umask does not apply: 0600 for keys must be 0600). Returns 0, or -1 with
 * the reason in err (the temporary file is removed).
 */
int files_write(const char *path, const void *data, size_t len, mode_t mode, char *err, size_t errlen);

/*
 * Read all of path (at most max bytes) into a new NUL-terminated buffer
 * the caller frees; *len, when not NULL, gets the length without the NUL.
 * Returns NULL with the reason in err, also when the file is longer than max.
 */
char *files_read(const char *path, size_t max, size_t *len, char *err, size_t errlen);

/* snprintf(buf, len, "%s/%s", dir, name); -1 (and err) when it does not fit. */
int files_join(char *buf, size_t len, const char *dir, const char *name, char *err, size_t errlen);

#endif
