/* audit_queue and audit_qrec: the durable audit queue. Order and contiguous sequence numbers,
 * survival across close/reopen (records and cursors), a record cut by a crash mid-append, a
 * record corrupted on disk, garbage segment files, both full-queue policies with their lost
 * counts and the report that follows, several readers at their own pace, segment rotation and
 * reaping, one process per directory; and the record parser cut at every offset, with bad
 * magic, bad checksum and oversized lengths, against a guard page. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit_qrec.h"
#include "audit/audit_queue.h"
#include "guard.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/gw-aq-test.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(audit_queue, .init = setup, .fini = teardown);

static struct aq *open_q(uint64_t max_msgs, uint64_t max_bytes, enum aq_full pol, size_t readers,
                         struct aq_report *rep)
{
    struct aq_opts o = {.dir = dir,
                        .max_bytes = max_bytes,
                        .max_msgs = max_msgs,
                        .on_full = pol,
                        .n_readers = readers,
                        .readers = {"r0", "r1", "r2"}};
    struct aq *q = NULL;
    struct aq_report r;
    char err[256];
    int rc = aq_open(&o, &q, rep ? rep : &r, err, sizeof err);
    cr_assert_eq(rc, 0, "aq_open: %s", err);
    return q;
}

static void put(struct aq *q, unsigned i)
{
    char m[64];
    int n = snprintf(m, sizeof m, "message %u", i);
    cr_assert_eq(aq_append(q, m, (size_t)n, NULL), 0, "append %u", i);
}

/* Read seq and check it says "message i". */
static void expect(struct aq *q, uint64_t seq, unsigned i)
{
    struct wbuf b;
    wbuf_init(&b, AQ_REC_MAX);
    uint64_t next = 0;
    int rc = aq_read(q, seq, &b, &next);
    cr_assert_eq(rc, 1, "read %llu: %d", (unsigned long long)seq, rc);
    char m[64];
    int n = snprintf(m, sizeof m, "message %u", i);
    cr_assert_eq(b.len, (size_t)n);
    cr_assert(memcmp(b.p, m, b.len) == 0, "seq %llu holds %.*s", (unsigned long long)seq,
              (int)b.len, (const char *)b.p);
    wbuf_cleanup(&b);
}

static int read_rc(struct aq *q, uint64_t seq, uint64_t *next)
{
    struct wbuf b;
    wbuf_init(&b, AQ_REC_MAX);
    int rc = aq_read(q, seq, &b, next);
    wbuf_cleanup(&b);
    return rc;
}

static void seg_path(char *buf, size_t n, uint64_t first)
{
    snprintf(buf, n, "%s/seg-%016llx.aq", dir, (unsigned long long)first);
}

Test(audit_queue, appends_in_order_and_reads_back)
{
    struct aq *q = open_q(100, AQ_MIN_BYTES, AQ_DROP_OLDEST, 1, NULL);
    for (unsigned i = 1; i <= 5; i++)
        put(q, i);
    cr_assert_eq(aq_sync(q), 0);
    for (unsigned i = 1; i <= 5; i++)
        expect(q, i, i);
    uint64_t next;
    cr_assert_eq(read_rc(q, 6, &next), 0, "nothing at the tail yet");
    struct aq_stats st;
    aq_get_stats(q, &st);
    cr_assert_eq(st.count, 5);
    cr_assert_eq(st.head, 1);
    cr_assert_eq(st.tail, 6);
    aq_commit(q, 0, 4);
    aq_get_stats(q, &st);
    cr_assert_eq(st.count, 2);
    cr_assert_eq(read_rc(q, 2, &next), ERR_NOTFOUND);
    cr_assert_eq(next, 4);
    aq_close(q);
}

