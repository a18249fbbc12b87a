#include "aws_commit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/creds.h"
#include "aws/ddb.h"
#include "aws/http.h"
#include "common/log.h"
#include "spool/commit_rec.h"

#define TXN_SK "TXN"
#define QUEUE_PK "COMMITQ"

struct aws_commit {
    struct http_client *http;
    struct creds_provider *creds;
    struct ddb_client *ddb;
    char table[256];
    uint64_t requests;
    unsigned inflight;
    bool closing;
    void (*closed)(void *arg);
    void *closed_arg;
};

enum op_kind { OP_LOCATE, OP_CREATE, OP_CLAIM, OP_SAVE, OP_REPORTED, OP_LIST };

struct op {
    struct aws_commit *c;
    enum op_kind kind;
    cJSON *then;           /* the second request of the pair, sent after the first */
    const char *then_name; /* its operation */
    bool then_decides;     /* its outcome is the answer (create), else the first's is */
    bool second;
    int err;
    union {
        backend_locate_cb locate;
        backend_txn_cb done;
        backend_txn_got_cb got;
        backend_txn_list_cb list;
    } cb;
    void *arg;
};

/* ---- requests ---------------------------------------------------------------------------------- */

static cJSON *key(const char *pk, const char *sk)
{
    cJSON *k = cJSON_CreateObject();
    if (k && (ddb_add_s(k, "pk", pk) < 0 || ddb_add_s(k, "sk", sk) < 0)) {
        cJSON_Delete(k);
        return NULL;
    }
    return k;
}

static void txn_pk(const char *uid, char out[96])
{
    snprintf(out, 96, "COMMIT#%s", uid);
}

/* A request {TableName, Key, UpdateExpression, ConditionExpression, names, values}. Takes
 * names and values. NULL when out of memory. */
