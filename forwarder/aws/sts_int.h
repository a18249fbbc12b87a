/* sts_int: what sts.c (the client, AssumeRole) and sts_creds.c (the provider) share. */
#ifndef GW_STS_INT_H
#define GW_STS_INT_H

#include "aws_client.h"
#include "sts.h"

struct sts_client {
    struct aws_client ac;
    char *url; /* the endpoint with "/" */
    size_t busy; /* AssumeRole calls in flight */
};

#endif
