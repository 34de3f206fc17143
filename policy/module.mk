# policy/: the statement classifier (facts, cache), the function catalog and the verdict.
POLICY_SRCS := policy/classify.c policy/classify_scan.c policy/fastscan.c policy/classify_json.c policy/classify_stmt.c \
	policy/classify_walk.c policy/classify_calls.c policy/classify_set.c policy/classify_grant.c policy/classify_plpgsql.c \
	policy/classify_plfix.c policy/classify_routine.c policy/classify_facts.c policy/builtin_funcs.c policy/cache.c \
	policy/catalog.c policy/catalog_judge.c policy/catalog_build.c policy/catalog_sql.c policy/catalog_hooks.c \
	policy/catalog_stale.c policy/decide.c policy/roles.c policy/cmdtag.c
POLICY_TESTS := tests/unit/test_classify.c tests/unit/test_fastscan.c tests/unit/test_catalog.c
