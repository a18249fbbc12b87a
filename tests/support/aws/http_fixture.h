/* http_fixture: a libuv loop, the scripted HTTP server of http_script.h on it and an http
 * client for unit tests of the AWS clients (test_http.c, test_s3.c). Criterion asserts: a failed
 * step ends the test. */
#ifndef GW_TEST_HTTP_FIXTURE_H
#define GW_TEST_HTTP_FIXTURE_H

#include <stdbool.h>
#include <uv.h>

#include "forwarder/aws/creds.h"
#include "forwarder/aws/http.h"
#include "http_script.h"

struct fixture {
    uv_loop_t loop;
    struct hs_server srv;
    struct http_client *http;
    char url[128];
    bool closed;
};

/* a close callback: sets the bool at arg. */
void fx_on_closed(void *arg);

/* A new loop with the server answering script[0..n-1] and a client making at most attempts
 * tries per request (short backoff and timeouts). */
void fx_start(struct fixture *f, const struct hs_canned *script, size_t n, unsigned attempts);

/* Runs the loop until *flag is true (a bounded number of turns; fails the test if not). */
void fx_run_until(struct fixture *f, const bool *flag);

/* Closes the client and the server, runs the loop empty and closes it (fails if handles remain);
 * frees what the server recorded. */
void fx_stop(struct fixture *f);

/* A credentials provider on f's client with static keys from the environment (AKIDTEST);
 * the caller closes it. */
struct creds_provider *fx_env_provider(struct fixture *f);

/* A new file under /tmp holding content[0..n-1]; returns its path (malloc'd; the caller unlinks
 * it and frees the path). */
char *fx_temp_file(const char *content, size_t n);

#endif
