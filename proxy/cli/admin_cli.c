/*
 * admin_cli.c - `pgwarden admin [-c FILE | --url http://HOST:PORT] [--token T] COMMAND`:
 * one request to the admin console (console.c), the JSON answer on stdout.
 */
#include "proxy/cli/admin_cli.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "conf/config.h"
#include "proxy/full_config.h"

#define ADMIN_CLI_TIMEOUT_SECONDS 10

/* Where to send what, from the command line. */
typedef struct admin_args {
	const char *config;  /* -c FILE: admin_listen and admin_token from it */
	const char *url;     /* --url http://host:port */
	const char *token;   /* --token, or $PGWARDEN_ADMIN_TOKEN, or the config's admin_token */
	const char *command; /* sessions | kill | pause | resume | windows | stats | pools | health */
	const char *arg;     /* session id or target name */
} admin_args;

/* The answer, filled by the request callback. */
typedef struct admin_reply {
	struct event_base *base; /* stopped when the answer is in */
	int code;                /* HTTP status, 0 when there was no answer */
	struct evbuffer *body;   /* the answer's body */
} admin_reply;

static int usage(void)
{
	fputs("usage: pgwarden admin [-c FILE | --url http://HOST:PORT] [--token T] COMMAND\n"
	      "commands: sessions | kill SESSION_ID | pause TARGET | resume TARGET | windows | stats | pools | health\n"
	      "kill, pause and resume need the config's admin_token (--token, $PGWARDEN_ADMIN_TOKEN or -c FILE)\n",
	      stderr);
	return 2;
}

static bool parse_args(int argc, char **argv, admin_args *a)
{
	memset(a, 0, sizeof(*a));
	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
			a->config = argv[++i];
		else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc)
			a->url = argv[++i];
		else if (strcmp(argv[i], "--token") == 0 && i + 1 < argc)
			a->token = argv[++i];
		else if (!a->command)
			a->command = argv[i];
		else if (!a->arg)
			a->arg = argv[i];
		else
			return false;
	}
	if (!a->token)
		a->token = getenv("PGWARDEN_ADMIN_TOKEN");
	return a->command && (a->config || a->url);
}

/* Method and path for a command; false when unknown or its argument is missing. */
static bool request_for(const admin_args *a, enum evhttp_cmd_type *method, char *path, size_t size)
{
	static const char *const gets[] = { "sessions", "windows", "stats", "pools" };
	const char *action = NULL, *prefix = NULL;

	*method = EVHTTP_REQ_GET;
	for (size_t i = 0; i < sizeof(gets) / sizeof(gets[0]); i++)
		if (strcmp(a->command, gets[i]) == 0)
			return !a->arg && snprintf(path, size, "/%s", gets[i]) < (int)size;
	if (strcmp(a->command, "health") == 0)
		return !a->arg && snprintf(path, size, "/healthz?format=json") < (int)size;
	if (strcmp(a->command, "kill") == 0)
		prefix = "/sessions/", action = "/kill";
	else if (strcmp(a->command, "pause") == 0 || strcmp(a->command, "resume") == 0)
		prefix = "/targets/", action = strcmp(a->command, "pause") == 0 ? "/pause" : "/resume";
	if (!prefix || !a->arg || strpbrk(a->arg, "/?#%"))
		return false;
	*method = EVHTTP_REQ_POST;
	return snprintf(path, size, "%s%s%s", prefix, a->arg, action) < (int)size;
}

static void on_reply(struct evhttp_request *req, void *arg)
{
	admin_reply *r = arg;

	if (req) {
		r->code = evhttp_request_get_response_code(req);
		evbuffer_add_buffer(r->body, evhttp_request_get_input_buffer(req));
	}
	event_base_loopexit(r->base, NULL);
}

/* host and port from "host:port" or "http://host:port[/]". */
static bool split_url(const char *url, char *host, size_t size, int *port)
{
	const char *p = strncmp(url, "http://", 7) == 0 ? url + 7 : url;
	const char *colon = strrchr(p, ':');

	if (!colon || (size_t)(colon - p) >= size || sscanf(colon + 1, "%d", port) != 1 || *port <= 0)
		return false;
	memcpy(host, p, (size_t)(colon - p));
	host[colon - p] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	return host[0] != '\0';
}

static int send_request(const char *host, int port, const char *token, enum evhttp_cmd_type method, const char *path)
{
	admin_reply r = { event_base_new(), 0, evbuffer_new() };
	struct evhttp_connection *conn =
		r.base ? evhttp_connection_base_new(r.base, NULL, host, (ev_uint16_t)port) : NULL;
	struct evhttp_request *req = conn ? evhttp_request_new(on_reply, &r) : NULL;
	char auth[512];
	int rc = 1;

	if (!req || !r.body) {
		fprintf(stderr, "pgwarden admin: out of memory\n");
		goto out;
	}
	evhttp_connection_set_timeout(conn, ADMIN_CLI_TIMEOUT_SECONDS);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Host", host);
	if (token && token[0] && snprintf(auth, sizeof(auth), "Bearer %s", token) < (int)sizeof(auth))
		evhttp_add_header(evhttp_request_get_output_headers(req), "Authorization", auth);
	if (evhttp_make_request(conn, req, method, path) != 0) {
		fprintf(stderr, "pgwarden admin: cannot send the request\n");
		goto out;
	}
	event_base_dispatch(r.base);
	if (r.code == 0)
		fprintf(stderr, "pgwarden admin: no answer from %s:%d\n", host, port);
	else {
		fwrite(evbuffer_pullup(r.body, -1), 1, evbuffer_get_length(r.body),
		       r.code / 100 == 2 ? stdout : stderr);
		rc = r.code / 100 == 2 ? 0 : 1;
	}
out:
	if (conn)
		evhttp_connection_free(conn);
	if (r.body)
		evbuffer_free(r.body);
	if (r.base)
		event_base_free(r.base);
	return rc;
}

int admin_cli_main(int argc, char **argv)
{
	admin_args a;
	pgw_config *c = NULL;
	pgw_errors e = { 0 };
	enum evhttp_cmd_type method;
	char path[512], host[256];
	int port, rc;

	if (!parse_args(argc, argv, &a) || !request_for(&a, &method, path, sizeof(path)))
		return usage();
	if (a.config && !(c = full_config_load(a.config, &e))) {
		for (size_t i = 0; i < e.n; i++)
			fprintf(stderr, "%s\n", e.msgs[i]);
		errors_free(&e);
		return 1;
	}
	if (!a.url && (!c->admin_listen || !c->admin_listen[0])) {
		fprintf(stderr, "pgwarden admin: %s has no admin_listen\n", a.config);
		config_unref(c);
		return 1;
	}
	if (!split_url(a.url ? a.url : c->admin_listen, host, sizeof(host), &port)) {
		fprintf(stderr, "pgwarden admin: cannot read host:port from \"%s\"\n", a.url ? a.url : c->admin_listen);
		rc = 2;
	} else
		rc = send_request(host, port, a.token ? a.token : c ? c->admin_token : NULL, method, path);
	if (c)
		config_unref(c);
	return rc;
}
