/* classify.c - policy_analyze(): scan, cache lookup, guarded parse, statement splitting. */
#include <pg_query.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/classify_int.h"
#include "policy/fastscan.h"

/*
 * Representation: pg_query_parse's JSON read by classify_json.c. Measured on
 * pgbench's SELECT (this machine): JSON parse 3.0 us + our reader 0.3 us, vs
 * pg_query_parse_protobuf + protobuf-c unpack 19.8 us. The walk itself is
 * under a microsecond. Only cache misses pay for any of it.
 *
 * Cache key: the scanner's significant tokens (fastscan.c's when it covers
 * the text, else pg_query_scan's: the same tokens by construction), with
 * literal VALUES left out (pgbench sends a different aid each time): token ids
 * for keywords, single characters and fixed operators; id + raw text for identifiers, operators,
 * parameters and anything else; the lexing context first. Facts that depend
 * on a literal's value (set_config('search_path') vs set_config('app.tenant_id'),
 * SET client_encoding values, DO bodies) carry PF_LITERAL_DEP: their text is
 * cached under a second key that includes every literal, and the literal-free
 * key holds only a marker saying "look there". The literal after UESCAPE is
 * always in the key: it changes how the preceding U&"..." identifier decodes.
 *
 * In front of that, an exact-text level: key = lexing context + the text's
 * bytes, value = byte ranges + facts. Facts are a pure function of (text,
 * lexing context), so this is sound by construction, and it skips the scanner
 * (libpg_query's pg_query_scan costs ~270 us for a 5 KB text). Texts are put
 * there only when freshly parsed, so a stream of texts differing in literals
 * (pgbench -M simple) does not flood it; extended-protocol Parse texts repeat
 * exactly and hit it.
 *
 * Stack guard: libpg_query turns the tree into JSON recursively with no depth
 * check; "SELECT 1+1+...+1" with 100k terms overflows an 8 MB stack (about
 * 128 bytes per level, 2 tokens per level). Nesting that grows bison's stack
 * stops at 10000 levels with a clean "memory exhausted" error. So each text
 * gets a weight = tokens + bytes of string literals (DO bodies are parsed
 * again); up to PC_INLINE_MAX_WEIGHT it is parsed on the caller's stack (needs
 * < 2 MB), above that on a thread whose stack is PC_STACK_BASE +
 * weight * PC_STACK_PER_WEIGHT (virtual; pages are touched only as used), and
 * above PC_MAX_WEIGHT it is refused as too large.
 */

/* libpg_query's own copy of the GUC (thread-local there): lex as the server does. */
extern __thread bool standard_conforming_strings;

struct policy_classifier {
	pc_cache *cache; /* NULL when disabled */
	pc_scan scan;    /* scratch: tokens of the current text */
	char *buf;       /* scratch: NUL-terminated copy of the text */
	size_t bufcap;
	size_t textlen; /* length of the text in buf */
	uint8_t *key;   /* scratch: cache key */
	size_t keycap, keylen;
	uint64_t hits, misses;
};

policy_classifier *policy_classifier_new(size_t max_cache_entries)
{
	policy_classifier *pc = calloc(1, sizeof(*pc));

	if (!pc)
		return NULL;
	if (max_cache_entries && !(pc->cache = cache_new(max_cache_entries))) {
		free(pc);
		return NULL;
	}
	return pc;
}

void policy_classifier_free(policy_classifier *pc)
{
	if (!pc)
		return;
	cache_free(pc->cache);
	scan_free(&pc->scan);
	free(pc->buf);
	free(pc->key);
	free(pc);
}

void policy_classifier_stats(const policy_classifier *pc, policy_cache_stats *out)
{
	out->hits = pc->hits;
	out->misses = pc->misses;
	cache_stats(pc->cache, &out->entries, &out->bytes);
}

/* ---- the cache key ---- */

static bool key_reserve(policy_classifier *pc, size_t more)
{
	if (pc->keylen + more > pc->keycap) {
		size_t ncap = (pc->keylen + more) * 2;
		uint8_t *nk = realloc(pc->key, ncap);

		if (!nk)
			return false;
		pc->key = nk;
		pc->keycap = ncap;
	}
	return true;
}

static void key_varint(policy_classifier *pc, uint32_t v)
{
	do {
		uint8_t b = v & 0x7F;

		v >>= 7;
		pc->key[pc->keylen++] = b | (v ? 0x80 : 0);
	} while (v);
}

/* Whether a token's raw text goes into the key (see the comment at the top). */
static bool token_text_in_key(const pc_token *t, const pc_token *prev, bool literals)
{
	if (token_is_literal(t->token))
		return literals || (prev && prev->token == TK_UESCAPE);
	if (t->kw != 0 || t->token < 256)
		return false;
	return !(t->token >= 268 && t->token <= 274); /* TYPECAST .. NOT_EQUALS: fixed text */
}

