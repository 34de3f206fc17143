/* fd_limit.c - raising the soft open-files limit to what max_client_conn and the pools need. */
#include "proxy/fd_limit.h"

#include <sys/resource.h>

#include "conf/core/log.h"

/* Listeners, the audit log, admin HTTP, catalog loads, health probes, wall checks, libraries. */
#define FD_SLACK 64

long fd_limit_needed(const pgw_config *cfg)
{
	long n = (long)cfg->max_client_conn + FD_SLACK;

	for (size_t i = 0; i < cfg->n_targets; i++)
		n += cfg->targets[i].pool_size;
	return n;
}

long fd_limit_raise(const pgw_config *cfg)
{
	long need = fd_limit_needed(cfg);
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -1;
	if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < need) {
		rlim_t want = rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max >= need ? (rlim_t)need : rl.rlim_max;
		struct rlimit nrl = { want, rl.rlim_max };

		if (setrlimit(RLIMIT_NOFILE, &nrl) == 0)
			rl.rlim_cur = want;
	}
	if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < need)
		log_warn("open files limit is %ld, below the %ld that max_client_conn (%d) and the pools need: "
			 "clients past it are refused; raise the hard limit (LimitNOFILE=, ulimit -Hn)",
			 (long)rl.rlim_cur, need, cfg->max_client_conn);
	return rl.rlim_cur == RLIM_INFINITY ? need : (long)rl.rlim_cur;
}
