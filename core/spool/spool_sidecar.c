#include "spool/spool_sidecar.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/uid.h"

cJSON *spool_sidecar_json(const struct spool_sidecar *sc)
{
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return NULL;
    /* the field order is the file format's: keep it */
    cJSON_AddStringToObject(j, "id", sc->id);
    cJSON_AddStringToObject(j, "sop_class_uid", sc->sop_class);
    cJSON_AddStringToObject(j, "sop_instance_uid", sc->sop_instance);
    cJSON_AddStringToObject(j, "study_instance_uid", sc->study);
    cJSON_AddStringToObject(j, "series_instance_uid", sc->series);
    cJSON_AddStringToObject(j, "transfer_syntax_uid", sc->ts);
    cJSON_AddStringToObject(j, "calling_ae", sc->calling);
    cJSON_AddStringToObject(j, "called_ae", sc->called);
    cJSON_AddStringToObject(j, "peer", sc->peer);
    if (sc->cert_cn[0] || sc->cert_fp[0] || sc->client_id[0]) {
        cJSON *c = cJSON_AddObjectToObject(j, "cert");
        if (c) {
            cJSON_AddStringToObject(c, "subject_cn", sc->cert_cn);
            cJSON_AddStringToObject(c, "fingerprint_sha256", sc->cert_fp);
            cJSON_AddStringToObject(c, "client_id", sc->client_id);
        }
    }
    cJSON_AddNumberToObject(j, "bytes", (double)sc->bytes);
    if (sc->sha256[0])
        cJSON_AddStringToObject(j, "sha256", sc->sha256);
    if (sc->crc64nvme[0])
        cJSON_AddStringToObject(j, "crc64nvme", sc->crc64nvme);
    cJSON_AddNumberToObject(j, "assoc", (double)sc->assoc);
    cJSON_AddStringToObject(j, "received_start", sc->received_start);
    cJSON_AddStringToObject(j, "received_end", sc->received_end);
    return j;
}

int spool_sidecar_encode(const struct spool_sidecar *sc, char **out, size_t *len)
{
    *out = NULL;
    cJSON *j = spool_sidecar_json(sc);
    if (!j)
        return ERR_NOMEM;
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s)
        return ERR_NOMEM;
    *out = s;
    *len = strlen(s);
    return 0;
}

static void copy_str(const cJSON *j, const char *k, char *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    out[0] = '\0';
    if (cJSON_IsString(v) && v->valuestring && strlen(v->valuestring) < cap)
        memcpy(out, v->valuestring, strlen(v->valuestring) + 1);
}

static bool whole_number(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= 9.0e15 ||
        v->valuedouble != (double)(uint64_t)v->valuedouble)
        return false;
    *out = (uint64_t)v->valuedouble;
    return true;
}

static bool hex_valid(const char *s, size_t want)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return n == want;
}

int spool_sidecar_decode(const char *json, size_t len, struct spool_sidecar *sc)
{
    memset(sc, 0, sizeof *sc);
    cJSON *j = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ERR_MALFORMED;
    }
    copy_str(j, "id", sc->id, sizeof sc->id);
    copy_str(j, "sop_class_uid", sc->sop_class, sizeof sc->sop_class);
    copy_str(j, "sop_instance_uid", sc->sop_instance, sizeof sc->sop_instance);
    copy_str(j, "study_instance_uid", sc->study, sizeof sc->study);
    copy_str(j, "series_instance_uid", sc->series, sizeof sc->series);
    copy_str(j, "transfer_syntax_uid", sc->ts, sizeof sc->ts);
    copy_str(j, "calling_ae", sc->calling, sizeof sc->calling);
    copy_str(j, "called_ae", sc->called, sizeof sc->called);
    copy_str(j, "peer", sc->peer, sizeof sc->peer);
    copy_str(j, "sha256", sc->sha256, sizeof sc->sha256);
    copy_str(j, "crc64nvme", sc->crc64nvme, sizeof sc->crc64nvme);
    copy_str(j, "received_start", sc->received_start, sizeof sc->received_start);
    copy_str(j, "received_end", sc->received_end, sizeof sc->received_end);
    const cJSON *cert = cJSON_GetObjectItemCaseSensitive(j, "cert");
    if (cJSON_IsObject(cert)) {
        copy_str(cert, "subject_cn", sc->cert_cn, sizeof sc->cert_cn);
        copy_str(cert, "fingerprint_sha256", sc->cert_fp, sizeof sc->cert_fp);
        copy_str(cert, "client_id", sc->client_id, sizeof sc->client_id);
    }
    bool ok = whole_number(cJSON_GetObjectItemCaseSensitive(j, "bytes"), &sc->bytes);
    if (!whole_number(cJSON_GetObjectItemCaseSensitive(j, "assoc"), &sc->assoc))
        sc->assoc = 0;
    cJSON_Delete(j);
    bool sha = sc->sha256[0] != '\0', crc = sc->crc64nvme[0] != '\0';
    if (!ok || !uid_valid(sc->sop_instance) || !uid_valid(sc->study) || !uid_valid(sc->series) ||
        (!sha && !crc) || (sha && !hex_valid(sc->sha256, 64)) ||
        (crc && !hex_valid(sc->crc64nvme, 16)))
        return ERR_MALFORMED;
    return 0;
}

int spool_sidecar_load(const char *path, struct spool_sidecar *sc)
{
    char *text = NULL;
    size_t len = 0;
    TRY(fileio_read_small(path, SIDECAR_MAX, &text, &len));
    int rc = spool_sidecar_decode(text, len, sc);
    free(text);
    return rc;
}