static cJSON *update(const struct aws_commit *c, const char *pk, const char *sk,
                     const char *expr, const char *cond, cJSON *names, cJSON *values,
                     const char *ret)
{
    cJSON *r = cJSON_CreateObject(), *k = key(pk, sk);
    bool ok = r && k && names && values && cJSON_AddStringToObject(r, "TableName", c->table) &&
              cJSON_AddItemToObject(r, "Key", k) &&
              cJSON_AddStringToObject(r, "UpdateExpression", expr) &&
              (!cond || cJSON_AddStringToObject(r, "ConditionExpression", cond)) &&
              (!ret || cJSON_AddStringToObject(r, "ReturnValues", ret));
    if (ok) {
        k = NULL;
        ok = cJSON_AddItemToObject(r, "ExpressionAttributeNames", names);
        names = NULL;
        ok = ok && cJSON_AddItemToObject(r, "ExpressionAttributeValues", values);
        values = NULL;
    }
    cJSON_Delete(k);
    cJSON_Delete(names);
    cJSON_Delete(values);
    if (!ok) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

/* ExpressionAttributeNames for the attributes this file writes (several are reserved words). */
static cJSON *names(void)
{
    static const char *const n[][2] = {{"#st", "state"},       {"#ow", "owner"},
                                       {"#lu", "lease_until"}, {"#b", "body"},
                                       {"#ev", "event"},       {"#ttl", "ttl"},
                                       {"#dn", "done"},        {"#ca", "calling_ae"}};
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o && i < ARRAY_LEN(n); i++) {
        if (!cJSON_AddStringToObject(o, n[i][0], n[i][1])) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

/* Only the names an expression uses may be sent: drop the others. */
static cJSON *names_for(const char *expr, const char *cond)
{
    cJSON *o = names();
    if (!o)
        return NULL;
    cJSON *it = o->child;
    while (it) {
        cJSON *next = it->next;
        if (!strstr(expr, it->string) && !(cond && strstr(cond, it->string)))
            cJSON_Delete(cJSON_DetachItemViaPointer(o, it));
        it = next;
    }
    return o;
}

static int call(struct aws_commit *c, struct op *op, const char *name, cJSON *req);

/* ---- answers ----------------------------------------------------------------------------------- */

static void op_end(struct op *op)
{
    struct aws_commit *c = op->c;
    cJSON_Delete(op->then);
    free(op);
    c->inflight--;
    if (c->closing && c->inflight == 0 && c->closed) {
        void (*done)(void *) = c->closed;
        c->closed = NULL;
        done(c->closed_arg);
    }
}

static enum backend_copy_state copy_state(const char *s)
{
    if (!s)
        return COPY_UNKNOWN;
    if (strcmp(s, "RECEIVED") == 0)
        return COPY_SPOOL;
    if (strcmp(s, "STORED") == 0 || strcmp(s, "IMPORTING") == 0)
        return COPY_STORED;
    if (strcmp(s, "IMPORTED") == 0)
        return COPY_IMPORTED;
    if (strcmp(s, "FAILED") == 0)
        return COPY_FAILED;
    return COPY_UNKNOWN;
}

static void answer_locate(struct op *op, int err, const cJSON *out)
{
    struct backend_copy copies[BACKEND_COPIES_MAX];
    size_t n = 0;
    const cJSON *items = out ? cJSON_GetObjectItemCaseSensitive(out, "Items") : NULL, *it;
    if (!cJSON_IsArray(items))
        items = NULL;
    cJSON_ArrayForEach(it, items)
    {
        const char *sha = ddb_get_s(it, "sha256"), *cls = ddb_get_s(it, "sop_class_uid");
        enum backend_copy_state st = copy_state(ddb_get_s(it, "state"));
        if (!sha || strlen(sha) != 64 || st == COPY_UNKNOWN)
            continue; /* not an item of ours: never trusted */
        struct backend_copy cp;
        memset(&cp, 0, sizeof cp);
        snprintf(cp.sha256, sizeof cp.sha256, "%s", sha);
        snprintf(cp.sop_class, sizeof cp.sop_class, "%s", cls && strlen(cls) < 65 ? cls : "");
        cp.state = st;
        cp.received_ms = commit_iso_to_ms(ddb_get_s(it, "received_at"));
        const char *why = ddb_get_s(it, "error_type");
        snprintf(cp.failure, sizeof cp.failure, "%s", why ? why : "");
        size_t at = 0; /* newest first */
        while (at < n && copies[at].received_ms >= cp.received_ms)
            at++;
        if (at >= BACKEND_COPIES_MAX)
            continue;
        size_t keep = n < BACKEND_COPIES_MAX ? n : BACKEND_COPIES_MAX - 1;
        memmove(&copies[at + 1], &copies[at], (keep - at) * sizeof cp);
        copies[at] = cp;
        n = keep + 1;
    }
    op->cb.locate(op->arg, err, copies, err ? 0 : n);
}

static void answer_claim(struct op *op, int err, const cJSON *out)
{
    const cJSON *attrs = out ? cJSON_GetObjectItemCaseSensitive(out, "Attributes") : NULL;
    const char *body = attrs ? ddb_get_s(attrs, "body") : NULL;
    const char *state = attrs ? ddb_get_s(attrs, "state") : NULL;
    struct commit_txn t;
    memset(&t, 0, sizeof t);
    if (err == 0 && (!body || commit_rec_decode(body, strlen(body), &t) < 0))
        err = ERR_MALFORMED;
    if (err == 0 && state && strcmp(state, "decided") == 0)
        t.state = COMMIT_DECIDED;
    op->cb.got(op->arg, err, err ? NULL : &t);
    commit_txn_cleanup(&t);
}

static void answer_list(struct op *op, int err, const cJSON *out)
{
    char uids[100][65];
    size_t n = 0;
    const cJSON *items = out ? cJSON_GetObjectItemCaseSensitive(out, "Items") : NULL, *it;
    if (!cJSON_IsArray(items))
        items = NULL;
    cJSON_ArrayForEach(it, items)
    {
        const char *uid = ddb_get_s(it, "sk");
        if (n < 100 && uid && strlen(uid) < 65)
            snprintf(uids[n++], 65, "%s", uid);
    }
    op->cb.list(op->arg, err, (const char(*)[65])uids, err ? 0 : n);
}

static int map_err(const struct http_result *res)
{
    if (res->err == 0)
        return 0;
    if (res->err == HTTP_ERR_CONDITION)
        return ERR_WRONG_STATE;
    return ERR_IO;
}

static void on_ddb(void *arg, const struct http_result *res, const cJSON *out)
{
    struct op *op = arg;
    int e = map_err(res);
    if (op->then) { /* the first of a pair */
        cJSON *then = op->then;
        op->then = NULL;
        op->second = true;
        if (!op->then_decides)
            op->err = e;
        if (e == 0) {
            int rc = call(op->c, op, op->then_name, then); /* takes then */
            if (rc == 0)
                return;
            if (op->then_decides)
                op->err = rc;
        } else {
            cJSON_Delete(then);
            op->err = e;
        }
        out = NULL;
    } else if (!op->second || op->then_decides) {
        op->err = e;
    }
    if (op->kind == OP_CREATE && op->err == ERR_WRONG_STATE)
        op->err = -EEXIST; /* attribute_not_exists(pk): the Transaction UID is known */
    switch (op->kind) {
    case OP_LOCATE:
        answer_locate(op, op->err, out);
        break;
    case OP_CLAIM:
        answer_claim(op, op->err, out);
        break;
    case OP_LIST:
        answer_list(op, op->err, out);
        break;
    default:
        op->cb.done(op->arg, op->err);
        break;
    }
    op_end(op);
}

/* Send req (taken) for op. 0 or < 0 (op untouched). */
static int call(struct aws_commit *c, struct op *op, const char *name, cJSON *req)
{
    if (!req)
        return ERR_NOMEM;
    int rc = c->closing ? ERR_WRONG_STATE : ddb_call(c->ddb, name, req, on_ddb, op);
    cJSON_Delete(req);
    if (rc == 0)
        c->requests++;
    return rc;
}

static struct op *op_new(struct aws_commit *c, enum op_kind kind, void *arg)
{
    if (!c || c->closing)
        return NULL;
    struct op *op = calloc(1, sizeof *op);
    if (!op)
        return NULL;
    op->c = c;
    op->kind = kind;
    op->arg = arg;
    c->inflight++;
    return op;
}

static int start(struct op *op, const char *name, cJSON *req)
{
    int rc = call(op->c, op, name, req);
    if (rc < 0)
        op_end(op); /* frees op->then too */
    return rc;
}

/* ---- the ops ------------------------------------------------------------------------------------ */

static int locate(void *impl, const char *sop, backend_locate_cb cb, void *arg)
{
    struct aws_commit *c = aws_backend_commit(impl);
    struct op *op = op_new(c, OP_LOCATE, arg);
    if (!op)
        return c ? ERR_NOMEM : ERR_UNSUPPORTED;
    op->cb.locate = cb;
    char pk[96];
    snprintf(pk, sizeof pk, "INSTANCE#%s", sop);
    cJSON *r = cJSON_CreateObject();
    cJSON *v = r ? cJSON_AddObjectToObject(r, "ExpressionAttributeValues") : NULL;
    bool ok = v && ddb_add_s(v, ":pk", pk) == 0 &&
              cJSON_AddStringToObject(r, "TableName", c->table) &&
              cJSON_AddStringToObject(r, "KeyConditionExpression", "pk = :pk") &&
              cJSON_AddBoolToObject(r, "ConsistentRead", 1); /* the newest copy, surely */
    if (!ok) {
        cJSON_Delete(r);
        r = NULL;
    }
    return start(op, "Query", r);
}

/* The index item of uid: lease and owner (no condition: the TXN item decides). */
static cJSON *index_update(const struct aws_commit *c, const char *uid, const char *owner,
                           int64_t lease_until, bool done, int64_t ttl_s)
{
    cJSON *v = cJSON_CreateObject();
    if (!v || ddb_add_s(v, ":o", owner) < 0 || ddb_add_n(v, ":u", lease_until) < 0 ||
        (done && (ddb_add_bool(v, ":t", true) < 0 || ddb_add_n(v, ":x", ttl_s) < 0))) {
        cJSON_Delete(v);
        return NULL;
    }
    const char *expr = done ? "SET #ow = :o, #lu = :u, #dn = :t, #ttl = :x"
                            : "SET #ow = :o, #lu = :u";
    return update(c, QUEUE_PK, uid, expr, NULL, names_for(expr, NULL), v, NULL);
}

static int create(void *impl, const struct commit_txn *t, const char *owner, int64_t lease_until,
                  backend_txn_cb cb, void *arg)
{
    struct aws_commit *c = aws_backend_commit(impl);
    struct op *op = op_new(c, OP_CREATE, arg);
    if (!op)
        return ERR_NOMEM;
    op->cb.done = cb;
    char *body = NULL, pk[96];
    size_t len = 0;
    txn_pk(t->uid, pk);
    cJSON *r = NULL;
    if (commit_rec_encode(t, true, &body, &len) == 0) {
        /* the index first: a crash between the two leaves an index entry whose claim fails */
        cJSON *item = cJSON_CreateObject();
        bool ok = item && ddb_add_s(item, "pk", pk) == 0 && ddb_add_s(item, "sk", TXN_SK) == 0 &&
                  ddb_add_s(item, "state", commit_state_name(t->state)) == 0 &&
                  ddb_add_s(item, "owner", owner) == 0 &&
                  ddb_add_n(item, "lease_until", lease_until) == 0 &&
                  ddb_add_s(item, "calling_ae", t->calling) == 0 &&
                  ddb_add_n(item, "event", t->event) == 0 && ddb_add_s(item, "body", body) == 0;
        r = ok ? cJSON_CreateObject() : NULL;
        ok = r && cJSON_AddStringToObject(r, "TableName", c->table) &&
             cJSON_AddItemToObject(r, "Item", item) &&
             cJSON_AddStringToObject(r, "ConditionExpression", "attribute_not_exists(pk)");
        if (!r)
            cJSON_Delete(item);
        if (!ok) {
            cJSON_Delete(r);
            r = NULL;
        }
    }
    free(body);
    op->then = r; /* the TXN put goes second: its condition decides the answer */
    op->then_name = "PutItem";
    op->then_decides = true;
    cJSON *first = r ? index_update(c, t->uid, owner, lease_until, false, 0) : NULL;
    if (!first) {
        op_end(op);
        return ERR_NOMEM;
    }
    return start(op, "UpdateItem", first);
}

static int claim(void *impl, const char *uid, const char *owner, int64_t now,
                 int64_t lease_until, backend_txn_got_cb cb, void *arg)
{
    struct aws_commit *c = aws_backend_commit(impl);
    struct op *op = op_new(c, OP_CLAIM, arg);
    if (!op)
        return ERR_NOMEM;
    op->cb.got = cb;
    char pk[96];
    txn_pk(uid, pk);
    cJSON *v = cJSON_CreateObject();
    if (!v || ddb_add_s(v, ":o", owner) < 0 || ddb_add_n(v, ":u", lease_until) < 0 ||
        ddb_add_n(v, ":now", now) < 0 || ddb_add_s(v, ":rep", "reported") < 0) {
        cJSON_Delete(v);
        op_end(op);
        return ERR_NOMEM;
    }
    const char *expr = "SET #ow = :o, #lu = :u";
    const char *cond = "attribute_exists(pk) AND #st <> :rep AND (#lu < :now OR #ow = :o)";
    return start(op, "UpdateItem",
                 update(c, pk, TXN_SK, expr, cond, names_for(expr, cond), v, "ALL_NEW"));
}

static int save(void *impl, const struct commit_txn *t, bool body, const char *owner,
                int64_t lease_until, backend_txn_cb cb, void *arg)
{
    struct aws_commit *c = aws_backend_commit(impl);
    struct op *op = op_new(c, OP_SAVE, arg);
    if (!op)
        return ERR_NOMEM;
    op->cb.done = cb;
    char pk[96], *text = NULL;
    size_t len = 0;
    txn_pk(t->uid, pk);
    cJSON *v = cJSON_CreateObject();
    bool ok = v && ddb_add_s(v, ":o", owner) == 0 && ddb_add_n(v, ":u", lease_until) == 0 &&
              ddb_add_s(v, ":s", commit_state_name(t->state)) == 0 &&
              ddb_add_n(v, ":e", t->event) == 0 && ddb_add_s(v, ":rep", "reported") == 0;
    if (ok && body)
        ok = commit_rec_encode(t, true, &text, &len) == 0 && ddb_add_s(v, ":b", text) == 0;
    free(text);
    if (!ok) {
        cJSON_Delete(v);
        op_end(op);
        return ERR_NOMEM;
    }
    const char *expr = body ? "SET #st = :s, #ev = :e, #lu = :u, #b = :b"
                            : "SET #st = :s, #ev = :e, #lu = :u";
    const char *cond = "#ow = :o AND #st <> :rep";
    op->then = index_update(c, t->uid, owner, lease_until, false, 0);
    op->then_name = "UpdateItem";
    return start(op, "UpdateItem", update(c, pk, TXN_SK, expr, cond, names_for(expr, cond), v,
                                          NULL));
}

static int reported(void *impl, const char *uid, const char *owner, int64_t keep_until,
                    backend_txn_cb cb, void *arg)
{
    struct aws_commit *c = aws_backend_commit(impl);
    struct op *op = op_new(c, OP_REPORTED, arg);
    if (!op)
        return ERR_NOMEM;
    op->cb.done = cb;
    char pk[96];
    txn_pk(uid, pk);
    cJSON *v = cJSON_CreateObject();
    if (!v || ddb_add_s(v, ":o", owner) < 0 || ddb_add_s(v, ":s", "reported") < 0 ||
        ddb_add_n(v, ":x", keep_until / 1000) < 0) {
        cJSON_Delete(v);
        op_end(op);
        return ERR_NOMEM;
    }
    const char *expr = "SET #st = :s, #ttl = :x REMOVE #b";
    const char *cond = "#ow = :o";
    op->then = index_update(c, uid, owner, 0, true, keep_until / 1000);
    op->then_name = "UpdateItem";
    return start(op, "UpdateItem", update(c, pk, TXN_SK, expr, cond, names_for(expr, cond), v,
                                          NULL));
}

static int list(void *impl, int64_t now, backend_txn_list_cb cb, void *arg)
{
    struct aws_commit *c = aws_backend_commit(impl);
    struct op *op = op_new(c, OP_LIST, arg);
    if (!op)
        return ERR_NOMEM;
    op->cb.list = cb;
    const char *filter = "attribute_not_exists(#dn) AND #lu < :now";
    cJSON *r = cJSON_CreateObject();
    cJSON *v = r ? cJSON_AddObjectToObject(r, "ExpressionAttributeValues") : NULL;
    cJSON *n = names_for(filter, NULL);
    bool ok = v && n && ddb_add_s(v, ":pk", QUEUE_PK) == 0 && ddb_add_n(v, ":now", now) == 0 &&
              cJSON_AddStringToObject(r, "TableName", c->table) &&
              cJSON_AddStringToObject(r, "KeyConditionExpression", "pk = :pk") &&
              cJSON_AddStringToObject(r, "FilterExpression", filter) &&
              cJSON_AddItemToObject(r, "ExpressionAttributeNames", n);
    if (!ok) {
        if (!r || !cJSON_GetObjectItemCaseSensitive(r, "ExpressionAttributeNames"))
            cJSON_Delete(n);
        cJSON_Delete(r);
        r = NULL;
    }
    return start(op, "Query", r);
}

static uint64_t requests(void *impl)
{
    struct aws_commit *c = aws_backend_commit(impl);
    return c ? c->requests : 0;
}

static void on_http_closed(void *arg)
{
    struct aws_commit *c = arg;
    void (*done)(void *) = c->closed;
    c->closed = NULL;
    c->http = NULL;
    if (done)
        done(c->closed_arg);
}

static void commit_close(void *impl, void (*done)(void *arg), void *arg)
{
    struct aws_commit *c = aws_backend_commit(impl);
    if (!c || c->closing) {
        done(arg);
        return;
    }
    c->closing = true;
    c->closed = done;
    c->closed_arg = arg;
    creds_provider_close(c->creds); /* waiting requests end with HTTP_ERR_CANCELED */
    c->creds = NULL;
    http_client_close(c->http, on_http_closed, c);
}

static const struct backend_txn_ops g_txn = {
    .create = create,
    .claim = claim,
    .save = save,
    .reported = reported,
    .list = list,
};

const struct backend_commit_ops aws_commit_ops = {
    .locate = locate,
    .txn = &g_txn,
    .strongest = COPY_IMPORTED,
    .requests = requests,
    .close = commit_close,
};

int aws_commit_new(uv_loop_t *loop, const struct pipeline_config *cfg, struct aws_commit **out)
{
    struct aws_commit *c = calloc(1, sizeof *c);
    if (!c)
        return ERR_NOMEM;
    snprintf(c->table, sizeof c->table, "%s", cfg->ddb.table);
    struct http_opts ho;
    http_opts_default(&ho);
    ho.max_connections = 8;
    ho.request_timeout_ms = 20000;
    int rc = http_client_new(loop, &ho, &c->http);
    if (rc == 0)
        rc = creds_provider_new(c->http, &c->creds);
    struct ddb_opts dop = {.region = cfg->region, .endpoint = cfg->endpoints.dynamodb};
    if (rc == 0)
        rc = ddb_client_new(c->http, c->creds, &dop, &c->ddb);
    if (rc < 0 && c->http) { /* unusable: kept (closing) for aws_commit_free */
        if (c->creds)
            creds_provider_close(c->creds);
        c->creds = NULL;
        c->closing = true;
        http_client_close(c->http, on_http_closed, c);
    }
    if (rc < 0 && !c->http) {
        free(c);
        return rc;
    }
    *out = c;
    return rc;
}

void aws_commit_free(struct aws_commit *c)
{
    if (!c)
        return;
    ddb_client_free(c->ddb);
    free(c);
}
