#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/strbuf.h"

static _Atomic int g_level = CN_LOG_INFO;
static _Atomic int g_format = CN_LOG_TEXT;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void cn_log_set_level(cn_log_level level) { g_level = level; }
cn_log_level cn_log_get_level(void) { return (cn_log_level)g_level; }
void cn_log_set_format(cn_log_format fmt) { g_format = fmt; }

int cn_log_level_parse(const char *s) {
    for (int i = 0; i <= CN_LOG_OFF; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    if (strcmp(s, "warning") == 0)
        return CN_LOG_WARN;
    return -1;
}

void cn_log(cn_log_level level, const char *component, const char *fmt, ...) {
    if ((int)level < g_level || level >= CN_LOG_OFF)
        return;
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L);

    cn_strbuf line;
    cn_sb_init(&line);
    if (g_format == CN_LOG_JSON) {
        cn_sb_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"component\":", when, level_names[level]);
        cn_sb_json_string(&line, component ? component : "");
        cn_sb_puts(&line, ",\"msg\":");
        cn_sb_json_string(&line, msg);
        cn_sb_puts(&line, "}\n");
    } else {
        cn_sb_printf(&line, "%s %-5s [%s] %s\n", when, level_names[level], component ? component : "-", msg);
    }
    pthread_mutex_lock(&g_lock);
    fputs(cn_sb_str(&line), stderr);
    fflush(stderr);
    pthread_mutex_unlock(&g_lock);
    cn_sb_free(&line);
}
