/* metrics.c - statement counters by label set, the duration histogram, Prometheus rendering. */
#include "proxy/metrics.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

static const double bucket_bounds_s[METRICS_DURATION_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0, 10.0,
};

static bool same(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

void metrics_count_statement(pgw_metrics *m, const char *target, const char *decision, const char *rule)
{
	size_t i;
	metrics_series *se;

	if (!rule)
		rule = "";
	for (i = 0; i < m->n_series; i++) {
		se = &m->series[i];
		if (same(se->rule, rule) && same(se->decision, decision) && same(se->target, target)) {
			se->count++;
			return;
		}
	}
	if (m->n_series == METRICS_MAX_STATEMENT_SERIES)
		rule = "other"; /* bounded memory: fold the rest */
	if (m->n_series < METRICS_MAX_STATEMENT_SERIES) {
		se = &m->series[m->n_series];
		se->target = strdup(target);
		se->decision = strdup(decision);
		se->rule = strdup(rule);
		if (se->target && se->decision && se->rule) {
			se->count = 1;
			m->n_series++;
			return;
		}
		free(se->target);
		free(se->decision);
		free(se->rule);
	}
}

void metrics_observe_duration(pgw_metrics *m, int64_t us)
{
	double s = (double)us / 1e6;
	size_t i;

	for (i = 0; i < METRICS_DURATION_BUCKETS && s > bucket_bounds_s[i]; i++)
		;
	m->duration_buckets[i]++;
	m->duration_count++;
	m->duration_sum_s += s;
}

uint64_t metrics_statements(const pgw_metrics *m, const char *decision)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < m->n_series; i++)
		if (same(m->series[i].decision, decision))
			n += m->series[i].count;
	return n;
}

void metrics_free(pgw_metrics *m)
{
	size_t i;

	for (i = 0; i < m->n_series; i++) {
		free(m->series[i].target);
		free(m->series[i].decision);
		free(m->series[i].rule);
	}
	m->n_series = 0;
}

void metrics_render(const pgw_metrics *m, uint64_t audit_errors, struct evbuffer *out)
{
	uint64_t cum = 0;
	size_t i;

	evbuffer_add_printf(out, "# TYPE pgwarden_client_connections gauge\npgwarden_client_connections %llu\n",
			    (unsigned long long)m->client_connections);
	evbuffer_add_printf(out, "# TYPE pgwarden_auth_failures_total counter\npgwarden_auth_failures_total %llu\n",
			    (unsigned long long)m->auth_failures_total);
	evbuffer_add_printf(out,
			    "# TYPE pgwarden_audit_write_errors_total counter\n"
			    "pgwarden_audit_write_errors_total %llu\n",
			    (unsigned long long)audit_errors);
	evbuffer_add_printf(out, "# TYPE pgwarden_statements_total counter\n");
	/* Label values are target names and rule ids from our config: [A-Za-z0-9_.:-], nothing to escape. */
	for (i = 0; i < m->n_series; i++)
		evbuffer_add_printf(out, "pgwarden_statements_total{decision=\"%s\",rule=\"%s\",target=\"%s\"} %llu\n",
				    m->series[i].decision, m->series[i].rule, m->series[i].target,
				    (unsigned long long)m->series[i].count);
	evbuffer_add_printf(out, "# TYPE pgwarden_statement_duration_seconds histogram\n");
	for (i = 0; i < METRICS_DURATION_BUCKETS; i++) {
		cum += m->duration_buckets[i];
		evbuffer_add_printf(out, "pgwarden_statement_duration_seconds_bucket{le=\"%g\"} %llu\n",
				    bucket_bounds_s[i], (unsigned long long)cum);
	}
	cum += m->duration_buckets[METRICS_DURATION_BUCKETS];
	evbuffer_add_printf(out,
			    "pgwarden_statement_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
			    "pgwarden_statement_duration_seconds_sum %.6f\n"
			    "pgwarden_statement_duration_seconds_count %llu\n",
			    (unsigned long long)cum, m->duration_sum_s, (unsigned long long)m->duration_count);
	evbuffer_add_printf(out,
			    "# TYPE pgwarden_bytes_relayed_total counter\n"
			    "pgwarden_bytes_relayed_total{direction=\"from_clients\"} %llu\n"
			    "pgwarden_bytes_relayed_total{direction=\"to_clients\"} %llu\n",
			    (unsigned long long)m->bytes_from_clients, (unsigned long long)m->bytes_to_clients);
	evbuffer_add_printf(out,
			    "# TYPE pgwarden_upstream_connects_total counter\n"
			    "pgwarden_upstream_connects_total %llu\n"
			    "# TYPE pgwarden_upstream_connect_seconds_total counter\n"
			    "pgwarden_upstream_connect_seconds_total %.6f\n",
			    (unsigned long long)m->upstream_connects, (double)m->upstream_connect_us_total / 1e6);
}
