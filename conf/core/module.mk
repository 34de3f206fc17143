# conf/core/: the bottom layer every other one may use: the process log, the JSON text writer, random bytes, growable arrays.
CORE_SRCS := conf/core/log.c conf/core/json_writer.c conf/core/random.c conf/core/arr.c
CORE_TESTS := tests/unit/test_json_writer.c tests/unit/test_log.c tests/unit/test_random.c tests/unit/test_arr.c
