/* test_classify.c - classifier and verdicts: statements x (prod outside/inside a window, staging). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "conf/config.h"
#include "policy/classify_int.h"
#include "policy/policy.h"

#define OK "allow"
#define WOW "write-outside-window"
#define ID "identity-change"
#define GR "grant-to-protected-role"
#define OPQ "opaque-sql"
#define RW "read-write-override"
#define UNP "unparsable"
#define FILE_RULE "rule:no-file-access"

#define DATA "tests/unit/data/policy/pgwarden.ini"

/* One statement text and the expected verdict on each target/clock. */
typedef struct verdict_case {
	const char *sql;
	const char *prod_out; /* production, no window open */
	const char *prod_in;  /* production, sec-42 open for user:brent */
	const char *staging;
} verdict_case;

static const verdict_case cases[] = {
	/* reads */
	{ "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;", OK, OK, OK },
	{ "select 1", OK, OK, OK },
	{ "SELECT * FROM t WHERE a IN (SELECT b FROM u) ORDER BY 1 LIMIT 5", OK, OK, OK },
	{ "WITH x AS (SELECT 1) SELECT * FROM x", OK, OK, OK },
	{ "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < 5) SELECT * FROM r", OK, OK,
	  OK },
	{ "SELECT count(*), sum(a), max(b) FROM t GROUP BY c HAVING count(*) > 1", OK, OK, OK },
	{ "SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t", OK, OK, OK },
	{ "SELECT now(), current_timestamp, current_user, coalesce(a, 1), nullif(a, 2) FROM t", OK, OK, OK },
	{ "SELECT extract(epoch FROM now()), date_trunc('day', now()) AT TIME ZONE 'UTC'", OK, OK, OK },
	{ "SELECT substring('abc' from 2), trim(' x '), position('b' in 'abc'), lower('A')", OK, OK, OK },
	{ "SELECT jsonb_build_object('a', 1)->>'a', to_jsonb(t) FROM t", OK, OK, OK },
	{ "SELECT * FROM generate_series(1, 10) g", OK, OK, OK },
	{ "SELECT a::int, CAST(b AS text), ARRAY[1,2], (1,2), CASE WHEN a THEN 1 ELSE 2 END FROM t", OK, OK,
	  OK },
	{ "SELECT * FROM a JOIN b USING (id) LEFT JOIN c ON c.id = a.id", OK, OK, OK },
	{ "SELECT EXISTS (SELECT 1 FROM t), a IS NULL, b IS TRUE FROM t", OK, OK, OK },
	{ "TABLE t", OK, OK, OK },
	{ "VALUES (1), (2)", OK, OK, OK },
	{ "SELECT 1 UNION SELECT 2 INTERSECT SELECT 3", OK, OK, OK },
	{ "SELECT pg_catalog.lower('X')", OK, OK, OK },
	{ "SELECT current_setting('app.tenant_id')", OK, OK, OK },
	{ "SELECT currval('s'), lastval()", OK, OK, OK },
	{ "SELECT table_to_xml('t', true, true, '')", OK, OK, OK },
	{ "SELECT * FROM t TABLESAMPLE SYSTEM (10)", OK, OK, OK },
	{ "SELECT $1::int", OK, OK, OK },
	/* comments, quoting, strings */
	{ "/* hello */ SELECT 1 -- trailing", OK, OK, OK },
	{ "SELECT 'it''s', E'a\\'b', $$dollar ; set role x$$, $q$x$q$", OK, OK, OK },
	{ "SELECT U&'d\\0061t\\+000061', B'101', X'1F', 1.5e3", OK, OK, OK },
	{ "SELECT \"Quoted Col\" FROM \"My Table\"", OK, OK, OK },
	{ "SELECT 'set role x; drop table t'", OK, OK, OK },
	{ "SELECT E'\\x41'", OK, OK, OK },
	/* writes */
	{ "INSERT INTO t VALUES (1)", WOW, OK, OK },
	{ "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 1", WOW, OK, OK },
	{ "DELETE FROM t", WOW, OK, OK },
	{ "INSERT INTO t SELECT * FROM u ON CONFLICT DO NOTHING", WOW, OK, OK },
	{ "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN UPDATE SET b = 1", WOW, OK, OK },
	{ "SELECT 1 INTO newt", WOW, OK, OK },
	{ "SELECT * INTO TEMP x FROM t", WOW, OK, OK },
	{ "CREATE TABLE x (a int)", WOW, OK, OK },
	{ "CREATE TEMP TABLE x (a int)", WOW, OK, OK },
	{ "CREATE TABLE x AS SELECT 1", WOW, OK, OK },
	{ "DROP TABLE t", WOW, OK, OK },
	{ "ALTER TABLE t ADD COLUMN b int", WOW, OK, OK },
	{ "TRUNCATE t", WOW, OK, OK },
	{ "CREATE INDEX ON t (a)", WOW, OK, OK },
	{ "VACUUM t", WOW, OK, OK },
	{ "ANALYZE t", WOW, OK, OK },
	{ "LOCK TABLE t", WOW, OK, OK },
	{ "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'select 1'", WOW, OK, OK },
	{ "CREATE VIEW v AS SELECT 1", WOW, OK, OK },
	{ "COMMENT ON TABLE t IS 'x'", WOW, OK, OK },
	{ "REFRESH MATERIALIZED VIEW mv", WOW, OK, OK },
	{ "CHECKPOINT", WOW, OK, OK },
	{ "NOTIFY ch, 'x'", WOW, OK, OK },
	{ "SELECT pg_notify('ch', 'x')", WOW, OK, OK },
	{ "REVOKE SELECT ON t FROM anon", WOW, OK, OK },
	/* two-phase commit outlives the session and its pooled connection: refused everywhere */
	{ "PREPARE TRANSACTION 'x'", OPQ, OPQ, OPQ },
	{ "COMMIT PREPARED 'x'", OPQ, OPQ, OPQ },
	{ "ROLLBACK PREPARED 'x'", OPQ, OPQ, OPQ },
	/* writable CTEs and locking */
	{ "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", WOW, OK, OK },
	{ "WITH i AS (INSERT INTO t VALUES (1) RETURNING a) SELECT a FROM i", WOW, OK, OK },
	{ "SELECT * FROM (WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM u) s", WOW, OK, OK },
	{ "SELECT * FROM t FOR UPDATE", WOW, OK, OK },
	{ "SELECT * FROM t FOR SHARE SKIP LOCKED", WOW, OK, OK },
	{ "SELECT * FROM t FOR NO KEY UPDATE NOWAIT", WOW, OK, OK },
	{ "SELECT * FROM (SELECT * FROM t FOR UPDATE) s", WOW, OK, OK },
	{ "SELECT * FROM t WHERE a IN (SELECT a FROM u FOR KEY SHARE)", WOW, OK, OK },
	/* EXPLAIN */
	{ "EXPLAIN SELECT * FROM t", OK, OK, OK },
	{ "EXPLAIN INSERT INTO t VALUES (1)", OK, OK, OK },
	{ "EXPLAIN (COSTS off) DELETE FROM t", OK, OK, OK },
	{ "EXPLAIN ANALYZE SELECT * FROM t", OK, OK, OK },
	{ "EXPLAIN ANALYZE INSERT INTO t VALUES (1)", WOW, OK, OK },
	{ "EXPLAIN (ANALYZE, BUFFERS) UPDATE t SET a = 1", WOW, OK, OK },
	{ "EXPLAIN ANALYZE SELECT nextval('s')", WOW, OK, OK },
	{ "EXPLAIN SELECT set_config('role', 'x', false)", ID, ID, ID },
	{ "EXPLAIN SELECT dblink('c', 'select 1')", OPQ, OPQ, OPQ },
	/* transaction control */
	{ "BEGIN", OK, OK, OK },
	{ "BEGIN ISOLATION LEVEL SERIALIZABLE", OK, OK, OK },
	{ "BEGIN READ ONLY", OK, OK, OK },
	{ "START TRANSACTION READ ONLY, DEFERRABLE", OK, OK, OK },
	{ "COMMIT", OK, OK, OK },
	{ "END", OK, OK, OK },
	{ "ROLLBACK", OK, OK, OK },
	{ "ABORT", OK, OK, OK },
	{ "SAVEPOINT a", OK, OK, OK },
	{ "RELEASE SAVEPOINT a", OK, OK, OK },
	{ "ROLLBACK TO SAVEPOINT a", OK, OK, OK },
	{ "COMMIT AND CHAIN", OK, OK, OK },
	{ "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", OK, OK, OK },
	{ "SET TRANSACTION READ ONLY", OK, OK, OK },
	/* read-write override */
	{ "BEGIN READ WRITE", RW, OK, OK },
	{ "START TRANSACTION READ WRITE", RW, OK, OK },
	{ "BEGIN ISOLATION LEVEL SERIALIZABLE, READ WRITE", RW, OK, OK },
	{ "SET TRANSACTION READ WRITE", RW, OK, OK },
	{ "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", RW, OK, OK },
	{ "SET default_transaction_read_only = off", RW, OK, OK },
	{ "SET default_transaction_read_only TO 'false'", RW, OK, OK },
	{ "SET transaction_read_only = 0", RW, OK, OK },
	{ "RESET default_transaction_read_only", RW, OK, OK },
	{ "SET default_transaction_read_only TO DEFAULT", RW, OK, OK },
	{ "SELECT set_config('default_transaction_read_only', 'off', false)", RW, OK, OK },
	{ "SELECT set_config('transaction_read_only', 'off', true)", RW, OK, OK },
	{ "SET default_transaction_read_only = on", OK, OK, OK },
	{ "SET LOCAL transaction_read_only = true", OK, OK, OK },
	/* cursors, prepared statements, listen */
	{ "DECLARE c CURSOR FOR SELECT * FROM t", OK, OK, OK },
	{ "DECLARE c CURSOR WITH HOLD FOR SELECT 1", OK, OK, OK },
	{ "DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE", WOW, OK, OK },
	{ "FETCH 10 FROM c", OK, OK, OK },
	{ "MOVE NEXT IN c", OK, OK, OK },
	{ "CLOSE c", OK, OK, OK },
	{ "CLOSE ALL", OK, OK, OK },
	{ "SELECT cursor_to_xml('c', 10, true, true, '')", OK, OK, OK },
	{ "PREPARE q(int) AS SELECT * FROM t WHERE a = $1", OK, OK, OK },
	{ "PREPARE w(int) AS UPDATE t SET a = $1", WOW, OK, OK },
	{ "PREPARE r AS SELECT set_config('role', 'x', false)", ID, ID, ID },
	{ "EXECUTE q(1)", OK, OK, OK },
	{ "EXECUTE q(nextval('s'))", WOW, OK, OK },
	/* EXPLAIN EXECUTE, CREATE TABLE AS EXECUTE: the relay judges the stored statement (PF_EXECUTE) */
	{ "EXPLAIN EXECUTE q(1)", OK, OK, OK },
	{ "EXPLAIN (ANALYZE, BUFFERS) EXECUTE q", OK, OK, OK },
	{ "EXPLAIN EXECUTE q(nextval('s'))", WOW, OK, OK },
	{ "EXPLAIN EXECUTE q(set_config('role', 'x', false))", ID, ID, ID },
	{ "CREATE TEMP TABLE x AS EXECUTE q(1)", WOW, OK, OK },
	{ "CREATE TABLE pg_settings AS EXECUTE q", ID, ID, ID },
	{ "DO $$ BEGIN EXPLAIN EXECUTE q; END $$", OPQ, OPQ, OPQ },
	{ "DEALLOCATE q", OK, OK, OK },
	{ "DEALLOCATE ALL", OK, OK, OK },
	{ "LISTEN ch", OK, OK, OK },
	{ "UNLISTEN *", OK, OK, OK },
	{ "SHOW search_path", OK, OK, OK },
	{ "SHOW ALL", OK, OK, OK },
	{ "DISCARD PLANS", OK, OK, OK },
	/* harmless and other SETs */
	{ "SET search_path = public, app", OK, OK, OK },
	{ "SET statement_timeout = '5s'", OK, OK, OK },
	{ "SET LOCAL statement_timeout TO 1000", OK, OK, OK },
	{ "SET application_name = 'x'", OK, OK, OK },
	{ "SET DateStyle = ISO, MDY", OK, OK, OK },
	{ "SET TIME ZONE 'UTC'", OK, OK, OK },
	{ "SET SCHEMA 'app'", OK, OK, OK },
	{ "RESET statement_timeout", OK, OK, OK },
	{ "SELECT set_config('search_path', 'app', false)", OK, OK, OK },
	{ "SELECT set_config('statement_timeout', '5s', true)", OK, OK, OK },
	{ "SET work_mem = '64MB'", OK, OK, OK },
	/* ordinary session commands are not writes (issue 13) */
	{ "SET app.request_id = 'x'", OK, OK, OK },
	{ "SELECT set_config('app.request_id', 'x', false)", OK, OK, OK },
	{ "SET plpgsql.variable_conflict = use_column", OK, OK, OK },
	{ "SET vacuum_cost_delay = 0", OK, OK, OK },
	{ "SET vacuum_cost_limit TO 2000", OK, OK, OK },
	{ "SET synchronize_seqscans TO off", OK, OK, OK },
	{ "SET lock_timeout = 0", OK, OK, OK },
	{ "SET idle_in_transaction_session_timeout = 0", OK, OK, OK },
	{ "SET extra_float_digits TO 3", OK, OK, OK },
	{ "SET quote_all_identifiers = true", OK, OK, OK },
	{ "SET row_security = off", OK, OK, OK },
	{ "SET check_function_bodies = false", OK, OK, OK },
	{ "SET enable_seqscan = off", OK, OK, OK },
	{ "SET xmloption = content", OK, OK, OK },
	{ "SET default_tablespace = ''", OK, OK, OK },
	{ "RESET plpgsql.check_asserts", OK, OK, OK },
	{ "SELECT pg_catalog.set_config('search_path', '', false)", OK, OK, OK },
	{ "SET CONSTRAINTS ALL DEFERRED", OK, OK, OK },
	{ "SET CONSTRAINTS s.c IMMEDIATE", OK, OK, OK },
	{ "LOCK TABLE t IN ACCESS SHARE MODE", OK, OK, OK },
	{ "LOCK TABLE ONLY s.t, u IN ACCESS SHARE MODE NOWAIT", OK, OK, OK },
	{ "LOCK TABLE t IN ROW SHARE MODE", WOW, OK, OK },
	{ "LOCK TABLE t IN ROW EXCLUSIVE MODE", WOW, OK, OK },
	{ "LOCK TABLE t IN SHARE MODE", WOW, OK, OK },
	{ "LOCK t", WOW, OK, OK },
	{ "LOAD 'plpgsql'", OK, OK, OK },
	{ "LOAD '$libdir/plpgsql'", OK, OK, OK },
	{ "LOAD 'auto_explain'", WOW, OK, OK },
	{ "LOAD '$libdir/plugins/x'", WOW, OK, OK },
	{ "REINDEX TABLE t", WOW, OK, OK },
	{ "CLUSTER t USING i", WOW, OK, OK },
	{ "VACUUM (ANALYZE) t", WOW, OK, OK },
	{ "NOTIFY ch, 'x'", WOW, OK, OK },
	{ "SELECT pg_notify('ch', 'x')", WOW, OK, OK },
	{ "SELECT lo_create(0)", WOW, OK, OK },
	{ "SELECT lo_put(1, 0, 'x')", WOW, OK, OK },
	{ "SELECT lo_truncate(lo_open(1, 131072), 0)", WOW, OK, OK },
	{ "SET TRANSACTION READ WRITE", RW, OK, OK },
	{ "SET default_transaction_read_only = off", RW, OK, OK },
	{ "SET transaction_read_only TO false", RW, OK, OK },
	{ "SET session_replication_role = replica", WOW, OK, OK },
	/* session reset */
	{ "RESET ALL", OK, OK, OK },
	{ "DISCARD ALL", OK, OK, OK },
	/* identity change, every spelling */
	{ "SET ROLE admin", ID, ID, ID },
	{ "SET role = 'admin'", ID, ID, ID },
	{ "SET LOCAL ROLE admin", ID, ID, ID },
	{ "SET SESSION ROLE admin", ID, ID, ID },
	{ "SET ROLE NONE", ID, ID, ID },
	{ "RESET ROLE", ID, ID, ID },
	{ "SET \"role\" TO admin", ID, ID, ID },
	{ "SET SESSION AUTHORIZATION admin", ID, ID, ID },
	{ "SET SESSION AUTHORIZATION DEFAULT", ID, ID, ID },
	{ "RESET SESSION AUTHORIZATION", ID, ID, ID },
	{ "SET app.tenant_id = 'other'", ID, ID, ID },
	{ "SET APP.TENANT_ID = 'other'", ID, ID, ID },
	{ "SET \"app\".\"tenant_id\" = 'other'", ID, ID, ID },
	{ "SET LOCAL app.actor_id = 'user:root'", ID, ID, ID },
	{ "RESET app.tenant_id", ID, ID, ID },
	{ "SET app.tenant_id TO DEFAULT", ID, ID, ID },
	{ "SET request.jwt.claims = '{}'", ID, ID, ID },
	{ "SELECT set_config('app.tenant_id', 'other', false)", ID, ID, ID },
	{ "SELECT set_config('APP.Tenant_Id', 'other', false)", ID, ID, ID },
	{ "select SET_CONFIG('app.tenant_id', 'other', false)", ID, ID, ID },
	{ "SELECT \"set_config\"('app.tenant_id', 'other', false)", ID, ID, ID },
	{ "SELECT pg_catalog.set_config('app.actor_id', 'x', true)", ID, ID, ID },
	{ "SELECT set_config('role', 'admin', false)", ID, ID, ID },
	{ "SELECT set_config('session_authorization', 'admin', false)", ID, ID, ID },
	{ "SELECT set_config('request.jwt.claims', '{}', false)", ID, ID, ID },
	{ "SELECT set_config(name, 'x', false) FROM names", ID, ID, ID },
	/* set_config fed by pg_settings' name column: the WHERE clause decides which names reach it */
	{ "SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings "
	  "WHERE name = 'restrict_nonsystem_relation_kind'", OK, OK, OK },
	{ "SELECT pg_catalog.set_config(s.name, 'v', false) FROM pg_catalog.pg_settings s "
	  "WHERE 'restrict_nonsystem_relation_kind' = s.name AND s.context = 'user'", OK, OK, OK },
	{ "SELECT set_config(pg_settings.name, '', false) FROM pg_settings WHERE name = 'search_path'", OK, OK,
	  OK },
	{ "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'app.tenant_id'", ID, ID, ID },
	{ "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'ROLE'", ID, ID, ID },
	{ "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'work_mem' OR true", ID, ID, ID },
	{ "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name <> 'work_mem'", ID, ID, ID },
	{ "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name LIKE 'work_mem'", ID, ID, ID },
	{ "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name OPERATOR(public.=) 'work_mem'", ID, ID,
	  ID },
	{ "SELECT set_config(name, 'x', false) FROM pg_settings WHERE lower(name) = 'work_mem'", ID, ID, ID },
	{ "SELECT set_config(name, 'x', false) FROM pg_settings", ID, ID, ID },
	{ "SELECT set_config(name, 'x', false) FROM public.pg_settings WHERE name = 'work_mem'", ID, ID, ID },
	{ "SELECT set_config(name, 'x', false) FROM pg_settings, t WHERE name = 'work_mem'", ID, ID, ID },
	{ "SELECT set_config(name, 'x', false) FROM pg_settings s WHERE s.name = 'work_mem'", OK, OK, OK },
	{ "SELECT set_config(name, 'x', false) FROM pg_settings s WHERE s.name = 'role'", ID, ID, ID },
	{ "SELECT set_config(s.name, 'x', false) FROM pg_settings s WHERE pg_settings.name = 'work_mem'", ID, ID,
	  ID },
	{ "SELECT set_config(t.name, 'x', false) FROM pg_settings WHERE name = 'work_mem'", ID, ID, ID },
	{ "SELECT 1 FROM pg_settings WHERE name = 'work_mem' AND set_config(name, 'x', false) <> ''", ID, ID, ID },
	{ "SELECT (SELECT set_config(name, 'x', false) FROM t) FROM pg_settings WHERE name = 'work_mem'", ID, ID,
	  ID },
	{ "WITH pg_settings AS (SELECT 'role' AS name) SELECT set_config(name, 'x', false) FROM pg_settings "
	  "WHERE name = 'work_mem'", ID, ID, ID },
	{ "SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'work_mem' "
	  "UNION SELECT set_config(name, 'x', false) FROM pg_settings", ID, ID, ID },
	{ "CREATE TEMP TABLE pg_settings (name text)", ID, ID, ID },
	{ "CREATE TEMP VIEW pg_settings AS SELECT 'role' AS name", ID, ID, ID },
	{ "ALTER TABLE t RENAME TO pg_settings", ID, ID, ID },
	{ "ALTER VIEW v RENAME TO pg_settings", ID, ID, ID },
	{ "ALTER TABLE t RENAME COLUMN a TO pg_settings", WOW, OK, OK },
	{ "SELECT set_config('app.' || 'tenant_id', 'x', false)", ID, ID, ID },
	{ "SELECT set_config('app.tenant_id'::text, 'x', false)", ID, ID, ID },
	{ "SELECT set_config(setting_name => 'app.tenant_id', new_value => 'x', is_local => false)", ID, ID,
	  ID },
	{ "SELECT set_config($1, $2, false)", ID, ID, ID },
	{ "SELECT * FROM set_config('app.tenant_id', 'x', false)", ID, ID, ID },
	{ "SELECT 1 WHERE set_config('app.tenant_id', 'x', false) IS NOT NULL", ID, ID, ID },
	{ "WITH c AS (SELECT set_config('app.tenant_id', 'x', false)) SELECT * FROM c", ID, ID, ID },
	{ "SELECT (SELECT set_config('app.tenant_id', 'x', false))", ID, ID, ID },
	{ "SELECT lower(set_config('role', 'admin', false))", ID, ID, ID },
	{ "SELECT coalesce(NULL, set_config('app.actor_id', 'x', false))", ID, ID, ID },
	{ "UPDATE pg_settings SET setting = 'admin' WHERE name = 'role'", ID, ID, ID },
	{ "UPDATE pg_catalog.pg_settings SET setting = 'x' WHERE name = 'app.tenant_id'", ID, ID, ID },
	{ "ALTER ROLE app_rw SET role = 'admin'", ID, ID, ID },
	{ "ALTER DATABASE app SET app.tenant_id = 'x'", ID, ID, ID },
	{ "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET role = admin AS 'select 1'", ID, ID, ID },
	{ "DO $$ BEGIN PERFORM set_config('app.tenant_id', 'x', false); END $$", ID, ID, ID },
	{ "DO $$ BEGIN SET ROLE admin; END $$", ID, ID, ID },
	{ "DO $$ DECLARE v text := set_config('role', 'admin', false); BEGIN NULL; END $$", ID, ID, ID },
	{ "DO $$ BEGIN IF set_config('app.actor_id', 'x', true) IS NULL THEN NULL; END IF; END $$", ID, ID,
	  ID },
	/* lexing */
	{ "SET standard_conforming_strings = off", UNP, UNP, UNP },
	{ "SET standard_conforming_strings = on", OK, OK, OK },
	{ "SET client_encoding = 'SJIS'", UNP, UNP, UNP },
	{ "SET NAMES 'BIG5'", UNP, UNP, UNP },
	{ "SET client_encoding = 'LATIN1'", UNP, UNP, UNP },
	{ "SET client_encoding = 'UTF8'", OK, OK, OK },
	{ "SET client_encoding TO 'utf-8'", OK, OK, OK },
	{ "RESET client_encoding", UNP, UNP, UNP },
	{ "SET backslash_quote = on", UNP, UNP, UNP },
	{ "SELECT set_config('standard_conforming_strings', 'off', false)", UNP, UNP, UNP },
	{ "SELECT set_config('client_encoding', 'UTF8', false)", OK, OK, OK },
	/* grants */
	{ "GRANT SELECT ON t TO anon", GR, GR, GR },
	{ "GRANT SELECT ON t TO ANON", GR, GR, GR },
	{ "GRANT SELECT ON t TO \"ANON\"", GR, GR, GR },
	{ "GRANT SELECT ON t TO \"anon\"", GR, GR, GR },
	{ "GRANT SELECT ON t TO U&\"\\0061non\"", GR, GR, GR },
	{ "GRANT SELECT ON t TO U&\"!0061non\" UESCAPE '!'", GR, GR, GR },
	{ "GRANT SELECT ON t TO public", GR, GR, GR },
	{ "GRANT SELECT ON t TO PUBLIC", GR, GR, GR },
	{ "GRANT SELECT ON t TO \"public\"", GR, GR, GR },
	{ "GRANT SELECT ON t TO guest", GR, GR, GR },
	{ "GRANT SELECT ON t TO reporting, anon", GR, GR, GR },
	{ "GRANT ALL ON ALL TABLES IN SCHEMA s TO anon", GR, GR, GR },
	{ "GRANT EXECUTE ON FUNCTION f() TO anon", GR, GR, GR },
	{ "GRANT USAGE ON SCHEMA s TO anon", GR, GR, GR },
	{ "GRANT UPDATE (a) ON t TO anon WITH GRANT OPTION", GR, GR, GR },
	{ "GRANT admin TO anon", GR, GR, GR },
	{ "GRANT admin TO \"ANON\" WITH ADMIN OPTION", GR, GR, GR },
	{ "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO anon", GR, GR, GR },
	{ "ALTER DEFAULT PRIVILEGES IN SCHEMA s GRANT SELECT ON TABLES TO public", GR, GR, GR },
	{ "ALTER GROUP admins ADD USER anon", GR, GR, GR },
	{ "CREATE ROLE x ROLE anon", GR, GR, GR },
	{ "CREATE SCHEMA s CREATE TABLE t (a int) GRANT SELECT ON t TO anon", GR, GR, GR },
	{ "CREATE SCHEMA s AUTHORIZATION anon", GR, GR, GR },
	{ "ALTER TABLE t OWNER TO anon", GR, GR, GR },
	{ "ALTER FUNCTION f() OWNER TO guest", GR, GR, GR },
	{ "REASSIGN OWNED BY x TO anon", GR, GR, GR },
	{ "DO $$ BEGIN GRANT SELECT ON t TO anon; END $$", GR, GR, GR },
	{ "GRANT SELECT ON t TO reporting", WOW, OK, OK },
	{ "GRANT admin TO reporting", WOW, OK, OK },
	{ "ALTER DEFAULT PRIVILEGES REVOKE SELECT ON TABLES FROM anon", WOW, OK, OK },
	/* protected roles by other means (issue 14 hole 3): their name, attributes and memberships */
	{ "ALTER GROUP admins DROP USER anon", GR, GR, GR },
	{ "GRANT anon TO reporting", GR, GR, GR },
	{ "REVOKE anon FROM reporting", GR, GR, GR },
	{ "ALTER ROLE anon RENAME TO x", GR, GR, GR },
	{ "ALTER USER \"ANON\" RENAME TO x", GR, GR, GR },
	{ "ALTER ROLE x RENAME TO anon", GR, GR, GR },
	{ "ALTER ROLE x RENAME TO \"Guest\"", GR, GR, GR },
	{ "ALTER ROLE anon LOGIN PASSWORD 'x'", GR, GR, GR },
	{ "ALTER ROLE guest WITH SUPERUSER", GR, GR, GR },
	{ "ALTER USER anon VALID UNTIL 'infinity'", GR, GR, GR },
	{ "ALTER ROLE anon BYPASSRLS", GR, GR, GR },
	{ "ALTER ROLE anon SET statement_timeout = 0", GR, GR, GR },
	{ "ALTER ROLE anon IN DATABASE app SET search_path = x", GR, GR, GR },
	{ "ALTER ROLE anon RESET ALL", GR, GR, GR },
	{ "CREATE ROLE anon", GR, GR, GR },
	{ "CREATE USER guest PASSWORD 'x'", GR, GR, GR },
	{ "CREATE GROUP \"ANON\"", GR, GR, GR },
	{ "CREATE ROLE x IN ROLE anon", GR, GR, GR },
	{ "CREATE ROLE x IN GROUP guest", GR, GR, GR },
	{ "CREATE ROLE x ADMIN anon", GR, GR, GR },
	{ "CREATE ROLE x USER guest", GR, GR, GR },
	{ "DROP ROLE anon", GR, GR, GR },
	{ "DROP ROLE IF EXISTS x, guest", GR, GR, GR },
	{ "DROP USER anon", GR, GR, GR },
	{ "DROP OWNED BY anon", GR, GR, GR },
	{ "REASSIGN OWNED BY anon TO x", GR, GR, GR },
	{ "CREATE POLICY p ON t TO anon USING (true)", GR, GR, GR },
	{ "CREATE POLICY p ON t AS PERMISSIVE FOR SELECT TO x, guest USING (true)", GR, GR, GR },
	{ "CREATE POLICY p ON t USING (true)", GR, GR, GR },
	{ "CREATE POLICY p ON t TO public USING (true)", GR, GR, GR },
	{ "ALTER POLICY p ON t TO anon", GR, GR, GR },
	{ "ALTER POLICY p ON t TO x, \"ANON\" USING (true)", GR, GR, GR },
	{ "DO $$ BEGIN ALTER ROLE anon LOGIN; END $$", GR, GR, GR },
	{ "DO $$ BEGIN CREATE POLICY p ON t TO anon USING (true); END $$", GR, GR, GR },
	{ "CREATE DATABASE d OWNER anon", GR, GR, GR },
	{ "CREATE DATABASE d WITH OWNER = \"GUEST\"", GR, GR, GR },
	{ "CREATE TABLESPACE ts OWNER anon LOCATION '/x'", GR, GR, GR },
	{ "CREATE USER MAPPING FOR anon SERVER s OPTIONS (user 'x')", GR, GR, GR },
	{ "ALTER USER MAPPING FOR PUBLIC SERVER s OPTIONS (SET password 'x')", GR, GR, GR },
	{ "CREATE DATABASE d OWNER reporting", WOW, OK, OK },
	{ "CREATE USER MAPPING FOR reporting SERVER s", WOW, OK, OK },
	{ "DROP USER MAPPING FOR anon SERVER s", WOW, OK, OK },
	{ "CREATE POLICY p ON t TO reporting USING (true)", WOW, OK, OK },
	{ "CREATE POLICY p ON t AS RESTRICTIVE TO anon USING (false)", WOW, OK, OK },
	{ "ALTER POLICY p ON t USING (true)", WOW, OK, OK },
	{ "ALTER POLICY p ON t RENAME TO q", WOW, OK, OK },
	{ "CREATE ROLE x", WOW, OK, OK },
	{ "ALTER ROLE x NOLOGIN", WOW, OK, OK },
	{ "ALTER ROLE x RENAME TO y", WOW, OK, OK },
	{ "DROP ROLE x", WOW, OK, OK },
	{ "REVOKE admin FROM reporting", WOW, OK, OK },
	/* pgwarden's own login roles (hole 4): every target's, on every target */
	{ "ALTER ROLE pgwarden_svc CONNECTION LIMIT 0", ID, ID, ID },
	{ "ALTER ROLE pgwarden_svc NOLOGIN", ID, ID, ID },
	{ "ALTER USER PGWARDEN_SVC PASSWORD 'x'", ID, ID, ID },
	{ "ALTER ROLE pgwarden_svc VALID UNTIL '2000-01-01'", ID, ID, ID },
	{ "ALTER ROLE pgwarden_svc RENAME TO x", ID, ID, ID },
	{ "ALTER ROLE x RENAME TO pgwarden_svc", ID, ID, ID },
	{ "ALTER ROLE stage_svc NOLOGIN", ID, ID, ID },
	{ "ALTER ROLE pgwarden_svc SET default_transaction_read_only = off", ID, ID, ID },
	{ "ALTER ROLE pgwarden_svc IN DATABASE app SET statement_timeout = 1", ID, ID, ID },
	{ "ALTER ROLE ALL SET statement_timeout = 1", ID, ID, ID },
	{ "ALTER ROLE SESSION_USER NOLOGIN", ID, ID, ID },
	{ "ALTER ROLE CURRENT_USER CONNECTION LIMIT 0", ID, ID, ID },
	{ "DROP ROLE pgwarden_svc", ID, ID, ID },
	{ "REVOKE app_rw FROM pgwarden_svc", ID, ID, ID },
	{ "GRANT admin TO pgwarden_svc", ID, ID, ID },
	{ "REASSIGN OWNED BY pgwarden_svc TO x", ID, ID, ID },
	{ "DROP OWNED BY stage_svc", ID, ID, ID },
	{ "DO $$ BEGIN ALTER ROLE pgwarden_svc NOLOGIN; END $$", ID, ID, ID },
	/* the roles of token records: who an actor is upstream */
	{ "ALTER ROLE app_rw RENAME TO x", ID, ID, ID },
	{ "ALTER ROLE x RENAME TO app_rw", ID, ID, ID },
	{ "DROP ROLE app_rw", ID, ID, ID },
	{ "GRANT admin TO app_rw", ID, ID, ID },
	{ "REVOKE app_rw FROM x", ID, ID, ID },
	{ "ALTER ROLE APP_RW CREATEROLE", ID, ID, ID },
	{ "CREATE ROLE x IN ROLE app_rw", ID, ID, ID },
	/* opaque SQL and server files */
	{ "DO $$ BEGIN EXECUTE 'select 1'; END $$", OPQ, OPQ, OPQ },
	{ "DO $$ DECLARE r record; BEGIN FOR r IN EXECUTE 'select 1' LOOP END LOOP; END $$", OPQ, OPQ, OPQ },
	{ "DO $$ BEGIN EXECUTE format('set role %I', 'x'); END $$", OPQ, OPQ, OPQ },
	{ "DO LANGUAGE plpython3u $$ plpy.execute('x') $$", OPQ, OPQ, OPQ },
	{ "DO $$ BEGIN PREPARE x AS SELECT 1; END $$", OPQ, OPQ, OPQ },
	{ "SELECT query_to_xml('select 1', true, true, '')", OPQ, OPQ, OPQ },
	{ "SELECT query_to_xmlschema('select 1', true, true, '')", OPQ, OPQ, OPQ },
	{ "SELECT * FROM ts_stat('select v from t')", OPQ, OPQ, OPQ },
	{ "SELECT ts_rewrite('a'::tsquery, 'select q, s from aliases')", OPQ, OPQ, OPQ },
	{ "SELECT ts_rewrite('a & b'::tsquery, 'a'::tsquery, 'c'::tsquery)", OK, OK, OK },
	{ "SELECT * FROM dblink('dbname=x', 'select 1') AS t(a int)", OPQ, OPQ, OPQ },
	{ "SELECT dblink_exec('dbname=x', 'delete from t')", OPQ, OPQ, OPQ },
	{ "SELECT public.dblink_exec('dbname=x', 'delete from t')", OPQ, OPQ, OPQ },
	{ "SELECT ext.dblink_connect('c', 'dbname=x')", OPQ, OPQ, OPQ },
	{ "SELECT lo_import('/etc/passwd')", OPQ, OPQ, OPQ },
	{ "SELECT lo_export(1234, '/tmp/x')", OPQ, OPQ, OPQ },
	{ "SELECT pg_ls_dir('.')", OPQ, OPQ, OPQ },
	{ "COPY t FROM PROGRAM 'curl x'", OPQ, OPQ, OPQ },
	{ "COPY t TO PROGRAM 'cat'", OPQ, OPQ, OPQ },
	{ "COPY t TO '/tmp/t.csv'", OPQ, OPQ, OPQ },
	{ "COPY t FROM '/tmp/t.csv' WITH (FORMAT csv)", OPQ, OPQ, OPQ },
	{ "COPY (SELECT 1) TO '/tmp/x'", OPQ, OPQ, OPQ },
	/* rules (pg_read_file is also server file access; the rule comes after opaque-sql) */
	{ "SELECT pg_read_file('/etc/passwd')", OPQ, OPQ, OPQ },
	{ "SELECT 'pg_read_file'", FILE_RULE, FILE_RULE, FILE_RULE },
	{ "SELECT * FROM pgbench_history", OK, OK, OK },
	/* COPY */
	{ "COPY t TO STDOUT", OK, OK, OK },
	{ "COPY (SELECT * FROM t) TO STDOUT WITH (FORMAT csv)", OK, OK, OK },
	{ "COPY t FROM STDIN", WOW, OK, OK },
	{ "COPY (DELETE FROM t RETURNING *) TO STDOUT", WOW, OK, OK },
	/* functions */
	{ "SELECT nextval('s')", WOW, OK, OK },
	{ "SELECT setval('s', 1)", WOW, OK, OK },
	{ "SELECT pg_advisory_lock(1)", WOW, OK, OK },
	{ "SELECT pg_try_advisory_xact_lock(1)", WOW, OK, OK },
	{ "SELECT pg_advisory_unlock_all()", OK, OK, OK },
	{ "SELECT lo_creat(-1)", WOW, OK, OK },
	{ "SELECT lo_unlink(1234)", WOW, OK, OK },
	{ "SELECT txid_current()", WOW, OK, OK },
	{ "SELECT pg_terminate_backend(123)", WOW, OK, OK },
	{ "SELECT my_func(1)", WOW, OK, OK },
	{ "SELECT app.my_func(1)", WOW, OK, OK },
	{ "SELECT \"Lower\"('x')", WOW, OK, OK },
	{ "SELECT public.lower('x')", WOW, OK, OK },
	{ "SELECT * FROM my_srf()", WOW, OK, OK },
	{ "SELECT public.safe_fn(1)", OK, OK, OK },
	{ "SELECT safe_fn(1)", OK, OK, OK },
	{ "CALL p(1)", WOW, OK, OK },
	{ "CALL public.safe_fn(1)", OK, OK, OK },
	{ "CALL lower('x')", WOW, OK, OK },
	{ "CALL p(nextval('s'))", WOW, OK, OK },
	/* DO blocks that are analysable */
	{ "DO $$ BEGIN RAISE NOTICE 'hi'; END $$", OK, OK, OK },
	{ "DO $$ DECLARE n int; BEGIN SELECT count(*) INTO n FROM t; RAISE NOTICE '%', n; END $$", OK, OK,
	  OK },
	{ "DO $$ BEGIN INSERT INTO t VALUES (1); END $$", WOW, OK, OK },
	{ "DO $$ DECLARE x int := 1; BEGIN x := x + nextval('s'); END $$", WOW, OK, OK },
	{ "DO $$ BEGIN PERFORM pg_sleep(0); END $$", OK, OK, OK },
	{ "DO $$ BEGIN DO $i$ BEGIN SET ROLE admin; END $i$; END $$", ID, ID, ID },
	/* valid PL/pgSQL the catalog-less reader rejects (issue 14 item 7): cursors, declared collations */
	{ "DO $$ DECLARE c refcursor; r record; BEGIN OPEN c FOR SELECT 1; FETCH c INTO r; CLOSE c; END $$", OK, OK,
	  OK },
	{ "DO $$ DECLARE c CURSOR FOR SELECT 1 AS a; r record; BEGIN OPEN c; FETCH NEXT FROM c INTO r; "
	  "MOVE BACKWARD 1 IN c; CLOSE c; END $$", OK, OK, OK },
	{ "DO $$ DECLARE c refcursor := 'x'; BEGIN OPEN c NO SCROLL FOR SELECT * FROM t; END $$", OK, OK, OK },
	{ "DO $$ DECLARE c CURSOR (k int) FOR SELECT k; BEGIN FOR r IN c(1) LOOP RAISE NOTICE '%', r.k; "
	  "END LOOP; END $$", OK, OK, OK },
	{ "DO $$ DECLARE c CURSOR FOR SELECT 1; BEGIN <<l>> FOR r IN c LOOP EXIT l; END LOOP; END $$", OK, OK, OK },
	{ "DO $$ DECLARE t text COLLATE \"C\" := 'a'; BEGIN RAISE NOTICE '%', t; END $$", OK, OK, OK },
	{ "DO $$ DECLARE t text COLLATE pg_catalog.\"default\" NOT NULL := 'a'; BEGIN NULL; END $$", OK, OK, OK },
	{ "DO $$ DECLARE c refcursor; BEGIN OPEN c FOR DELETE FROM t RETURNING *; END $$", WOW, OK, OK },
	{ "DO $$ DECLARE c refcursor; BEGIN OPEN c FOR SELECT set_config('role', 'x', false); END $$", ID, ID,
	  ID },
	{ "DO $$ DECLARE c CURSOR FOR SELECT set_config('app.tenant_id', 'x', false); BEGIN OPEN c; END $$", ID,
	  ID, ID },
	{ "DO $$ DECLARE c CURSOR (k int) FOR SELECT k; BEGIN OPEN c(nextval('s')); END $$", WOW, OK, OK },
	{ "DO $$ DECLARE c CURSOR (k int) FOR SELECT k; BEGIN FOR r IN c(nextval('s')) LOOP END LOOP; END $$",
	  WOW, OK, OK },
	{ "DO $$ DECLARE c refcursor; BEGIN OPEN c FOR EXECUTE 'select 1'; END $$", OPQ, OPQ, OPQ },
	{ "DO $$ DECLARE c CURSOR FOR SELECT 1; BEGIN OPEN c; FETCH ABSOLUTE nextval('s') FROM c; END $$", OPQ,
	  OPQ, OPQ },
	/* unparsable */
	{ "SELEC 1", UNP, UNP, UNP },
	{ "SELECT 'unterminated", UNP, UNP, UNP },
	{ "SELECT (1", UNP, UNP, UNP },
	/* multi-statement texts: the first denial names the rule */
	{ "SELECT 1; SELECT 2", OK, OK, OK },
	{ "SELECT 1; SET ROLE admin", ID, ID, ID },
	{ "BEGIN; UPDATE t SET a = 1; COMMIT", WOW, OK, OK },
	{ "SELECT 1; GRANT SELECT ON t TO anon; SELECT 2", GR, GR, GR },
};

