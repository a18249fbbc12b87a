/* libFuzzer target for the audit library's readers of untrusted bytes: the octet-counting
 * syslog framer and the RFC 5424 header parser (what a repository reads from us), the audit
 * queue's record parser and segment scanner (what a restart reads from disk), and the C-FIND
 * identifier redactor. Each runs on an exact-size heap copy (ASan catches over-reads).
 * Invariants: a frame never claims more than the input or its max; every message parsed from a
 * frame re-frames to the same bytes; a parsed record re-encodes to the same bytes; the scanner's
 * records, garbage and end add up; the redactor leaves its output untouched on failure and,
 * on success, produces a dataset that it parses again. */
#include <stdlib.h>
#include <string.h>

#include "audit/audit_dsredact.h"
#include "audit/audit_qrec.h"
#include "audit/syslog_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static const uint8_t KEY[16] = "fuzz-key-16bytes";

static void frames(const uint8_t *p, size_t n)
{
    size_t at = 0;
    while (at < n) {
        struct slice m;
        int rc = syslog_frame_parse(p + at, n - at, 4096, &m);
        if (rc <= 0) {
            CHECK(rc == 0 || rc == ERR_MALFORMED || rc == ERR_LIMIT);
            return;
        }
        CHECK((size_t)rc <= n - at && m.len <= 4096);
        CHECK(m.p >= p + at && m.p + m.len == p + at + (size_t)rc);
        struct wbuf w;
        wbuf_init(&w, 8192);
        CHECK(syslog_frame_octet(&w, m.p, m.len) == 0);
        CHECK(w.len == (size_t)rc && memcmp(w.p, p + at, w.len) == 0);
        wbuf_cleanup(&w);
        struct syslog_parsed sp;
        if (syslog_parse(m.p, m.len, &sp) == 0) {
            CHECK(sp.pri <= 191 && sp.msg.p + sp.msg.len == m.p + m.len);
            CHECK(sp.host.len >= 1 && sp.host.len <= 255 && sp.app.len <= 48);
        }
        at += (size_t)rc;
    }
}

static void records(const uint8_t *p, size_t n)
{
    uint64_t seq;
    struct slice pl;
    int rc = aq_rec_parse(p, n, AQ_REC_MAX, &seq, &pl);
    if (rc > 0) {
        CHECK((size_t)rc <= n && (size_t)rc == AQ_REC_HDR + pl.len);
        struct wbuf w;
        wbuf_init(&w, AQ_REC_HDR + AQ_REC_MAX);
        CHECK(aq_rec_encode(&w, seq, pl.p, pl.len) == 0);
        CHECK(w.len == (size_t)rc && memcmp(w.p, p, w.len) == 0);
        wbuf_cleanup(&w);
    } else {
        CHECK(rc == 0 || rc == ERR_MALFORMED || rc == ERR_LIMIT || rc == ERR_MISMATCH);
    }
    struct aq_scan_result res;
    CHECK(aq_scan(p, n, 0, NULL, NULL, &res) == 0);
    CHECK(res.end <= n && res.garbage <= n && res.records <= n / AQ_REC_HDR);
}

static void redact(const uint8_t *p, size_t n, bool explicit_vr)
{
    struct wbuf out;
    wbuf_init(&out, AUDIT_DS_MAX_INPUT * 4);
    wbuf_str(&out, "pre");
    int rc = audit_ds_redact(p, n, explicit_vr, KEY, sizeof KEY, &out);
    if (rc < 0) {
        CHECK(out.len == 3);
        wbuf_cleanup(&out);
        return;
    }
    /* the result is a dataset again, and redacting it once more changes nothing */
    struct wbuf again;
    wbuf_init(&again, AUDIT_DS_MAX_INPUT * 4);
    size_t len = out.len - 3;
    if (len <= AUDIT_DS_MAX_INPUT) {
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, out.p + 3, len);
        int rc2 = audit_ds_redact(copy, len, explicit_vr, NULL, 0, &again);
        CHECK(rc2 == 0 || rc2 == ERR_LIMIT);
        free(copy);
    }
    wbuf_cleanup(&again);
    wbuf_cleanup(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *c = malloc(size ? size : 1);
    CHECK(c != NULL);
    memcpy(c, data, size);
    frames(c, size);
    records(c, size);
    redact(c, size, size && (data[0] & 1));
    free(c);
    return 0;
}
