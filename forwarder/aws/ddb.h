/* ddb: DynamoDB over its JSON 1.0 protocol (POST /, X-Amz-Target: DynamoDB_20120810.<Op>,
 * Content-Type application/x-amz-json-1.0, SigV4 "dynamodb"). Requests and responses are cJSON
 * trees in DynamoDB's attribute-value JSON ({"S": "..."}, {"N": "12"}, {"BOOL": true}).
 * A failed ConditionExpression is surfaced as res->err == HTTP_ERR_CONDITION, distinct from any
 * other failure. All callbacks run on the http client's loop. */
#ifndef GW_DDB_H
#define GW_DDB_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "http.h"

struct ddb_client;
struct creds_provider;

struct ddb_opts {
    const char *region;   /* required */
    const char *endpoint; /* NULL/"" = https://dynamodb.<region>.amazonaws.com */
};

/* http/creds borrowed (must outlive the client and its calls); strings copied. 0, ERR_NOMEM,
 * ERR_CONFIG. */
MUST_CHECK int ddb_client_new(struct http_client *http, struct creds_provider *creds,
                              const struct ddb_opts *opts, struct ddb_client **out);
/* Only when nothing is in flight. NULL is fine. */
void ddb_client_free(struct ddb_client *d);

/* out: the parsed response body (an object; borrowed: dies when the callback returns), NULL
 * when res->err != 0 or the body was not a JSON object (then res->err is HTTP_ERR_PARSE). For
 * ConditionalCheckFailedException with ReturnValuesOnConditionCheckFailure, the body's "Item"
 * is given as out. */
typedef void (*ddb_cb)(void *arg, const struct http_result *res, const cJSON *out);

/* Any operation: op is "PutItem", "Query"...; req (borrowed) is serialised now. 0 (cb runs
 * once, later) or < 0 (cb never runs). */
MUST_CHECK int ddb_call(struct ddb_client *d, const char *op, const cJSON *req, ddb_cb cb,
                        void *arg);

/* Conveniences over ddb_call. cond, names, values may be NULL (names/values: the
 * ExpressionAttributeNames / ExpressionAttributeValues objects, borrowed). */
MUST_CHECK int ddb_put_item(struct ddb_client *d, const char *table, const cJSON *item,
                            const char *cond, const cJSON *names, const cJSON *values,
                            ddb_cb cb, void *arg);
/* UpdateItem; return_values e.g. "ALL_NEW" or NULL (NONE). */
MUST_CHECK int ddb_update_item(struct ddb_client *d, const char *table, const cJSON *key,
                               const char *update_expr, const char *cond, const cJSON *names,
                               const cJSON *values, const char *return_values, ddb_cb cb,
                               void *arg);
/* GetItem (ConsistentRead when consistent); out["Item"] is absent when there is none. */
MUST_CHECK int ddb_get_item(struct ddb_client *d, const char *table, const cJSON *key,
                            bool consistent, ddb_cb cb, void *arg);
/* Query one page: index NULL for the table; start_key (LastEvaluatedKey of the previous page) may
 * be NULL; limit 0 = none. out["Items"], out["LastEvaluatedKey"]. */
MUST_CHECK int ddb_query(struct ddb_client *d, const char *table, const char *index,
                         const char *key_cond, const cJSON *names, const cJSON *values,
                         const cJSON *start_key, unsigned limit, ddb_cb cb, void *arg);

/* Attribute-value builders: add {"S": v} / {"N": "v"} / {"BOOL": v} under name to obj. Return
 * 0 or ERR_NOMEM. */
MUST_CHECK int ddb_add_s(cJSON *obj, const char *name, const char *v);
MUST_CHECK int ddb_add_n(cJSON *obj, const char *name, int64_t v);
MUST_CHECK int ddb_add_bool(cJSON *obj, const char *name, bool v);
/* Readers for an item (an object of attribute values): the string of {"S"}, the integer of
 * {"N"} (whole numbers only), the BOOL. NULL / ERR_NOTFOUND / ERR_MALFORMED on absent or wrong
 * type; never trust the shape. */
const char *ddb_get_s(const cJSON *item, const char *name);
MUST_CHECK int ddb_get_n(const cJSON *item, const char *name, int64_t *out);
MUST_CHECK int ddb_get_bool(const cJSON *item, const char *name, bool *out);

#endif
