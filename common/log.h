/*
 * log: leveled logging to stderr with a timestamp, one line per message.
 * Thread-safe (each message is written with a single write(2)).
 */
#ifndef OUTRIDER_LOG_H
#define OUTRIDER_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Messages below level are dropped. Default LOG_INFO. */
void log_set_level(enum log_level level);

/* Parse "debug", "info", "warn" or "error"; -1 when unknown. */
int log_level_parse(const char *name);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Log at error level and abort(); for conditions the program cannot survive (OOM). */
_Noreturn void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
