/*
 * test_golden_traces.c - golden protocol traces: one pgwarden session (the
 * real binary, ./pgwarden or $PGWARDEN_BIN) between this harness's client and
 * a scripted upstream on a unix socket, no PostgreSQL and no network. Each
 * trace says what the client sends, exactly what the upstream must then
 * receive, what it answers, and exactly what the client must then see.
 * Random names of pgwarden's own (poison portals, re-pin statements) are
 * matched by prefix; pgwarden's denials by SQLSTATE and DETAIL.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/sha.h>

#define TOKEN "golden-token-0123456789"
#define IO_TIMEOUT_MS 5000

/* One protocol message. */
typedef struct gmsg {
	char type;          /* message type byte */
	const char *body;   /* body bytes; NULL: any body (type only) */
	size_t len;         /* body length */
	const char *prefix; /* when set: the body must start with these bytes (a random name of pgwarden's) */
} gmsg;

/* The process and sockets of one run. */
typedef struct golden {
	char dir[64];          /* temp dir: config, tokens, audit log, sockets */
	pid_t pid;             /* pgwarden */
	int up_listen;         /* the scripted upstream's listening socket */
	int up;                /* the session's upstream connection, once pinned (-1 before) */
	int client;            /* our client connection */
	pthread_t acceptor;    /* answers startups and pinning until the session's upstream is ready */
	pthread_mutex_t lock;  /* guards up */
	pthread_cond_t ready;  /* signalled when up is set */
	bool stop;             /* tells the acceptor to end */
} golden;

/* ---- bytes ---------------------------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int read_full(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&pfd, 1, IO_TIMEOUT_MS) <= 0)
			return -1;
		r = read(fd, (char *)buf + got, n - got);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

static void write_full(int fd, const void *buf, size_t n)
{
	size_t off = 0;

	while (off < n) {
		ssize_t w = write(fd, (const char *)buf + off, n - off);
		if (w <= 0)
			fail_msg("write: %s", strerror(errno));
		off += (size_t)w;
	}
}

static void send_msg(int fd, char type, const void *body, size_t len)
{
	uint8_t hdr[5];

	hdr[0] = (uint8_t)type;
	put32(hdr + 1, (uint32_t)len + 4);
	write_full(fd, hdr, 5);
	if (len)
		write_full(fd, body, len);
}

static void send_all(int fd, const gmsg *m, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		send_msg(fd, m[i].type, m[i].body, m[i].len);
}

/* Read one typed message (malloc'd body); false on timeout or close. */
static bool read_msg(int fd, char *type, uint8_t **body, uint32_t *len)
{
	uint8_t hdr[5];

	if (read_full(fd, hdr, 5) != 0)
		return false;
	*type = (char)hdr[0];
	*len = get32(hdr + 1) - 4;
	*body = malloc(*len + 1);
	if (!*body || read_full(fd, *body, *len) != 0)
		return false;
	(*body)[*len] = 0;
	return true;
}

/* The value of an ErrorResponse field, or "". */
static const char *err_field(const uint8_t *body, uint32_t len, char code)
{
	uint32_t i = 0;

	while (i < len && body[i]) {
		if ((char)body[i] == code)
			return (const char *)body + i + 1;
		i += 1 + (uint32_t)strlen((const char *)body + i + 1) + 1;
	}
	return "";
}

/* Read n messages from fd and compare them with want[]. */
static void expect_msgs(int fd, const char *side, const gmsg *want, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char type;
		uint8_t *body = NULL;
		uint32_t len;

		if (!read_msg(fd, &type, &body, &len))
			fail_msg("%s: message %zu ('%c') never came", side, i, want[i].type);
		if (type != want[i].type)
			fail_msg("%s: message %zu is '%c', want '%c' (%.60s)", side, i, type, want[i].type,
				 type == 'E' ? err_field(body, len, 'M') : "");
		if (want[i].prefix && strncmp((const char *)body, want[i].prefix, strlen(want[i].prefix)) != 0)
			fail_msg("%s: message %zu '%c' does not start with %s", side, i, type, want[i].prefix);
		if (want[i].body && (len != want[i].len || memcmp(body, want[i].body, len) != 0))
			fail_msg("%s: message %zu '%c' differs: got %u bytes \"%.80s\"", side, i, type, len,
				 (const char *)body);
		free(body);
	}
}

