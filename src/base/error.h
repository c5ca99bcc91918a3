/* Errors that carry a message a user can act on.
 *
 * Every fallible function in canary-stt returns a cn_status and, on failure, fills a caller-owned
 * cn_error with a human-readable message. The library never calls abort() or exit() on bad input.
 * Callers add context while the error travels up ("loading model.nemo: reading tar: ...").
 */
#ifndef CN_BASE_ERROR_H
#define CN_BASE_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#include "canary/canary_status.h"

typedef canary_status cn_status;

#define CN_ERROR_MSG_MAX 1024

typedef struct cn_error {
    cn_status code;
    char msg[CN_ERROR_MSG_MAX];
} cn_error;

/* Clears an error to CANARY_OK with an empty message. Accepts NULL. */
void cn_error_clear(cn_error *err);

/* Records `code` and a printf-style message; returns `code` so callers can `return cn_error_set(...)`.
 * `err` may be NULL (the message is dropped, the code still returned). */
cn_status cn_error_set(cn_error *err, cn_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
cn_status cn_error_setv(cn_error *err, cn_status code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Prepends context: "<context>: <old message>". Returns the stored code. */
cn_status cn_error_prefix(cn_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records errno's text: "<what>: <strerror(errno)>" with CANARY_EIO (or ENOMEM for ENOMEM). */
cn_status cn_error_errno(cn_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Propagates a failure: `CN_TRY(f(x, err));` returns the status from the current function. */
#define CN_TRY(expr)                          \
    do {                                      \
        cn_status cn_try_st_ = (expr);        \
        if (cn_try_st_ != CANARY_OK)          \
            return cn_try_st_;                \
    } while (0)

#endif
