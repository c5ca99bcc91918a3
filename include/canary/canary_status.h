/* Status codes shared by every libcanary API. */
#ifndef CANARY_STATUS_H
#define CANARY_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum canary_status {
    CANARY_OK = 0,
    CANARY_EINVAL = 1,       /* a bad argument or parameter value */
    CANARY_EIO = 2,          /* a file or network could not be read or written */
    CANARY_ENOMEM = 3,       /* out of memory, or a size that cannot be allocated */
    CANARY_EFORMAT = 4,      /* malformed or corrupt input data (model file, audio, request) */
    CANARY_EUNSUPPORTED = 5, /* well-formed but not supported (an unknown model setting, a codec) */
    CANARY_ENOTFOUND = 6,    /* a named thing does not exist (file, tensor, job, language) */
    CANARY_ECANCELED = 7,    /* the caller canceled the work */
    CANARY_ELIMIT = 8,       /* a configured limit was exceeded (size, duration, queue) */
    CANARY_EDEVICE = 9,      /* an accelerator or its driver failed */
    CANARY_EINTERNAL = 10    /* a bug in canary-stt */
} canary_status;

/* A short constant name for a status, e.g. "invalid argument". Never NULL. */
const char *canary_status_str(canary_status st);

#ifdef __cplusplus
}
#endif
#endif
