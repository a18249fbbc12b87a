/* state_int: helpers the files of the state module share (state.c: names and DynamoDB requests;
 * state_sidecar.c: the core's sidecar; state_parse.c: what DynamoDB and HealthImaging answer). */
#ifndef GW_STATE_INT_H
#define GW_STATE_INT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "state.h"

/* The string obj[key] into dst[cap] when it is a string that fits; "" otherwise. */
void state_copy_str(const cJSON *obj, const char *key, char *dst, size_t cap);
/* json[0..len) parsed, when it is a JSON object (free with cJSON_Delete); else NULL. */
cJSON *state_parse_object(const char *json, size_t len);

#endif
