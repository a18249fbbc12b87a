#include "dimse.h"

#include <stdio.h>
#include <string.h>

static int take_us(struct rd *v, uint16_t *out)
{
    if (rd_left(v) != 2)
        return ERR_MALFORMED;
    return rd_u16le(v, out);
}

static int take_text(struct rd *v, char *out, size_t cap)
{
    size_t n = rd_left(v);
    while (n > 0 && (v->p[n - 1] == '\0' || v->p[n - 1] == ' '))
        n--;
    size_t b = 0;
    while (b < n && v->p[b] == ' ')
        b++;
    if (n - b >= cap)
        return ERR_MALFORMED;
    for (size_t i = b; i < n; i++) {
        if (v->p[i] < 0x20 || v->p[i] > 0x7e)
            return ERR_MALFORMED;
    }
    memcpy(out, v->p + b, n - b);
    out[n - b] = '\0';
    return 0;
}

#define US(field)                                                                                  \
    do {                                                                                           \
        TRY(take_us(&v, &cmd->field));                                                             \
        cmd->has_##field = true;                                                                   \
    } while (0)
#define TEXT(field) TRY(take_text(&v, cmd->field, sizeof cmd->field))

static int take_element(struct dimse_cmd *cmd, uint16_t elem, struct rd v)
{
    switch (elem) {
    case 0x0002: TEXT(affected_sop_class); break;
    case 0x0003: TEXT(requested_sop_class); break;
    case 0x0100: US(command_field); break;
    case 0x0110: US(message_id); break;
    case 0x0120: US(message_id_rsp); break;
    case 0x0600: TEXT(move_destination); break;
    case 0x0700: US(priority); break;
    case 0x0800: US(data_set_type); break;
    case 0x0900: US(status); break;
    case 0x0901: /* AT, 1-n: the first value is kept */
        if (rd_left(&v) < 4 || rd_left(&v) % 4)
            return ERR_MALFORMED;
        {
            uint16_t g, e;
            TRY(rd_u16le(&v, &g));
            TRY(rd_u16le(&v, &e));
            cmd->offending_element = (uint32_t)g << 16 | e;
            cmd->has_offending_element = true;
        }
        break;
    case 0x0902:
        /* LO, up to 64 characters; a longer or odd comment from a peer is not worth a refusal */
        if (take_text(&v, cmd->error_comment, sizeof cmd->error_comment) < 0)
            cmd->error_comment[0] = '\0';
        break;
    case 0x1000: TEXT(affected_sop_instance); break;
    case 0x1001: TEXT(requested_sop_instance); break;
    case 0x1002: US(event_type_id); break;
    case 0x1008: US(action_type_id); break;
    case 0x1020: US(remaining); break;
    case 0x1021: US(completed); break;
    case 0x1022: US(failed); break;
    case 0x1023: US(warning); break;
    case 0x1030: TEXT(move_originator_ae); break;
    case 0x1031: US(move_originator_id); break;
    default: break; /* other command elements are not needed here */
    }
    return 0;
}
#undef US
#undef TEXT

int dimse_parse_cmd(struct rd *r, struct dimse_cmd *cmd)
{
    memset(cmd, 0, sizeof *cmd);
    bool first = true;
    size_t group_end = 0;
    bool have_group_len = false;
    while (rd_left(r) > 0) {
        uint16_t group, elem;
        uint32_t len;
        struct rd v;
        TRY(rd_u16le(r, &group));
        TRY(rd_u16le(r, &elem));
        TRY(rd_u32le(r, &len));
        if (group != 0x0000 || len == 0xFFFFFFFFu)
            return ERR_MALFORMED;
        TRY(rd_sub(r, len, &v));
        if (first && elem == 0x0000) {
            uint32_t glen;
            if (len != 4)
                return ERR_MALFORMED;
            TRY(rd_u32le(&v, &glen));
            if (glen != rd_left(r))
                return ERR_MALFORMED;
            group_end = r->pos + glen;
            have_group_len = true;
        } else {
            TRY(take_element(cmd, elem, v));
        }
        first = false;
    }
    if (have_group_len && r->pos != group_end)
        return ERR_MALFORMED;
    return 0;
}

static void put_elem_hdr(struct wbuf *b, uint16_t elem, uint32_t len)
{
    wbuf_u16le(b, 0x0000);
    wbuf_u16le(b, elem);
    wbuf_u32le(b, len);
}

static void put_us(struct wbuf *b, uint16_t elem, uint16_t v)
{
    put_elem_hdr(b, elem, 2);
    wbuf_u16le(b, v);
}

/* UI values are padded with NUL to even length, other text with a space (PS3.5 6.2). */
static void put_text(struct wbuf *b, uint16_t elem, const char *s, char pad)
{
    size_t n = strnlen(s, 64);
    if (n == 0)
        return;
    put_elem_hdr(b, elem, (uint32_t)(n + (n & 1)));
    wbuf_put(b, s, n);
    if (n & 1)
        wbuf_u8(b, (uint8_t)pad);
}

