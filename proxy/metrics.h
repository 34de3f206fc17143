/* metrics.h - counters, gauges and the duration histogram behind /metrics (CONTRACT §6). */
#ifndef PGW_METRICS_H
#define PGW_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

/* Bucket upper bounds of pgwarden_statement_duration_seconds. */
#define METRICS_DURATION_BUCKETS 12
/* Distinct {decision, rule, target} label sets kept; more are folded into rule="other". */
#define METRICS_MAX_STATEMENT_SERIES 256

/* One pgwarden_statements_total series. */
typedef struct metrics_series {
	char *target;
	char *decision;
	char *rule; /* "" when none */
	uint64_t count;
} metrics_series;

typedef struct pgw_metrics {
	uint64_t client_connections; /* gauge: open client connections */
	uint64_t auth_failures_total;
	uint64_t bytes_from_clients;
	uint64_t bytes_to_clients;
	uint64_t upstream_connects;
	uint64_t upstream_connect_us_total;
	uint64_t duration_buckets[METRICS_DURATION_BUCKETS + 1]; /* cumulative at render; last = +Inf */
	uint64_t duration_count;
	double duration_sum_s;
	metrics_series series[METRICS_MAX_STATEMENT_SERIES];
	size_t n_series;
} pgw_metrics;

void metrics_count_statement(pgw_metrics *m, const char *target, const char *decision, const char *rule);
void metrics_observe_duration(pgw_metrics *m, int64_t duration_us);
void metrics_free(pgw_metrics *m);

/* Total statements counted with this decision ("allow"/"deny"), for logs and tests. */
uint64_t metrics_statements(const pgw_metrics *m, const char *decision);

/* Prometheus text format of the counters above plus 'audit_errors'. */
void metrics_render(const pgw_metrics *m, uint64_t audit_errors, struct evbuffer *out);

#endif
