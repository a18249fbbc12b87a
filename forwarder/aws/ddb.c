#include "ddb.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "creds.h"

#define DDB_RESP_CAP (4u << 20) /* a Query page is at most 1 MB of items, plus JSON overhead */

struct ddb_client {
    struct http_client *http;
    struct creds_provider *creds;
    char region[40];
    char *url;
};

int ddb_client_new(struct http_client *http, struct creds_provider *creds,
                   const struct ddb_opts *o, struct ddb_client **out)
{
    *out = NULL;
    if (!o->region || !*o->region || strlen(o->region) >= 40)
        return ERR_CONFIG;
    if (o->endpoint && *o->endpoint && strncmp(o->endpoint, "http://", 7) != 0 &&
        strncmp(o->endpoint, "https://", 8) != 0)
        return ERR_CONFIG;
    struct ddb_client *d = calloc(1, sizeof(*d));
    if (!d)
        return ERR_NOMEM;
    d->http = http;
    d->creds = creds;
    memcpy(d->region, o->region, strlen(o->region) + 1);
    char url[1024];
    int n;
    if (o->endpoint && *o->endpoint) {
        size_t l = strlen(o->endpoint);
        while (l > 8 && o->endpoint[l - 1] == '/')
            l--;
        n = snprintf(url, sizeof(url), "%.*s/", (int)l, o->endpoint);
    } else {
        n = snprintf(url, sizeof(url), "https://dynamodb.%s.amazonaws.com/", o->region);
    }
    if (n < 0 || (size_t)n >= sizeof(url)) {
        free(d);
        return ERR_CONFIG;
    }
    d->url = strdup(url);
    if (!d->url) {
        free(d);
        return ERR_NOMEM;
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
    if (rc == 0 && !op)
        rc = ERR_NOMEM;
    if (rc < 0) {
        http_req_free(r);
        return rc;
    }
    op->cb = cb;
    op->arg = arg;
    http_req_set_response_cap(r, DDB_RESP_CAP);
    http_req_sign(r, d->creds, d->region, "dynamodb", false, HTTP_PAYLOAD_SIGNED);
    rc = http_send(d->http, r, on_http, op);
    if (rc < 0)
        free(op);
    return rc;
}

/* Add a borrowed object to req as a deep copy; NULL src adds nothing. */
static int add_copy(cJSON *req, const char *name, const cJSON *src)
{
    if (!src)
        return 0;
    cJSON *c = cJSON_Duplicate(src, 1);
    if (!c || !cJSON_AddItemToObject(req, name, c)) {
        cJSON_Delete(c);
        return ERR_NOMEM;
    }
    return 0;
}

static int add_str(cJSON *req, const char *name, const char *v)
{
    if (!v)
        return 0;
    return cJSON_AddStringToObject(req, name, v) ? 0 : ERR_NOMEM;
}

static int call_and_free(struct ddb_client *d, const char *op, cJSON *req, int rc, ddb_cb cb,
                         void *arg)
{
    if (rc == 0)
        rc = ddb_call(d, op, req, cb, arg);
    cJSON_Delete(req);
    return rc;
}

int ddb_put_item(struct ddb_client *d, const char *table, const cJSON *item, const char *cond,
                 const cJSON *names, const cJSON *values, ddb_cb cb, void *arg)
{
    cJSON *req = cJSON_CreateObject();
    if (!req)
        return ERR_NOMEM;
    int rc = add_str(req, "TableName", table);
    if (rc == 0)
        rc = add_copy(req, "Item", item);
    if (rc == 0)
        rc = add_str(req, "ConditionExpression", cond);
    if (rc == 0)
        rc = add_copy(req, "ExpressionAttributeNames", names);
    if (rc == 0)
        rc = add_copy(req, "ExpressionAttributeValues", values);
    if (rc == 0 && cond)
        rc = add_str(req, "ReturnValuesOnConditionCheckFailure", "ALL_OLD");
    return call_and_free(d, "PutItem", req, rc, cb, arg);
}

int ddb_update_item(struct ddb_client *d, const char *table, const cJSON *key,
                    const char *update_expr, const char *cond, const cJSON *names,
                    const cJSON *values, const char *return_values, ddb_cb cb, void *arg)
{
    cJSON *req = cJSON_CreateObject();
    if (!req)
        return ERR_NOMEM;
    int rc = add_str(req, "TableName", table);
    if (rc == 0)
        rc = add_copy(req, "Key", key);
    if (rc == 0)
        rc = add_str(req, "UpdateExpression", update_expr);
    if (rc == 0)
        rc = add_str(req, "ConditionExpression", cond);
    if (rc == 0)
        rc = add_copy(req, "ExpressionAttributeNames", names);
    if (rc == 0)
        rc = add_copy(req, "ExpressionAttributeValues", values);
    if (rc == 0)
        rc = add_str(req, "ReturnValues", return_values);
    if (rc == 0 && cond)
        rc = add_str(req, "ReturnValuesOnConditionCheckFailure", "ALL_OLD");
    return call_and_free(d, "UpdateItem", req, rc, cb, arg);
}

int ddb_get_item(struct ddb_client *d, const char *table, const cJSON *key, bool consistent,
                 ddb_cb cb, void *arg)
{
    cJSON *req = cJSON_CreateObject();
    if (!req)
        return ERR_NOMEM;
    int rc = add_str(req, "TableName", table);
    if (rc == 0)
        rc = add_copy(req, "Key", key);
    if (rc == 0 && !cJSON_AddBoolToObject(req, "ConsistentRead", consistent))
        rc = ERR_NOMEM;
    return call_and_free(d, "GetItem", req, rc, cb, arg);
}

int ddb_query(struct ddb_client *d, const char *table, const char *index, const char *key_cond,
              const cJSON *names, const cJSON *values, const cJSON *start_key, unsigned limit,
              ddb_cb cb, void *arg)
{
    cJSON *req = cJSON_CreateObject();
    if (!req)
        return ERR_NOMEM;
    int rc = add_str(req, "TableName", table);
    if (rc == 0)
        rc = add_str(req, "IndexName", index);
    if (rc == 0)
        rc = add_str(req, "KeyConditionExpression", key_cond);
    if (rc == 0)
        rc = add_copy(req, "ExpressionAttributeNames", names);
    if (rc == 0)
        rc = add_copy(req, "ExpressionAttributeValues", values);
    if (rc == 0)
        rc = add_copy(req, "ExclusiveStartKey", start_key);
    if (rc == 0 && limit && !cJSON_AddNumberToObject(req, "Limit", limit))
        rc = ERR_NOMEM;
    return call_and_free(d, "Query", req, rc, cb, arg);
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
