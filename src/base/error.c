#include "base/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

const char *canary_status_str(canary_status st) {
    switch (st) {
    case CANARY_OK: return "ok";
    case CANARY_EINVAL: return "invalid argument";
    case CANARY_EIO: return "I/O error";
    case CANARY_ENOMEM: return "out of memory";
    case CANARY_EFORMAT: return "malformed input";
    case CANARY_EUNSUPPORTED: return "unsupported";
    case CANARY_ENOTFOUND: return "not found";
    case CANARY_ECANCELED: return "canceled";
    case CANARY_ELIMIT: return "limit exceeded";
    case CANARY_EDEVICE: return "device error";
    case CANARY_EINTERNAL: return "internal error";
    }
    return "unknown status";
}

void cn_error_clear(cn_error *err) {
    if (!err)
        return;
    err->code = CANARY_OK;
    err->msg[0] = '\0';
}

cn_status cn_error_setv(cn_error *err, cn_status code, const char *fmt, va_list ap) {
    if (!err)
        return code;
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    return code;
}

cn_status cn_error_set(cn_error *err, cn_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    cn_error_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

cn_status cn_error_prefix(cn_error *err, const char *fmt, ...) {
    if (!err)
        return CANARY_EINTERNAL;
    char prefix[CN_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[CN_ERROR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    return err->code;
}

cn_status cn_error_errno(cn_error *err, int errnum, const char *fmt, ...) {
    char what[CN_ERROR_MSG_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    cn_status code = errnum == ENOMEM ? CANARY_ENOMEM : errnum == ENOENT ? CANARY_ENOTFOUND : CANARY_EIO;
    return cn_error_set(err, code, "%s: %s", what, strerror(errnum));
}
