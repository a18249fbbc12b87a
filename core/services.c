/* services: the DIMSE services this SCP offers, in the order negotiation asks them. A new
 * service is a new file and one line here. */
#include "dimse_service.h"

#include "svc_commit.h"
#include "svc_echo.h"
#include "svc_find.h"
#include "svc_get.h"
#include "svc_move.h"
#include "svc_store.h"

static const struct dimse_service *const g_services[] = {
    &svc_echo,
    &svc_store,
    &svc_find,
    &svc_get,
    &svc_move,
    &svc_commit,
};

const struct dimse_service *services_serving(const struct core_config *cfg, const char *abstract)
{
    for (size_t i = 0; i < sizeof g_services / sizeof g_services[0]; i++) {
        if (g_services[i]->serves(cfg, abstract))
            return g_services[i];
    }
    return NULL;
}

bool services_peer_scp(const struct core_config *cfg, const char *abstract, struct grants g)
{
    for (size_t i = 0; i < sizeof g_services / sizeof g_services[0]; i++) {
        if (g_services[i]->peer_scp && g_services[i]->peer_scp(cfg, abstract, g))
            return true;
    }
    return false;
}
