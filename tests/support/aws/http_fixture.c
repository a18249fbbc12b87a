/* http_fixture: see http_fixture.h. */
#include "http_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fx_on_closed(void *arg)
{
    *(bool *)arg = true;
}

void fx_start(struct fixture *f, const struct hs_canned *script, size_t n, unsigned attempts)
{
    memset(f, 0, sizeof(*f));
    cr_assert_eq(uv_loop_init(&f->loop), 0);
    hs_start(&f->loop, &f->srv, script, n);
    struct http_opts o;
    http_opts_default(&o);
    o.base_delay_ms = 5;
    o.max_delay_ms = 20;
    o.max_attempts = attempts;
    o.connect_timeout_ms = 2000;
    o.request_timeout_ms = 5000;
    cr_assert_eq(http_client_new(&f->loop, &o, &f->http), 0);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d/x", f->srv.port);
}

void fx_run_until(struct fixture *f, const bool *flag)
{
    for (int i = 0; i < 100000 && !*flag; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    cr_assert(*flag, "loop ran dry before the outcome");
}

void fx_stop(struct fixture *f)
{
    if (f->http)
        http_client_close(f->http, fx_on_closed, &f->closed);
    fx_run_until(f, &f->closed);
    hs_close_all(&f->loop, &f->srv);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&f->loop), 0, "handles left on the loop");
    hs_free(&f->srv);
}

struct creds_provider *fx_env_provider(struct fixture *f)
{
    setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
    unsetenv("AWS_SESSION_TOKEN");
    struct creds_provider *cp;
    cr_assert_eq(creds_provider_new(f->http, &cp), 0);
    return cp;
}

char *fx_temp_file(const char *content, size_t n)
{
    char *path = strdup("/tmp/gw-http-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, content, n), (ssize_t)n);
    close(fd);
    return path;
}
