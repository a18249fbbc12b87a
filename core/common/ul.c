#include "ul.h"

#include <string.h>

int64_t ul_frame(const uint8_t *p, size_t n, uint32_t max_body, uint8_t *type, uint32_t *body_len)
{
    if (n < UL_HDR_LEN)
        return 0;
    struct rd r = rd_make(p, n);
    uint8_t t, rsv;
    uint32_t len;
    TRY(rd_u8(&r, &t));
    TRY(rd_u8(&r, &rsv));
    TRY(rd_u32be(&r, &len));
    *type = t;
    *body_len = len;
    if (len > max_body)
        return ERR_LIMIT;
    if ((uint64_t)len > (uint64_t)(n - UL_HDR_LEN))
        return 0;
    return (int64_t)len + UL_HDR_LEN;
}

int ul_ae_normalize(const uint8_t *raw, size_t raw_len, char out[UL_AE_LEN + 1])
{
    out[0] = '\0';
    if (raw_len > UL_AE_LEN)
        return ERR_MALFORMED;
    size_t b = 0, e = raw_len;
    while (b < e && raw[b] == ' ')
        b++;
    while (e > b && (raw[e - 1] == ' ' || raw[e - 1] == '\0'))
        e--;
    if (b == e)
        return ERR_MALFORMED;
    for (size_t i = b; i < e; i++) {
        /* PS3.5 6.2: default repertoire, no control characters, no backslash */
        if (raw[i] < 0x20 || raw[i] > 0x7e || raw[i] == '\\')
            return ERR_MALFORMED;
    }
    memcpy(out, raw + b, e - b);
    out[e - b] = '\0';
    return 0;
}

struct slice ul_uid_trim(struct slice s)
{
    while (s.len > 0 && (s.p[s.len - 1] == '\0' || s.p[s.len - 1] == ' '))
        s.len--;
    return s;
}

/* A UID slice as it may stand in an item: 1..64 characters after padding is removed. */
/* PS3.8 9.3.2: every item and sub-item is type, reserved byte, 16-bit length, value. The next
 * one of r: its type and length, and its value as *val (which cannot read past the item). */
static int next_item(struct rd *r, uint8_t *type, uint16_t *len, struct rd *val)
{
    size_t at = r->pos;
    int rc = rd_u8(r, type);
    if (rc == 0)
        rc = rd_skip(r, 1);
    if (rc == 0)
        rc = rd_u16be(r, len);
    if (rc == 0)
        rc = rd_sub(r, *len, val);
    if (rc < 0)
        r->pos = at; /* a reader leaves the cursor where it was on failure */
    return rc;
}

static int check_uid_slice(struct slice s)
{
    struct slice t = ul_uid_trim(s);
    if (t.len == 0 || t.len > UL_UID_MAX)
        return ERR_MALFORMED;
    return 0;
}

static int parse_pctx_rq(struct rd *item, struct ul_assoc_rq *rq, uint8_t *reason)
{
    if (rq->n_pctx >= UL_MAX_PCTX) {
        *reason = UL_ABORT_INVALID_PARAM;
        return ERR_LIMIT;
    }
    struct ul_pctx_rq *pc = &rq->pctx[rq->n_pctx];
    memset(pc, 0, sizeof *pc);
    TRY(rd_u8(item, &pc->id));
    TRY(rd_skip(item, 3));
    if (pc->id % 2 == 0) {
        *reason = UL_ABORT_INVALID_PARAM; /* PS3.8 9.3.2.2: odd integers 1..255 */
        return ERR_MALFORMED;
    }
    for (uint16_t i = 0; i < rq->n_pctx; i++) {
        if (rq->pctx[i].id == pc->id) {
            *reason = UL_ABORT_INVALID_PARAM;
            return ERR_MALFORMED;
        }
    }
    bool have_abstract = false;
    while (rd_left(item) > 0) {
        uint8_t type;
        uint16_t len;
        struct rd v;
        TRY(next_item(item, &type, &len, &v));
        struct slice val = {v.p, v.len};
        if (type == UL_ITEM_ABSTRACT) {
            if (have_abstract) {
                *reason = UL_ABORT_UNEXPECTED_PARAM;
                return ERR_MALFORMED;
            }
            if (check_uid_slice(val) < 0) {
                *reason = UL_ABORT_INVALID_PARAM;
                return ERR_MALFORMED;
            }
            pc->abstract = ul_uid_trim(val);
            have_abstract = true;
        } else if (type == UL_ITEM_TS) {
            if (check_uid_slice(val) < 0) {
                *reason = UL_ABORT_INVALID_PARAM;
                return ERR_MALFORMED;
            }
            if (pc->n_ts < UL_MAX_TS)
                pc->ts[pc->n_ts++] = ul_uid_trim(val);
            else
                rq->glitches++;
        } else {
            *reason = UL_ABORT_UNRECOGNIZED_PARAM;
            return ERR_MALFORMED;
        }
    }
    if (!have_abstract || pc->n_ts == 0) {
        *reason = UL_ABORT_INVALID_PARAM;
        return ERR_MALFORMED;
    }
    rq->n_pctx++;
    return 0;
}