/* ---- fixtures ---- */

typedef struct fixture {
	pgw_config *cfg;
	policy_classifier *pc;
	pgw_token who;
	time_t outside, inside;
} fixture;

static time_t utc(int y, int mo, int d, int h, int mi)
{
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi };

	return timegm(&tm);
}

static int setup(void **state)
{
	fixture *fx = calloc(1, sizeof(*fx));
	pgw_errors e = { 0 };

	fx->cfg = config_load(DATA, &e);
	for (size_t i = 0; i < e.n; i++)
		fprintf(stderr, "%s\n", e.msgs[i]);
	errors_free(&e);
	if (!fx->cfg)
		return -1;
	fx->pc = policy_classifier_new(4096);
	fx->who.actor = "user:brent";
	fx->who.role = "app_rw";
	fx->outside = utc(2026, 11, 24, 12, 0);
	fx->inside = utc(2026, 11, 24, 22, 30);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fixture *fx = *state;

	policy_classifier_free(fx->pc);
	config_unref(fx->cfg);
	free(fx);
	return 0;
}

/* The verdict for a whole text: the first statement denied, else allow (with the first logged rule). */
static const char *text_verdict(fixture *fx, policy_classifier *pc, const char *sql, const char *target,
				time_t now, const policy_lexctx *lx, policy_verdict *last)
{
	static const policy_lexctx on = { .standard_conforming_strings = true };
	policy_subject s = {
		.cfg = fx->cfg, .target = config_find_target(fx->cfg, target), .who = &fx->who, .now = now
	};
	policy_analysis a;
	const char *r = OK;

	assert_non_null(s.target);
	assert_int_equal(policy_analyze(pc, sql, strlen(sql), lx ? lx : &on, &a), 0);
	for (size_t i = 0; i < a.n; i++) {
		policy_verdict v;

		policy_decide(&s, a.v[i].facts, sql + a.v[i].offset, a.v[i].len, &v);
		if (last)
			policy_verdict_copy(last, &v);
		if (v.deny) {
			assert_string_equal(v.detail + strlen("rule: "), v.rule);
			assert_memory_equal(v.message, "pgwarden: ", 10);
			r = v.rule;
			break;
		}
	}
	policy_analysis_clear(&a);
	return r;
}