/* Nothing more arrives on fd within a short while. */
static void expect_quiet(int fd, const char *side)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	if (poll(&pfd, 1, 200) > 0)
		fail_msg("%s: unexpected extra bytes", side);
}

/* A denial from pgwarden: ErrorResponse 42501 whose DETAIL names the rule. */
static void expect_denial(int fd, const char *rule)
{
	char type;
	uint8_t *body = NULL;
	uint32_t len;
	char detail[128];

	if (!read_msg(fd, &type, &body, &len) || type != 'E')
		fail_msg("client: no denial");
	snprintf(detail, sizeof(detail), "rule: %s", rule);
	assert_string_equal(err_field(body, len, 'C'), "42501");
	assert_string_equal(err_field(body, len, 'D'), detail);
	free(body);
}

/* ---- message builders (static storage per trace: the bodies are literals) ---- */

#define M(t, lit) ((gmsg){.type = (t), .body = (lit), .len = sizeof(lit) - 1})
#define ANY(t) ((gmsg){.type = (t)})
#define PREFIX(t, p) ((gmsg){.type = (t), .prefix = (p)})
#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the scripted upstream ----------------------------------------------------------------- */

static void up_param(int fd, const char *name, const char *value)
{
	char buf[128];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "%s%c%s", name, 0, value) + 1;

	send_msg(fd, 'S', buf, n);
}

/*
 * One upstream connection: the StartupMessage, then AuthenticationOk and
 * the usual ParameterStatus. The catalog loader's connection is refused;
 * the session's is pinned (one CommandComplete per SET) and handed over.
 */
static bool up_handshake(golden *g, int fd)
{
	uint8_t lenb[4], *pkt;
	uint32_t len;
	char type, *sql;
	uint32_t qlen;
	static const char key[8] = {0, 0, 0, 1, 0, 0, 0, 2};
	const char *p;

	if (read_full(fd, lenb, 4) != 0 || (len = get32(lenb)) < 8 || len > 10000 || !(pkt = malloc(len)))
		return false;
	if (read_full(fd, pkt, len - 4) != 0) {
		free(pkt);
		return false;
	}
	for (p = (const char *)pkt + 4; p < (const char *)pkt + len - 4 && *p; p += strlen(p) + 1) {
		if (strcmp(p, "application_name") == 0 && strcmp(p + strlen(p) + 1, "pgwarden-catalog") == 0) {
			static const char fatal[] = "SFATAL\0C28000\0Mgolden: no catalog here\0";
			send_msg(fd, 'E', fatal, sizeof(fatal));
			free(pkt);
			return false;
		}
		p += strlen(p) + 1;
	}
	free(pkt);
	send_msg(fd, 'R', "\0\0\0\0", 4);
	up_param(fd, "server_version", "15.0");
	up_param(fd, "server_encoding", "UTF8");
	up_param(fd, "client_encoding", "UTF8");
	up_param(fd, "standard_conforming_strings", "on");
	up_param(fd, "DateStyle", "ISO, MDY");
	up_param(fd, "integer_datetimes", "on");
	send_msg(fd, 'K', key, 8);
	send_msg(fd, 'Z', "I", 1);
	/*
	 * Pooling (CONTRACT §7): the login is answered without this connection;
	 * the client's first statement borrows it, and the pin comes first:
	 * SET ROLE ...; SET ...; ... one CommandComplete each.
	 */
	if (!read_msg(fd, &type, (uint8_t **)&sql, &qlen) || type != 'Q') {
		free(sql);
		return false;
	}
	for (p = sql; (p = strstr(p, "SET ")) != NULL; p += 4)
		send_msg(fd, 'C', "SET", 4);
	free(sql);
	send_msg(fd, 'Z', "I", 1);
	/* the client's warm-up statement (client_login), behind the pin of its borrow */
	if (!read_msg(fd, &type, (uint8_t **)&sql, &qlen) || type != 'Q') {
		free(sql);
		return false;
	}
	free(sql);
	send_msg(fd, 'C', "SELECT 1", 9);
	send_msg(fd, 'Z', "I", 1);
	pthread_mutex_lock(&g->lock);
	g->up = fd;
	pthread_cond_signal(&g->ready);
	pthread_mutex_unlock(&g->lock);
	return true;
}