static int parse_user_info(struct rd *item, struct ul_user_info *ui, unsigned *glitches,
                           uint8_t *reason)
{
    ui->present = true;
    while (rd_left(item) > 0) {
        uint8_t type;
        uint16_t len;
        struct rd sub;
        TRY(next_item(item, &type, &len, &sub));
        *reason = UL_ABORT_INVALID_PARAM;
        switch (type) {
        case UL_SUB_MAX_LEN:
            if (len != 4)
                return ERR_MALFORMED;
            TRY(rd_u32be(&sub, &ui->max_len));
            ui->has_max_len = true;
            break;
        case UL_SUB_IMPL_UID:
            if (check_uid_slice((struct slice){sub.p, sub.len}) < 0)
                return ERR_MALFORMED;
            ui->impl_uid = ul_uid_trim((struct slice){sub.p, sub.len});
            break;
        case UL_SUB_IMPL_VERSION:
            if (len < 1 || len > 16)
                return ERR_MALFORMED;
            ui->impl_version = (struct slice){sub.p, sub.len};
            break;
        case UL_SUB_ASYNC:
            if (len != 4)
                return ERR_MALFORMED;
            TRY(rd_u16be(&sub, &ui->ops_invoked));
            TRY(rd_u16be(&sub, &ui->ops_performed));
            ui->has_async = true;
            break;
        case UL_SUB_ROLE: {
            uint16_t ulen;
            struct ul_role role;
            TRY(rd_u16be(&sub, &ulen));
            TRY(rd_slice(&sub, ulen, &role.sop));
            TRY(rd_u8(&sub, &role.scu));
            TRY(rd_u8(&sub, &role.scp));
            if (rd_left(&sub) != 0 || check_uid_slice(role.sop) < 0 || role.scu > 1 ||
                role.scp > 1)
                return ERR_MALFORMED;
            role.sop = ul_uid_trim(role.sop);
            if (ui->n_roles < UL_MAX_ROLES)
                ui->roles[ui->n_roles++] = role;
            else
                (*glitches)++;
            break;
        }
        case UL_SUB_EXT_NEG: {
            uint16_t ulen;
            struct slice sop;
            TRY(rd_u16be(&sub, &ulen));
            TRY(rd_slice(&sub, ulen, &sop));
            if (check_uid_slice(sop) < 0)
                return ERR_MALFORMED;
            if (ui->n_ext_neg < UL_MAX_EXT_NEG)
                ui->ext_neg_sop[ui->n_ext_neg++] = ul_uid_trim(sop);
            else
                (*glitches)++;
            break; /* the service-class application information is opaque to a Store SCP */
        }
        case UL_SUB_COMMON_EXT_NEG: {
            uint16_t l1, l2, l3;
            TRY(rd_u16be(&sub, &l1));
            TRY(rd_skip(&sub, l1));
            TRY(rd_u16be(&sub, &l2));
            TRY(rd_skip(&sub, l2));
            TRY(rd_u16be(&sub, &l3));
            TRY(rd_skip(&sub, l3));
            if (rd_left(&sub) != 0)
                return ERR_MALFORMED;
            ui->n_common_ext_neg++;
            break;
        }
        case UL_SUB_USER_ID_RQ: {
            uint8_t t, rsp;
            uint16_t l1, l2;
            TRY(rd_u8(&sub, &t));
            TRY(rd_u8(&sub, &rsp));
            TRY(rd_u16be(&sub, &l1));
            TRY(rd_skip(&sub, l1)); /* credentials are recorded by type only, never kept */
            TRY(rd_u16be(&sub, &l2));
            TRY(rd_skip(&sub, l2));
            if (rd_left(&sub) != 0 || t < 1 || t > 5)
                return ERR_MALFORMED;
            ui->has_user_identity = true;
            ui->user_identity_type = t;
            ui->user_identity_rsp_requested = rsp == 1;
            break;
        }
        default:
            (*glitches)++; /* unknown sub-items are ignored (PS3.7 D.3.3) */
            break;
        }
    }
    return 0;
}

