/* libFuzzer target for the pipeline's parsers of untrusted text (forwarder/state.c, journal and
 * configuration): spool sidecars, HealthImaging ndjson result lines, GetDICOMImportJob and
 * StartDICOMImportJob answers, STOW-RS store responses, DynamoDB GetItem answers, and the aws
 * backend configuration. Each parser reads an exact-size heap copy (ASan catches over-reads).
 * Invariants: results are NUL-terminated within their fields; a parsed SOP UID is 1-64 of
 * digits and dots; a job id is 1-32 of [0-9a-z]. */
#include <stdlib.h>
#include <string.h>

#include "forwarder/pipeline_config.h"
#include "forwarder/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void check_uid(const char *s)
{
    size_t n = strnlen(s, 65);
    CHECK(n >= 1 && n <= 64);
    for (size_t i = 0; i < n; i++)
        CHECK((s[i] >= '0' && s[i] <= '9') || s[i] == '.');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1u << 20)
        return 0;
    char *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);

    struct state_obj o;
    if (state_obj_from_sidecar(p, size, &o) == 0) {
        check_uid(o.sop);
        check_uid(o.study);
        check_uid(o.series);
        CHECK(strlen(o.sha) == 64);
        o.batch[0] = 'b';
        o.batch[1] = '\0';
        cJSON_Delete(state_req_received("t", &o, STATE_CLAIM_NEW, "now"));
        cJSON_Delete(state_req_received("t", &o, STATE_CLAIM_TAKEOVER, "now"));
    }
    struct state_result r;
    if (state_parse_result_line(p, size, size & 1, &r) == 0) {
        check_uid(r.sop);
        CHECK(strnlen(r.image_set_id, sizeof r.image_set_id) < sizeof r.image_set_id);
        CHECK(strnlen(r.error_message, sizeof r.error_message) < sizeof r.error_message);
    }
    char job[40];
    if (state_parse_start_job(p, size, job, sizeof job) == 0)
        CHECK(strlen(job) >= 1 && strlen(job) <= 32);
    struct state_job_info ji;
    if (state_parse_get_job(p, size, &ji) == 0)
        CHECK(ji.status >= STATE_JOB_SUBMITTED && ji.status <= STATE_JOB_FAILED);
    uint16_t why = 0;
    int s = state_parse_stow(p, size, "1.2.3", &why);
    CHECK(s == 0 || s == 1 || s == ERR_NOTFOUND || s == ERR_MALFORMED);
    struct state_got got;
    if (state_parse_get(p, size, &got) == 0) {
        CHECK(strnlen(got.s3_key, sizeof got.s3_key) < sizeof got.s3_key);
        CHECK(strnlen(got.error_type, sizeof got.error_type) < sizeof got.error_type);
        /* whatever the item says, the decision is one of the actions */
        struct state_dup_in in = {.got = &got, .own = size & 1, .in_s3 = (int)(size % 3) - 1,
                                  .ack = (enum state_ack_point)(size % 3), .stow = size & 2};
        enum state_dup_action a = state_dup_decide(&in);
        CHECK(a >= STATE_DUP_CLAIM && a <= STATE_DUP_OWN_DONE);
        char comment[65];
        state_refusal_comment(comment, got.error_type, -1);
        CHECK(strlen(comment) <= 64);
    }

    /* the configuration parser wants a NUL-terminated string */
    char *z = malloc(size + 1);
    if (z) {
        memcpy(z, data, size);
        z[size] = '\0';
        struct pipeline_config c;
        struct wbuf errs;
        wbuf_init(&errs, 64u * 1024u);
        if (pipeline_config_parse(z, &c, &errs) == 0) {
            CHECK(c.hi.batch_max_objects >= 1 && c.hi.batch_max_objects <= 5000);
            CHECK(c.s3.part_size >= (5u << 20));
        }
        wbuf_cleanup(&errs);
        free(z);
    }
    free(p);
    return 0;
}