static void *acceptor(void *arg)
{
	golden *g = arg;

	while (!g->stop) {
		struct pollfd pfd = {.fd = g->up_listen, .events = POLLIN};
		int fd;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if ((fd = accept(g->up_listen, NULL, NULL)) < 0)
			continue;
		if (!up_handshake(g, fd))
			close(fd);
		else if (g->up == fd)
			break; /* the session's upstream: the trace drives it from here */
	}
	return NULL;
}

/* ---- setup --------------------------------------------------------------------------------- */

static int unix_listen(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path) >= (int)sizeof(sun.sun_path))
		fail_msg("socket path too long: %s", path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0 || listen(fd, 8) != 0)
		fail_msg("upstream listen %s: %s", path, strerror(errno));
	return fd;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path) >= (int)sizeof(sun.sun_path)) {
		close(fd);
		return -1;
	}
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void write_config(golden *g)
{
	unsigned char h[SHA256_DIGEST_LENGTH];
	char tokens[256], ini[1024], hex[2 * SHA256_DIGEST_LENGTH + 1];
	int i;

	SHA256((const unsigned char *)TOKEN, strlen(TOKEN), h);
	for (i = 0; i < SHA256_DIGEST_LENGTH; i++)
		snprintf(hex + 2 * i, 3, "%02x", h[i]);
	snprintf(tokens, sizeof(tokens), "sha256:%s user:golden bookkeeper acme\n", hex);
	write_file(g->dir, "tokens.txt", tokens);
	snprintf(ini, sizeof(ini),
		 "[pgwarden]\nlisten = unix:%s\ntokens_file = tokens.txt\naudit_log = audit.jsonl\n"
		 "plaintext_auth = yes\nadmin_listen =\n"
		 "[target.prod]\nconninfo = host=%s port=5432 dbname=app user=svc sslmode=disable gssencmode=disable\n"
		 "environment = production\n"
		 "[target.staging]\nconninfo = host=%s port=5432 dbname=app user=svc sslmode=disable gssencmode=disable\n"
		 "environment = staging\n",
		 g->dir, g->dir, g->dir);
	write_file(g->dir, "pgwarden.ini", ini);
}

/* The client socket pgwarden listens on (.s.PGSQL.<port> in the dir, not the upstream's 5432). */
static bool client_socket_path(const golden *g, char *out, size_t outsz)
{
	DIR *d = opendir(g->dir);
	struct dirent *e;
	bool found = false;

	while (d && (e = readdir(d)) != NULL)
		if (strncmp(e->d_name, ".s.PGSQL.", 9) == 0 && strcmp(e->d_name, ".s.PGSQL.5432") != 0 &&
		    !strstr(e->d_name, ".lock")) {
			found = snprintf(out, outsz, "%s/%s", g->dir, e->d_name) < (int)outsz;
		}
	if (d)
		closedir(d);
	return found;
}

static void start_pgwarden(golden *g)
{
	const char *bin = getenv("PGWARDEN_BIN") ? getenv("PGWARDEN_BIN") : "./pgwarden";
	char ini[128], err[128];

	snprintf(ini, sizeof(ini), "%s/pgwarden.ini", g->dir);
	snprintf(err, sizeof(err), "%s/stderr", g->dir);
	if (access(bin, X_OK) != 0)
		fail_msg("%s not built (make builds it; or set PGWARDEN_BIN)", bin);
	g->pid = fork();
	assert_true(g->pid >= 0);
	if (g->pid == 0) {
		int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 2);
		dup2(fd, 1);
		execl(bin, bin, "-c", ini, (char *)NULL);
		_exit(127);
	}
}