int ul_parse_assoc_rq(struct rd *body, struct ul_assoc_rq *rq, uint8_t *abort_reason)
{
    uint8_t dummy;
    uint8_t *reason = abort_reason ? abort_reason : &dummy;
    uint8_t called[UL_AE_LEN], calling[UL_AE_LEN];
    memset(rq, 0, offsetof(struct ul_assoc_rq, pctx));
    rq->n_pctx = 0;
    memset(&rq->ui, 0, sizeof rq->ui);
    rq->glitches = 0;
    *reason = UL_ABORT_INVALID_PARAM;
    TRY(rd_u16be(body, &rq->protocol_version));
    TRY(rd_skip(body, 2));
    TRY(rd_copy(body, called, sizeof called));
    TRY(rd_copy(body, calling, sizeof calling));
    TRY(rd_skip(body, 32));
    rq->called_bad = ul_ae_normalize(called, sizeof called, rq->called) < 0;
    rq->calling_bad = ul_ae_normalize(calling, sizeof calling, rq->calling) < 0;
    bool have_ctx = false, have_ui = false;
    while (rd_left(body) > 0) {
        uint8_t type;
        uint16_t len;
        struct rd item;
        TRY(next_item(body, &type, &len, &item));
        switch (type) {
        case UL_ITEM_APP_CONTEXT:
            if (have_ctx || check_uid_slice((struct slice){item.p, item.len}) < 0) {
                *reason = UL_ABORT_INVALID_PARAM;
                return ERR_MALFORMED;
            }
            rq->app_context = ul_uid_trim((struct slice){item.p, item.len});
            have_ctx = true;
            break;
        case UL_ITEM_PCTX_RQ:
            TRY(parse_pctx_rq(&item, rq, reason));
            break;
        case UL_ITEM_USER_INFO:
            if (have_ui) {
                *reason = UL_ABORT_UNEXPECTED_PARAM;
                return ERR_MALFORMED;
            }
            TRY(parse_user_info(&item, &rq->ui, &rq->glitches, reason));
            have_ui = true;
            break;
        default:
            *reason = UL_ABORT_UNRECOGNIZED_PARAM;
            return ERR_MALFORMED;
        }
    }
    if (!have_ctx || rq->n_pctx == 0) {
        *reason = UL_ABORT_INVALID_PARAM;
        return ERR_MALFORMED;
    }
    if (!have_ui || !rq->ui.has_max_len)
        rq->glitches++; /* PS3.7 D.3.3.1 makes it mandatory; treat as "no limit" */
    return 0;
}

int ul_parse_assoc_ac(struct rd *body, struct ul_assoc_ac *ac)
{
    uint8_t called[UL_AE_LEN], calling[UL_AE_LEN];
    memset(ac, 0, sizeof *ac);
    TRY(rd_u16be(body, &ac->protocol_version));
    TRY(rd_skip(body, 2));
    TRY(rd_copy(body, called, sizeof called));
    TRY(rd_copy(body, calling, sizeof calling));
    TRY(rd_skip(body, 32));
    /* PS3.8 9.3.3: echoed but "shall not be tested"; keep them for display only */
    if (ul_ae_normalize(called, sizeof called, ac->called) < 0)
        ac->called[0] = '\0';
    if (ul_ae_normalize(calling, sizeof calling, ac->calling) < 0)
        ac->calling[0] = '\0';
    unsigned glitches = 0;
    uint8_t reason;
    while (rd_left(body) > 0) {
        uint8_t type;
        uint16_t len;
        struct rd item;
        TRY(next_item(body, &type, &len, &item));
        if (type == UL_ITEM_APP_CONTEXT) {
            ac->app_context = ul_uid_trim((struct slice){item.p, item.len});
        } else if (type == UL_ITEM_PCTX_AC) {
            if (ac->n_pctx >= UL_MAX_PCTX)
                return ERR_LIMIT;
            struct ul_pctx_ac *pc = &ac->pctx[ac->n_pctx];
            TRY(rd_u8(&item, &pc->id));
            TRY(rd_skip(&item, 1));
            TRY(rd_u8(&item, &pc->result));
            TRY(rd_skip(&item, 1));
            while (rd_left(&item) > 0) {
                uint8_t st;
                uint16_t sl;
                struct slice v;
                TRY(rd_u8(&item, &st));
                TRY(rd_skip(&item, 1));
                TRY(rd_u16be(&item, &sl));
                TRY(rd_slice(&item, sl, &v));
                if (st != UL_ITEM_TS)
                    return ERR_MALFORMED;
                pc->ts = ul_uid_trim(v);
            }
            ac->n_pctx++;
        } else if (type == UL_ITEM_USER_INFO) {
            TRY(parse_user_info(&item, &ac->ui, &glitches, &reason));
        } else {
            return ERR_MALFORMED;
        }
    }
    return 0;
}