static void check_case(fixture *fx, const verdict_case *c, int pass)
{
	const char *got;

	got = text_verdict(fx, fx->pc, c->sql, "prod", fx->outside, NULL, NULL);
	if (strcmp(got, c->prod_out) != 0)
		fail_msg("pass %d prod outside: %s\n  want %s got %s", pass, c->sql, c->prod_out, got);
	got = text_verdict(fx, fx->pc, c->sql, "prod", fx->inside, NULL, NULL);
	if (strcmp(got, c->prod_in) != 0)
		fail_msg("pass %d prod inside: %s\n  want %s got %s", pass, c->sql, c->prod_in, got);
	got = text_verdict(fx, fx->pc, c->sql, "staging", fx->outside, NULL, NULL);
	if (strcmp(got, c->staging) != 0)
		fail_msg("pass %d staging: %s\n  want %s got %s", pass, c->sql, c->staging, got);
}

/* Every case twice: the second pass is answered from the cache and must agree. */
static void test_verdict_table(void **state)
{
	fixture *fx = *state;

	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			check_case(fx, &cases[i], pass);
	}
}

/* The same table with the cache off. */
static void test_verdict_table_uncached(void **state)
{
	fixture *fx = *state;
	policy_classifier *saved = fx->pc;

	fx->pc = policy_classifier_new(0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(fx, &cases[i], 0);
	policy_classifier_free(fx->pc);
	fx->pc = saved;
}

/* ---- facts ---- */

static void analyze1(policy_classifier *pc, const char *sql, policy_analysis *a)
{
	policy_lexctx lx = { .standard_conforming_strings = true };

	assert_int_equal(policy_analyze(pc, sql, strlen(sql), &lx, a), 0);
}

static void test_split(void **state)
{
	fixture *fx = *state;
	const char *sql = "  SELECT 1 ;\n/* c */ SELECT 'a;b' -- x\n; ;\tSHOW all  ";
	policy_analysis a;

	analyze1(fx->pc, sql, &a);
	assert_int_equal(a.n, 3);
	assert_int_equal(a.v[0].len, strlen("SELECT 1"));
	assert_memory_equal(sql + a.v[0].offset, "SELECT 1", a.v[0].len);
	assert_memory_equal(sql + a.v[1].offset, "SELECT 'a;b'", a.v[1].len);
	assert_int_equal(a.v[1].len, strlen("SELECT 'a;b'"));
	assert_memory_equal(sql + a.v[2].offset, "SHOW all", a.v[2].len);
	policy_analysis_clear(&a);

	analyze1(fx->pc, "", &a);
	assert_int_equal(a.n, 0);
	analyze1(fx->pc, "  -- only a comment\n /* and another */ ", &a);
	assert_int_equal(a.n, 0);
	analyze1(fx->pc, ";;", &a);
	assert_int_equal(a.n, 0);

	/* U& identifiers: libpg_query reports their end wrongly; the range must still cover them. */
	sql = "GRANT r TO U&\"\\0061non\"";
	analyze1(fx->pc, sql, &a);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.v[0].len, strlen(sql));
	policy_analysis_clear(&a);
}

