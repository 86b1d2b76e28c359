/*
 * log.h: one line per event of interest, as JSON (one object per line) or text.
 *
 * rc_log(level, event, fmt, ...) writes: time, level, event name, then "key=value" pairs given by
 * fmt in text mode, or the same pairs as JSON fields. fmt is a sequence of "key=%s key2=%d" style
 * pairs; values are escaped for JSON. Never pass tokens or secrets.
 */
#ifndef ROOMCAST_LOG_H
#define ROOMCAST_LOG_H

enum rc_log_level { RC_LOG_DEBUG = 0, RC_LOG_INFO, RC_LOG_WARN, RC_LOG_ERROR };

void rc_log_setup(int level, int json);
int rc_log_level_parse(const char *s); /* -1 when unknown */
int rc_log_enabled(int level);
void rc_log(int level, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define rc_log_debug(ev, ...) do { if (rc_log_enabled(RC_LOG_DEBUG)) rc_log(RC_LOG_DEBUG, ev, __VA_ARGS__); } while (0)
#define rc_log_info(ev, ...)  rc_log(RC_LOG_INFO, ev, __VA_ARGS__)
#define rc_log_warn(ev, ...)  rc_log(RC_LOG_WARN, ev, __VA_ARGS__)
#define rc_log_error(ev, ...) rc_log(RC_LOG_ERROR, ev, __VA_ARGS__)

#endif
