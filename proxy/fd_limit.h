/* fd_limit.h - the open-files limit pgwarden needs: one descriptor per client and per upstream connection. */
#ifndef PGW_FD_LIMIT_H
#define PGW_FD_LIMIT_H

#include "conf/config.h"

/* Descriptors a config can use at once: max_client_conn, every target's pool_size, and some slack. */
long fd_limit_needed(const pgw_config *cfg);

/*
 * At start: raise the soft RLIMIT_NOFILE towards what the config needs (at
 * most the hard limit, which only root or the service manager may raise),
 * and warn when even that is short. Returns the soft limit now in force.
 */
long fd_limit_raise(const pgw_config *cfg);

#endif
