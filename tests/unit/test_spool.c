/* spool: the on-disk format's one owner. The sidecar round-trips and refuses what is not one;
 * ready entries are listed oldest first, only once their sidecar is there; a release takes the
 * entry out of the gauges; the JSONL journal survives a torn last line; the backend registry
 * finds a backend by its configured type. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool/spool.h"
#include "spool/spool_backend.h"
#include "spool/spool_journal.h"
#include "spool/spool_sidecar.h"

static void fill(struct spool_sidecar *sc)
{
    memset(sc, 0, sizeof *sc);
    snprintf(sc->id, sizeof sc->id, "0000000000000001-42");
    snprintf(sc->sop_class, sizeof sc->sop_class, "1.2.840.10008.5.1.4.1.1.2");
    snprintf(sc->sop_instance, sizeof sc->sop_instance, "1.2.826.0.1.3680043.9.7433.1.1");
    snprintf(sc->study, sizeof sc->study, "1.2.826.0.1.3680043.9.7433.1");
    snprintf(sc->series, sizeof sc->series, "1.2.826.0.1.3680043.9.7433.1.2");
    snprintf(sc->ts, sizeof sc->ts, "1.2.840.10008.1.2.1");
    snprintf(sc->calling, sizeof sc->calling, "CT_ROOM1");
    snprintf(sc->called, sizeof sc->called, "DICOM_CORE");
    snprintf(sc->peer, sizeof sc->peer, "10.0.0.7:40000");
    snprintf(sc->cert_cn, sizeof sc->cert_cn, "ct-room-1");
    memset(sc->cert_fp, 'a', 64);
    snprintf(sc->client_id, sizeof sc->client_id, "ct-room-1");
    sc->bytes = 525253;
    memset(sc->sha256, 'b', 64);
    sc->assoc = 7;
    snprintf(sc->received_start, sizeof sc->received_start, "2026-12-05T08:00:00.000Z");
    snprintf(sc->received_end, sizeof sc->received_end, "2026-12-05T08:00:01.000Z");
}

Test(spool_sidecar, encode_then_decode_gives_the_same_record)
{
    struct spool_sidecar a, b;
    fill(&a);
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(spool_sidecar_encode(&a, &text, &len), 0);
    cr_assert_eq(strlen(text), len);
    cr_assert_eq(spool_sidecar_decode(text, len, &b), 0);
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0, "every field survives: %s", text);
    free(text);
}

Test(spool_sidecar, a_cut_at_every_byte_is_refused)
{
    struct spool_sidecar a, b;
    fill(&a);
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(spool_sidecar_encode(&a, &text, &len), 0);
    for (size_t n = 0; n < len; n++)
        cr_assert_eq(spool_sidecar_decode(text, n, &b), ERR_MALFORMED, "cut at %zu", n);
    free(text);
}

Test(spool_sidecar, missing_or_invalid_required_fields_are_refused)
{
    static const char *bad[] = {
        "[]",
        "{}",
        /* no bytes */
        "{\"sop_instance_uid\":\"1.2.3\",\"study_instance_uid\":\"1.2\",\"series_instance_uid\":"
        "\"1.3\",\"sha256\":\"" "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}",
        /* a UID with a leading zero component */
        "{\"sop_instance_uid\":\"1.02.3\",\"study_instance_uid\":\"1.2\",\"series_instance_uid\":"
        "\"1.3\",\"bytes\":1,\"sha256\":\""
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}",
        /* a short hash */
        "{\"sop_instance_uid\":\"1.2.3\",\"study_instance_uid\":\"1.2\",\"series_instance_uid\":"
        "\"1.3\",\"bytes\":1,\"sha256\":\"bb\"}",
        /* bytes not a whole number */
        "{\"sop_instance_uid\":\"1.2.3\",\"study_instance_uid\":\"1.2\",\"series_instance_uid\":"
        "\"1.3\",\"bytes\":1.5,\"sha256\":\""
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}",
    };
    struct spool_sidecar b;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(spool_sidecar_decode(bad[i], strlen(bad[i]), &b), ERR_MALFORMED, "%zu", i);
}

Test(spool_sidecar, over_long_optional_fields_are_dropped_not_overflowed)
{
    char text[2048];
    char ae[40];
    memset(ae, 'A', sizeof ae - 1);
    ae[sizeof ae - 1] = '\0';
    snprintf(text, sizeof text,
             "{\"sop_instance_uid\":\"1.2.3\",\"study_instance_uid\":\"1.2\","
             "\"series_instance_uid\":\"1.3\",\"bytes\":1,\"calling_ae\":\"%s\",\"sha256\":\""
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"}",
             ae);
    struct spool_sidecar b;
    cr_assert_eq(spool_sidecar_decode(text, strlen(text), &b), 0);
    cr_assert_str_eq(b.calling, "");
}

static char *tmpdir(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/test_spool_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    return dir;
}

