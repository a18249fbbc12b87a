/* audit_hash and audit_dsredact: the keyed hash standing for a Patient ID (HMAC-SHA256, RFC 4231
 * vectors), the site key file (hex or raw, bounds, permissions), and the redaction of a C-FIND
 * identifier: explicit and implicit VR, sequences at any depth, group lengths, cut at every
 * offset and hostile lengths refused without reading past the input (guard pages). */
#define _GNU_SOURCE /* memmem */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit_dsredact.h"
#include "audit/audit_hash.h"
#include "guard.h"

Test(audit_hash, hmac_sha256_matches_rfc4231)
{
    char hex[65];
    /* RFC 4231 test case 2 */
    cr_assert_eq(
        audit_hmac_hex((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28, hex), 0);
    cr_assert_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    /* RFC 4231 test case 1 */
    uint8_t k[20];
    memset(k, 0x0b, sizeof k);
    cr_assert_eq(audit_hmac_hex(k, sizeof k, "Hi There", 8, hex), 0);
    cr_assert_str_eq(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

Test(audit_hash, key_parses_as_hex_or_raw_bytes)
{
    uint8_t key[AUDIT_KEY_MAX];
    size_t n = 0;
    const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    cr_assert_eq(audit_key_parse((const uint8_t *)hex, strlen(hex), key, &n), 0);
    cr_assert_eq(n, 32);
    cr_assert_eq(key[31], 0x1f);
    const char *raw = "a sixteen-byte+ passphrase";
    cr_assert_eq(audit_key_parse((const uint8_t *)raw, strlen(raw), key, &n), 0);
    cr_assert_eq(n, strlen(raw));
    cr_assert_eq(audit_key_parse((const uint8_t *)"short\n", 6, key, &n), ERR_CONFIG);
    char big[200];
    memset(big, 'x', sizeof big);
    cr_assert_eq(audit_key_parse((const uint8_t *)big, sizeof big, key, &n), ERR_CONFIG);
    cr_assert_eq(audit_key_parse((const uint8_t *)"   \n", 4, key, &n), ERR_CONFIG);
}

Test(audit_hash, key_file_readable_by_others_is_refused)
{
    char path[] = "/tmp/gw-audit-key.XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "0123456789abcdef0123456789abcdef\n", 33), 33);
    close(fd);
    uint8_t key[AUDIT_KEY_MAX];
    size_t n;
    char err[256];
    chmod(path, 0600);
    cr_assert_eq(audit_key_load(path, key, &n, err, sizeof err), 0);
    cr_assert_eq(n, 16);
    chmod(path, 0644);
    cr_assert_eq(audit_key_load(path, key, &n, err, sizeof err), ERR_CONFIG);
    cr_assert_not_null(strstr(err, "group or others"));
    unlink(path);
    cr_assert_lt(audit_key_load(path, key, &n, err, sizeof err), 0);
}

/* ---- dataset building ---- */

struct ds {
    uint8_t b[4096];
    size_t n;
};

static void u16(struct ds *d, uint16_t v)
{
    d->b[d->n++] = (uint8_t)v;
    d->b[d->n++] = (uint8_t)(v >> 8);
}

static void u32(struct ds *d, uint32_t v)
{
    u16(d, (uint16_t)v);
    u16(d, (uint16_t)(v >> 16));
}

static void ex(struct ds *d, uint16_t g, uint16_t e, const char *vr, const char *v)
{
    size_t l = strlen(v);
    u16(d, g);
    u16(d, e);
    memcpy(d->b + d->n, vr, 2);
    d->n += 2;
    u16(d, (uint16_t)l);
    memcpy(d->b + d->n, v, l);
    d->n += l;
}

static void im(struct ds *d, uint16_t g, uint16_t e, const char *v)
{
    size_t l = strlen(v);
    u16(d, g);
    u16(d, e);
    u32(d, (uint32_t)l);
    memcpy(d->b + d->n, v, l);
    d->n += l;
}

static const uint8_t KEY[16] = "0123456789abcdef";

static int redact(const struct ds *d, size_t n, bool explicit_vr, struct wbuf *out)
{
    const uint8_t *g = guard_copy(d->b, n);
    int rc = audit_ds_redact(g, n, explicit_vr, KEY, sizeof KEY, out);
    guard_free(g, n);
    return rc;
}

static bool contains(const struct wbuf *b, const char *s)
{
    return b->len && memmem(b->p, b->len, s, strlen(s)) != NULL;
}

Test(audit_dsredact, explicit_vr_patient_module_emptied_and_id_hashed)
{
    struct ds d = {.n = 0};
    ex(&d, 0x0008, 0x0052, "CS", "STUDY ");
    ex(&d, 0x0010, 0x0010, "PN", "DOE^JOHN");
    ex(&d, 0x0010, 0x0020, "LO", "PID-0042");
    ex(&d, 0x0010, 0x0030, "DA", "19700101");
    ex(&d, 0x0020, 0x000D, "UI", "1.2.3.4 ");
    struct wbuf out;
    wbuf_init(&out, 8192);
    cr_assert_eq(redact(&d, d.n, true, &out), 0);
    char want[65];
    cr_assert_eq(audit_hmac_hex(KEY, sizeof KEY, "PID-0042", 8, want), 0);
    cr_assert(contains(&out, want));
    cr_assert(!contains(&out, "DOE") && !contains(&out, "PID-0042") && !contains(&out, "1970"));
    cr_assert(contains(&out, "STUDY ") && contains(&out, "1.2.3.4"));
    /* the emptied name keeps its tag and VR with length 0 */
    const uint8_t name_hdr[] = {0x10, 0x00, 0x10, 0x00, 'P', 'N', 0x00, 0x00};
    cr_assert_not_null(memmem(out.p, out.len, name_hdr, sizeof name_hdr));
    wbuf_cleanup(&out);
}

Test(audit_dsredact, an_empty_patient_id_stays_empty)
{
    struct ds d = {.n = 0};
    im(&d, 0x0010, 0x0020, "");
    struct wbuf out;
    wbuf_init(&out, 8192);
    cr_assert_eq(redact(&d, d.n, false, &out), 0);
    cr_assert_eq(out.len, 8);
    wbuf_cleanup(&out);
}

/* (0008,1110) Referenced Study Sequence, undefined length, one undefined-length item holding a
 * (0010,0020) and a UID; then (0010,1002) Other Patient IDs Sequence with a defined length. */
static void sequences(struct ds *d)
{
    im(d, 0x0008, 0x0052, "STUDY ");
    u16(d, 0x0008);
    u16(d, 0x1110);
    u32(d, 0xFFFFFFFFu);
    u16(d, 0xFFFE);
    u16(d, 0xE000);
    u32(d, 0xFFFFFFFFu);
    im(d, 0x0008, 0x1155, "1.2.9 ");
    im(d, 0x0010, 0x0020, "NESTED-PID");
    u16(d, 0xFFFE);
    u16(d, 0xE00D);
    u32(d, 0);
    u16(d, 0xFFFE);
    u16(d, 0xE0DD);
    u32(d, 0);
    struct ds item = {.n = 0};
    im(&item, 0x0010, 0x0020, "OTHER-PID ");
    u16(d, 0x0010);
    u16(d, 0x1002);
    u32(d, (uint32_t)(item.n + 8));
    u16(d, 0xFFFE);
    u16(d, 0xE000);
    u32(d, (uint32_t)item.n);
    memcpy(d->b + d->n, item.b, item.n);
    d->n += item.n;
}

Test(audit_dsredact, implicit_vr_sequences_are_walked_at_every_depth)
{
    struct ds d = {.n = 0};
    sequences(&d);
    struct wbuf out;
    wbuf_init(&out, 8192);
    cr_assert_eq(redact(&d, d.n, false, &out), 0);
    cr_assert(!contains(&out, "NESTED-PID") && !contains(&out, "OTHER-PID"));
    cr_assert(contains(&out, "1.2.9"));
    char want[65];
    cr_assert_eq(audit_hmac_hex(KEY, sizeof KEY, "NESTED-PID", 10, want), 0);
    cr_assert(contains(&out, want));
    wbuf_cleanup(&out);
}

Test(audit_dsredact, every_cut_is_refused_without_reading_past_the_input)
{
    struct ds d = {.n = 0};
    sequences(&d);
    for (size_t cut = 1; cut < d.n; cut++) {
        struct wbuf out;
        wbuf_init(&out, 8192);
        int rc = redact(&d, cut, false, &out);
        if (rc == 0) /* a cut between top-level elements is a shorter, valid dataset */
            cr_assert(cut == 14 || cut == 78, "cut %zu parsed", cut);
        else
            cr_assert(rc == ERR_TRUNCATED || rc == ERR_MALFORMED, "cut %zu: %d", cut, rc);
        if (rc < 0)
            cr_assert_eq(out.len, 0, "output left as it was");
        wbuf_cleanup(&out);
    }
}

Test(audit_dsredact, hostile_lengths_and_orders_are_refused)
{
    struct wbuf out;
    wbuf_init(&out, 8192);
    struct ds d = {.n = 0};
    im(&d, 0x0010, 0x0010, "AB");
    d.b[4] = 0xF0; /* length 0x...F0: past the end */
    cr_assert_eq(redact(&d, d.n, false, &out), ERR_TRUNCATED);
    d.n = 0;
    im(&d, 0x0020, 0x000D, "1");
    im(&d, 0x0010, 0x0010, "B"); /* descending tags */
    cr_assert_eq(redact(&d, d.n, false, &out), ERR_MALFORMED);
    d.n = 0;
    ex(&d, 0x0010, 0x0010, "p!", "AB"); /* not a VR */
    cr_assert_eq(redact(&d, d.n, true, &out), ERR_MALFORMED);
    d.n = 0; /* sequences nested deeper than the bound */
    for (int i = 0; i < 12; i++) {
        u16(&d, 0x0008);
        u16(&d, 0x1110);
        u32(&d, 0xFFFFFFFFu);
        u16(&d, 0xFFFE);
        u16(&d, 0xE000);
        u32(&d, 0xFFFFFFFFu);
    }
    cr_assert_eq(redact(&d, d.n, false, &out), ERR_LIMIT);
    uint8_t *big = calloc(1, AUDIT_DS_MAX_INPUT + 1);
    cr_assert_eq(audit_ds_redact(big, AUDIT_DS_MAX_INPUT + 1, false, KEY, 16, &out), ERR_LIMIT);
    free(big);
    cr_assert_eq(out.len, 0);
    wbuf_cleanup(&out);
}

Test(audit_dsredact, group_lengths_are_dropped)
{
    struct ds d = {.n = 0};
    u16(&d, 0x0008);
    u16(&d, 0x0000);
    u32(&d, 4);
    u32(&d, 14);
    im(&d, 0x0008, 0x0052, "STUDY ");
    struct wbuf out;
    wbuf_init(&out, 8192);
    cr_assert_eq(redact(&d, d.n, false, &out), 0);
    cr_assert_eq(out.len, 14);
    wbuf_cleanup(&out);
}
