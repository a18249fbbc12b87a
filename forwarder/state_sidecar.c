/* state: an object as the pipeline tracks it, from its spool entry's sidecar. The sidecar's
 * format is the spool library's (spool/spool_sidecar.h); this only copies its fields. */
#include "state.h"

#include <string.h>

#define COPY(dst, src) memcpy((dst), (src), sizeof(dst) < sizeof(src) ? sizeof(dst) : sizeof(src))

void state_obj_from_spool(const struct spool_sidecar *sc, struct state_obj *o)
{
    memset(o, 0, sizeof *o);
    COPY(o->sop, sc->sop_instance);
    COPY(o->sha, sc->sha256);
    COPY(o->study, sc->study);
    COPY(o->series, sc->series);
    COPY(o->sop_class, sc->sop_class);
    COPY(o->ts, sc->ts);
    COPY(o->calling, sc->calling);
    COPY(o->called, sc->called);
    COPY(o->peer, sc->peer);
    COPY(o->cert_cn, sc->cert_cn);
    COPY(o->cert_fp, sc->cert_fp);
    COPY(o->client_id, sc->client_id);
    COPY(o->received_at, sc->received_end);
    COPY(o->crc64, sc->crc64nvme);
    o->bytes = sc->bytes; /* the fields have the same sizes: every copy stays NUL-terminated */
}

int state_obj_from_sidecar(const char *json, size_t len, struct state_obj *o)
{
    struct spool_sidecar sc;
    int rc = spool_sidecar_decode(json, len, &sc);
    if (rc < 0) {
        memset(o, 0, sizeof *o);
        return rc;
    }
    state_obj_from_spool(&sc, o);
    return 0;
}