/* Build the key for the scanned text; literals: include literal values. False: out of memory. */
static bool build_key(policy_classifier *pc, const policy_lexctx *lx, bool literals)
{
	pc->keylen = 0;
	if (!key_reserve(pc, 2))
		return false;
	pc->key[pc->keylen++] = (uint8_t)((lx->standard_conforming_strings ? 1 : 0) | (literals ? 2 : 0));
	for (size_t i = 0; i < pc->scan.n; i++) {
		const pc_token *t = &pc->scan.v[i];
		bool text = token_text_in_key(t, i ? t - 1 : NULL, literals);
		/*
		 * Why up to the next token and not t->end: the scanner has reported
		 * wrong ends (U&"..." tokens); the bytes between two tokens are
		 * blanks or comments, harmless in a key, and can hide nothing.
		 */
		size_t next = i + 1 < pc->scan.n ? pc->scan.v[i + 1].start : pc->textlen;
		size_t tl = next > t->start ? next - t->start : 0;

		if (!key_reserve(pc, 10 + (text ? tl : 0)))
			return false;
		key_varint(pc, t->token);
		if (text) {
			key_varint(pc, (uint32_t)tl);
			memcpy(pc->key + pc->keylen, pc->buf + t->start, tl);
			pc->keylen += tl;
		}
	}
	return true;
}

/* ---- output ---- */

static int out_one(policy_analysis *out, size_t off, size_t len, policy_facts *f)
{
	out->v = malloc(sizeof(*out->v));
	if (!out->v) {
		policy_facts_unref(f);
		return -1;
	}
	out->v[0] = (policy_stmt){ .offset = off, .len = len, .facts = f };
	out->n = 1;
	return 0;
}

/* The whole text as one unparsable statement. */
static int out_unparsable(policy_analysis *out, size_t len, const char *msg)
{
	policy_facts *f = facts_unparsable("%s", msg);

	return f ? out_one(out, 0, len, f) : -1;
}

/* The whole text as one statement PostgreSQL's parser rejects. */
static int out_syntax_error(policy_analysis *out, size_t len, const char *msg, int position)
{
	policy_facts *f = facts_syntax_error(msg, position);

	return f ? out_one(out, 0, len, f) : -1;
}

/* Statements from cached (or fresh) token ranges, each with a new facts reference. */
static int out_from_entries(policy_classifier *pc, const pc_entry_stmt *v, size_t n, policy_analysis *out)
{
	if (n == 0)
		return 0;
	out->v = malloc(n * sizeof(*out->v));
	if (!out->v)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const pc_token *a = &pc->scan.v[v[i].first_tok], *b = &pc->scan.v[v[i].last_tok];

		policy_facts_ref(v[i].facts);
		out->v[i] = (policy_stmt){ .offset = a->start, .len = b->end - a->start, .facts = v[i].facts };
	}
	out->n = n;
	return 0;
}

/* ---- the exact-text level ---- */

/* Exact-text key: a tag byte (never equal to a token key's first byte) + the text. */
static bool build_exact_key(policy_classifier *pc, const policy_lexctx *lx)
{
	pc->keylen = 0;
	if (!key_reserve(pc, pc->textlen + 1))
		return false;
	pc->key[0] = (uint8_t)(0x80 | (lx->standard_conforming_strings ? 1 : 0));
	memcpy(pc->key + 1, pc->buf, pc->textlen);
	pc->keylen = pc->textlen + 1;
	return true;
}

/* Exact-text entries hold byte ranges in first_tok (offset) and last_tok (length). */
static int out_from_bytes(const pc_entry_stmt *v, size_t n, policy_analysis *out)
{
	if (n == 0)
		return 0;
	out->v = malloc(n * sizeof(*out->v));
	if (!out->v)
		return -1;
	for (size_t i = 0; i < n; i++) {
		policy_facts_ref(v[i].facts);
		out->v[i] = (policy_stmt){ .offset = v[i].first_tok, .len = v[i].last_tok, .facts = v[i].facts };
	}
	out->n = n;
	return 0;
}

/* Returns 1 when the exact text is cached (out filled), 0 if not, -1 out of memory. */
static int analyze_exact(policy_classifier *pc, const policy_lexctx *lx, policy_analysis *out)
{
	const pc_entry_stmt *v;
	size_t n;
	bool marker;

	if (!pc->cache || pc->textlen + 1 > PC_MAX_CACHED_KEY)
		return 0;
	if (!build_exact_key(pc, lx))
		return -1;
	if (!cache_get(pc->cache, pc->key, pc->keylen, cache_hash(pc->key, pc->keylen), &v, &n, &marker) || marker)
		return 0;
	pc->hits++;
	return out_from_bytes(v, n, out) < 0 ? -1 : 1;
}

