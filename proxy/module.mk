# proxy/: event loop, listeners, client and upstream connections, relay.
PROXY_SRCS := proxy/full_config.c proxy/server.c proxy/admin.c proxy/metrics.c proxy/session.c proxy/client.c \
	proxy/upstream.c proxy/pin.c proxy/relay.c proxy/frontend.c proxy/backend.c proxy/gate.c \
	proxy/pipeline.c proxy/stmt_table.c proxy/audit_hooks.c proxy/audit_events.c proxy/cancel.c proxy/tls.c proxy/throttle.c proxy/limits.c proxy/health.c proxy/console.c proxy/io.c proxy/catalogs.c proxy/parse_async.c \
	proxy/wall.c proxy/wall_check.c proxy/pool.c proxy/pool_upkeep.c proxy/fd_limit.c proxy/pool_txn.c proxy/pool_stmts.c \
	proxy/pool_settings.c
PROXY_TESTS := tests/unit/test_protocol.c tests/unit/test_relay_units.c tests/unit/test_golden_traces.c \
	tests/unit/test_pool_upkeep.c
