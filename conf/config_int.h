/*
 * config_int.h - what the parts of config_load() share: the key tables' shape, the sections seen,
 * the load context, and the functions one part calls in another (conf/config*.c only).
 */
#ifndef PGW_CONFIG_INT_H
#define PGW_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "conf/config.h"

#define MAX_KEYS 48  /* keys in the largest section table (checked below) */
#define ECHO "%.60s" /* how much of a bad value an error quotes */

/* The kind of section the parser is in. */
typedef enum {
	SEC_MAIN,   /* [pgwarden] */
	SEC_TARGET, /* [target.NAME] */
	SEC_WINDOW, /* [window.NAME] */
	SEC_RULE,   /* [rule.NAME] */
} section_kind;

/* How a value is parsed and stored. */
typedef enum {
	KV_STRING,   /* text as written (char *) */
	KV_PATH,     /* file path (char *), resolved against the config's directory after parsing */
	KV_LISTEN,   /* host:port or unix:/dir (char *) */
	KV_BOOL,     /* yes/no/on/off/true/false/1/0 (bool) */
	KV_INT,      /* decimal integer in [min, max] (int) */
	KV_SIZE,     /* decimal byte count in [min, max] (size_t) */
	KV_ENUM,     /* one of enum_names; the index is the value (an enum, int-sized) */
	KV_SETTING,  /* a custom setting name such as app.actor_id (char *) */
	KV_ROLES,    /* comma list of role names, folded like identifiers (char **, count at off_n) */
	KV_FUNCS,    /* comma list of schema.name, folded (char **, count at off_n) */
	KV_LIST,     /* comma list kept as written (char **, count at off_n) */
	KV_TIME,     /* RFC 3339 timestamp (time_t) */
	KV_WEEKLY,   /* "tue,thu 22:00-23:30" into a pgw_window's days/minutes */
	KV_CONNINFO, /* libpq connection string (char *), checked with PQconninfoParse */
} kv_type;

#define KF_REQUIRED 1 /* the key must be given */
#define KF_EMPTY_OK 2 /* an empty value is allowed and means "off" (NULL / empty list) */

/* One key of a section table. */
typedef struct key_def {
	const char *name; /* as written in the file */
	kv_type type;
	size_t off;                    /* field in the section's struct */
	size_t off_n;                  /* lists: the size_t count field */
	long long min, max;            /* KV_INT, KV_SIZE */
	const char *const *enum_names; /* KV_ENUM: NULL-terminated */
	int flags;                     /* KF_* */
} key_def;

enum {
	TK_CONNINFO,
	TK_ENVIRONMENT,
	TK_WALLS,
	TK_WALL_KEY_FILE,
	TK_POOL_MODE,
	TK_POOL_SIZE,
	TK_POOL_MIN_IDLE
};                                                            /* indexes into target_keys */
enum { WK_TARGET, WK_START, WK_END, WK_WEEKLY, WK_TIMEZONE }; /* indexes into window_keys */
enum { RK_MATCH, RK_ACTION, RK_TARGETS };                     /* indexes into rule_keys */

/* A section seen in the file, kept until validation at the end. */
typedef struct section {
	section_kind kind;      /* [pgwarden], [target.*], [window.*] or [rule.*] */
	size_t index;           /* into c->targets / windows / rules; 0 for [pgwarden] */
	int line;               /* line of the header */
	char label[128];        /* "pgwarden", "target.prod", ... for messages */
	int key_line[MAX_KEYS]; /* line each table key was set on; 0 = not set */
} section;

/* Everything one load needs; the reader and the handler share it. */
typedef struct load_ctx {
	pgw_config *c;                   /* the snapshot being built */
	pgw_errors *e;                   /* where every error goes */
	const char *path;                /* the file as given, for messages */
	int errors;                      /* errors added by this load */
	const char *buf;                 /* the whole file */
	size_t len, pos;                 /* reader position */
	int line;                        /* line the reader handed out last (= the one the handler sees) */
	bool *line_failed;               /* per line: an error was already reported there */
	size_t n_lines;                  /* lines in buf (+1), the length of line_failed */
	section *secs;                   /* every accepted section, in file order */
	size_t n_secs;                   /* how many */
	long cur;                        /* index into secs of the current section; -1 none or skipped */
	bool seen_header;                /* a [section] line was seen (keys before it are an error) */
	const config_file_check *checks; /* the file checks of the layers above (config_load_checked) */
	size_t n_checks;                 /* how many */
} load_ctx;

/* Record one error at 'line' (0: the file as a whole); config.c. */
void cerr_at(load_ctx *lc, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* config_keys.c: the key table of a section kind (its length in *n), and one value parsed into place. */
const key_def *section_keys(section_kind kind, size_t *n);
void set_value(load_ctx *lc, const key_def *k, char *base, const char *v);

/* config_keys.c: read exactly n decimal digits at *p into *v, advancing *p; false on a non-digit. */
bool take_digits(const char **p, int n, int *v);

/* window_parse.c: "tue,thu 22:00-23:30" into w's days and minutes (false: not that grammar). */
bool parse_weekly(const char *v, pgw_window *w);
/* window_parse.c: a [window.NAME] section as a whole, with its zone loaded and its intervals prepared at 'now'. */
void check_window(load_ctx *lc, pgw_window *w, const section *s, time_t now);

/* config_ini.c: run libinih over lc->buf, sections and keys into lc->c; inih's result (0, a line, or < 0). */
int config_ini_parse(load_ctx *lc);

/* config_check.c: the checks after the whole file is read, and the token file. */
void validate(load_ctx *lc);
/* config_check.c: an error for each KF_REQUIRED key of section s that was not given. */
void check_required(load_ctx *lc, const section *s);

#endif
