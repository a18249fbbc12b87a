/* svc_echo: the Verification SOP Class as SCP (PS3.4 Annex A, PS3.7 9.1.5): C-ECHO. */
#include "svc_echo.h"

#include <string.h>

#include "core_ctx.h"
#include "sop_registry.h"

static bool serves(const struct core_config *cfg, const char *abstract)
{
    (void)cfg;
    return strcmp(abstract, SOP_VERIFICATION) == 0;
}

static void request(struct assoc *a, const struct dimse_request *rq, struct svc_op **op,
                    uint16_t *status, const char **comment)
{
    *op = NULL;
    metric_inc(assoc_ctx(a)->m.echoes);
    if (rq->has_dataset) {
        *status = DIMSE_MISTYPED_ARGUMENT;
        *comment = "C-ECHO carries no dataset";
    } else if (strcmp(rq->cmd->affected_sop_class, SOP_VERIFICATION) != 0) {
        *status = DIMSE_SOP_CLASS_NOT_SUPPORTED;
        *comment = "C-ECHO outside the Verification SOP class";
    } else {
        *status = DIMSE_SUCCESS;
    }
}

const struct dimse_service svc_echo = {
    .name = "echo",
    .grant = GRANT_ECHO,
    .commands = {DIMSE_C_ECHO_RQ, 0},
    .serves = serves,
    .uncompressed_only = true,
    .request = request,
};
