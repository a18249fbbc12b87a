/* err: the project's error codes and the helpers that keep failures visible (STYLE.md §4). */
#ifndef GW_ERR_H
#define GW_ERR_H

/* Functions return 0 on success and a negative code on failure. Negative errno values (and so
 * libuv's UV_E* codes, which are negative errno on Unix) pass through unchanged; ours sit below
 * ERR_BASE. */
enum err {
    ERR_BASE = -20000,
    ERR_TRUNCATED = -20001,   /* input ended before the item did */
    ERR_MALFORMED = -20002,   /* input breaks the format */
    ERR_LIMIT = -20003,       /* input exceeds a configured or protocol bound */
    ERR_NOMEM = -20004,       /* allocation failed or a capped buffer is full */
    ERR_CONFIG = -20005,      /* configuration invalid */
    ERR_IO = -20006,          /* disk or socket I/O failed */
    ERR_TLS = -20007,         /* TLS failure */
    ERR_UNSUPPORTED = -20008, /* well-formed but not supported */
    ERR_WRONG_STATE = -20009,       /* operation not valid in the current state */
    ERR_UNEXPECTED = -20010,  /* a PDU or message that the state forbids */
    ERR_NOSPACE = -20011,     /* free disk below the configured floor */
    ERR_MISMATCH = -20012,    /* two values that must agree do not */
    ERR_NOTFOUND = -20013,
    ERR_LAST = -20014,
};

/* Returns a static, human-readable name for any code this project returns (ours or -errno). */
const char *err_str(int code);

#define MUST_CHECK __attribute__((warn_unused_result))

/* Return the (negative) result of x from the enclosing function if it failed. */
#define TRY(x)                                                                                     \
    do {                                                                                           \
        int try_rc_ = (x);                                                                         \
        if (try_rc_ < 0)                                                                           \
            return try_rc_;                                                                        \
    } while (0)

#define FREE_NULL(p)                                                                               \
    do {                                                                                           \
        free(p);                                                                                   \
        (p) = NULL;                                                                                \
    } while (0)

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
