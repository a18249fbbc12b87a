#include "main_status.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "commit_store.h"
#include "common/fileio.h"
#include "spool/spool.h"

int main_status(const char *spool_dir, bool json)
{
    struct spool_peek pk;
    int rc = spool_peek(spool_dir, &pk);
    if (rc < 0) {
        fprintf(stderr, "dicom-core status: cannot read the spool %s: %s\n", spool_dir,
                err_str(rc));
        return 1;
    }
    time_t now = time(NULL);
    long oldest = pk.oldest_unix ? (long)(now - pk.oldest_unix) : 0;
    char path[SPOOL_PATH_MAX];
    snprintf(path, sizeof path, "%s/commit/status.json", spool_dir);
    char *text = NULL;
    size_t len = 0;
    cJSON *snap = fileio_read_small(path, 1u << 20, &text, &len) == 0
                      ? cJSON_ParseWithLength(text, len)
                      : NULL;
    free(text);
    struct stat st;
    long snap_age = snap && stat(path, &st) == 0 ? (long)(now - st.st_mtime) : -1;
    const cJSON *store = cJSON_GetObjectItemCaseSensitive(snap, "store");
    const cJSON *point = cJSON_GetObjectItemCaseSensitive(snap, "point");
    const cJSON *open = cJSON_GetObjectItemCaseSensitive(snap, "open");
    bool shared = cJSON_IsString(store) && strcmp(store->valuestring, "shared") == 0;
    if (json) {
        printf("{\"core\":{\"spool_depth\":%llu,\"spool_bytes\":%llu,\"spool_oldest_age_s\":%ld,"
               "\"commit\":",
               (unsigned long long)pk.depth, (unsigned long long)pk.bytes, oldest);
        char *s = snap ? cJSON_PrintUnformatted(snap) : NULL;
        printf("%s,\"commit_status_age_s\":%ld}}\n", s ? s : "null", snap_age);
        cJSON_free(s);
        cJSON_Delete(snap);
        return 0;
    }
    printf("core: spool %s: %llu object(s), %llu bytes, oldest %ld s\n", spool_dir,
           (unsigned long long)pk.depth, (unsigned long long)pk.bytes, oldest);
    printf("commitment: point %s, store %s", cJSON_IsString(point) ? point->valuestring : "?",
           cJSON_IsString(store) ? store->valuestring : "?");
    if (snap_age >= 0)
        printf(" (as of %ld s ago)", snap_age);
    printf("\n");
    if (shared || !snap) {
        printf("  %lld open transaction(s) held by this core task\n",
               cJSON_IsNumber(open) ? (long long)open->valuedouble : 0LL);
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(snap, "transactions"), *t;
        cJSON_ArrayForEach(t, list)
        {
            const cJSON *uid = cJSON_GetObjectItemCaseSensitive(t, "transaction_uid");
            const cJSON *state = cJSON_GetObjectItemCaseSensitive(t, "state");
            if (cJSON_IsString(uid) && cJSON_IsString(state))
                printf("  %-64s %s\n", uid->valuestring, state->valuestring);
        }
    } else {
        uint64_t n_open = 0, n_rep = 0;
        if (commit_store_print(spool_dir, false, &n_open, &n_rep) == 0)
            printf("  %llu open transaction(s), %llu reported and remembered\n",
                   (unsigned long long)n_open, (unsigned long long)n_rep);
    }
    cJSON_Delete(snap);
    return 0;
}
