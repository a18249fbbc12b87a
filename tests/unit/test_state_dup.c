/* state_dup: what a copy does when the item of its SOP Instance UID and hash is not free, for
 * every state of the item against every ack point and mode (the table of docs/forwarder.md),
 * how a HealthImaging refusal is classed and told, and the request of a new attempt's outcome. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forwarder/state.h"

/* The item as read back: "none" (gone), TORN (given up by a torn copy), or a state. */
enum item { I_NONE, I_TORN, I_RECEIVED, I_STORED, I_IMPORTING, I_IMPORTED, I_FAILED };
static const char *const item_names[] = {"none",      "TORN",     "RECEIVED", "STORED",
                                         "IMPORTING", "IMPORTED", "FAILED"};

/* The ack points with the modes they run with (ack "healthimaging" needs mode stow). */
struct point {
    const char *name;
    enum state_ack_point ack;
    bool stow;
};
static const struct point points[] = {
    {"spool/import", STATE_ACK_SPOOL, false}, {"spool/stow", STATE_ACK_SPOOL, true},
    {"s3/import", STATE_ACK_S3, false},       {"s3/stow", STATE_ACK_S3, true},
    {"healthimaging/stow", STATE_ACK_HI, true},
};
#define N_POINTS (sizeof points / sizeof points[0])

static enum state_dup_action run(enum item it, bool own, int in_s3, const struct point *pt)
{
    struct state_got g;
    memset(&g, 0, sizeof g);
    g.found = it != I_NONE;
    snprintf(g.batch, sizeof g.batch, "%s", it == I_TORN ? STATE_TORN_BATCH : own ? "b-own" : "b-1");
    snprintf(g.s3_key, sizeof g.s3_key, "dicom/%s/1.2.3.dcm", g.batch);
    static const enum state_inst st[] = {0, STATE_RECEIVED, STATE_RECEIVED, STATE_STORED,
                                         STATE_IMPORTING, STATE_IMPORTED, STATE_FAILED};
    g.state = it == I_NONE ? 0 : st[it];
    struct state_dup_in in = {.got = &g, .own = own, .in_s3 = in_s3, .ack = pt->ack,
                              .stow = pt->stow};
    return state_dup_decide(&in);
}

#define CLAIM STATE_DUP_CLAIM
#define PROBE STATE_DUP_PROBE
#define WAIT STATE_DUP_WAIT
#define DROP STATE_DUP_DROP
#define AGAIN STATE_DUP_REATTEMPT
#define OSTOW STATE_DUP_OWN_STOW
#define ODONE STATE_DUP_OWN_DONE

/* Another copy (another batch, another core task) owns the item. Columns: the ack points in
 * the order of points[]. RECEIVED has three rows: S3 not asked yet, asked and the owner's object
 * is not there, asked and it is. */
struct row {
    enum item it;
    int in_s3;
    enum state_dup_action want[N_POINTS];
};
static const struct row other_rows[] = {
    /*                        spool/imp spool/stow s3/imp s3/stow  hi/stow */
    {I_NONE, -1,              {CLAIM,   CLAIM,     CLAIM, CLAIM,   CLAIM}},
    {I_TORN, -1,              {CLAIM,   CLAIM,     CLAIM, CLAIM,   CLAIM}},
    {I_RECEIVED, -1,          {PROBE,   PROBE,     PROBE, PROBE,   PROBE}},
    {I_RECEIVED, 0,           {WAIT,    WAIT,      WAIT,  WAIT,    WAIT}},
    {I_RECEIVED, 1,           {DROP,    DROP,      DROP,  DROP,    WAIT}},
    {I_STORED, -1,            {DROP,    DROP,      DROP,  DROP,    WAIT}},
    {I_IMPORTING, -1,         {DROP,    DROP,      DROP,  DROP,    WAIT}},
    {I_IMPORTED, -1,          {DROP,    DROP,      DROP,  DROP,    DROP}},
    {I_FAILED, -1,            {AGAIN,   AGAIN,     AGAIN, AGAIN,   AGAIN}},
};

/* This copy's own batch owns the item: a replay after a crash (the claim lets its own RECEIVED
 * item in, so RECEIVED here is a race at worst: claim again). */
static const struct row own_rows[] = {
    /*                        spool/imp spool/stow s3/imp s3/stow  hi/stow */
    {I_RECEIVED, -1,          {CLAIM,   CLAIM,     CLAIM, CLAIM,   CLAIM}},
    {I_STORED, -1,            {ODONE,   OSTOW,     ODONE, OSTOW,   OSTOW}},
    {I_IMPORTING, -1,         {ODONE,   ODONE,     ODONE, ODONE,   ODONE}},
    {I_IMPORTED, -1,          {ODONE,   ODONE,     ODONE, ODONE,   ODONE}},
    {I_FAILED, -1,            {ODONE,   ODONE,     ODONE, ODONE,   ODONE}},
};

static void check_rows(const struct row *rows, size_t n, bool own)
{
    for (size_t r = 0; r < n; r++) {
        for (size_t c = 0; c < N_POINTS; c++) {
            enum state_dup_action got = run(rows[r].it, own, rows[r].in_s3, &points[c]);
            cr_expect_eq(got, rows[r].want[c], "%s item %s (in_s3 %d) at %s: %s, want %s",
                         own ? "own" : "other", item_names[rows[r].it], rows[r].in_s3,
                         points[c].name, state_dup_name(got), state_dup_name(rows[r].want[c]));
        }
    }
}

