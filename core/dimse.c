#include "dimse.h"

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
        }
        first = false;
        switch (elem) {
        case 0x0002: TRY(take_text(&v, cmd->affected_sop_class, sizeof cmd->affected_sop_class));
            break;
        case 0x0100: TRY(take_us(&v, &cmd->command_field));
            cmd->has_command_field = true;
            break;
        case 0x0110: TRY(take_us(&v, &cmd->message_id));
            cmd->has_message_id = true;
            break;
        case 0x0700: TRY(take_us(&v, &cmd->priority));
            break;
        case 0x0800: TRY(take_us(&v, &cmd->data_set_type));
            cmd->has_data_set_type = true;
            break;
        case 0x1000:
            TRY(take_text(&v, cmd->affected_sop_instance, sizeof cmd->affected_sop_instance));
            break;
        case 0x1030:
            TRY(take_text(&v, cmd->move_originator_ae, sizeof cmd->move_originator_ae));
            break;
        case 0x1031: TRY(take_us(&v, &cmd->move_originator_id));
            break;
        default:
            break; /* other command elements are not needed by a Store SCP */
        }
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
    put_elem_hdr(b, elem, (uint32_t)(n + (n & 1)));
    wbuf_put(b, s, n);
    if (n & 1)
        wbuf_u8(b, (uint8_t)pad);
}

static size_t cmd_begin(struct wbuf *b)
{
    put_elem_hdr(b, 0x0000, 4);
    size_t at = b->len;
    wbuf_u32le(b, 0);
    return at;
}

static int cmd_end(struct wbuf *b, size_t at)
{
    if (b->err)
        return b->err;
    wbuf_set_u32le(b, at, (uint32_t)(b->len - at - 4));
    return 0;
}

int dimse_encode_rsp(struct wbuf *b, uint16_t rq_field, uint16_t msg_id, const char *sop_class,
                     const char *sop_instance, uint16_t status, const char *comment)
{
    size_t at = cmd_begin(b);
    if (sop_class && sop_class[0])
        put_text(b, 0x0002, sop_class, '\0');
    put_us(b, 0x0100, (uint16_t)(rq_field | 0x8000));
    put_us(b, 0x0120, msg_id);
    put_us(b, 0x0800, DIMSE_NO_DATASET);
    put_us(b, 0x0900, status);
    if (comment && comment[0])
        put_text(b, 0x0902, comment, ' ');
    if (sop_instance && sop_instance[0])
        put_text(b, 0x1000, sop_instance, '\0');
    return cmd_end(b, at);
}

int dimse_encode_rq(struct wbuf *b, uint16_t field, uint16_t msg_id, const char *sop_class,
                    const char *sop_instance, bool has_dataset)
{
    size_t at = cmd_begin(b);
    if (sop_class && sop_class[0])
        put_text(b, 0x0002, sop_class, '\0');
    put_us(b, 0x0100, field);
    put_us(b, 0x0110, msg_id);
    if (field == DIMSE_C_STORE_RQ)
        put_us(b, 0x0700, 0);
    put_us(b, 0x0800, has_dataset ? 0x0000 : DIMSE_NO_DATASET);
    if (sop_instance && sop_instance[0])
        put_text(b, 0x1000, sop_instance, '\0');
    return cmd_end(b, at);
}
