/* state: the one reader here of the core's spool format: a sidecar (<spool>/ready/<id>.json,
 * written by the core's store.c) into a struct state_obj. This file is the seam to swap for the
 * spool library's own sidecar reader; the format is the core's, not ours. */
#include "state.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <string.h>

#include "state_int.h"

int state_obj_from_sidecar(const char *json, size_t len, struct state_obj *o)
{
    memset(o, 0, sizeof *o);
    cJSON *j = state_parse_object(json, len);
    if (!j)
        return ERR_MALFORMED;
    state_copy_str(j, "sop_instance_uid", o->sop, sizeof o->sop);
    state_copy_str(j, "sha256", o->sha, sizeof o->sha);
    state_copy_str(j, "study_instance_uid", o->study, sizeof o->study);
    state_copy_str(j, "series_instance_uid", o->series, sizeof o->series);
    state_copy_str(j, "sop_class_uid", o->sop_class, sizeof o->sop_class);
    state_copy_str(j, "transfer_syntax_uid", o->ts, sizeof o->ts);
    state_copy_str(j, "calling_ae", o->calling, sizeof o->calling);
    state_copy_str(j, "called_ae", o->called, sizeof o->called);
    state_copy_str(j, "peer", o->peer, sizeof o->peer);
    state_copy_str(j, "received_end", o->received_at, sizeof o->received_at);
    const cJSON *cert = cJSON_GetObjectItemCaseSensitive(j, "cert");
    if (cJSON_IsObject(cert)) {
        state_copy_str(cert, "subject_cn", o->cert_cn, sizeof o->cert_cn);
        state_copy_str(cert, "fingerprint_sha256", o->cert_fp, sizeof o->cert_fp);
        state_copy_str(cert, "client_id", o->client_id, sizeof o->client_id);
    }
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(j, "bytes");
    bool ok = cJSON_IsNumber(bytes) && bytes->valuedouble >= 0 &&
              bytes->valuedouble < 9.0e15 &&
              bytes->valuedouble == (double)(uint64_t)bytes->valuedouble;
    if (ok)
        o->bytes = (uint64_t)bytes->valuedouble;
    o->redrive = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "redrive"));
    cJSON_Delete(j);
    if (!ok || !state_uid_valid(o->sop) || !state_uid_valid(o->study) ||
        !state_uid_valid(o->series) || !state_sha_valid(o->sha))
        return ERR_MALFORMED;
    return 0;
}