/* Items: type, reserved, 16-bit length patched when the item ends. */
static size_t item_begin(struct wbuf *b, uint8_t type)
{
    wbuf_u8(b, type);
    wbuf_u8(b, 0);
    size_t at = b->len;
    wbuf_u16be(b, 0);
    return at;
}

static void item_end(struct wbuf *b, size_t at)
{
    size_t len = b->len - at - 2;
    if (len > 0xffff) {
        b->err = b->err ? b->err : ERR_LIMIT;
        return;
    }
    wbuf_set_u16be(b, at, (uint16_t)len);
}

static void put_item(struct wbuf *b, uint8_t type, const void *p, size_t n)
{
    size_t at = item_begin(b, type);
    wbuf_put(b, p, n);
    item_end(b, at);
}

static void put_ae(struct wbuf *b, const char *ae)
{
    size_t n = strnlen(ae, UL_AE_LEN);
    wbuf_put(b, ae, n);
    wbuf_fill(b, ' ', UL_AE_LEN - n);
}

static size_t pdu_begin(struct wbuf *b, uint8_t type)
{
    wbuf_u8(b, type);
    wbuf_u8(b, 0);
    size_t at = b->len;
    wbuf_u32be(b, 0);
    return at;
}

static int pdu_end(struct wbuf *b, size_t at)
{
    if (b->err)
        return b->err;
    wbuf_set_u32be(b, at, (uint32_t)(b->len - at - 4));
    return 0;
}

static void put_user_info(struct wbuf *b, const struct ul_user_info *ui)
{
    size_t at = item_begin(b, UL_ITEM_USER_INFO);
    size_t m = item_begin(b, UL_SUB_MAX_LEN);
    wbuf_u32be(b, ui->max_len);
    item_end(b, m);
    if (ui->impl_uid.len)
        put_item(b, UL_SUB_IMPL_UID, ui->impl_uid.p, ui->impl_uid.len);
    if (ui->has_async) {
        size_t a = item_begin(b, UL_SUB_ASYNC);
        wbuf_u16be(b, ui->ops_invoked);
        wbuf_u16be(b, ui->ops_performed);
        item_end(b, a);
    }
    for (uint16_t i = 0; i < ui->n_roles; i++) {
        size_t r = item_begin(b, UL_SUB_ROLE);
        wbuf_u16be(b, (uint16_t)ui->roles[i].sop.len);
        wbuf_put(b, ui->roles[i].sop.p, ui->roles[i].sop.len);
        wbuf_u8(b, ui->roles[i].scu);
        wbuf_u8(b, ui->roles[i].scp);
        item_end(b, r);
    }
    if (ui->impl_version.len)
        put_item(b, UL_SUB_IMPL_VERSION, ui->impl_version.p, ui->impl_version.len);
    item_end(b, at);
}

static void put_assoc_head(struct wbuf *b, uint16_t version, const char *called,
                           const char *calling, struct slice app)
{
    wbuf_u16be(b, version);
    wbuf_u16be(b, 0);
    put_ae(b, called);
    put_ae(b, calling);
    wbuf_fill(b, 0, 32);
    if (app.len)
        put_item(b, UL_ITEM_APP_CONTEXT, app.p, app.len);
    else
        put_item(b, UL_ITEM_APP_CONTEXT, UL_APP_CONTEXT, sizeof UL_APP_CONTEXT - 1);
}

int ul_encode_assoc_rq(struct wbuf *b, const struct ul_assoc_rq *rq)
{
    size_t at = pdu_begin(b, UL_ASSOC_RQ);
    put_assoc_head(b, rq->protocol_version, rq->called, rq->calling, rq->app_context);
    for (uint16_t i = 0; i < rq->n_pctx; i++) {
        const struct ul_pctx_rq *pc = &rq->pctx[i];
        size_t p = item_begin(b, UL_ITEM_PCTX_RQ);
        wbuf_u8(b, pc->id);
        wbuf_fill(b, 0, 3);
        put_item(b, UL_ITEM_ABSTRACT, pc->abstract.p, pc->abstract.len);
        for (uint8_t t = 0; t < pc->n_ts; t++)
            put_item(b, UL_ITEM_TS, pc->ts[t].p, pc->ts[t].len);
        item_end(b, p);
    }
    put_user_info(b, &rq->ui);
    return pdu_end(b, at);
}