static void put_exact(policy_classifier *pc, const policy_lexctx *lx, const pc_entry_stmt *v, size_t n)
{
	pc_entry_stmt *b = NULL;

	if (pc->textlen + 1 > PC_MAX_CACHED_KEY || (n && !(b = calloc(n, sizeof(*b)))))
		return;
	for (size_t i = 0; i < n; i++) {
		const pc_token *a = &pc->scan.v[v[i].first_tok], *z = &pc->scan.v[v[i].last_tok];

		b[i] = (pc_entry_stmt){ .first_tok = a->start, .last_tok = z->end - a->start, .facts = v[i].facts };
	}
	if (build_exact_key(pc, lx))
		cache_put(pc->cache, pc->key, pc->keylen, cache_hash(pc->key, pc->keylen), n ? b : NULL, n, false);
	free(b);
}

/* ---- the guarded parse ---- */

typedef struct parse_job {
	const char *sql; /* NUL-terminated text */
	bool scs;        /* standard_conforming_strings for this thread's scanner */
	pc_rawstmt *v;   /* result statements */
	int rc;          /* walk_parse_tree's result, or -2 with err */
	bool syntax;     /* rc -2 because the parser rejected the text */
	int cursorpos;   /* syntax: the parser's 1-based character position (0: none) */
	char err[256];   /* rc -2: why */
} parse_job;

static void run_parse(parse_job *job)
{
	PgQueryParseResult r;

	standard_conforming_strings = job->scs;
	r = pg_query_parse(job->sql);
	if (r.error) {
		snprintf(job->err, sizeof(job->err), "%s", r.error->message ? r.error->message : "syntax error");
		job->rc = -2;
		job->syntax = true;
		job->cursorpos = r.error->cursorpos;
	} else {
		job->rc = walk_parse_tree(r.parse_tree, strlen(r.parse_tree), &job->v, job->err, sizeof(job->err));
	}
	pg_query_free_parse_result(r);
}

static void *parse_thread(void *arg)
{
	run_parse(arg);
	return NULL;
}

/* Parse and walk on a stack big enough for 'weight'. */
static void guarded_parse(parse_job *job, size_t weight)
{
	pthread_attr_t attr;
	pthread_t th;
	int err;

	if (weight <= PC_INLINE_MAX_WEIGHT) {
		run_parse(job);
		return;
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, PC_STACK_BASE + weight * PC_STACK_PER_WEIGHT);
	err = pthread_create(&th, &attr, parse_thread, job);
	pthread_attr_destroy(&attr);
	if (err != 0) {
		snprintf(job->err, sizeof(job->err), "statement too large to verify now (no memory for its parse)");
		job->rc = -2;
		return;
	}
	pthread_join(th, NULL);
}

/*
 * Weight: tokens, plus the bytes of string literals when the text has a DO
 * (its body is parsed again inside the walk; other literals never are).
 */
static size_t text_weight(const pc_scan *s)
{
	size_t w = s->n, lit = 0;
	bool has_do = false;

	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].token == TK_SCONST || s->v[i].token == TK_USCONST)
			lit += s->v[i].end - s->v[i].start;
		else if (s->v[i].token == TK_DO)
			has_do = true;
	}
	return has_do ? w + lit : w;
}

/* First token at or after byte offset 'at'. */
static size_t tok_at(const pc_scan *s, size_t at)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (s->v[mid].start < at)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Map the parser's statement locations to token ranges (excluding ';'). */
static bool map_ranges(const pc_scan *s, const pc_rawstmt *raw, size_t n, pc_entry_stmt *v)
{
	for (size_t i = 0; i < n; i++) {
		size_t first = tok_at(s, (size_t)raw[i].location), last;
		size_t end = raw[i].len > 0 ? (size_t)raw[i].location + (size_t)raw[i].len : SIZE_MAX;

		last = end == SIZE_MAX ? s->n : tok_at(s, end);
		while (last > first && s->v[last - 1].token == ';')
			last--;
		if (first >= s->n || last <= first)
			return false;
		v[i] = (pc_entry_stmt){ .first_tok = (uint32_t)first,
					.last_tok = (uint32_t)(last - 1),
					.facts = raw[i].facts };
	}
	return true;
}

