#include "common/grants.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    uint32_t bit;
} g_services[] = {
    {"store", GRANT_STORE}, {"echo", GRANT_ECHO}, {"find", GRANT_FIND},
    {"get", GRANT_GET},     {"move", GRANT_MOVE}, {"commit", GRANT_COMMIT},
};

static const char *const g_scopes[] = {"none", "own", "shared", "all"};

uint32_t grants_service_bit(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof g_services / sizeof g_services[0]; i++) {
        if (strlen(g_services[i].name) == len && memcmp(g_services[i].name, name, len) == 0)
            return g_services[i].bit;
    }
    return 0;
}

int grants_scope_parse(const char *name, size_t len, enum grant_scope *out)
{
    for (size_t i = 0; i < sizeof g_scopes / sizeof g_scopes[0]; i++) {
        if (strlen(g_scopes[i]) == len && memcmp(g_scopes[i], name, len) == 0) {
            *out = (enum grant_scope)i;
            return 0;
        }
    }
    return ERR_MALFORMED;
}

const char *grants_scope_name(enum grant_scope s)
{
    return (unsigned)s < sizeof g_scopes / sizeof g_scopes[0] ? g_scopes[s] : "none";
}

/* The next part of p[*pos..n) up to sep (or the end): its start and length. */
static size_t part(const char *p, size_t n, size_t *pos, char sep, size_t *len)
{
    size_t at = *pos, e = at;
    while (e < n && p[e] != sep)
        e++;
    *len = e - at;
    *pos = e < n ? e + 1 : e;
    return at;
}

static int parse_services(const char *p, size_t n, uint32_t *out)
{
    *out = 0;
    if (n > 0 && p[n - 1] == ',')
        return ERR_MALFORMED;
    size_t pos = 0;
    while (pos < n) {
        size_t len, at = part(p, n, &pos, ',', &len);
        uint32_t bit = grants_service_bit(p + at, len);
        if (!bit)
            return ERR_MALFORMED;
        *out |= bit;
    }
    return 0;
}

int grants_parse(const char *text, size_t n, struct grants *out)
{
    out->services = GRANT_DEFAULT_SERVICES;
    out->scope = GRANT_SCOPE_NONE;
    if (n > GRANTS_TEXT_MAX || (n > 0 && text[n - 1] == ';'))
        return ERR_MALFORMED;
    size_t pos = 0;
    while (pos < n) {
        size_t len, at = part(text, n, &pos, ';', &len);
        const char *s = text + at;
        if (len >= 9 && memcmp(s, "services=", 9) == 0)
            TRY(parse_services(s + 9, len - 9, &out->services));
        else if (len >= 6 && memcmp(s, "scope=", 6) == 0)
            TRY(grants_scope_parse(s + 6, len - 6, &out->scope));
        else
            return ERR_MALFORMED;
    }
    return 0;
}

int grants_format(const struct grants *g, char *out, size_t cap)
{
    size_t used = 0;
    int n = snprintf(out, cap, "services=");
    if (n < 0 || (size_t)n >= cap)
        return ERR_LIMIT;
    used = (size_t)n;
    bool first = true;
    for (size_t i = 0; i < sizeof g_services / sizeof g_services[0]; i++) {
        if (!(g->services & g_services[i].bit))
            continue;
        n = snprintf(out + used, cap - used, "%s%s", first ? "" : ",", g_services[i].name);
        if (n < 0 || (size_t)n >= cap - used)
            return ERR_LIMIT;
        used += (size_t)n;
        first = false;
    }
    n = snprintf(out + used, cap - used, ";scope=%s", grants_scope_name(g->scope));
    return n < 0 || (size_t)n >= cap - used ? ERR_LIMIT : 0;
}
