#include "ddb.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_client.h"

#define DDB_RESP_CAP (4u << 20) /* a Query page is at most 1 MB of items, plus JSON overhead */

struct ddb_client {
    struct aws_client c;
    char *url; /* "https://dynamodb.<region>.amazonaws.com/" or the override + "/" */
};

int ddb_client_new(struct http_client *http, struct creds_provider *creds,
                   const struct ddb_opts *o, struct ddb_client **out)
{
    *out = NULL;
    struct ddb_client *d = calloc(1, sizeof(*d));
    if (!d)
        return ERR_NOMEM;
    int rc = aws_client_init(&d->c, http, creds, o->region, "dynamodb", false);
    if (rc == 0 && !aws_endpoint_valid(o->endpoint))
        rc = ERR_CONFIG;
    if (rc == 0 && !(d->url = aws_endpoint_dup(o->endpoint, "dynamodb", o->region, "/")))
        rc = ERR_NOMEM;
    if (rc < 0) {
        ddb_client_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void ddb_client_free(struct ddb_client *d)
{
    if (!d)
        return;
    free(d->url);
    free(d);
}

struct ddb_op {
    ddb_cb cb;
    void *arg;
};

static void on_http(void *arg, const struct http_resp *resp)
{
    struct ddb_op *op = arg;
    struct http_result res = resp->res;
    cJSON *j = NULL;
    const cJSON *out = NULL;
    if (res.err == 0) {
        j = cJSON_ParseWithLength((const char *)resp->body, resp->body_len);
        if (cJSON_IsObject(j))
            out = j;
        else
            res.err = HTTP_ERR_PARSE;
    } else if (res.err == HTTP_ERR_CONDITION && resp->body_len) {
        j = cJSON_ParseWithLength((const char *)resp->body, resp->body_len);
        const cJSON *item = cJSON_GetObjectItemCaseSensitive(j, "Item");
        if (cJSON_IsObject(item))
            out = item;
    }
    op->cb(op->arg, &res, out);
    cJSON_Delete(j);
    free(op);
}

int ddb_call(struct ddb_client *d, const char *op_name, const cJSON *req, ddb_cb cb, void *arg)
{
    char target[96];
    int n = snprintf(target, sizeof(target), "DynamoDB_20120810.%s", op_name);
    if (n < 0 || (size_t)n >= sizeof(target))
        return ERR_LIMIT;
    char *body = cJSON_PrintUnformatted(req);
    if (!body)
        return ERR_NOMEM;
    struct http_req *r = NULL;
    int rc = http_req_new("POST", d->url, &r);
    if (rc == 0)
        rc = http_req_add_header(r, "Content-Type", "application/x-amz-json-1.0");
    if (rc == 0)
        rc = http_req_add_header(r, "X-Amz-Target", target);
    if (rc == 0)
        rc = http_req_body_mem(r, body, strlen(body));
    free(body);
    struct ddb_op *op = rc == 0 ? calloc(1, sizeof(*op)) : NULL;
    if (op) {
        op->cb = cb;
        op->arg = arg;
    }
    return aws_client_send(&d->c, r, rc, op, DDB_RESP_CAP, HTTP_PAYLOAD_SIGNED, on_http);
}

/* One member of a request: a string, or a borrowed object that is deep-copied; a member whose
 * value is NULL is left out. */
struct field {
    const char *name;
    const char *str;
    const cJSON *obj;
};

/* {"TableName": table, f...} in this order, or NULL when out of memory. */
static cJSON *req_new(const char *table, const struct field *f, size_t n)
{
    cJSON *req = cJSON_CreateObject();
    bool ok = req != NULL;
    for (size_t i = 0; ok && i <= n; i++) {
        const struct field t = i == 0 ? (struct field){"TableName", table, NULL} : f[i - 1];
        if (!t.str && !t.obj)
            continue;
        cJSON *v = t.str ? cJSON_CreateString(t.str) : cJSON_Duplicate(t.obj, 1);
        ok = v && cJSON_AddItemToObject(req, t.name, v);
        if (!ok)
            cJSON_Delete(v);
    }
    if (!ok) {
        cJSON_Delete(req);
        return NULL;
    }
    return req;
}

static int call_and_free(struct ddb_client *d, const char *op, cJSON *req, ddb_cb cb, void *arg)
{
    int rc = req ? ddb_call(d, op, req, cb, arg) : ERR_NOMEM;
    cJSON_Delete(req);
    return rc;
}

int ddb_put_item(struct ddb_client *d, const char *table, const cJSON *item, const char *cond,
                 const cJSON *names, const cJSON *values, ddb_cb cb, void *arg)
{
    const struct field f[] = {
        {"Item", NULL, item},
        {"ConditionExpression", cond, NULL},
        {"ExpressionAttributeNames", NULL, names},
        {"ExpressionAttributeValues", NULL, values},
        {"ReturnValuesOnConditionCheckFailure", cond ? "ALL_OLD" : NULL, NULL},
    };
    return call_and_free(d, "PutItem", req_new(table, f, ARRAY_LEN(f)), cb, arg);
}

int ddb_update_item(struct ddb_client *d, const char *table, const cJSON *key,
                    const char *update_expr, const char *cond, const cJSON *names,
                    const cJSON *values, const char *return_values, ddb_cb cb, void *arg)
{
    const struct field f[] = {
        {"Key", NULL, key},
        {"UpdateExpression", update_expr, NULL},
        {"ConditionExpression", cond, NULL},
        {"ExpressionAttributeNames", NULL, names},
        {"ExpressionAttributeValues", NULL, values},
        {"ReturnValues", return_values, NULL},
        {"ReturnValuesOnConditionCheckFailure", cond ? "ALL_OLD" : NULL, NULL},
    };
    return call_and_free(d, "UpdateItem", req_new(table, f, ARRAY_LEN(f)), cb, arg);
}

int ddb_get_item(struct ddb_client *d, const char *table, const cJSON *key, bool consistent,
                 ddb_cb cb, void *arg)
{
    const struct field f[] = {{"Key", NULL, key}};
    cJSON *req = req_new(table, f, ARRAY_LEN(f));
    if (req && !cJSON_AddBoolToObject(req, "ConsistentRead", consistent)) {
        cJSON_Delete(req);
        req = NULL;
    }
    return call_and_free(d, "GetItem", req, cb, arg);
}

int ddb_query(struct ddb_client *d, const char *table, const char *index, const char *key_cond,
              const cJSON *names, const cJSON *values, const cJSON *start_key, unsigned limit,
              ddb_cb cb, void *arg)
{
    const struct field f[] = {
        {"IndexName", index, NULL},
        {"KeyConditionExpression", key_cond, NULL},
        {"ExpressionAttributeNames", NULL, names},
        {"ExpressionAttributeValues", NULL, values},
        {"ExclusiveStartKey", NULL, start_key},
    };
    cJSON *req = req_new(table, f, ARRAY_LEN(f));
    if (req && limit && !cJSON_AddNumberToObject(req, "Limit", limit)) {
        cJSON_Delete(req);
        req = NULL;
    }
    return call_and_free(d, "Query", req, cb, arg);
}

/* ---- attribute values ---------------------------------------------------------------------- */

static int add_av(cJSON *obj, const char *name, const char *type, cJSON *v)
{
    cJSON *av = cJSON_CreateObject();
    if (!av || !v || !cJSON_AddItemToObject(av, type, v)) {
        cJSON_Delete(av);
        cJSON_Delete(v);
        return ERR_NOMEM;
    }
    if (!cJSON_AddItemToObject(obj, name, av)) {
        cJSON_Delete(av);
        return ERR_NOMEM;
    }
    return 0;
}

int ddb_add_s(cJSON *obj, const char *name, const char *v)
{
    return add_av(obj, name, "S", cJSON_CreateString(v));
}

int ddb_add_n(cJSON *obj, const char *name, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    return add_av(obj, name, "N", cJSON_CreateString(buf));
}

int ddb_add_bool(cJSON *obj, const char *name, bool v)
{
    return add_av(obj, name, "BOOL", cJSON_CreateBool(v));
}

static const cJSON *av_of(const cJSON *item, const char *name, const char *type)
{
    if (!cJSON_IsObject(item))
        return NULL;
    const cJSON *av = cJSON_GetObjectItemCaseSensitive(item, name);
    if (!cJSON_IsObject(av))
        return NULL;
    return cJSON_GetObjectItemCaseSensitive(av, type);
}

const char *ddb_get_s(const cJSON *item, const char *name)
{
    const cJSON *v = av_of(item, name, "S");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int ddb_get_n(const cJSON *item, const char *name, int64_t *out)
{
    if (!cJSON_IsObject(item) || !cJSON_GetObjectItemCaseSensitive(item, name))
        return ERR_NOTFOUND;
    const cJSON *v = av_of(item, name, "N");
    if (!cJSON_IsString(v))
        return ERR_MALFORMED;
    const char *s = v->valuestring;
    bool neg = *s == '-';
    if (neg)
        s++;
    if (!*s || strlen(s) > 18)
        return ERR_MALFORMED; /* 18 digits cannot overflow int64 */
    int64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return ERR_MALFORMED;
        x = x * 10 + (*s - '0');
    }
    *out = neg ? -x : x;
    return 0;
}

int ddb_get_bool(const cJSON *item, const char *name, bool *out)
{
    if (!cJSON_IsObject(item) || !cJSON_GetObjectItemCaseSensitive(item, name))
        return ERR_NOTFOUND;
    const cJSON *v = av_of(item, name, "BOOL");
    if (!cJSON_IsBool(v))
        return ERR_MALFORMED;
    *out = cJSON_IsTrue(v);
    return 0;
}