static void test_nul_and_unparsable(void **state)
{
	fixture *fx = *state;
	policy_lexctx lx = { .standard_conforming_strings = true };
	policy_analysis a;
	const char sql[] = "SELECT 1;\0 SET ROLE x";

	assert_int_equal(policy_analyze(fx->pc, sql, sizeof(sql) - 1, &lx, &a), 0);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.v[0].offset, 0);
	assert_int_equal(a.v[0].len, sizeof(sql) - 1);
	assert_true(policy_facts_flags(a.v[0].facts) & PF_UNPARSABLE);
	assert_non_null(strstr(policy_facts_error(a.v[0].facts), "NUL"));
	policy_analysis_clear(&a);

	analyze1(fx->pc, "SELECT 1; SELEC 2", &a);
	assert_int_equal(a.n, 1);
	assert_int_equal(a.v[0].len, strlen("SELECT 1; SELEC 2"));
	assert_non_null(strstr(policy_facts_error(a.v[0].facts), "syntax error"));
	policy_analysis_clear(&a);
}

static void test_prepared_facts(void **state)
{
	fixture *fx = *state;
	policy_analysis a;
	const policy_facts *f;

	analyze1(fx->pc, "PREPARE w(int) AS UPDATE t SET a = $1", &a);
	f = a.v[0].facts;
	assert_true(policy_facts_flags(f) & PF_PREPARE);
	assert_false(policy_facts_flags(f) & PF_READ_ONLY);
	assert_string_equal(policy_facts_name(f), "w");
	assert_non_null(policy_facts_inner(f));
	assert_string_equal(policy_facts_why_write(policy_facts_inner(f)), "UPDATE");
	policy_analysis_clear(&a);

	analyze1(fx->pc, "EXECUTE w(1)", &a);
	assert_true(policy_facts_flags(a.v[0].facts) & PF_EXECUTE);
	assert_true(policy_facts_flags(a.v[0].facts) & PF_READ_ONLY);
	assert_string_equal(policy_facts_name(a.v[0].facts), "w");
	policy_analysis_clear(&a);

	analyze1(fx->pc, "EXPLAIN (ANALYZE) EXECUTE w(1)", &a);
	assert_true(policy_facts_flags(a.v[0].facts) & PF_EXECUTE);
	assert_string_equal(policy_facts_name(a.v[0].facts), "w");
	policy_analysis_clear(&a);

	analyze1(fx->pc, "CREATE TEMP TABLE c AS EXECUTE w(1)", &a);
	assert_true(policy_facts_flags(a.v[0].facts) & PF_EXECUTE);
	assert_false(policy_facts_flags(a.v[0].facts) & PF_READ_ONLY);
	assert_string_equal(policy_facts_name(a.v[0].facts), "w");
	policy_analysis_clear(&a);

	analyze1(fx->pc, "DEALLOCATE PREPARE w", &a);
	assert_true(policy_facts_flags(a.v[0].facts) & PF_DEALLOCATE);
	assert_string_equal(policy_facts_name(a.v[0].facts), "w");
	policy_analysis_clear(&a);

	analyze1(fx->pc, "DEALLOCATE ALL", &a);
	assert_true(policy_facts_flags(a.v[0].facts) & PF_DEALLOCATE);
	assert_null(policy_facts_name(a.v[0].facts));
	policy_analysis_clear(&a);

	analyze1(fx->pc, "RESET ALL; DISCARD ALL", &a);
	assert_true(policy_facts_flags(a.v[0].facts) & PF_SESSION_RESET);
	assert_true(policy_facts_flags(a.v[1].facts) & PF_SESSION_RESET);
	policy_analysis_clear(&a);

	analyze1(fx->pc, "SET client_encoding = 'SJIS'", &a);
	assert_true(policy_facts_flags(a.v[0].facts) & PF_LEXING_CHANGE);
	policy_analysis_clear(&a);
}