static void touch(const char *dir, const char *name, size_t bytes)
{
    char p[512];
    snprintf(p, sizeof p, "%s/ready/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    for (size_t i = 0; i < bytes; i++)
        fputc('x', f);
    fclose(f);
}

Test(spool, ready_entries_are_listed_oldest_first_and_only_with_a_sidecar)
{
    char *dir = tmpdir();
    struct spool s;
    cr_assert_eq(spool_open(&s, dir, 0), 0);
    touch(dir, "0000000000000002-1.dcm", 10);
    touch(dir, "0000000000000002-1.json", 1);
    touch(dir, "0000000000000001-1.dcm", 20);
    touch(dir, "0000000000000001-1.json", 1);
    touch(dir, "0000000000000003-1.dcm", 30); /* its sidecar has not landed */
    char ids[8][SPOOL_ID_MAX];
    cr_assert_eq(spool_ready_list(&s, ids, 8), 2);
    cr_assert_str_eq(ids[0], "0000000000000001-1");
    cr_assert_str_eq(ids[1], "0000000000000002-1");
    cr_assert_eq(spool_ready_list(&s, ids, 1), 1, "the cap holds");
    struct spool_peek pk;
    cr_assert_eq(spool_peek(dir, &pk), 0);
    cr_assert_eq(pk.depth, 2, "a data file without its sidecar is still being received");
    cr_assert_eq(pk.bytes, 30);
    spool_close(&s);
    /* a reopen removes the data file whose sidecar never landed: it was never acknowledged */
    cr_assert_eq(spool_open(&s, dir, 0), 0);
    cr_assert_eq(atomic_load(&s.depth), 2);
    cr_assert_eq(atomic_load(&s.depth_bytes), 30);
    spool_entry_release(&s, "0000000000000001-1", 20);
    cr_assert_eq(atomic_load(&s.depth), 1);
    cr_assert_eq(atomic_load(&s.depth_bytes), 10);
    cr_assert_eq(spool_ready_list(&s, ids, 8), 1);
    cr_assert_str_eq(ids[0], "0000000000000002-1");
    spool_close(&s);
}

Test(spool, new_ids_are_valid_unique_and_sort_by_arrival)
{
    char *dir = tmpdir();
    struct spool s;
    cr_assert_eq(spool_open(&s, dir, 0), 0);
    char a[SPOOL_ID_MAX], b[SPOOL_ID_MAX];
    spool_new_id(&s, a);
    spool_new_id(&s, b);
    cr_assert(spool_id_valid(a) && spool_id_valid(b));
    cr_assert_lt(strcmp(a, b), 0);
    cr_assert_not(spool_id_valid("../../etc/passwd"));
    cr_assert_not(spool_id_valid("0000000000000001-"));
    cr_assert_not(spool_id_valid("000000000000000g-1"));
    spool_close(&s);
}

static int dummy_start(const struct backend_env *env, void **impl)
{
    (void)env;
    *impl = NULL;
    return 0;
}

Test(spool_backend, the_registry_finds_a_backend_by_its_type)
{
    static const struct backend_ops one = {.name = "file", .start = dummy_start};
    static const struct backend_ops two = {.name = "aws", .start = dummy_start};
    const struct backend_ops *const reg[] = {&one, &two, NULL};
    cr_assert_eq(backend_find(reg, "aws"), &two);
    cr_assert_eq(backend_find(reg, "file"), &one);
    cr_assert_null(backend_find(reg, "s3"));
    cr_assert_str_eq(spool_ack_name(SPOOL_ACK_HEALTHIMAGING), "healthimaging");
}

static int count_cb(void *arg, const cJSON *rec)
{
    (void)rec;
    (*(int *)arg)++;
    return 0;
}

Test(spool_journal, replay_skips_a_torn_last_line_and_compaction_replaces)
{
    char dir[] = "/tmp/test_spool_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/journal.jsonl", dir);
    struct spool_journal *j;
    int n = 0;
    cr_assert_eq(spool_journal_open(path, true, count_cb, &n, &j), 0);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "t", "assign");
    cr_assert_eq(spool_journal_append(j, r), 0);
    cr_assert_eq(spool_journal_append(j, r), 0);
    cr_assert_eq(spool_journal_sync(j), 0);
    spool_journal_close(j);
    int fd = open(path, O_WRONLY | O_APPEND);
    cr_assert(write(fd, "{\"t\":\"sto", 9) == 9); /* a crash in the middle of a record */
    close(fd);
    n = 0;
    cr_assert_eq(spool_journal_open(path, true, count_cb, &n, &j), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(spool_journal_append(j, r), 0); /* lands on a line of its own */
    spool_journal_close(j);
    n = 0;
    cr_assert_eq(spool_journal_open(path, true, count_cb, &n, &j), 0);
    cr_assert_eq(n, 3);
    cJSON *recs[1] = {r};
    cr_assert_eq(spool_journal_compact(j, recs, 1), 0);
    cr_assert_eq(spool_journal_append(j, r), 0);
    spool_journal_close(j);
    n = 0;
    cr_assert_eq(spool_journal_open(path, true, count_cb, &n, &j), 0);
    cr_assert_eq(n, 2);
    spool_journal_close(j);
    cJSON_Delete(r);
    unlink(path);
    rmdir(dir);
}

Test(spool_sidecar, a_crc64_alone_is_a_checksum_and_none_at_all_is_refused)
{
    struct spool_sidecar a, b;
    fill(&a);
    a.sha256[0] = '\0';
    snprintf(a.crc64nvme, sizeof a.crc64nvme, "ae8b14860a799888");
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(spool_sidecar_encode(&a, &text, &len), 0);
    cr_assert_null(strstr(text, "\"sha256\""), "no empty sha256 written: %s", text);
    cr_assert_eq(spool_sidecar_decode(text, len, &b), 0);
    cr_assert_str_eq(b.crc64nvme, "ae8b14860a799888");
    free(text);
    a.crc64nvme[0] = '\0';
    cr_assert_eq(spool_sidecar_encode(&a, &text, &len), 0);
    cr_assert_eq(spool_sidecar_decode(text, len, &b), ERR_MALFORMED, "no checksum: %s", text);
    free(text);
    static const char bad_crc[] =
        "{\"sop_instance_uid\":\"1.2.3\",\"study_instance_uid\":\"1.2\",\"series_instance_uid\":"
        "\"1.3\",\"bytes\":1,\"crc64nvme\":\"zz8b14860a799888\"}";
    cr_assert_eq(spool_sidecar_decode(bad_crc, sizeof bad_crc - 1, &b), ERR_MALFORMED);
}
