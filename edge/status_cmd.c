#include "status_cmd.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "edge_config.h"
#include "net/addr.h"

#define STATUS_MAX (4u * 1024u * 1024u + 8192u) /* the listener caps bodies at 4 MiB */
#define TIMEOUT_S 5

static const char g_usage[] =
    "usage: dicom-edge status [--config FILE] [--json]\n"
    "  Asks the running edge (GET /status on its http_listen address) for its live\n"
    "  associations by client, the last hour's refusals by reason, its certificates' and\n"
    "  CRLs' dates, the policy generation in force and its audit queue. --json prints the\n"
    "  document as the edge sent it.\n";

/* The address to ask: http_listen, with a wildcard host replaced by loopback. */
static int target(const char *http_listen, struct sockaddr_storage *ss)
{
    TRY(addr_parse(http_listen, ss));
    if (ss->ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        if (in->sin_addr.s_addr == htonl(INADDR_ANY))
            in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (ss->ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
            in6->sin6_addr = in6addr_loopback;
    }
    return 0;
}

/* GET /status from ss into *body (malloc'd, NUL-terminated). 0 or -1 with a message printed. */
static int fetch(const struct sockaddr_storage *ss, const char *shown, char **body)
{
    *body = NULL;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {.tv_sec = TIMEOUT_S};
    socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
                                                sizeof(struct sockaddr_in);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
        connect(fd, (const struct sockaddr *)ss, len) < 0) {
        fprintf(stderr, "dicom-edge status: cannot reach the edge at %s: %s (is it running?)\n",
                shown, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    static const char rq[] = "GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    char *buf = malloc(STATUS_MAX + 1);
    size_t have = 0;
    bool sent = buf && write(fd, rq, sizeof rq - 1) == (ssize_t)(sizeof rq - 1);
    while (sent && have < STATUS_MAX) {
        ssize_t n = read(fd, buf + have, STATUS_MAX - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            sent = n == 0;
            break;
        }
        have += (size_t)n;
    }
    close(fd);
    if (!sent || have >= STATUS_MAX) {
        fprintf(stderr, "dicom-edge status: no complete answer from %s\n", shown);
        free(buf);
        return -1;
    }
    buf[have] = '\0';
    const char *sep = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.1 200 ", 13) != 0 || !sep) {
        const char *eol = memchr(buf, '\r', have);
        fprintf(stderr, "dicom-edge status: %s answered: %.*s\n", shown,
                (int)(eol ? (size_t)(eol - buf) : have < 80 ? have : 80), buf);
        free(buf);
        return -1;
    }
    size_t off = (size_t)(sep + 4 - buf);
    memmove(buf, buf + off, have - off + 1);
    *body = buf;
    return 0;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static bool flag(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static const char *iso(double t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t <= 0 || !gmtime_r(&tt, &tm) || strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, n, "-");
    return out;
}

static void print_dates(const cJSON *arr, const char *when_key, bool crl)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        char t[32];
        double w = num(it, when_key), days = num(it, "days_left");
        const char *mark = w <= 0        ? "UNREADABLE" :
                           days < 0      ? (crl ? "STALE" : "EXPIRED") :
                           days < (crl ? 2 : 30) ? "SOON" : "";
        printf("  %-24s %-21s %6.0f  %-10s %s\n", str(it, "what"), iso(w, t, sizeof t), days,
               mark, str(it, "path"));
    }
}

static void print_human(const cJSON *s)
{
    char t[32];
    const cJSON *rev = cJSON_GetObjectItemCaseSensitive(s, "reverse");
    double upd = num(s, "now") - num(s, "started_at");
    long up = upd > 0 ? (long)upd : 0;
    printf("dicom-edge %s: %s, up %ldh %02ldm; listen %s", str(s, "version"),
           flag(s, "draining") ? "DRAINING" : "serving", up / 3600, up % 3600 / 60,
           str(s, "listen"));
    if (flag(rev, "enabled"))
        printf(", reverse %s", str(rev, "listen"));
    printf("\n");
    const cJSON *pol = cJSON_GetObjectItemCaseSensitive(s, "policy");
    printf("Policy: generation %.0f, loaded %s, %.0f clients, %.0f routes, %.0f devices\n"
           "  %s (sha256 %s)\n",
           num(pol, "generation"), iso(num(pol, "loaded_at"), t, sizeof t), num(pol, "clients"),
           num(pol, "routes"), num(pol, "devices"), str(pol, "path"), str(pol, "sha256"));
    printf("Associations: %.0f from modalities (%.0f connections), %.0f on the reverse path "
           "(%.0f connections)\n",
           num(s, "associations"), num(s, "connections"), num(rev, "associations"),
           num(rev, "connections"));
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(s, "clients")) {
        printf("  %-32s %-8s %4.0f\n", str(it, "client"), str(it, "path"),
               num(it, "associations"));
    }
    printf("Refused in the last hour: %.0f\n", num(s, "refused_last_hour"));
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(s, "refusals_last_hour")) {
        printf("  %-8s %-36s %6.0f\n", str(it, "path"), str(it, "reason"), num(it, "count"));
    }
    printf("Certificates (not after, days left):\n");
    print_dates(cJSON_GetObjectItemCaseSensitive(s, "certificates"), "not_after", false);
    printf("CRLs (next update, days left):\n");
    print_dates(cJSON_GetObjectItemCaseSensitive(s, "crls"), "next_update", true);
    const cJSON *au = cJSON_GetObjectItemCaseSensitive(s, "audit");
    if (!flag(au, "enabled")) {
        printf("Audit trail: off\n");
        return;
    }
    printf("Audit trail: %.0f queued, %.0f dropped, %.0f refused%s\n", num(au, "queued"),
           num(au, "dropped"), num(au, "refused"),
           flag(au, "blocking") ? ", BLOCKING (fail_closed, queue full)" : "");
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(au, "repositories")) {
        printf("  %-32s %-4s backlog %.0f\n", str(it, "name"), flag(it, "up") ? "up" : "DOWN",
               num(it, "backlog"));
    }
}

int status_cmd_main(int argc, char **argv)
{
    const char *config = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config = argv[i] + 9;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--help") == 0) {
            fputs(g_usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "dicom-edge status: unknown argument '%s'\n\n%s", argv[i], g_usage);
            return 2;
        }
    }
    struct edge_config *cfg = calloc(1, sizeof *cfg);
    struct wbuf errs;
    wbuf_init(&errs, 64u * 1024u);
    int rc = cfg ? edge_config_load(config, cfg, &errs) : ERR_NOMEM;
    struct sockaddr_storage ss;
    if (rc == 0 && (!cfg->http_listen[0] || target(cfg->http_listen, &ss) < 0)) {
        fprintf(stderr, "dicom-edge status: http_listen is off in the configuration; the status "
                        "is served there\n");
        rc = ERR_CONFIG;
    } else if (rc < 0) {
        fprintf(stderr, "dicom-edge status: configuration invalid:\n%.*s", (int)errs.len,
                errs.p ? (const char *)errs.p : "");
    }
    wbuf_cleanup(&errs);
    char *body = NULL;
    if (rc == 0)
        rc = fetch(&ss, cfg->http_listen, &body);
    free(cfg);
    if (rc < 0)
        return 1;
    cJSON *doc = cJSON_Parse(body);
    if (!cJSON_IsObject(doc)) {
        fprintf(stderr, "dicom-edge status: the answer is not a JSON object\n");
        rc = -1;
    } else if (json) {
        fputs(body, stdout);
    } else {
        print_human(doc);
    }
    cJSON_Delete(doc);
    free(body);
    return rc < 0 ? 1 : 0;
}