/* PF_COPY (audited as protocol "copy") marks a top-level COPY only. */
static void test_copy_flag(void **state)
{
	fixture *fx = *state;
	policy_analysis a;

	analyze1(fx->pc, "SELECT 1; COPY t FROM STDIN; COPY (SELECT 1) TO STDOUT", &a);
	assert_int_equal(a.n, 3);
	assert_false(policy_facts_flags(a.v[0].facts) & PF_COPY);
	assert_true(policy_facts_flags(a.v[1].facts) & PF_COPY);
	assert_true(policy_facts_flags(a.v[2].facts) & PF_COPY);
	policy_analysis_clear(&a);

	analyze1(fx->pc, "DO $$BEGIN COPY t TO '/tmp/x'; END$$", &a);
	assert_false(policy_facts_flags(a.v[0].facts) & PF_COPY);
	assert_true(policy_facts_flags(a.v[0].facts) & PF_OPAQUE);
	policy_analysis_clear(&a);

	analyze1(fx->pc, "PREPARE c AS SELECT 1", &a);
	assert_false(policy_facts_flags(a.v[0].facts) & PF_COPY);
	policy_analysis_clear(&a);
}

/* Transaction pooling: what holds a client on its connection, and what ends it, from the tree alone. */
static void test_pool_hold_facts(void **state)
{
	static const struct {
		const char *sql;  /* one statement */
		uint32_t want;    /* these flags set */
		uint32_t unwanted; /* and these not */
	} holds[] = {
		{ "CREATE TEMP TABLE t (x int)", PF_HOLD_TEMP, 0 },
		{ "CREATE TEMPORARY TABLE t AS SELECT 1", PF_HOLD_TEMP, 0 },
		{ "SELECT 1 AS x INTO TEMP t", PF_HOLD_TEMP, 0 },
		{ "CREATE TEMP VIEW v AS SELECT 1", PF_HOLD_TEMP, 0 },
		{ "CREATE TEMP SEQUENCE s", PF_HOLD_TEMP, 0 },
		{ "DO $$BEGIN CREATE TEMP TABLE t (x int); END$$", PF_HOLD_TEMP, 0 },
		{ "CREATE TABLE t (x int)", 0, PF_HOLD_TEMP },
		/* a pg_temp name holds: the server makes these temporary after the parse (relpersistence 'p') */
		{ "CREATE SEQUENCE pg_temp.s", PF_HOLD_TEMP, 0 },
		{ "SELECT 1 AS x INTO pg_temp.t", PF_HOLD_TEMP, 0 },
		{ "CREATE TABLE pg_temp.t AS SELECT 1", PF_HOLD_TEMP, 0 },
		{ "CREATE TABLE PG_TEMP.t (x int)", PF_HOLD_TEMP, 0 },
		{ "CREATE TYPE pg_temp.e AS ENUM ('a')", PF_HOLD_TEMP, 0 },
		{ "CREATE DOMAIN pg_temp.d AS int", PF_HOLD_TEMP, 0 },
		{ "CREATE TABLE pg_temp_12.t (x int)", PF_HOLD_TEMP, 0 },
		/* a reference exists only where one was made (already held): holding again is exact */
		{ "SELECT * FROM pg_temp.t", PF_HOLD_TEMP, 0 },
		{ "SET search_path = pg_temp, public", 0, PF_HOLD_TEMP },
		{ "SELECT 'pg_temp'", 0, PF_HOLD_TEMP },
		{ "CREATE TABLE \"pg_temp_x\".t (x int)", 0, PF_HOLD_TEMP },
		{ "CREATE TABLE pg_tempx.t (x int)", 0, PF_HOLD_TEMP },
		{ "SELECT 'relpersistence', 't'", 0, PF_HOLD_TEMP },
		{ "CREATE TABLE t (relpersistence text, t text)", 0, PF_HOLD_TEMP },
		{ "LISTEN c", PF_HOLD_LISTEN, PF_UNLISTEN_ALL },
		{ "UNLISTEN c", 0, PF_UNLISTEN_ALL | PF_HOLD_LISTEN },
		{ "UNLISTEN *", PF_UNLISTEN_ALL, PF_HOLD_LISTEN },
		{ "SELECT pg_advisory_lock(1)", PF_HOLD_LOCK, 0 },
		{ "SELECT pg_catalog.pg_try_advisory_lock_shared(1, 2)", PF_HOLD_LOCK, 0 },
		{ "SELECT pg_advisory_xact_lock(1)", 0, PF_HOLD_LOCK },
		{ "SELECT pg_try_advisory_xact_lock(1)", 0, PF_HOLD_LOCK },
		{ "SELECT pg_advisory_unlock_all()", PF_UNLOCK_ALL, PF_HOLD_LOCK },
		{ "SET LOCAL work_mem = '1MB'", PF_SET_LOCAL, 0 },
		{ "SET work_mem = '1MB'", 0, PF_SET_LOCAL },
		{ "DISCARD ALL", PF_DISCARD_ALL | PF_SESSION_RESET, 0 },
		{ "DISCARD TEMP", PF_DISCARD_TEMP, PF_DISCARD_ALL },
		{ "RESET ALL", PF_SESSION_RESET, PF_DISCARD_ALL },
		{ "ROLLBACK", PF_TXN_UNDO | PF_TXN_CONTROL, 0 },
		{ "ROLLBACK TO SAVEPOINT a", PF_TXN_UNDO, 0 },
		{ "COMMIT", PF_TXN_CONTROL, PF_TXN_UNDO },
	};
	fixture *fx = *state;
	policy_analysis a;

	for (size_t i = 0; i < sizeof(holds) / sizeof(holds[0]); i++) {
		uint32_t f;

		analyze1(fx->pc, holds[i].sql, &a);
		assert_int_equal(a.n, 1);
		f = policy_facts_flags(a.v[0].facts);
		if ((f & holds[i].want) != holds[i].want || (f & holds[i].unwanted))
			fail_msg("%s: flags 0x%x", holds[i].sql, f);
		policy_analysis_clear(&a);
	}
}

