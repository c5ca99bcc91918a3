/* Levelled logging to stderr, as human-readable text or as JSON lines.
 * Thread-safe: each record is written with a single fputs under a lock. */
#ifndef CN_BASE_LOG_H
#define CN_BASE_LOG_H

typedef enum cn_log_level {
    CN_LOG_DEBUG = 0,
    CN_LOG_INFO = 1,
    CN_LOG_WARN = 2,
    CN_LOG_ERROR = 3,
    CN_LOG_OFF = 4
} cn_log_level;

typedef enum cn_log_format { CN_LOG_TEXT = 0, CN_LOG_JSON = 1 } cn_log_format;

void cn_log_set_level(cn_log_level level);
cn_log_level cn_log_get_level(void);
void cn_log_set_format(cn_log_format fmt);
/* Parses "debug|info|warn|error|off"; returns -1 when unknown. */
int cn_log_level_parse(const char *s);

/* `component` is a short module name ("nemo", "http", ...). */
void cn_log(cn_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CN_DEBUG(comp, ...) cn_log(CN_LOG_DEBUG, comp, __VA_ARGS__)
#define CN_INFO(comp, ...) cn_log(CN_LOG_INFO, comp, __VA_ARGS__)
#define CN_WARN(comp, ...) cn_log(CN_LOG_WARN, comp, __VA_ARGS__)
#define CN_ERROR(comp, ...) cn_log(CN_LOG_ERROR, comp, __VA_ARGS__)

#endif
