# conf/: the config snapshot, the token file, approved windows (their grammar, time zones and evaluation).
CONF_SRCS := conf/errors.c conf/rfc3339.c conf/config.c conf/config_ini.c conf/config_keys.c conf/config_check.c conf/tokens.c conf/windows.c conf/window_parse.c
CONF_TESTS := tests/unit/test_config.c tests/unit/test_tokens.c tests/unit/test_windows.c