Test(audit_queue, records_and_cursors_survive_a_restart)
{
    struct aq *q = open_q(100, AQ_MIN_BYTES, AQ_DROP_OLDEST, 2, NULL);
    for (unsigned i = 1; i <= 10; i++)
        put(q, i);
    aq_commit(q, 0, 8);
    aq_commit(q, 1, 3);
    aq_close(q); /* saves the cursors */
    struct aq_report rep;
    q = open_q(100, AQ_MIN_BYTES, AQ_DROP_OLDEST, 2, &rep);
    cr_assert_eq(rep.records, 8, "seq 3..10 are still wanted by r1");
    cr_assert_eq(rep.lost, 0);
    cr_assert_eq(aq_committed(q, 0), 8);
    cr_assert_eq(aq_committed(q, 1), 3);
    expect(q, 3, 3);
    expect(q, 10, 10);
    put(q, 11);
    expect(q, 11, 11);
    aq_commit(q, 0, 12);
    aq_commit(q, 1, 12);
    aq_close(q);
    q = open_q(100, AQ_MIN_BYTES, AQ_DROP_OLDEST, 2, &rep);
    cr_assert_eq(rep.records, 0);
    struct aq_stats st;
    aq_get_stats(q, &st);
    cr_assert_eq(st.tail, 12, "sequence numbers go on after everything was delivered");
    put(q, 12);
    expect(q, 12, 12);
    aq_close(q);
}

Test(audit_queue, a_record_cut_mid_append_is_truncated_and_counted_lost)
{
    struct aq *q = open_q(100, AQ_MIN_BYTES, AQ_DROP_OLDEST, 1, NULL);
    for (unsigned i = 1; i <= 3; i++)
        put(q, i);
    aq_close(q);
    /* a crash in the middle of the fourth append: half a record at the end */
    struct wbuf r;
    wbuf_init(&r, 1024);
    cr_assert_eq(aq_rec_encode(&r, 4, "message 4", 9), 0);
    char p[128];
    seg_path(p, sizeof p, 1);
    int fd = open(p, O_WRONLY | O_APPEND);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, r.p, r.len - 5), (ssize_t)(r.len - 5));
    close(fd);
    struct stat before;
    cr_assert_eq(stat(p, &before), 0);
    struct aq_report rep;
    q = open_q(100, AQ_MIN_BYTES, AQ_DROP_OLDEST, 1, &rep);
    cr_assert_eq(rep.records, 3);
    cr_assert_eq(rep.lost, 1);
    cr_assert_eq(rep.pending_lost, 1);
    cr_assert_eq(rep.garbage_bytes, r.len - 5);
    struct stat after;
    cr_assert_eq(stat(p, &after), 0);
    cr_assert_eq(after.st_size, before.st_size - (off_t)(r.len - 5), "the cut record is gone");
    put(q, 4); /* the next record follows the last valid one */
    expect(q, 4, 4);
    aq_close(q);
    q = open_q(100, AQ_MIN_BYTES, AQ_DROP_OLDEST, 1, &rep);
    cr_assert_eq(rep.records, 4);
    cr_assert_eq(rep.lost, 0);
    cr_assert_eq(rep.pending_lost, 1, "still to be reported");
    aq_close(q);
    wbuf_cleanup(&r);
}

Test(audit_queue, a_corrupt_record_is_skipped_and_counted_lost)
{
    struct aq *q = open_q(100, AQ_MIN_BYTES, AQ_DROP_OLDEST, 1, NULL);
    for (unsigned i = 1; i <= 5; i++)
        put(q, i);
    aq_close(q);
    char p[128];
    seg_path(p, sizeof p, 1);
    int fd = open(p, O_RDWR);
    cr_assert_geq(fd, 0);
    /* record 3 starts after two records of 20 + 9 bytes: flip a payload byte */
    off_t at = 2 * (AQ_REC_HDR + 9) + AQ_REC_HDR + 2;
    uint8_t c;
    cr_assert_eq(pread(fd, &c, 1, at), 1);
    c ^= 0x40;
    cr_assert_eq(pwrite(fd, &c, 1, at), 1);
    close(fd);
    struct aq_report rep;
    q = open_q(100, AQ_MIN_BYTES, AQ_DROP_OLDEST, 1, &rep);
    cr_assert_eq(rep.records, 4);
    cr_assert_eq(rep.lost, 1);
    expect(q, 2, 2);
    uint64_t next;
    cr_assert_eq(read_rc(q, 3, &next), ERR_NOTFOUND);
    cr_assert_eq(next, 4);
    expect(q, 4, 4);
    expect(q, 5, 5);
    aq_close(q);
}

