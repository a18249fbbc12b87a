/* gw-aws's read commands, shared between tool_gw_aws_read.c (qido, wado, the shared helpers)
 * and tool_gw_aws_readb.c (read: the aws backend's read side). Internal to gw-aws. */
#ifndef GW_TOOL_GW_AWS_READ_INT_H
#define GW_TOOL_GW_AWS_READ_INT_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "common/dcm_ds.h"
#include "tool_gw_aws_read.h"

/* One command's state: its loop, clients, and for wado/get the output and the pacing. */
struct tctx {
    uv_loop_t loop;
    struct http_client *http;
    struct creds_provider *chain, *scoped, *use;
    struct sts_client *sts;
    struct dw_client *dw;
    struct aws_read *reader;
    int exit;
    /* wado / get */
    FILE *out;
    EVP_MD_CTX *md;
    uint64_t bytes, rate, window_bytes, window_start;
    uv_timer_t timer;
    bool timer_live;
    struct dw_op *dwop;
    struct backend_read_op *bop;
    uint64_t results;
    bool pause_each;
};

/* Print the usage hint; 2. */
int gwr_usage(void);
/* The exit status for an error: 0, 4 ERR_LIMIT, 5 -EACCES, else 1. */
int gwr_exit_for(int err);
/* "ok", "EACCES" or the HTTP client's name of err. */
const char *gwr_err_name(int err);
/* Free everything t holds (each member may be unset) and close its loop. */
void gwr_close(struct tctx *t);
/* A result's UIDs as one "result ..." line. */
void gwr_print_uids(const struct dcm_ds *ds);
/* Dataset bytes into t's file and digest, paced to t->rate: 0, 1 paused (resumed by a timer),
 * or -EIO. */
int gwr_take(struct tctx *t, const uint8_t *p, size_t n);
/* The "done err=... bytes=... sha256=... peak_rss_kb=... why=..." line. */
void gwr_print_end(struct tctx *t, int err, const char *why);
/* Start t's digest and open path for writing ("-": no file). 0, ERR_NOMEM or -errno. */
int gwr_open_out(struct tctx *t, const char *path);
/* gw-aws read CONFIG ... (tool_gw_aws_readb.c); the exit status. */
int gwr_cmd_read(int argc, char **argv, const struct gw_aws_opts *o);

#endif
