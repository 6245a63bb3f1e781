/* api.h — mocod's HTTP server (libmicrohttpd): what mocod_main needs to start and stop it.
 *
 * One thread per connection (server-sent events and followed logs block in their thread), a
 * connection limit, a per-connection memory limit and an idle timeout. Every route of
 * docs/mocod-api.md is answered here; the work behind it is daemon/service.h.
 */
#ifndef MOCOD_API_H
#define MOCOD_API_H

#include <stddef.h>

#include "daemon/daemon_config.h"
#include "daemon/service.h"

typedef struct ApiServer ApiServer;

/* Binds cfg->listen_host:listen_port (port 0: the kernel picks one) and starts serving. NULL
 * with a message in err when the address cannot be used. cfg and svc must outlive the server. */
ApiServer *api_start(const DaemonConfig *cfg, Service *svc, char *err, size_t errlen);
/* The port actually bound. */
int api_port(const ApiServer *srv);
/* Stops accepting, ends open streams (events, followed logs) within about a second, waits for
 * every connection's thread, frees the server. Call before service_close. */
void api_stop(ApiServer *srv);

#endif
