# conf/: the config snapshot, the token file; policy/windows.c (approved windows) is built here too.
CONF_SRCS := conf/errors.c conf/rfc3339.c conf/config.c conf/tokens.c policy/windows.c
CONF_TESTS := tests/unit/test_config.c tests/unit/test_tokens.c tests/unit/test_windows.c
