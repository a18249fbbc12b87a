#include "err.h"

#include <string.h>

const char *err_str(int code)
{
    switch (code) {
    case 0: return "ok";
    case ERR_TRUNCATED: return "truncated input";
    case ERR_MALFORMED: return "malformed input";
    case ERR_LIMIT: return "limit exceeded";
    case ERR_NOMEM: return "out of memory";
    case ERR_CONFIG: return "invalid configuration";
    case ERR_IO: return "I/O error";
    case ERR_TLS: return "TLS error";
    case ERR_UNSUPPORTED: return "not supported";
    case ERR_WRONG_STATE: return "invalid state";
    case ERR_UNEXPECTED: return "unexpected message";
    case ERR_NOSPACE: return "free disk below floor";
    case ERR_MISMATCH: return "values do not match";
    case ERR_NOTFOUND: return "not found";
    default: break;
    }
    if (code < 0 && code > ERR_BASE)
        return strerror(-code); /* -errno, which includes libuv's codes on Unix */
    return "unknown error";
}
