/* libFuzzer target for every parser of AWS answers in forwarder/: byte 0 picks the parser, the
 * rest is the body (an exact-size heap copy, so ASan catches any over-read). Results must be
 * NUL-terminated and within their buffers; a parser that fails must leave its output empty. */
#include <stdlib.h>
#include <string.h>

#include "forwarder/aws/creds.h"
#include "forwarder/aws/http.h"
#include "forwarder/aws/mi.h"
#include "forwarder/aws/sigv4.h"
#include "forwarder/aws/xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(const char *s, size_t cap)
{
    if (memchr(s, '\0', cap) == NULL)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    size_t n = size - 1;
    uint8_t *p = malloc(n ? n : 1);
    if (!p)
        return 0;
    memcpy(p, data + 1, n);
    switch (sel % 7) {
    case 0: {
        char out[64];
        static const char *const tags[] = {"UploadId", "Code", "Message", "ETag"};
        int rc = xml_text(p, n, tags[(sel >> 3) % 4], out, sizeof(out));
        check_str(out, sizeof(out));
        if (rc < 0 && out[0])
            __builtin_trap();
        break;
    }
    case 1: {
        char code[32], msg[64];
        http_parse_aws_error((sel & 0x80) ? "X:y" : NULL, p, n, code, sizeof(code), msg,
                             sizeof(msg));
        check_str(code, sizeof(code));
        check_str(msg, sizeof(msg));
        break;
    }
    case 2: {
        struct mi_job job;
        int rc = mi_parse_job(p, n, (sel & 0x80) ? "jobProperties" : NULL, &job);
        if (rc == 0) {
            check_str(job.job_id, sizeof(job.job_id));
            check_str(job.job_status, sizeof(job.job_status));
            check_str(job.message, sizeof(job.message));
            if (!job.job_id[0])
                __builtin_trap();
        } else if (job.job_id[0]) {
            __builtin_trap();
        }
        break;
    }
    case 3: {
        struct mi_stow_result *r = malloc(sizeof(*r));
        if (!r)
            break;
        int rc = mi_parse_stow_response(p, n, r);
        if (r->n > MI_STOW_MAX_INSTANCES || (rc < 0 && r->n))
            __builtin_trap();
        for (size_t i = 0; i < r->n; i++) {
            check_str(r->inst[i].sop_instance_uid, sizeof(r->inst[i].sop_instance_uid));
            if (r->inst[i].failure_reason < -1 || r->inst[i].failure_reason > 65535)
                __builtin_trap();
        }
        free(r);
        break;
    }
    case 4: {
        struct aws_creds c;
        int rc = creds_parse_json(p, n, &c);
        check_str(c.access_key_id, sizeof(c.access_key_id));
        check_str(c.session_token, sizeof(c.session_token));
        if (rc < 0 && c.secret_access_key[0])
            __builtin_trap();
        aws_creds_wipe(&c);
        break;
    }
    case 5: {
        /* the query canonicaliser sees our own strings, but must be total on any bytes */
        char *q = malloc(n + 1);
        if (!q)
            break;
        memcpy(q, p, n);
        q[n] = '\0';
        struct wbuf w;
        wbuf_init(&w, 1 << 16);
        (void)sigv4_canonical_query(q, &w);
        wbuf_cleanup(&w);
        int64_t t;
        (void)http_parse_http_date(q, &t);
        (void)creds_parse_iso8601(q, &t);
        free(q);
        break;
    }
    case 6: {
        /* a header value as the client keeps it: NUL-terminated */
        char *q = malloc(n + 1);
        if (!q)
            break;
        memcpy(q, p, n);
        q[n] = '\0';
        char code[16], msg[16];
        http_parse_aws_error(q, p, n, code, sizeof(code), msg, sizeof(msg));
        check_str(code, sizeof(code));
        free(q);
        break;
    }
    }
    free(p);
    return 0;
}