static void test_facts_lists(void **state)
{
	fixture *fx = *state;
	policy_analysis a;
	char *const *v;
	size_t n;

	analyze1(fx->pc, "SELECT app.f(1), g(2), lower('x'), set_config('search_path', 'a', false)", &a);
	v = policy_facts_functions(a.v[0].facts, &n);
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "app.f");
	assert_string_equal(v[1], "g");
	v = policy_facts_settings(a.v[0].facts, &n);
	assert_int_equal(n, 1);
	assert_string_equal(v[0], "search_path");
	policy_analysis_clear(&a);

	analyze1(fx->pc, "GRANT SELECT ON t TO \"ANON\", public, U&\"\\0061non\", CURRENT_USER", &a);
	v = policy_facts_grantees(a.v[0].facts, &n);
	assert_int_equal(n, 4);
	assert_string_equal(v[0], "ANON");
	assert_string_equal(v[1], "public");
	assert_string_equal(v[2], "anon");
	assert_string_equal(v[3], "current_user");
	policy_analysis_clear(&a);
}

/*
 * The cache key ignores literal values; facts that depend on a literal must
 * not be shared. Each pair differs only in a literal; both orders.
 */
static void test_cache_literal_confusion(void **state)
{
	static const struct {
		const char *a, *a_rule, *b, *b_rule;
	} pairs[] = {
		{ "SELECT set_config('search_path', 'x', false)", OK,
		  "SELECT set_config('app.tenant_id', 'x', false)", ID },
		{ "SELECT set_config('statement_timeout', '1', false)", OK,
		  "SELECT set_config('role', 'admin', false)", ID },
		{ "SET client_encoding = 'UTF8'", OK, "SET client_encoding = 'SJIS'", UNP },
		{ "SET default_transaction_read_only = 'on'", OK, "SET default_transaction_read_only = 'off'",
		  RW },
		{ "BEGIN READ ONLY", OK, "BEGIN READ WRITE", RW },
		{ "DO $$ BEGIN RAISE NOTICE 'x'; END $$", OK, "DO $$ BEGIN SET ROLE admin; END $$", ID },
		{ "DO $$ BEGIN PERFORM 1; END $$", OK, "DO $$ BEGIN EXECUTE 'x'; END $$", OPQ },
		{ "GRANT SELECT ON t TO U&\"!0061non\" UESCAPE '#'", WOW,
		  "GRANT SELECT ON t TO U&\"!0061non\" UESCAPE '!'", GR },
		{ "GRANT SELECT ON t TO U&\"\\0062non\"", WOW, "GRANT SELECT ON t TO U&\"\\0061non\"", GR },
		{ "SELECT set_config('search_path', 'x', false); SELECT 1", OK,
		  "SELECT set_config('app.actor_id', 'x', false); SELECT 1", ID },
	};
	fixture *fx = *state;

	for (int order = 0; order < 2; order++) {
		for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
			policy_classifier *pc = policy_classifier_new(64);

			for (int rep = 0; rep < 2; rep++) {
				const char *first = order ? pairs[i].b : pairs[i].a;
				const char *second = order ? pairs[i].a : pairs[i].b;
				const char *r1 = order ? pairs[i].b_rule : pairs[i].a_rule;
				const char *r2 = order ? pairs[i].a_rule : pairs[i].b_rule;

				assert_string_equal(
				    text_verdict(fx, pc, first, "prod", fx->outside, NULL, NULL), r1);
				assert_string_equal(
				    text_verdict(fx, pc, second, "prod", fx->outside, NULL, NULL), r2);
			}
			policy_classifier_free(pc);
		}
	}
}