Test(state_dup, a_copy_meeting_another_copys_item_at_every_ack_point)
{
    check_rows(other_rows, sizeof other_rows / sizeof other_rows[0], false);
}

Test(state_dup, a_replay_meeting_its_own_item_at_every_ack_point)
{
    check_rows(own_rows, sizeof own_rows / sizeof own_rows[0], true);
}

Test(state_dup, an_item_in_a_state_we_do_not_know_is_left_alone)
{
    struct state_got g = {.found = true, .state = 0};
    snprintf(g.batch, sizeof g.batch, "b-1");
    for (size_t c = 0; c < N_POINTS; c++) {
        struct state_dup_in in = {.got = &g, .in_s3 = -1, .ack = points[c].ack,
                                  .stow = points[c].stow};
        cr_expect_eq(state_dup_decide(&in), STATE_DUP_WAIT, "%s", points[c].name);
    }
}

Test(state_dup, only_out_of_resources_is_a_passing_refusal)
{
    cr_assert(!state_stow_reason_permanent(0xA700));
    cr_assert(!state_stow_reason_permanent(0xA7FF));
    cr_assert(!state_stow_reason_permanent(0x0213));
    cr_assert(state_stow_reason_permanent(0xA900));
    cr_assert(state_stow_reason_permanent(0xC000));
    cr_assert(state_stow_reason_permanent(0x0110));
    cr_assert(state_stow_reason_permanent(0x0122));
}

Test(state_dup, refusal_comment_is_short_and_carries_no_free_text)
{
    char c[65];
    state_refusal_comment(c, NULL, 0xA900);
    cr_assert_str_eq(c, "HealthImaging refused: FailureReason 0xA900");
    state_refusal_comment(c, "ValidationException", -1);
    cr_assert_str_eq(c, "HealthImaging refused: ValidationException");
    /* anything but an identifier is left out; never over 64 characters */
    state_refusal_comment(c, "Bad\\Name ^DOE<script>", -1);
    cr_assert_str_eq(c, "HealthImaging refused: BadNameDOEscript");
    char long_type[200];
    memset(long_type, 'x', sizeof long_type - 1);
    long_type[sizeof long_type - 1] = '\0';
    state_refusal_comment(c, long_type, -1);
    cr_assert_eq(strlen(c), 64);
    state_refusal_comment(c, "", -1);
    cr_assert_str_eq(c, "HealthImaging refused: unknown");
}

static char *text(cJSON *j)
{
    cr_assert_not_null(j);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

Test(state_dup, a_new_attempts_outcome_is_written_only_over_failed)
{
    struct state_extra x = {.is_primary = -1, .error_type = "StowFailure",
                            .error_message = "FailureReason 0xa900"};
    char *s = text(state_req_reattempt("t", "1.2", "ab", false, &x, "now"));
    cr_assert(strstr(s, "\"S\":\"FAILED\""), "%s", s);
    cr_assert(strstr(s, "\"N\":\"5\""), "%s", s);
    cr_assert(strstr(s, "\"StowFailure\""), "%s", s);
    cr_assert(strstr(s, "\"ConditionExpression\":\"#a0 = :v"), "%s", s);
    cr_assert_null(strstr(s, "REMOVE"), "%s", s);
    free(s);
    s = text(state_req_reattempt("t", "1.2", "ab", true, &x, "now"));
    cr_assert(strstr(s, "\"S\":\"IMPORTED\""), "%s", s);
    cr_assert(strstr(s, "\"N\":\"4\""), "%s", s);
    cr_assert(strstr(s, " REMOVE #a"), "%s", s);
    cr_assert_null(strstr(s, "StowFailure"), "%s", s); /* the old error goes, none is set */
    /* the condition names FAILED: the value bound to it */
    const char *c = strstr(s, "\"ConditionExpression\":\"#a0 = ");
    cr_assert(c, "%s", s);
    char ph[16], want[48];
    cr_assert_eq(sscanf(c + strlen("\"ConditionExpression\":\"#a0 = "), "%15[^\"]", ph), 1);
    snprintf(want, sizeof want, "\"%s\":{\"S\":\"FAILED\"}", ph);
    cr_assert(strstr(s, want), "%s (%s)", s, want);
    free(s);
}

Test(state_dup, got_reads_state_batch_key_and_error_type)
{
    const char *body = "{\"Item\":{\"state\":{\"S\":\"FAILED\"},\"batch_id\":{\"S\":\"b-9\"},"
                       "\"s3_key\":{\"S\":\"dicom/b-9/1.2.dcm\"},"
                       "\"error_type\":{\"S\":\"StowFailure\"},\"state_rank\":{\"N\":\"5\"}}}";
    struct state_got g;
    cr_assert_eq(state_parse_get(body, strlen(body), &g), 0);
    cr_assert(g.found);
    cr_assert_eq(g.state, STATE_FAILED);
    cr_assert_str_eq(g.batch, "b-9");
    cr_assert_str_eq(g.s3_key, "dicom/b-9/1.2.dcm");
    cr_assert_str_eq(g.error_type, "StowFailure");
    cr_assert_eq(state_parse_get("{}", 2, &g), 0);
    cr_assert(!g.found);
    state_got_from(NULL, &g);
    cr_assert(!g.found);
}