int dimse_encode_cmd(struct wbuf *b, const struct dimse_cmd *c)
{
    put_elem_hdr(b, 0x0000, 4);
    size_t at = b->len;
    wbuf_u32le(b, 0);
    put_text(b, 0x0002, c->affected_sop_class, '\0');
    put_text(b, 0x0003, c->requested_sop_class, '\0');
    if (c->has_command_field)
        put_us(b, 0x0100, c->command_field);
    if (c->has_message_id)
        put_us(b, 0x0110, c->message_id);
    if (c->has_message_id_rsp)
        put_us(b, 0x0120, c->message_id_rsp);
    put_text(b, 0x0600, c->move_destination, ' ');
    if (c->has_priority)
        put_us(b, 0x0700, c->priority);
    if (c->has_data_set_type)
        put_us(b, 0x0800, c->data_set_type);
    if (c->has_status)
        put_us(b, 0x0900, c->status);
    if (c->has_offending_element) {
        put_elem_hdr(b, 0x0901, 4);
        wbuf_u16le(b, (uint16_t)(c->offending_element >> 16));
        wbuf_u16le(b, (uint16_t)(c->offending_element & 0xFFFFu));
    }
    put_text(b, 0x0902, c->error_comment, ' ');
    put_text(b, 0x1000, c->affected_sop_instance, '\0');
    put_text(b, 0x1001, c->requested_sop_instance, '\0');
    if (c->has_event_type_id)
        put_us(b, 0x1002, c->event_type_id);
    if (c->has_action_type_id)
        put_us(b, 0x1008, c->action_type_id);
    if (c->has_remaining)
        put_us(b, 0x1020, c->remaining);
    if (c->has_completed)
        put_us(b, 0x1021, c->completed);
    if (c->has_failed)
        put_us(b, 0x1022, c->failed);
    if (c->has_warning)
        put_us(b, 0x1023, c->warning);
    put_text(b, 0x1030, c->move_originator_ae, ' ');
    if (c->has_move_originator_id)
        put_us(b, 0x1031, c->move_originator_id);
    if (b->err)
        return b->err;
    wbuf_set_u32le(b, at, (uint32_t)(b->len - at - 4));
    return 0;
}

void dimse_set_comment(struct dimse_cmd *rsp, const char *comment)
{
    size_t n = 0;
    for (; comment && comment[n] && n < sizeof rsp->error_comment - 1; n++) {
        char ch = comment[n];
        rsp->error_comment[n] = (ch < 0x20 || ch > 0x7e || ch == '\\') ? ' ' : ch;
    }
    rsp->error_comment[n] = '\0';
}

int dimse_encode_rsp(struct wbuf *b, uint16_t rq_field, uint16_t msg_id, const char *sop_class,
                     const char *sop_instance, uint16_t status, const char *comment)
{
    struct dimse_cmd c;
    memset(&c, 0, sizeof c);
    snprintf(c.affected_sop_class, sizeof c.affected_sop_class, "%s", sop_class ? sop_class : "");
    snprintf(c.affected_sop_instance, sizeof c.affected_sop_instance, "%s",
             sop_instance ? sop_instance : "");
    c.command_field = (uint16_t)(rq_field | 0x8000);
    c.has_command_field = true;
    c.message_id_rsp = msg_id;
    c.has_message_id_rsp = true;
    c.data_set_type = DIMSE_NO_DATASET;
    c.has_data_set_type = true;
    c.status = status;
    c.has_status = true;
    if (comment)
        dimse_set_comment(&c, comment);
    return dimse_encode_cmd(b, &c);
}

int dimse_encode_rq(struct wbuf *b, uint16_t field, uint16_t msg_id, const char *sop_class,
                    const char *sop_instance, bool has_dataset)
{
    struct dimse_cmd c;
    memset(&c, 0, sizeof c);
    snprintf(c.affected_sop_class, sizeof c.affected_sop_class, "%s", sop_class ? sop_class : "");
    snprintf(c.affected_sop_instance, sizeof c.affected_sop_instance, "%s",
             sop_instance ? sop_instance : "");
    c.command_field = field;
    c.has_command_field = true;
    c.message_id = msg_id;
    c.has_message_id = true;
    c.has_priority = field == DIMSE_C_STORE_RQ;
    c.data_set_type = has_dataset ? 0x0000 : DIMSE_NO_DATASET;
    c.has_data_set_type = true;
    return dimse_encode_cmd(b, &c);
}

void dimse_rsp_init(struct dimse_cmd *rsp, const struct dimse_cmd *rq, uint16_t status)
{
    memset(rsp, 0, sizeof *rsp);
    rsp->command_field = (uint16_t)(rq->command_field | 0x8000);
    rsp->has_command_field = true;
    rsp->message_id_rsp = rq->message_id;
    rsp->has_message_id_rsp = true;
    rsp->data_set_type = DIMSE_NO_DATASET;
    rsp->has_data_set_type = true;
    rsp->status = status;
    rsp->has_status = true;
    /* PS3.7 9.3 / 10.3: the affected SOP class (and instance where the request had one) come
     * back in the response; N-ACTION/N-EVENT-REPORT answers name the requested instance as the
     * affected one */
    const char *cls = rq->affected_sop_class[0] ? rq->affected_sop_class : rq->requested_sop_class;
    const char *inst =
        rq->affected_sop_instance[0] ? rq->affected_sop_instance : rq->requested_sop_instance;
    memcpy(rsp->affected_sop_class, cls, sizeof rsp->affected_sop_class);
    memcpy(rsp->affected_sop_instance, inst, sizeof rsp->affected_sop_instance);
}