/* pgbench's SELECT with different aids: one parse, then hits. */
static void test_cache_hits(void **state)
{
	fixture *fx = *state;
	policy_classifier *pc = policy_classifier_new(16);
	policy_cache_stats st;
	char sql[128];

	for (int i = 0; i < 10; i++) {
		snprintf(sql, sizeof(sql), "SELECT abalance FROM pgbench_accounts WHERE aid = %d;", i * 7919);
		assert_string_equal(text_verdict(fx, pc, sql, "prod", fx->outside, NULL, NULL), OK);
	}
	policy_classifier_stats(pc, &st);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.hits, 9);
	/* Bounded: 100 distinct texts in a 16-entry cache. */
	for (int i = 0; i < 100; i++) {
		snprintf(sql, sizeof(sql), "SELECT c%d FROM t", i);
		text_verdict(fx, pc, sql, "prod", fx->outside, NULL, NULL);
	}
	policy_classifier_stats(pc, &st);
	assert_true(st.entries <= 16);
	policy_classifier_free(pc);
}

/* standard_conforming_strings off lexes 'a\'' as one literal: the key must include the lexing context. */
static void test_lexctx(void **state)
{
	fixture *fx = *state;
	policy_lexctx on = { .standard_conforming_strings = true },
		      off = { .standard_conforming_strings = false };
	/* on: 'x\' ; SET ROLE admin ; SELECT '...'. off: one literal, AS y, a comment. */
	const char *sql = "SELECT 'x\\'; SET ROLE admin; SELECT ''' AS y -- '";

	for (int rep = 0; rep < 2; rep++) {
		assert_string_equal(text_verdict(fx, fx->pc, sql, "prod", fx->outside, &on, NULL), ID);
		assert_string_equal(text_verdict(fx, fx->pc, sql, "prod", fx->outside, &off, NULL), OK);
	}
}

static char *repeat_text(const char *head, const char *unit, size_t n, const char *mid, const char *close,
			 const char *tail)
{
	size_t ul = strlen(unit), cl = strlen(close);
	char *s = malloc(strlen(head) + n * (ul + cl) + strlen(mid) + strlen(tail) + 1), *p = s;

	p += sprintf(p, "%s", head);
	for (size_t i = 0; i < n; i++, p += ul)
		memcpy(p, unit, ul);
	p += sprintf(p, "%s", mid);
	for (size_t i = 0; i < n; i++, p += cl)
		memcpy(p, close, cl);
	sprintf(p, "%s", tail);
	return s;
}

/* Inputs that crash libpg_query on a normal stack must be denied, not crash. */
static void test_deep_nesting(void **state)
{
	static const struct {
		const char *head, *unit, *mid, *close, *tail;
		size_t n;
		const char *want;
	} deep[] = {
		{ "SELECT ", "1+", "1", "", "", 100000, UNP },
		{ "SELECT ", "1+", "1", "", "", 20000, UNP },
		{ "SELECT ", "1+", "1", "", "", 500, OK },
		{ "SELECT ", "(", "1", ")", "", 100000, UNP },
		{ "SELECT ", "(", "1", ")", "", 200, OK },
		{ "SELECT ", "NOT ", "true", "", "", 50000, UNP },
		{ "SELECT 1", "::int", "", "", "", 30000, UNP },
		{ "SELECT ", "'a'||", "'a'", "", "", 30000, UNP },
		{ "SELECT * FROM a", " JOIN a ON true", "", "", "", 20000, UNP },
		{ "", "SELECT 1 UNION ", "SELECT 1", "", "", 20000, UNP },
		{ "SELECT ", "ARRAY[", "1", "]", "", 20000, UNP },
		{ "SELECT ", "f(", "1", ")", "", 20000, UNP },
		{ "SELECT ", "(SELECT ", "1", ")", "", 5000, UNP },
		{ "DO $$ BEGIN PERFORM ", "1+", "1", "", "; END $$", 100000, OPQ },
		{ "DO $$ ", "BEGIN ", "NULL;", " END;", " $$", 3000, OPQ },
	};
	fixture *fx = *state;

	for (size_t i = 0; i < sizeof(deep) / sizeof(deep[0]); i++) {
		char *sql = repeat_text(deep[i].head, deep[i].unit, deep[i].n, deep[i].mid, deep[i].close,
					deep[i].tail);
		const char *got = text_verdict(fx, fx->pc, sql, "staging", fx->outside, NULL, NULL);

		if (strcmp(got, deep[i].want) != 0)
			fail_msg("deep case %zu (%s x %zu): want %s got %s", i, deep[i].unit, deep[i].n,
				 deep[i].want, got);
		free(sql);
	}
}

static void test_verdict_fields(void **state)
{
	fixture *fx = *state;
	policy_verdict v;

	assert_string_equal(text_verdict(fx, fx->pc, "DELETE FROM t", "prod", fx->outside, NULL, &v), WOW);
	assert_string_equal(v.hint,
			    "next approved window: sec-42 opens 2026-11-24T22:00:00Z, closes 2026-11-24T23:30:00Z");
	assert_string_equal(v.detail, "rule: write-outside-window");
	assert_null(v.window);

	assert_string_equal(text_verdict(fx, fx->pc, "DELETE FROM t", "prod", fx->inside, NULL, &v), OK);
	assert_false(v.deny);
	assert_string_equal(v.window, "sec-42");
	assert_string_equal(text_verdict(fx, fx->pc, "SELECT 1", "prod", fx->inside, NULL, &v), OK);
	assert_null(v.window);

	/* Another actor: the open window is not theirs, and the hint says exactly that. */
	fx->who.actor = "user:jimmie";
	assert_string_equal(text_verdict(fx, fx->pc, "DELETE FROM t", "prod", fx->inside, NULL, &v), WOW);
	assert_string_equal(v.hint, "window sec-42 is open until 2026-11-24T23:30:00Z, but actor user:jimmie is not "
				    "on its actors list; no approved window is scheduled for this actor");
	assert_string_equal(text_verdict(fx, fx->pc, "DELETE FROM t", "prod", fx->outside, NULL, &v), WOW);
	assert_string_equal(v.hint, "no approved window is scheduled for this target");
	/* A weekly window: its own zone (Santiago is UTC-3 in November) and UTC, with the close. */
	fx->who.actor = "user:ops";
	assert_string_equal(text_verdict(fx, fx->pc, "DELETE FROM t", "prod", fx->outside, NULL, &v), WOW);
	assert_string_equal(v.hint, "next approved window: weekly opens 2026-11-24T22:00-03:00 America/Santiago "
				    "(2026-11-25T01:00Z), closes 2026-11-24T23:30-03:00 (2026-11-25T02:30Z)");
	/* Inside sec-42, ops is not on its list but has its own window later. */
	assert_string_equal(text_verdict(fx, fx->pc, "DELETE FROM t", "prod", fx->inside, NULL, &v), WOW);
	assert_string_equal(v.hint, "window sec-42 is open until 2026-11-24T23:30:00Z, but actor user:ops is not on "
				    "its actors list; next approved window: weekly opens 2026-11-24T22:00-03:00 "
				    "America/Santiago (2026-11-25T01:00Z), closes 2026-11-24T23:30-03:00 "
				    "(2026-11-25T02:30Z)");
	fx->who.actor = "user:brent";

	/* A log rule: allowed, rule reported. */
	assert_string_equal(
	    text_verdict(fx, fx->pc, "SELECT * FROM pgbench_history", "prod", fx->outside, NULL, &v), OK);
	assert_false(v.deny);
	assert_string_equal(v.rule, "rule:watch-history");

	assert_string_equal(
	    text_verdict(fx, fx->pc, "SELECT 'pg_write_server_file'", "staging", fx->outside, NULL, &v),
	    FILE_RULE);
	assert_string_equal(v.message, "pgwarden: server file access is not allowed through pgwarden");

	policy_deny_fastpath(&v);
	assert_true(v.deny);
	assert_string_equal(v.rule, "fastpath");
	assert_string_equal(v.detail, "rule: fastpath");
}

static void test_builtin_table(void **state)
{
	assert_true(builtin_table_sorted());
	assert_int_equal(builtin_lookup("lower"), BF_READ);
	assert_int_equal(builtin_lookup("nextval"), BF_WRITE);
	assert_int_equal(builtin_lookup("set_config"), BF_SET_CONFIG);
	assert_int_equal(builtin_lookup("Lower"), BF_UNKNOWN);
	assert_true(setting_is_harmless("search_path"));
	assert_false(setting_is_harmless("role"));
}