/* Log in as user:golden to 'target', and run one statement: the pooled upstream is borrowed and pinned on the way. */
static void client_login(golden *g, const char *target)
{
	char path[200], type;
	uint8_t startup[256], *body;
	uint32_t len;
	size_t n = 8;
	int tries;
	struct timespec deadline;

	for (tries = 0; tries < 100 && (!client_socket_path(g, path, sizeof(path)) ||
					(g->client = unix_connect(path)) < 0); tries++)
		usleep(50000);
	if (g->client < 0)
		fail_msg("pgwarden did not start (see %s/stderr)", g->dir);
	n += (size_t)sprintf((char *)startup + n, "user%cuser:golden%cdatabase%c%s%c", 0, 0, 0, target, 0);
	startup[n++] = 0;
	put32(startup, (uint32_t)n);
	put32(startup + 4, 196608);
	write_full(g->client, startup, n);
	while (read_msg(g->client, &type, &body, &len)) {
		if (type == 'R' && len >= 4 && get32(body) == 3)
			send_msg(g->client, 'p', TOKEN, sizeof(TOKEN));
		free(body);
		if (type == 'E')
			fail_msg("login failed");
		if (type == 'Z')
			break;
	}
	/* A first statement borrows the pooled connection, so the traces start on a pinned one. */
	send_msg(g->client, 'Q', "SELECT 1", 9);
	while (read_msg(g->client, &type, &body, &len)) {
		free(body);
		if (type == 'E')
			fail_msg("warm-up statement failed");
		if (type == 'Z')
			break;
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	pthread_mutex_lock(&g->lock);
	while (g->up < 0 && pthread_cond_timedwait(&g->ready, &g->lock, &deadline) == 0)
		;
	pthread_mutex_unlock(&g->lock);
	if (g->up < 0)
		fail_msg("pgwarden never connected upstream (see %s/stderr)", g->dir);
}

/* The run in progress: a failed check jumps out of its trace, and the teardown stops it. */
static golden *current;

static golden *golden_start(const char *target)
{
	golden *g = calloc(1, sizeof(*g));
	char up[128], updir[128];

	assert_non_null(g);
	snprintf(g->dir, sizeof(g->dir), "/tmp/pgw-golden-XXXXXX");
	assert_non_null(mkdtemp(g->dir));
	snprintf(updir, sizeof(updir), "%s", g->dir);
	if (snprintf(up, sizeof(up), "%s/.s.PGSQL.5432", updir) >= (int)sizeof(up))
		fail_msg("path too long");
	g->up = g->client = -1;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->ready, NULL);
	g->up_listen = unix_listen(up);
	current = g;
	write_config(g);
	assert_int_equal(pthread_create(&g->acceptor, NULL, acceptor, g), 0);
	start_pgwarden(g);
	client_login(g, target);
	return g;
}