Test(audit_queue, a_record_damaged_after_opening_is_skipped_when_read)
{
    struct aq *q = open_q(100, AQ_MIN_BYTES, AQ_DROP_OLDEST, 1, NULL);
    put(q, 1);
    put(q, 2);
    char p[128];
    seg_path(p, sizeof p, 1);
    int fd = open(p, O_RDWR);
    uint8_t z = 0xEE;
    cr_assert_eq(pwrite(fd, &z, 1, AQ_REC_HDR + 1), 1);
    close(fd);
    uint64_t next;
    cr_assert_eq(read_rc(q, 1, &next), ERR_NOTFOUND);
    cr_assert_eq(next, 2);
    expect(q, 2, 2);
    struct aq_stats st;
    aq_get_stats(q, &st);
    cr_assert_eq(st.pending_lost, 1);
    aq_close(q);
}

Test(audit_queue, garbage_segment_files_are_ignored)
{
    char p[128];
    seg_path(p, sizeof p, 7);
    FILE *f = fopen(p, "wb");
    for (int i = 0; i < 5000; i++)
        fputc((i * 131) & 0xFF, f);
    fclose(f);
    snprintf(p, sizeof p, "%s/seg-nothex.aq", dir);
    f = fopen(p, "wb");
    fputs("AQR1AQR1AQR1", f);
    fclose(f);
    struct aq_report rep;
    struct aq *q = open_q(100, AQ_MIN_BYTES, AQ_DROP_OLDEST, 1, &rep);
    cr_assert_eq(rep.records, 0);
    put(q, 1);
    expect(q, 1, 1);
    aq_close(q);
}

Test(audit_queue, drop_oldest_keeps_the_newest_and_counts_the_rest)
{
    struct aq *q = open_q(10, AQ_MIN_BYTES, AQ_DROP_OLDEST, 2, NULL);
    aq_commit(q, 1, 1);
    for (unsigned i = 1; i <= 25; i++)
        put(q, i);
    struct aq_stats st;
    aq_get_stats(q, &st);
    cr_assert_eq(st.count, 10);
    cr_assert_eq(st.head, 16);
    cr_assert_eq(st.dropped, 15);
    cr_assert_eq(st.pending_lost, 15);
    cr_assert(st.full);
    cr_assert(aq_is_full(q));
    cr_assert_eq(st.commit[0], 16, "readers move past what was dropped");
    uint64_t next;
    cr_assert_eq(read_rc(q, 3, &next), ERR_NOTFOUND);
    cr_assert_eq(next, 16);
    expect(q, 16, 16);
    /* the report goes in only once there is room, without dropping anything */
    cr_assert_eq(aq_append_report(q, "lost 15", 7, 15), ERR_NOSPACE);
    aq_commit(q, 0, 20);
    aq_commit(q, 1, 20);
    cr_assert(!aq_is_full(q));
    cr_assert_eq(aq_append_report(q, "lost 15", 7, 15), 0);
    aq_get_stats(q, &st);
    cr_assert_eq(st.pending_lost, 0);
    cr_assert_eq(st.tail, 27);
    aq_close(q);
}