/* Denial messages name statements in SQL's words: PostgreSQL's command tags, never parse nodes. */
static const struct {
	const char *sql, *why;
} why_cases[] = {
	{ "CREATE TABLE t (a int)", "CREATE TABLE" },
	{ "CREATE TEMP TABLE t AS SELECT 1", "CREATE TABLE AS" },
	{ "CREATE MATERIALIZED VIEW m AS SELECT 1", "CREATE MATERIALIZED VIEW" },
	{ "LOCK TABLE t", "LOCK TABLE" },
	{ "VACUUM t", "VACUUM" },
	{ "VACUUM (ANALYZE) t", "VACUUM" },
	{ "ANALYZE t", "ANALYZE" },
	{ "REINDEX TABLE t", "REINDEX" },
	{ "CLUSTER t", "CLUSTER" },
	{ "TRUNCATE t", "TRUNCATE TABLE" },
	{ "DROP TABLE t", "DROP TABLE" },
	{ "DROP MATERIALIZED VIEW m", "DROP MATERIALIZED VIEW" },
	{ "DROP FUNCTION f()", "DROP FUNCTION" },
	{ "DROP TEXT SEARCH CONFIGURATION c", "DROP TEXT SEARCH CONFIGURATION" },
	{ "ALTER TABLE t ADD COLUMN b int", "ALTER TABLE" },
	{ "ALTER TABLE t RENAME COLUMN a TO b", "ALTER TABLE" },
	{ "ALTER INDEX i RENAME TO j", "ALTER INDEX" },
	{ "ALTER TABLE t SET SCHEMA s", "ALTER TABLE" },
	{ "ALTER FUNCTION f() OWNER TO x", "ALTER FUNCTION" },
	{ "ALTER PROCEDURE p() RENAME TO q", "ALTER PROCEDURE" },
	{ "CREATE INDEX i ON t (a)", "CREATE INDEX" },
	{ "CREATE VIEW v AS SELECT 1", "CREATE VIEW" },
	{ "CREATE EXTENSION hstore", "CREATE EXTENSION" },
	{ "CREATE AGGREGATE a (int) (sfunc = f, stype = int)", "CREATE AGGREGATE" },
	{ "CREATE TYPE ty AS (a int)", "CREATE TYPE" },
	{ "CREATE SEQUENCE s", "CREATE SEQUENCE" },
	{ "CREATE SCHEMA s", "CREATE SCHEMA" },
	{ "COMMENT ON TABLE t IS 'x'", "COMMENT" },
	{ "REFRESH MATERIALIZED VIEW m", "REFRESH MATERIALIZED VIEW" },
	{ "CHECKPOINT", "CHECKPOINT" },
	{ "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", "CREATE TRIGGER" },
	{ "DROP ROLE x", "DROP ROLE" },
	{ "ALTER ROLE x NOLOGIN", "ALTER ROLE" },
	{ "REVOKE a FROM b", "REVOKE" },
	{ "CREATE POLICY p ON t TO x USING (true)", "CREATE POLICY" },
	{ "LOAD 'auto_explain'", "LOAD" },
};

static void test_messages_in_sql_words(void **state)
{
	fixture *fx = *state;
	static const policy_lexctx on = { .standard_conforming_strings = true };

	assert_true(cmdtag_table_sorted());
	for (size_t i = 0; i < sizeof(why_cases) / sizeof(why_cases[0]); i++) {
		policy_analysis a;
		policy_verdict v;
		char want[128];

		assert_int_equal(policy_analyze(fx->pc, why_cases[i].sql, strlen(why_cases[i].sql), &on, &a), 0);
		assert_int_equal(a.n, 1);
		if (!policy_facts_why_write(a.v[0].facts)
		    || strcmp(policy_facts_why_write(a.v[0].facts), why_cases[i].why) != 0)
			fail_msg("%s: why %s, want %s", why_cases[i].sql, policy_facts_why_write(a.v[0].facts),
				 why_cases[i].why);
		policy_analysis_clear(&a);
		text_verdict(fx, fx->pc, why_cases[i].sql, "prod", fx->outside, NULL, &v);
		snprintf(want, sizeof(want), "pgwarden: write outside an approved window: %s", why_cases[i].why);
		assert_string_equal(v.message, want);
		assert_null(strstr(v.message, "Stmt"));
	}
}

/* Startup options allow what a session may SET, from the same judgement (issue 13). */
static void test_startup_settings(void **state)
{
	fixture *fx = *state;
	static const char *const ok[] = { "statement_timeout", "lock_timeout", "work_mem", "search_path",
					  "DateStyle", "TimeZone", "extra_float_digits", "application_name",
					  "client_encoding", "app.request_id", "plpgsql.variable_conflict",
					  "vacuum_cost_delay", "synchronize_seqscans", "enable_seqscan" };
	static const char *const refused[] = { "role", "ROLE", "session_authorization", "app.tenant_id",
					       "App.Actor_Id", "request.jwt.claims", "default_transaction_read_only",
					       "transaction_read_only", "standard_conforming_strings",
					       "backslash_quote", "session_replication_role",
					       "local_preload_libraries", "session_preload_libraries", "no_such_setting" };

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (!policy_startup_setting_ok(ok[i], "x", fx->cfg))
			fail_msg("startup setting %s refused", ok[i]);
	}
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		if (policy_startup_setting_ok(refused[i], "on", fx->cfg))
			fail_msg("startup setting %s allowed", refused[i]);
	}
}

/* Timing, printed for the report (not asserted). */
static void test_bench(void **state)
{
	fixture *fx = *state;
	policy_lexctx lx = { .standard_conforming_strings = true };
	policy_classifier *cached = policy_classifier_new(4096), *uncached = policy_classifier_new(0);
	char sql[128], *cte;
	struct timespec t0, t1;
	policy_analysis a;
	int n = 20000;
	size_t cl;

	(void)fx;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++) {
		int len =
		    snprintf(sql, sizeof(sql), "SELECT abalance FROM pgbench_accounts WHERE aid = %d;", i);

		policy_analyze(cached, sql, (size_t)len, &lx, &a);
		policy_analysis_clear(&a);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("bench: pgbench SELECT cached   %.2f us\n",
	       ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / n);
	n = 5000;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++) {
		int len =
		    snprintf(sql, sizeof(sql), "SELECT abalance FROM pgbench_accounts WHERE aid = %d;", i);

		policy_analyze(uncached, sql, (size_t)len, &lx, &a);
		policy_analysis_clear(&a);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("bench: pgbench SELECT uncached %.2f us\n",
	       ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / n);

	/* A ~5 KB CTE. */
	cte = malloc(8192);
	cl = (size_t)sprintf(cte, "WITH ");
	for (int i = 0; cl < 5000; i++)
		cl += (size_t)sprintf(cte + cl,
				      "%sc%d AS (SELECT a.id, b.name, count(*) AS n FROM t%d a JOIN u b ON "
				      "b.id = a.uid WHERE a.x > %d GROUP BY 1, 2) ",
				      i ? ", " : "", i, i, i);
	cl += (size_t)sprintf(cte + cl, "SELECT * FROM c0");
	n = 2000;
	for (int pass = 0; pass < 2; pass++) {
		policy_classifier *pc = pass ? cached : uncached;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int i = 0; i < n; i++) {
			policy_analyze(pc, cte, cl, &lx, &a);
			policy_analysis_clear(&a);
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		printf("bench: %zu-byte CTE %s %.2f us\n", cl, pass ? "cached  " : "uncached",
		       ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / n);
	}
	free(cte);
	policy_classifier_free(cached);
	policy_classifier_free(uncached);
}

/* policy_prepare_body: where a PREPARE's body starts (what a protocol Bind of its name runs). */
static const struct {
	const char *sql;  /* a PREPARE text */
	const char *body; /* its body, or NULL when none is found */
} prepare_body_cases[] = {
	{"PREPARE s2 AS SELECT 3", "SELECT 3"},
	{"prepare s2 as select 'AS' AS x", "select 'AS' AS x"},
	{"PREPARE s (int, numeric(10, 2)) AS SELECT $1, $2", "SELECT $1, $2"},
	{"PREPARE \"as\" /* AS not here */ AS\n  SELECT 1", "SELECT 1"},
	{"PREPARE s AS INSERT INTO t SELECT 1 AS a", "INSERT INTO t SELECT 1 AS a"},
	{"PREPARE s AS $$", NULL}, /* the scanner fails: not found */
	{"SELECT 1 AS a", NULL},   /* not a PREPARE */
	{"PREPARE s AS", NULL},
};

static void test_prepare_body(void **state)
{
	size_t i, off;

	(void)state;
	for (i = 0; i < sizeof(prepare_body_cases) / sizeof(prepare_body_cases[0]); i++) {
		const char *sql = prepare_body_cases[i].sql, *want = prepare_body_cases[i].body;
		bool found = policy_prepare_body(sql, strlen(sql), &off);

		if (found != (want != NULL) || (found && strcmp(sql + off, want) != 0))
			fail_msg("%s: found %d at %zu, want %s", sql, found, found ? off : 0, want ? want : "none");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prepare_body),
		cmocka_unit_test(test_builtin_table),
		cmocka_unit_test(test_verdict_table),
		cmocka_unit_test(test_verdict_table_uncached),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_nul_and_unparsable),
		cmocka_unit_test(test_prepared_facts),
		cmocka_unit_test(test_copy_flag),
		cmocka_unit_test(test_pool_hold_facts),
		cmocka_unit_test(test_facts_lists),
		cmocka_unit_test(test_cache_literal_confusion),
		cmocka_unit_test(test_cache_hits),
		cmocka_unit_test(test_lexctx),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_verdict_fields),
		cmocka_unit_test(test_messages_in_sql_words),
		cmocka_unit_test(test_startup_settings),
		cmocka_unit_test(test_bench),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
