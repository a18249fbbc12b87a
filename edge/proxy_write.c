#include "proxy_write.h"

#include "common/log.h"
#include "proxy_audit.h"
#include "proxy_conn.h"
#include "proxy_splice.h"

/* A queued write to the modality failed. */
static void down_failed(struct stream *s, int status)
{
    struct edge_conn *c = s->data;
    (void)status;
    if (c->st != ST_FINISH)
        proxy_conn_finish(c, "write_failed");
}

/* A queued write upstream failed: mid-association, the modality is told with an A-ABORT. */
static void up_failed(struct stream *s, int status)
{
    struct edge_conn *c = s->data;
    if (c->st == ST_SPLICE)
        proxy_splice_upstream_lost(c, status);
    else if (c->st != ST_FINISH)
        proxy_conn_finish(c, "write_failed");
}

static void down_drained(struct stream *s)
{
    proxy_splice_drained(s->data, false);
}

static void up_drained(struct stream *s)
{
    proxy_splice_drained(s->data, true);
}

void proxy_write_init_down(struct edge_conn *c)
{
    stream_init(&c->s_down, (uv_stream_t *)&c->down, down_failed, down_drained, c);
    stream_set_marks(&c->s_down, c->e->cfg->high_water, c->e->cfg->low_water);
}

void proxy_write_init_up(struct edge_conn *c)
{
    stream_init(&c->s_up, (uv_stream_t *)&c->up, up_failed, up_drained, c);
    stream_set_marks(&c->s_up, c->e->cfg->high_water, c->e->cfg->low_water);
}

int proxy_write_down_out(void *arg, uint8_t *buf, size_t n)
{
    struct edge_conn *c = arg;
    return stream_send_owned(&c->s_down, buf, n);
}

int proxy_write_up_out(void *arg, uint8_t *buf, size_t n)
{
    struct edge_conn *c = arg;
    return stream_send_owned(&c->s_up, buf, n);
}

void proxy_write_abort(struct edge_conn *c, bool to_down)
{
    struct pdu_follow *f = to_down ? &c->f_down : &c->f_up;
    if (!c->followers || !pdu_follow_at_boundary(f)) {
        /* a PDU of that direction is half relayed: an A-ABORT now would be read as its rest,
         * so the peer learns of the loss from the transport closing instead */
        struct logb lb;
        if (log_begin(&lb, LOG_INFO, "abort_not_injected")) {
            proxy_audit_conn(&lb, c);
            log_str(&lb, "to", to_down ? "client" : "upstream");
            log_str(&lb, "why", "mid_pdu");
            log_end(&lb);
        }
        return;
    }
    struct wbuf b;
    wbuf_init(&b, 16);
    int rc = ul_encode_abort(&b, UL_ABORT_SRC_PROVIDER, UL_ABORT_NOT_SPECIFIED);
    if (rc == 0)
        rc = stream_send(to_down ? &c->s_down : &c->s_up, b.p, b.len);
    if (rc < 0) /* we close next anyway: the peer then sees the transport go */
        log_msg(LOG_DEBUG, "abort_not_sent", err_str(rc));
    wbuf_cleanup(&b);
}

/* Audit the decision, send the PDU encoded in b to the modality, and finish with end. */
static void answer(struct edge_conn *c, const char *decision, const char *why,
                   const struct adm_decision *d, struct wbuf *b, const char *end)
{
    proxy_audit_decision(c, decision, why, d);
    if (d) /* refused by admission (not an upstream failure): a Security Alert */
        proxy_audit_refused(c, why);
    int rc = b->err ? b->err : stream_send(&c->s_down, b->p, b->len);
    if (rc < 0) /* we close after it anyway */
        log_msg(LOG_DEBUG, "answer_not_sent", err_str(rc));
    wbuf_cleanup(b);
    proxy_conn_finish(c, end);
}

void proxy_write_refuse(struct edge_conn *c, uint8_t result, uint8_t source, uint8_t reason,
                        const char *why, const struct adm_decision *d)
{
    struct wbuf b;
    wbuf_init(&b, 16);
    if (ul_encode_assoc_rj(&b, result, source, reason) < 0)
        b.err = ERR_NOMEM;
    answer(c, "reject", why, d, &b, "rejected");
}

void proxy_write_abort_down(struct edge_conn *c, uint8_t reason, const char *why,
                            const struct adm_decision *d)
{
    struct wbuf b;
    wbuf_init(&b, 16);
    if (ul_encode_abort(&b, UL_ABORT_SRC_PROVIDER, reason) < 0)
        b.err = ERR_NOMEM;
    answer(c, "abort", why, d, &b, "aborted");
}