int ul_encode_assoc_ac(struct wbuf *b, const struct ul_assoc_ac *ac)
{
    size_t at = pdu_begin(b, UL_ASSOC_AC);
    put_assoc_head(b, ac->protocol_version, ac->called, ac->calling, ac->app_context);
    for (uint16_t i = 0; i < ac->n_pctx; i++) {
        const struct ul_pctx_ac *pc = &ac->pctx[i];
        size_t p = item_begin(b, UL_ITEM_PCTX_AC);
        wbuf_u8(b, pc->id);
        wbuf_u8(b, 0);
        wbuf_u8(b, pc->result);
        wbuf_u8(b, 0);
        /* PS3.8 9.3.3.2: the TS sub-item is present but not significant when rejected */
        put_item(b, UL_ITEM_TS, pc->ts.p, pc->ts.len);
        item_end(b, p);
    }
    put_user_info(b, &ac->ui);
    return pdu_end(b, at);
}

static int encode_short(struct wbuf *b, uint8_t type, uint8_t b1, uint8_t b2, uint8_t b3)
{
    size_t at = pdu_begin(b, type);
    wbuf_u8(b, 0);
    wbuf_u8(b, b1);
    wbuf_u8(b, b2);
    wbuf_u8(b, b3);
    return pdu_end(b, at);
}

int ul_encode_assoc_rj(struct wbuf *b, uint8_t result, uint8_t source, uint8_t reason)
{
    return encode_short(b, UL_ASSOC_RJ, result, source, reason);
}

int ul_encode_release_rq(struct wbuf *b)
{
    return encode_short(b, UL_RELEASE_RQ, 0, 0, 0);
}

int ul_encode_release_rp(struct wbuf *b)
{
    return encode_short(b, UL_RELEASE_RP, 0, 0, 0);
}

int ul_encode_abort(struct wbuf *b, uint8_t source, uint8_t reason)
{
    return encode_short(b, UL_ABORT, 0, source, reason);
}

int ul_parse_assoc_rj(struct rd *body, struct ul_rj *rj)
{
    if (rd_left(body) != 4)
        return rd_left(body) < 4 ? ERR_TRUNCATED : ERR_MALFORMED;
    TRY(rd_skip(body, 1));
    TRY(rd_u8(body, &rj->result));
    TRY(rd_u8(body, &rj->source));
    TRY(rd_u8(body, &rj->reason));
    return 0;
}

int ul_parse_abort(struct rd *body, uint8_t *source, uint8_t *reason)
{
    if (rd_left(body) != 4)
        return rd_left(body) < 4 ? ERR_TRUNCATED : ERR_MALFORMED;
    TRY(rd_skip(body, 2));
    TRY(rd_u8(body, source));
    TRY(rd_u8(body, reason));
    return 0;
}

int ul_parse_release(struct rd *body)
{
    if (rd_left(body) != 4)
        return rd_left(body) < 4 ? ERR_TRUNCATED : ERR_MALFORMED;
    return rd_skip(body, 4);
}

int ul_next_pdv(struct rd *body, struct ul_pdv *pdv)
{
    if (rd_left(body) == 0)
        return 0;
    struct rd save = *body;
    uint32_t len;
    uint8_t id, mch;
    int rc = rd_u32be(body, &len);
    if (rc == 0 && (len < 2 || len > rd_left(body)))
        rc = ERR_MALFORMED;
    if (rc == 0)
        rc = rd_u8(body, &id);
    if (rc == 0)
        rc = rd_u8(body, &mch);
    if (rc == 0 && (mch & 0xfc))
        rc = ERR_MALFORMED; /* PS3.8 E.2: bits 2-7 shall be 0 */
    if (rc == 0)
        rc = rd_slice(body, len - 2, &pdv->data);
    if (rc < 0) {
        *body = save;
        return rc == ERR_TRUNCATED ? ERR_MALFORMED : rc;
    }
    pdv->pctx_id = id;
    pdv->is_command = mch & 1;
    pdv->is_last = (mch >> 1) & 1;
    return 1;
}

int ul_encode_pdata(struct wbuf *b, uint8_t pctx_id, bool is_command, bool is_last,
                    const uint8_t *data, size_t n)
{
    if (n > UINT32_MAX - 12)
        return ERR_LIMIT;
    size_t at = pdu_begin(b, UL_P_DATA_TF);
    wbuf_u32be(b, (uint32_t)(n + 2));
    wbuf_u8(b, pctx_id);
    wbuf_u8(b, (uint8_t)((is_command ? 1 : 0) | (is_last ? 2 : 0)));
    wbuf_put(b, data, n);
    return pdu_end(b, at);
}
