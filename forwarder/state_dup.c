/* state: what a copy does when the item of its SOP Instance UID and hash is not free (its claim
 * failed), and how a HealthImaging refusal is told to the modality. Pure. */
#include "state.h"

#include <stdio.h>
#include <string.h>

enum state_dup_action state_dup_decide(const struct state_dup_in *in)
{
    const struct state_got *g = in->got;
    if (!g->found || strcmp(g->batch, STATE_TORN_BATCH) == 0)
        return STATE_DUP_CLAIM; /* gone meanwhile, or given up by a torn copy: take it over */
    if (g->state == 0)
        return STATE_DUP_WAIT; /* a state we do not know (a newer writer): touch nothing */
    if (in->own) {
        /* this batch's own item: a replay after a crash. RECEIVED cannot refuse this copy's
         * claim (a race with ourselves at worst: claim again); past it, the step was done */
        if (g->state == STATE_RECEIVED)
            return STATE_DUP_CLAIM;
        if (in->stow && g->state == STATE_STORED)
            return STATE_DUP_OWN_STOW;
        return STATE_DUP_OWN_DONE;
    }
    switch (g->state) {
    case STATE_FAILED:
        return STATE_DUP_REATTEMPT;
    case STATE_IMPORTED:
        return STATE_DUP_DROP;
    case STATE_RECEIVED:
        /* claimed by a copy that writes nothing more until HealthImaging: its object may or
         * may not be in S3 yet */
        if (in->in_s3 < 0)
            return STATE_DUP_PROBE;
        if (in->in_s3 == 0)
            return STATE_DUP_WAIT;
        break;
    default:
        break;
    }
    /* the owner's object is in S3 (STORED, IMPORTING, or RECEIVED and found there) */
    return in->ack == STATE_ACK_HI ? STATE_DUP_WAIT : STATE_DUP_DROP;
}

const char *state_dup_name(enum state_dup_action a)
{
    switch (a) {
    case STATE_DUP_CLAIM:
        return "claim";
    case STATE_DUP_PROBE:
        return "probe";
    case STATE_DUP_WAIT:
        return "wait";
    case STATE_DUP_DROP:
        return "drop";
    case STATE_DUP_REATTEMPT:
        return "reattempt";
    case STATE_DUP_OWN_STOW:
        return "own_stow";
    case STATE_DUP_OWN_DONE:
        return "own_done";
    }
    return "";
}

bool state_stow_reason_permanent(uint16_t reason)
{
    /* PS3.4 B.2.3 / PS3.18 10.5: Refused: Out of Resources (A7xx); PS3.4 C.14.1.1: Resource
     * Limitation (0213). The rest (A9xx data set does not match, Cxxx cannot understand, 0110
     * processing failure, 0122 SOP class not supported, ...) say the object is refused. */
    return (reason & 0xFF00u) != 0xA700u && reason != 0x0213u;
}

void state_refusal_comment(char out[65], const char *error_type, int failure_reason)
{
    if (failure_reason >= 0) {
        snprintf(out, 65, "HealthImaging refused: FailureReason 0x%04X",
                 (unsigned)failure_reason & 0xFFFFu);
        return;
    }
    /* an AWS error type is an identifier; anything else is left out (an Error Comment is LO:
     * no backslash, no control characters, at most 64 characters) */
    static const char head[] = "HealthImaging refused: ";
    size_t n = sizeof head - 1;
    memcpy(out, head, n);
    for (const char *p = error_type ? error_type : ""; *p && n < 64; p++) {
        char c = *p;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '_' || c == '-' || c == ':')
            out[n++] = c;
    }
    if (n == sizeof head - 1) {
        static const char unknown[] = "unknown";
        memcpy(out + n, unknown, sizeof unknown - 1);
        n += sizeof unknown - 1;
    }
    out[n] = '\0';
}