Test(audit_queue, drop_oldest_by_bytes)
{
    struct aq *q = open_q(1000000, AQ_MIN_BYTES, AQ_DROP_OLDEST, 1, NULL);
    static char big[60000];
    memset(big, 'b', sizeof big);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(aq_append(q, big, sizeof big, NULL), 0);
    struct aq_stats st;
    aq_get_stats(q, &st);
    cr_assert_leq(st.bytes, AQ_MIN_BYTES);
    cr_assert_eq(st.count, AQ_MIN_BYTES / (sizeof big + AQ_REC_HDR));
    cr_assert_eq(st.dropped, 10 - st.count);
    cr_assert_eq(aq_append(q, big, AQ_REC_MAX + 1, NULL), ERR_LIMIT);
    aq_close(q);
}

Test(audit_queue, fail_closed_refuses_and_blocks_until_there_is_room)
{
    struct aq *q = open_q(10, AQ_MIN_BYTES, AQ_FAIL_CLOSED, 1, NULL);
    for (unsigned i = 1; i <= 10; i++)
        put(q, i);
    cr_assert(aq_is_full(q));
    cr_assert_eq(aq_append(q, "x", 1, NULL), ERR_NOSPACE);
    cr_assert_eq(aq_append(q, "y", 1, NULL), ERR_NOSPACE);
    struct aq_stats st;
    aq_get_stats(q, &st);
    cr_assert_eq(st.count, 10);
    cr_assert_eq(st.refused, 2);
    cr_assert_eq(st.pending_lost, 2);
    expect(q, 1, 1); /* nothing was dropped */
    aq_close(q);
    struct aq_report rep;
    q = open_q(10, AQ_MIN_BYTES, AQ_FAIL_CLOSED, 1, &rep);
    cr_assert(aq_is_full(q), "still full after a restart");
    cr_assert_eq(rep.pending_lost, 2);
    aq_commit(q, 0, 6);
    cr_assert(!aq_is_full(q));
    put(q, 11);
    expect(q, 11, 11);
    aq_close(q);
}

static size_t count_segments(void)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, "seg-", 4) == 0;
    closedir(d);
    return n;
}

Test(audit_queue, segments_roll_and_are_reaped_once_every_reader_is_past)
{
    struct aq *q = open_q(100000, AQ_MIN_BYTES * 4, AQ_DROP_OLDEST, 2, NULL);
    static char m[8000];
    memset(m, 'm', sizeof m);
    for (int i = 0; i < 60; i++) /* 64 KiB segments: about 8 records each */
        cr_assert_eq(aq_append(q, m, sizeof m, NULL), 0);
    cr_assert_eq(aq_sync(q), 0);
    size_t segs = count_segments();
    cr_assert_geq(segs, 7);
    aq_commit(q, 0, 61);
    cr_assert_eq(count_segments(), segs, "r1 still needs them");
    aq_commit(q, 1, 30);
    size_t mid = count_segments();
    cr_assert_lt(mid, segs);
    cr_assert_gt(mid, 1);
    aq_commit(q, 1, 61);
    cr_assert_eq(count_segments(), 1, "the last segment stays for appends");
    aq_close(q);
}

Test(audit_queue, one_process_per_directory)
{
    struct aq *q = open_q(10, AQ_MIN_BYTES, AQ_DROP_OLDEST, 1, NULL);
    struct aq_opts o = {
        .dir = dir, .max_bytes = AQ_MIN_BYTES, .max_msgs = 10, .n_readers = 1, .readers = {"r0"}};
    struct aq *q2 = NULL;
    struct aq_report rep;
    char err[256];
    /* flock locks are per open file description: a second open in this process conflicts too */
    cr_assert_eq(aq_open(&o, &q2, &rep, err, sizeof err), ERR_CONFIG);
    cr_assert_not_null(strstr(err, "in use"));
    aq_close(q);
}

Test(audit_queue, bad_options_are_refused)
{
    struct aq_opts o = {
        .dir = dir, .max_bytes = AQ_MIN_BYTES, .max_msgs = 10, .n_readers = 1, .readers = {"../x"}};
    struct aq *q = NULL;
    struct aq_report rep;
    char err[256];
    cr_assert_eq(aq_open(&o, &q, &rep, err, sizeof err), ERR_CONFIG);
    o.readers[0] = "ok";
    o.max_bytes = 1000;
    cr_assert_eq(aq_open(&o, &q, &rep, err, sizeof err), ERR_CONFIG);
}

