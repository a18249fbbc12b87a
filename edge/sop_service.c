#include "sop_service.h"

#include <stdio.h>
#include <string.h>

#include "common/grants.h"
#include "common/sop_registry.h"

/* PS3.4 C.6 (Q/R information models), Y and Z (instance-level retrieve), J (commitment). */
static const struct {
    const char *uid;
    uint32_t bit;
} g_models[] = {
    {"1.2.840.10008.1.1", GRANT_ECHO},
    {SOP_COMMITMENT_PUSH, GRANT_COMMIT},
    {"1.2.840.10008.1.20.2", GRANT_COMMIT},       /* Pull Model (retired) */
    {"1.2.840.10008.5.1.4.1.2.1.1", GRANT_FIND}, /* Patient Root */
    {"1.2.840.10008.5.1.4.1.2.1.2", GRANT_MOVE},
    {"1.2.840.10008.5.1.4.1.2.1.3", GRANT_GET},
    {"1.2.840.10008.5.1.4.1.2.2.1", GRANT_FIND}, /* Study Root */
    {"1.2.840.10008.5.1.4.1.2.2.2", GRANT_MOVE},
    {"1.2.840.10008.5.1.4.1.2.2.3", GRANT_GET},
    {"1.2.840.10008.5.1.4.1.2.3.1", GRANT_FIND}, /* Patient/Study Only (retired) */
    {"1.2.840.10008.5.1.4.1.2.3.2", GRANT_MOVE},
    {"1.2.840.10008.5.1.4.1.2.3.3", GRANT_GET},
    {"1.2.840.10008.5.1.4.1.2.4.2", GRANT_MOVE}, /* Composite Instance Root Retrieve */
    {"1.2.840.10008.5.1.4.1.2.4.3", GRANT_GET},
    {"1.2.840.10008.5.1.4.1.2.5.3", GRANT_GET}, /* Composite Instance Retrieve w/o Bulk Data */
};

static const char *const g_names[] = {"store", "echo", "find", "get", "move", "commit"};

uint32_t sop_service_of(const char *abstract, bool scu, bool scp)
{
    for (size_t i = 0; i < sizeof g_models / sizeof g_models[0]; i++) {
        if (strcmp(abstract, g_models[i].uid) == 0)
            return g_models[i].bit;
    }
    if (!sop_registry_find(abstract))
        return 0;
    if (!scp)
        return GRANT_STORE;
    /* the requestor wants to be the storage SCP: it receives C-GET sub-operations */
    return scu ? GRANT_STORE | GRANT_GET : GRANT_GET;
}

/* s as a NUL-terminated UID in out (its padding stripped); false when it is longer than a UID. */
static bool uid_of(struct slice s, char out[UL_UID_MAX + 1])
{
    struct slice t = ul_uid_trim(s);
    if (t.len > UL_UID_MAX)
        return false;
    memcpy(out, t.p, t.len);
    out[t.len] = '\0';
    return true;
}

/* The role the requestor proposes for abstract (PS3.8 D.3.3.4); SCU only without an item. */
static void role_of(const struct ul_assoc_rq *rq, const char *abstract, bool *scu, bool *scp)
{
    *scu = true;
    *scp = false;
    size_t n = strlen(abstract);
    for (uint16_t i = 0; i < rq->ui.n_roles; i++) {
        struct slice s = ul_uid_trim(rq->ui.roles[i].sop);
        if (s.len == n && memcmp(s.p, abstract, n) == 0) {
            *scu = rq->ui.roles[i].scu != 0;
            *scp = rq->ui.roles[i].scp != 0;
            return;
        }
    }
}

void sop_service_check(const struct ul_assoc_rq *rq, uint32_t granted, struct sop_proposal *out)
{
    memset(out, 0, sizeof *out);
    for (uint16_t i = 0; i < rq->n_pctx; i++) {
        char uid[UL_UID_MAX + 1];
        uint32_t svc = 0;
        if (uid_of(rq->pctx[i].abstract, uid)) {
            bool scu, scp;
            role_of(rq, uid, &scu, &scp);
            svc = sop_service_of(uid, scu, scp);
        }
        out->asked |= svc;
        if (svc == 0) {
            out->n_unknown++;
        } else if (svc & granted) {
            out->n_allowed++;
        } else {
            out->n_denied++;
            out->denied |= svc;
        }
    }
}

void sop_service_names(uint32_t bits, char *out, size_t cap)
{
    size_t at = 0;
    if (cap == 0)
        return;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof g_names / sizeof g_names[0]; i++) {
        if (!(bits & (1u << i)))
            continue;
        int n = snprintf(out + at, cap - at, "%s%s", at ? "," : "", g_names[i]);
        if (n < 0 || (size_t)n >= cap - at) {
            out[at] = '\0'; /* cut short: the whole names that fit stay */
            return;
        }
        at += (size_t)n;
    }
}