/* Parse, walk, cache and output a text the cache did not know. */
static int analyze_miss(policy_classifier *pc, size_t len, const policy_lexctx *lx, size_t weight, policy_analysis *out)
{
	parse_job job = { .sql = pc->buf, .scs = lx->standard_conforming_strings };
	pc_entry_stmt *v = NULL;
	bool litdep = false;
	int rc = -1, n;

	pc->misses++;
	guarded_parse(&job, weight);
	if (job.rc == -1)
		return -1;
	if (job.rc == -2 && job.syntax)
		return out_syntax_error(out, len, job.err, job.cursorpos);
	if (job.rc == -2)
		return out_unparsable(out, len, job.err);
	n = job.rc;
	if (n > 0 && !(v = calloc((size_t)n, sizeof(*v))))
		goto out;
	if (n > 0 && !map_ranges(&pc->scan, job.v, (size_t)n, v)) {
		rc = out_unparsable(out, len, "statement boundaries could not be located");
		goto out;
	}
	for (int i = 0; i < n; i++)
		litdep |= (job.v[i].facts->flags & PF_LITERAL_DEP) != 0;
	if (pc->cache && pc->keylen <= PC_MAX_CACHED_KEY) {
		if (litdep) {
			cache_put(pc->cache, pc->key, pc->keylen, cache_hash(pc->key, pc->keylen), NULL, 0, true);
			if (!build_key(pc, lx, true))
				goto out;
		}
		if (pc->keylen <= PC_MAX_CACHED_KEY)
			cache_put(pc->cache, pc->key, pc->keylen, cache_hash(pc->key, pc->keylen), v, (size_t)n, false);
		put_exact(pc, lx, v, (size_t)n);
	}
	rc = out_from_entries(pc, v, (size_t)n, out);
out:
	for (int i = 0; i < n; i++)
		policy_facts_unref(job.v[i].facts);
	free(job.v);
	free(v);
	return rc;
}

/* Look the scanned text up; returns 1 when answered from the cache, 0 on a miss, -1 out of memory. */
static int analyze_cached(policy_classifier *pc, const policy_lexctx *lx, policy_analysis *out)
{
	const pc_entry_stmt *v;
	size_t n;
	bool marker;

	if (!pc->cache)
		return 0;
	if (!cache_get(pc->cache, pc->key, pc->keylen, cache_hash(pc->key, pc->keylen), &v, &n, &marker))
		return 0;
	if (marker) {
		if (!build_key(pc, lx, true))
			return -1;
		if (!cache_get(pc->cache, pc->key, pc->keylen, cache_hash(pc->key, pc->keylen), &v, &n, &marker) ||
		    marker)
			return build_key(pc, lx, false) ? 0 : -1; /* analyze_miss starts from the literal-free key */
	}
	pc->hits++;
	return out_from_entries(pc, v, n, out) < 0 ? -1 : 1;
}

static bool copy_text(policy_classifier *pc, const char *sql, size_t len)
{
	if (len + 1 > pc->bufcap) {
		char *nb = realloc(pc->buf, len + 1);

		if (!nb)
			return false;
		pc->buf = nb;
		pc->bufcap = len + 1;
	}
	memcpy(pc->buf, sql, len);
	pc->buf[len] = '\0';
	pc->textlen = len;
	return true;
}

int policy_analyze(policy_classifier *pc, const char *sql, size_t len, const policy_lexctx *lx, policy_analysis *out)
{
	size_t weight;
	int rc;

	out->v = NULL;
	out->n = 0;
	if (len == 0)
		return 0;
	if (memchr(sql, '\0', len))
		return out_unparsable(out, len, "statement contains a NUL byte");
	if (len >= UINT32_MAX)
		return out_unparsable(out, len, "statement too large to verify");
	if (!copy_text(pc, sql, len))
		return -1;
	if ((rc = analyze_exact(pc, lx, out)) != 0)
		return rc < 0 ? -1 : 0;
	/* the fast scanner gives pg_query_scan's exact tokens or bails: the key is the same either way */
	rc = fast_scan(&pc->scan, pc->buf, pc->textlen, lx->standard_conforming_strings);
	standard_conforming_strings = lx->standard_conforming_strings;
	if (rc == FAST_BAIL)
		rc = scan_text(&pc->scan, pc->buf);
	if (rc == -1)
		return -1;
	if (rc == -2 && pc->scan.err_pos >= 0)
		return out_syntax_error(out, len, pc->scan.err, pc->scan.err_pos);
	if (rc == -2)
		return out_unparsable(out, len, pc->scan.err);
	if (pc->scan.n == 0)
		return 0;
	weight = text_weight(&pc->scan);
	if (weight > PC_MAX_WEIGHT)
		return out_unparsable(out, len, "statement too large to verify");
	if (!build_key(pc, lx, false))
		return -1;
	rc = analyze_cached(pc, lx, out);
	if (rc != 0)
		return rc < 0 ? -1 : 0;
	return analyze_miss(pc, len, lx, weight, out);
}

void policy_analysis_clear(policy_analysis *a)
{
	for (size_t i = 0; i < a->n; i++)
		policy_facts_unref(a->v[i].facts);
	free(a->v);
	a->v = NULL;
	a->n = 0;
}