/* ---- the record format ---- */

TestSuite(audit_qrec);

Test(audit_qrec, parse_every_cut_needs_more_or_fails_early)
{
    struct wbuf r;
    wbuf_init(&r, 1024);
    cr_assert_eq(aq_rec_encode(&r, 0x0102030405ULL, "payload!", 8), 0);
    for (size_t cut = 0; cut < r.len; cut++) {
        const uint8_t *g = guard_copy(r.p, cut);
        uint64_t seq;
        struct slice pl;
        cr_assert_eq(aq_rec_parse(g, cut, AQ_REC_MAX, &seq, &pl), 0, "cut %zu", cut);
        guard_free(g, cut);
    }
    const uint8_t *g = guard_copy(r.p, r.len);
    uint64_t seq;
    struct slice pl;
    cr_assert_eq(aq_rec_parse(g, r.len, AQ_REC_MAX, &seq, &pl), (int)r.len);
    cr_assert_eq(seq, 0x0102030405ULL);
    cr_assert(slice_eq_str(pl, "payload!"));
    cr_assert_eq(aq_rec_parse(g, r.len, 7, &seq, &pl), ERR_LIMIT, "len over max");
    guard_free(g, r.len);
    for (size_t i = 0; i < r.len; i++) { /* any flipped bit is caught */
        uint8_t *c = malloc(r.len);
        memcpy(c, r.p, r.len);
        c[i] ^= 0x01;
        int rc = aq_rec_parse(c, r.len, AQ_REC_MAX, &seq, &pl);
        cr_assert(rc < 0 || (i >= 12 && i < 16 && rc == 0), "byte %zu: %d", i, rc);
        free(c);
    }
    cr_assert_eq(aq_rec_parse((const uint8_t *)"AQX", 3, AQ_REC_MAX, &seq, &pl), ERR_MALFORMED);
    uint8_t huge[AQ_REC_HDR] = {'A', 'Q', 'R', '1', 1, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF};
    cr_assert_eq(aq_rec_parse(huge, sizeof huge, AQ_REC_MAX, &seq, &pl), ERR_LIMIT);
    wbuf_cleanup(&r);
}

static uint64_t seen[16];
static size_t n_seen;

static int collect(void *arg, uint64_t seq, uint64_t off, uint32_t size)
{
    (void)arg;
    (void)off;
    (void)size;
    seen[n_seen++] = seq;
    return 0;
}

Test(audit_qrec, scan_resynchronises_after_garbage_and_ignores_stale_records)
{
    struct wbuf b;
    wbuf_init(&b, 4096);
    cr_assert_eq(aq_rec_encode(&b, 1, "one", 3), 0);
    wbuf_str(&b, "AQR1 garbage that looks like a start");
    cr_assert_eq(aq_rec_encode(&b, 3, "three", 5), 0);
    cr_assert_eq(aq_rec_encode(&b, 2, "stale", 5), 0); /* seq not above the last: garbage */
    cr_assert_eq(aq_rec_encode(&b, 4, "four", 4), 0);
    size_t whole = b.len;
    wbuf_str(&b, "AQR1\x05"); /* a cut record at the end */
    n_seen = 0;
    struct aq_scan_result res;
    cr_assert_eq(aq_scan(b.p, b.len, 0, collect, NULL, &res), 0);
    cr_assert_eq(n_seen, 3);
    cr_assert_eq(seen[0], 1);
    cr_assert_eq(seen[1], 3);
    cr_assert_eq(seen[2], 4);
    cr_assert_eq(res.end, whole);
    cr_assert_eq(res.records, 3);
    cr_assert_eq(res.garbage, 36 + (AQ_REC_HDR + 5) + 5);
    wbuf_cleanup(&b);
}