static void golden_stop(golden *g)
{
	char cmd[128];
	int st;

	current = NULL;
	g->stop = true;
	if (g->acceptor)
		pthread_join(g->acceptor, NULL);
	if (g->client >= 0)
		close(g->client);
	if (g->up >= 0)
		close(g->up);
	close(g->up_listen);
	if (g->pid > 0) {
		kill(g->pid, SIGINT);
		waitpid(g->pid, &st, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", g->dir);
	free(g);
}

/* ---- the traces ---------------------------------------------------------------------------- */

/* A plain Query: forwarded as is, answers forwarded as they are. */
static void trace_simple_query(void **state)
{
	golden *g = golden_start("staging");
	gmsg q[] = {M('Q', "SELECT 1\0")};
	gmsg ans[] = {M('T', "\0\1?column?\0\0\0\0\0\0\0\0\0\0\x17\0\4\xff\xff\xff\xff\0\0"), M('D', "\0\1\0\0\0\1" "1"),
		      M('C', "SELECT 1\0"), M('Z', "I")};

	(void)state;
	send_all(g->client, q, N(q));
	expect_msgs(g->up, "upstream", q, N(q));
	send_all(g->up, ans, N(ans));
	expect_msgs(g->client, "client", ans, N(ans));
	golden_stop(g);
}

/*
 * Issue 10's fail-open: S1 = SELECT 1; then Parse S1 (refused 42P05), Sync,
 * Close S1, Parse S1 lo_create, Sync; then Bind "" S1 / Execute on
 * production. The Bind and the Execute are denied: poisons go upstream in
 * their place, the client gets one denial and the ReadyForQuery.
 */
static void trace_issue10_sequence(void **state)
{
	golden *g = golden_start("prod");
	gmsg p1[] = {M('P', "S1\0SELECT 1\0\0\0"), M('S', "")};
	gmsg a1[] = {M('1', ""), M('Z', "I")};
	gmsg p2[] = {M('P', "S1\0SELECT 2\0\0\0"), M('S', ""), M('C', "SS1\0"), M('P', "S1\0SELECT lo_create(0)\0\0\0"),
		     M('S', "")};
	gmsg a2[] = {M('E', "SERROR\0C42P05\0Mprepared statement \"S1\" already exists\0\0"), M('Z', "I"), M('3', ""),
		     M('1', ""), M('Z', "I")};
	gmsg p3[] = {M('B', "\0S1\0\0\0\0\0\0\0"), M('E', "\0\0\0\0\0"), M('S', "")};
	/*
	 * the denied Bind's poison: the Bind itself, cut short after CreatePortal (one result format announced, none
	 * sent); the Execute after it is dropped unjudged (the server skips it after the poison's error)
	 */
	gmsg u3[] = {M('B', "\0S1\0\0\0\0\0\0\1"), M('S', "")};
	gmsg a3[] = {M('E', "SERROR\0C08P01\0Minsufficient data left in message\0\0"), M('Z', "I")};
	gmsg z[] = {M('Z', "I")};

	(void)state;
	send_all(g->client, p1, N(p1));
	expect_msgs(g->up, "upstream", p1, N(p1));
	send_all(g->up, a1, N(a1));
	expect_msgs(g->client, "client", a1, N(a1));
	send_all(g->client, p2, N(p2));
	expect_msgs(g->up, "upstream", p2, N(p2));
	send_all(g->up, a2, N(a2));
	expect_msgs(g->client, "client", a2, N(a2));
	send_all(g->client, p3, N(p3));
	expect_msgs(g->up, "upstream", u3, N(u3));
	expect_quiet(g->up, "upstream");
	send_all(g->up, a3, N(a3));
	expect_denial(g->client, "write-outside-window");
	expect_msgs(g->client, "client", z, N(z));
	expect_quiet(g->client, "client");
	golden_stop(g);
}

/*
 * A denied Bind with a parameter: its poison is the client's Bind, names,
 * formats and parameter count kept, whose first value claims more bytes
 * than the message holds (08P01 after CreatePortal, before the value is
 * read or anything planned); the value never goes upstream.
 */
static void trace_denied_bind_with_parameter(void **state)
{
	golden *g = golden_start("prod");
	gmsg p1[] = {M('P', "S1\0SELECT lo_create($1::int)\0\0\0"), M('S', "")};
	gmsg a1[] = {M('1', ""), M('Z', "I")};
	gmsg p2[] = {M('B', "\0S1\0\0\1\0\0\0\1\0\0\0\1" "5" "\0\0"), M('E', "\0\0\0\0\0"), M('S', "")};
	gmsg u2[] = {M('B', "\0S1\0\0\1\0\0\0\1\x7f\xff\xff\xff"), M('S', "")};
	gmsg a2[] = {M('E', "SERROR\0C08P01\0Minsufficient data left in message\0\0"), M('Z', "I")};
	gmsg z[] = {M('Z', "I")};

	(void)state;
	send_all(g->client, p1, N(p1));
	expect_msgs(g->up, "upstream", p1, N(p1));
	send_all(g->up, a1, N(a1));
	expect_msgs(g->client, "client", a1, N(a1));
	send_all(g->client, p2, N(p2));
	expect_msgs(g->up, "upstream", u2, N(u2));
	expect_quiet(g->up, "upstream");
	send_all(g->up, a2, N(a2));
	expect_denial(g->client, "write-outside-window");
	expect_msgs(g->client, "client", z, N(z));
	expect_quiet(g->client, "client");
	golden_stop(g);
}

/* COPY FROM STDIN with the data and CopyDone sent before the CopyInResponse arrived. */
static void trace_copy_early_done(void **state)
{
	golden *g = golden_start("staging");
	gmsg c[] = {M('Q', "COPY t FROM STDIN\0"), M('d', "1\n"), M('c', ""), M('S', ""), M('Q', "SELECT 2\0")};
	gmsg up[] = {M('Q', "COPY t FROM STDIN\0"), M('d', "1\n"), M('c', ""), M('S', ""), M('Q', "SELECT 2\0")};
	/* the Sync came after the CopyDone: the server answers it (only Syncs inside a COPY are ignored) */
	gmsg a[] = {M('G', "\0\0\1\0\0"), M('C', "COPY 1\0"), M('Z', "I"), M('Z', "I"), M('D', "\0\1\0\0\0\1" "2"),
		    M('C', "SELECT 1\0"), M('Z', "I")};

	(void)state;
	send_all(g->client, c, N(c));
	expect_msgs(g->up, "upstream", up, N(up));
	send_all(g->up, a, N(a));
	expect_msgs(g->client, "client", a, N(a));
	golden_stop(g);
}

/*
 * RESET ALL through Execute mid-batch: pgwarden re-pins right behind it,
 * inside the batch (Parse/Bind/Execute/Close of its own), and swallows
 * exactly those answers.
 */
static void trace_repin_mid_batch(void **state)
{
	golden *g = golden_start("staging");
	gmsg c[] = {M('P', "\0RESET ALL\0\0\0"), M('B', "\0\0\0\0\0\0\0\0"), M('E', "\0\0\0\0\0"),
		    M('P', "\0SELECT 1\0\0\0"), M('B', "\0\0\0\0\0\0\0\0"), M('E', "\0\0\0\0\0"), M('S', "")};
	gmsg up[] = {M('P', "\0RESET ALL\0\0\0"), M('B', "\0\0\0\0\0\0\0\0"), M('E', "\0\0\0\0\0"),
		     PREFIX('P', "pgwarden_pin_"), PREFIX('B', "pgwarden_pin_"), PREFIX('E', "pgwarden_pin_"),
		     PREFIX('C', "Spgwarden_pin_"),
		     M('P', "\0SELECT 1\0\0\0"), M('B', "\0\0\0\0\0\0\0\0"), M('E', "\0\0\0\0\0"), M('S', "")};
	gmsg a[] = {M('1', ""), M('2', ""), M('C', "RESET\0"),
		    M('1', ""), M('2', ""), M('D', "\0\1\0\0\0\1x"), M('C', "SELECT 1\0"), M('3', ""),
		    M('1', ""), M('2', ""), M('D', "\0\1\0\0\0\1" "1"), M('C', "SELECT 1\0"), M('Z', "I")};
	gmsg seen[] = {M('1', ""), M('2', ""), M('C', "RESET\0"),
		       M('1', ""), M('2', ""), M('D', "\0\1\0\0\0\1" "1"), M('C', "SELECT 1\0"), M('Z', "I")};

	(void)state;
	send_all(g->client, c, N(c));
	expect_msgs(g->up, "upstream", up, N(up));
	send_all(g->up, a, N(a));
	expect_msgs(g->client, "client", seen, N(seen));
	expect_quiet(g->client, "client");
	golden_stop(g);
}

/*
 * A denied Parse at the head of an unsynced batch: the poison stands in for
 * it, and every message after it up to the Sync is dropped unjudged (the
 * server would skip them); the client gets one denial, then ReadyForQuery.
 */
static void trace_denied_parse_in_batch(void **state)
{
	golden *g = golden_start("staging");
	gmsg c[] = {M('P', "\0SET ROLE postgres\0\0\0"), M('B', "\0\0\0\0\0\0\0\0"), M('E', "\0\0\0\0\0"), M('S', "")};
	/* the denied Parse of the unnamed statement: a failing Parse of it, so the server drops the old one too */
	gmsg up[] = {M('P', "\0pgwarden denied this statement\0\0\0"), M('S', "")};
	gmsg a[] = {M('E', "SERROR\0C42601\0Msyntax error at or near \"pgwarden\"\0\0"), M('Z', "I")};
	gmsg z[] = {M('Z', "I")};

	(void)state;
	send_all(g->client, c, N(c));
	expect_msgs(g->up, "upstream", up, N(up));
	send_all(g->up, a, N(a));
	expect_denial(g->client, "identity-change");
	expect_msgs(g->client, "client", z, N(z));
	golden_stop(g);
}

/* An error at Bind in the first of two batches pipelined: the first batch is skipped to its Sync, the second runs. */
static void trace_error_at_bind_across_syncs(void **state)
{
	golden *g = golden_start("staging");
	gmsg c[] = {M('P', "a\0SELECT $1::int\0\0\0"), M('B', "\0a\0\0\0\0\0\0\0"), M('E', "\0\0\0\0\0"), M('S', ""),
		    M('P', "\0SELECT 2\0\0\0"), M('B', "\0\0\0\0\0\0\0\0"), M('E', "\0\0\0\0\0"), M('S', "")};
	gmsg a[] = {M('1', ""), M('E', "SERROR\0C08P01\0Mbind message supplies 0 parameters\0\0"), M('Z', "I"),
		    M('1', ""), M('2', ""), M('D', "\0\1\0\0\0\1" "2"), M('C', "SELECT 1\0"), M('Z', "I")};

	(void)state;
	send_all(g->client, c, N(c));
	expect_msgs(g->up, "upstream", c, N(c));
	send_all(g->up, a, N(a));
	expect_msgs(g->client, "client", a, N(a));
	golden_stop(g);
}

/*
 * A Parse reusing a name in the same unsynced write makes the name doubtful
 * (42P05 unless the first Parse fails): the Bind that names it is not sent
 * until the server answers; pgwarden asks for the answers with a Flush.
 * The first Parse fails here, so the second defines the name and the Bind
 * goes upstream as the client sent it, not as a denial's poison.
 */
static void trace_doubtful_name_waits_for_the_answer(void **state)
{
	golden *g = golden_start("staging");
	gmsg c[] = {M('P', "a\0SELECT * FROM missing\0\0\0"), M('S', ""), M('P', "a\0SELECT 2\0\0\0"),
		    M('B', "\0a\0\0\0\0\0\0\0"), M('S', "")};
	gmsg up1[] = {c[0], c[1], c[2], M('H', "")};
	gmsg a1[] = {M('E', "SERROR\0C42P01\0Mrelation \"missing\" does not exist\0\0"), M('Z', "I"), M('1', "")};
	gmsg up2[] = {c[3], c[4]};
	gmsg a2[] = {M('2', ""), M('Z', "I")};

	(void)state;
	send_all(g->client, c, N(c));
	expect_msgs(g->up, "upstream", up1, N(up1));
	expect_quiet(g->up, "upstream");
	send_all(g->up, a1, N(a1));
	expect_msgs(g->up, "upstream", up2, N(up2));
	send_all(g->up, a2, N(a2));
	expect_msgs(g->client, "client", a1, N(a1));
	expect_msgs(g->client, "client", a2, N(a2));
	golden_stop(g);
}

/* CopyFail sent before the CopyInResponse: the server fails the COPY; the next Query is answered as itself. */
static void trace_copy_early_fail(void **state)
{
	golden *g = golden_start("staging");
	gmsg c[] = {M('Q', "COPY t FROM STDIN\0"), M('d', "1\n"), M('f', "abandon\0"), M('Q', "SELECT 2\0")};
	gmsg a[] = {M('G', "\0\0\1\0\0"), M('E', "SERROR\0C57014\0MCOPY from stdin failed: abandon\0\0"), M('Z', "I"),
		    M('D', "\0\1\0\0\0\1" "2"), M('C', "SELECT 1\0"), M('Z', "I")};

	(void)state;
	send_all(g->client, c, N(c));
	expect_msgs(g->up, "upstream", c, N(c));
	send_all(g->up, a, N(a));
	expect_msgs(g->client, "client", a, N(a));
	golden_stop(g);
}

/*
 * BEGIN; SELECT 1; SET ROLE postgres in one Query: the statements before the
 * denied one run, a poison fails in its place (so the block is aborted, E),
 * and its error becomes the denial.
 */
static void trace_denial_mid_query(void **state)
{
	golden *g = golden_start("staging");
	gmsg c[] = {M('Q', "BEGIN; SELECT 1; SET ROLE postgres\0")};
	gmsg up[] = {M('Q', "BEGIN; SELECT 1;SELECT 'pgwarden denied this statement'::pg_catalog.int4\0")};
	gmsg a[] = {M('C', "BEGIN\0"), M('D', "\0\1\0\0\0\1" "1"), M('C', "SELECT 1\0"),
		    M('E', "SERROR\0C22P02\0Minvalid input syntax for type integer\0\0"), M('Z', "E")};
	gmsg before[] = {M('C', "BEGIN\0"), M('D', "\0\1\0\0\0\1" "1"), M('C', "SELECT 1\0")};
	gmsg z[] = {M('Z', "E")};

	(void)state;
	send_all(g->client, c, N(c));
	expect_msgs(g->up, "upstream", up, N(up));
	send_all(g->up, a, N(a));
	expect_msgs(g->client, "client", before, N(before));
	expect_denial(g->client, "identity-change");
	expect_msgs(g->client, "client", z, N(z));
	golden_stop(g);
}

/* A FunctionCall is denied: a Query poison goes upstream in its place. */
static void trace_function_call_denied(void **state)
{
	golden *g = golden_start("staging");
	gmsg c[] = {{.type = 'F', .body = "\0\0\0\1\0\0\0\0\0\0", .len = 10}};
	gmsg up[] = {M('Q', "pgwarden denied this statement\0")};
	gmsg a[] = {M('E', "SERROR\0C42601\0Msyntax error at or near \"pgwarden\"\0\0"), M('Z', "I")};
	gmsg z[] = {M('Z', "I")};

	(void)state;
	send_all(g->client, c, N(c));
	expect_msgs(g->up, "upstream", up, N(up));
	send_all(g->up, a, N(a));
	expect_denial(g->client, "fastpath");
	expect_msgs(g->client, "client", z, N(z));
	golden_stop(g);
}

/* A syntax error is answered by pgwarden with the parser's error and position; a poison keeps the server in step. */
static void trace_syntax_error(void **state)
{
	golden *g = golden_start("staging");
	gmsg c[] = {M('Q', "SELECT 1; SELEC 2\0")};
	gmsg up[] = {M('Q', "SELECT 'pgwarden denied this statement'::pg_catalog.int4\0")};
	gmsg a[] = {M('E', "SERROR\0C22P02\0Minvalid input syntax for type integer\0\0"), M('Z', "I")};
	gmsg seen[] = {M('E', "SERROR\0VERROR\0C42601\0Msyntax error at or near \"SELEC\"\0P11\0\0"), M('Z', "I")};

	(void)state;
	send_all(g->client, c, N(c));
	expect_msgs(g->up, "upstream", up, N(up));
	send_all(g->up, a, N(a));
	expect_msgs(g->client, "client", seen, N(seen));
	golden_stop(g);
}

static int teardown(void **state)
{
	(void)state;
	if (current)
		golden_stop(current);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(trace_simple_query, teardown),
		cmocka_unit_test_teardown(trace_issue10_sequence, teardown),
		cmocka_unit_test_teardown(trace_denied_bind_with_parameter, teardown),
		cmocka_unit_test_teardown(trace_copy_early_done, teardown),
		cmocka_unit_test_teardown(trace_repin_mid_batch, teardown),
		cmocka_unit_test_teardown(trace_denied_parse_in_batch, teardown),
		cmocka_unit_test_teardown(trace_error_at_bind_across_syncs, teardown),
		cmocka_unit_test_teardown(trace_doubtful_name_waits_for_the_answer, teardown),
		cmocka_unit_test_teardown(trace_copy_early_fail, teardown),
		cmocka_unit_test_teardown(trace_denial_mid_query, teardown),
		cmocka_unit_test_teardown(trace_function_call_denied, teardown),
		cmocka_unit_test_teardown(trace_syntax_error, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
