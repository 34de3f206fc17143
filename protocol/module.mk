# protocol/: message framing, building and parsing messages, SCRAM.
PROTOCOL_SRCS := protocol/pktbuf.c protocol/pktread.c protocol/frame.c protocol/startup.c protocol/bind.c protocol/femsg.c
PROTOCOL_TESTS :=

# Authentication: SCRAM-SHA-256 (+ SASLprep via GNU libidn, Debian libidn-dev), the auth
# exchange.
PROTOCOL_SRCS += protocol/saslprep.c protocol/scram.c protocol/auth.c
PROTOCOL_TESTS += tests/unit/test_scram.c tests/unit/test_auth.c
LDLIBS += -lidn
