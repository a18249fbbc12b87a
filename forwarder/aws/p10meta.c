#include "p10meta.h"

#include <string.h>

#include "common/dcm_vr.h"
#include "common/rd.h"

#define PREAMBLE 128u

/* PS3.5 7.1.2: the VRs with 2 reserved bytes and a 32-bit length */
static bool long_form(uint16_t vr)
{
    const struct dcm_vr_info *vi = dcm_vr_info(vr);
    return vi && vi->long_len;
}

static int take_uid(const uint8_t *v, size_t n, char out[65])
{
    while (n > 0 && (v[n - 1] == '\0' || v[n - 1] == ' '))
        n--;
    if (n == 0 || n > 64 || !dcm_uid_valid(v, n))
        return ERR_MALFORMED;
    memcpy(out, v, n);
    out[n] = '\0';
    return 0;
}

int p10meta_parse(const uint8_t *p, size_t n, struct p10meta_info *out)
{
    memset(out, 0, sizeof *out);
    if (n < PREAMBLE + 4)
        return 0;
    if (memcmp(p + PREAMBLE, "DICM", 4) != 0)
        return ERR_MALFORMED;
    struct rd r = rd_make(p, n > P10META_MAX ? P10META_MAX : n);
    r.pos = PREAMBLE + 4;
    for (;;) {
        size_t at = r.pos;
        uint16_t group, elem, vr, len16;
        uint32_t len;
        if (rd_left(&r) < 4)
            return n > P10META_MAX ? ERR_LIMIT : 0;
        TRY(rd_u16le(&r, &group));
        TRY(rd_u16le(&r, &elem));
        if (group != 0x0002) {
            if (!out->ts[0] || !out->sop_class[0] || !out->sop[0])
                return ERR_MALFORMED;
            return (int)at;
        }
        if (rd_left(&r) < 4)
            return n > P10META_MAX ? ERR_LIMIT : 0;
        TRY(rd_u16be(&r, &vr)); /* the two VR characters, first one high (DCM_VR_CODE) */
        if (!dcm_vr_info(vr) || vr == DCM_VR_SQ)
            return ERR_MALFORMED;
        if (long_form(vr)) {
            if (rd_left(&r) < 6)
                return n > P10META_MAX ? ERR_LIMIT : 0;
            TRY(rd_skip(&r, 2));
            TRY(rd_u32le(&r, &len));
            if (len == 0xFFFFFFFFu)
                return ERR_MALFORMED;
        } else {
            TRY(rd_u16le(&r, &len16));
            len = len16;
        }
        if (len > P10META_MAX)
            return ERR_LIMIT;
        if (len > rd_left(&r))
            return n > P10META_MAX ? ERR_LIMIT : 0;
        struct slice v;
        TRY(rd_slice(&r, len, &v));
        if (elem == 0x0002)
            TRY(take_uid(v.p, v.len, out->sop_class));
        else if (elem == 0x0003)
            TRY(take_uid(v.p, v.len, out->sop));
        else if (elem == 0x0010)
            TRY(take_uid(v.p, v.len, out->ts));
    }
}

void p10meta_init(struct p10meta *m)
{
    m->len = 0;
    m->meta_len = 0;
    m->given = 0;
    m->meta_told = false;
    memset(&m->info, 0, sizeof m->info);
}

int p10meta_next(struct p10meta *m, const uint8_t *p, size_t n, struct p10meta_ev *ev)
{
    ev->type = P10META_EV_NONE;
    ev->data = NULL;
    ev->len = 0;
    if (n > (size_t)INT32_MAX)
        n = INT32_MAX;
    if (m->meta_len == 0) {
        size_t room = sizeof m->buf - m->len, k = n < room ? n : room;
        memcpy(m->buf + m->len, p, k);
        m->len += k;
        int rc = p10meta_parse(m->buf, m->len, &m->info);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            if (m->len == sizeof m->buf)
                return ERR_LIMIT;
            return (int)k;
        }
        m->meta_len = (size_t)rc;
        m->given = m->meta_len;
        m->meta_told = true;
        ev->type = P10META_EV_META;
        return (int)k;
    }
    if (m->given < m->len) { /* the dataset's first bytes came with the meta */
        ev->type = P10META_EV_DATA;
        ev->data = m->buf + m->given;
        ev->len = m->len - m->given;
        m->given = m->len;
        return 0;
    }
    if (n > 0) {
        ev->type = P10META_EV_DATA;
        ev->data = p;
        ev->len = n;
    }
    return (int)n;
}
