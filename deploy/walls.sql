-- walls.sql - pgwarden's walls inside one target database: they hold even when pgwarden's classifier misses.
--
-- Run as a superuser, connected to the target database, after upstream-bootstrap.sql and
-- revoke-opaque-functions.sql, and again after every schema migration (it is idempotent):
--
--   psql -X -v ON_ERROR_STOP=1 -v production=1 -v wall_key="$(cat /etc/pgwarden/prod.wallkey)" \
--        -d app -f deploy/walls.sql
--
-- Variables:
--   wall_key        the target's wall key: 64 hex digits (32 bytes), the same as the file named by the
--                   target's wall_key_file in pgwarden.ini (make one: openssl rand -hex 32).
--                   Optional on a re-run: the stored key is kept when it is not given.
--   production      1 (default): also install the write wall (table writes and DDL need a signed
--                   write grant, valid only inside an approved window). 0 for staging.
--   svc_role        pgwarden's login role (default pgwarden_svc): the walls police its sessions only,
--                   so DBAs and migrations that connect directly are not affected.
--   actor_setting   must equal pgwarden.ini's actor_setting (default app.actor_id)
--   tenant_setting  must equal pgwarden.ini's tenant_setting (default app.tenant_id)
--   protected_roles comma list of roles nothing may be granted to (default anon,guest; PUBLIC always)
--
-- What it builds (README "Walls in the database" says which promise each covers):
--   1. role pgwarden_wall_owner (NOLOGIN, member of nothing, nobody a member of it) owning
--      schema pgwarden_wall, which holds the key where only that role can read it;
--   2. the verified identity: pgwarden_wall.tenant_id(), actor_id(), verified(), which return the
--      pinned values only while pgwarden's HMAC signature (setting pgwarden.pin) matches this
--      backend, the current role and the settings; pgwarden_wall.protect_table() adds the
--      restrictive RLS policy that makes a tenant table use them;
--   3. (production) the write wall: a statement-level trigger on every table and an event trigger
--      on DDL that refuse unless a signed write grant for the present moment (pgwarden.write) is present;
--      an event trigger adds the trigger to tables created later;
--   4. EXECUTE revoked on what writes outside tables (large objects) and on what ends other
--      sessions; UPDATE on sequences (setval) taken from pgwarden's roles;
--   5. the grant wall: an event trigger refusing object grants and policies to anon, guest and
--      PUBLIC made in pgwarden's sessions.

\set ON_ERROR_STOP 1
SET client_min_messages = warning;
\if :{?production}
\else
\set production 1
\endif
\if :{?svc_role}
\else
\set svc_role pgwarden_svc
\endif
\if :{?actor_setting}
\else
\set actor_setting app.actor_id
\endif
\if :{?tenant_setting}
\else
\set tenant_setting app.tenant_id
\endif
\if :{?protected_roles}
\else
\set protected_roles anon,guest
\endif

BEGIN;

-- ---- 1. The owner and the key ------------------------------------------------------------------

-- NOLOGIN and unreachable: no login role is granted it, so no session can SET ROLE to it and read
-- the key; its functions run with its rights only as SECURITY DEFINER. NOINHERIT: it uses nothing
-- it might be granted by mistake.
SELECT 'CREATE ROLE pgwarden_wall_owner' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgwarden_wall_owner')
\gexec
ALTER ROLE pgwarden_wall_owner NOLOGIN NOINHERIT NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS;
SELECT format('REVOKE %I FROM %I', r.rolname, u.rolname)
FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
WHERE r.rolname = 'pgwarden_wall_owner' OR u.rolname = 'pgwarden_wall_owner'
\gexec

CREATE SCHEMA IF NOT EXISTS pgwarden_wall AUTHORIZATION pgwarden_wall_owner;
ALTER SCHEMA pgwarden_wall OWNER TO pgwarden_wall_owner;
REVOKE ALL ON SCHEMA pgwarden_wall FROM PUBLIC;
GRANT USAGE ON SCHEMA pgwarden_wall TO PUBLIC;  -- to call the identity functions; tables stay closed

-- The key, kept as HMAC's two padded keys (key XOR ipad, key XOR opad), so signing is two calls
-- of the built-in sha256() (PostgreSQL 11+) and needs no extension (pgcrypto would put ~40 more
-- functions in the database). One row.
CREATE TABLE IF NOT EXISTS pgwarden_wall.key (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),  -- at most one row
	k_ipad bytea NOT NULL,                             -- key (zero-padded to 64 bytes) XOR 0x36
	k_opad bytea NOT NULL,                             -- key (zero-padded to 64 bytes) XOR 0x5c
	key_id text NOT NULL                               -- first 8 hex of sha256(key): logs name a key without showing it
);
-- What the wall needs to know about the pgwarden in front of it. One row.
CREATE TABLE IF NOT EXISTS pgwarden_wall.config (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),  -- at most one row
	svc_role name NOT NULL,                            -- pgwarden's login role: whose sessions are policed
	actor_setting text NOT NULL,                       -- pgwarden.ini actor_setting
	tenant_setting text NOT NULL,                      -- pgwarden.ini tenant_setting
	production boolean NOT NULL                        -- the write wall is installed
);
ALTER TABLE pgwarden_wall.key OWNER TO pgwarden_wall_owner;
ALTER TABLE pgwarden_wall.config OWNER TO pgwarden_wall_owner;
REVOKE ALL ON pgwarden_wall.key, pgwarden_wall.config FROM PUBLIC;
-- Why RLS on the key: members of pg_read_all_data (or a future grant) may SELECT any table, but
-- row security still applies to them; only the owner's own functions see the row.
ALTER TABLE pgwarden_wall.key ENABLE ROW LEVEL SECURITY;
ALTER TABLE pgwarden_wall.key FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS owner_only ON pgwarden_wall.key;
CREATE POLICY owner_only ON pgwarden_wall.key USING (current_user = 'pgwarden_wall_owner');

INSERT INTO pgwarden_wall.config VALUES (true, :'svc_role', :'actor_setting', :'tenant_setting', :'production'::int = 1)
ON CONFLICT (one) DO UPDATE SET svc_role = excluded.svc_role, actor_setting = excluded.actor_setting,
	tenant_setting = excluded.tenant_setting, production = excluded.production;

-- Store a key given as 64 hex digits. Superuser only (EXECUTE revoked below).
CREATE OR REPLACE FUNCTION pgwarden_wall.set_key(hex text) RETURNS text
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k bytea;
	ipad bytea := '\x'::bytea;
	opad bytea := '\x'::bytea;
BEGIN
	IF hex !~ '^[0-9a-fA-F]{64}$' THEN
		RAISE EXCEPTION 'pgwarden wall: the key must be 64 hex digits (openssl rand -hex 32)';
	END IF;
	k := decode(hex, 'hex') || decode(repeat('00', 32), 'hex');
	FOR i IN 0..63 LOOP
		ipad := ipad || set_byte('\x00'::bytea, 0, get_byte(k, i) # 54);
		opad := opad || set_byte('\x00'::bytea, 0, get_byte(k, i) # 92);
	END LOOP;
	INSERT INTO pgwarden_wall.key VALUES (true, ipad, opad, left(encode(sha256(decode(hex, 'hex')), 'hex'), 8))
	ON CONFLICT (one) DO UPDATE SET k_ipad = excluded.k_ipad, k_opad = excluded.k_opad, key_id = excluded.key_id;
	RETURN left(encode(sha256(decode(hex, 'hex')), 'hex'), 8);
END
$$;
ALTER FUNCTION pgwarden_wall.set_key(text) OWNER TO pgwarden_wall_owner;
REVOKE ALL ON FUNCTION pgwarden_wall.set_key(text) FROM PUBLIC;

\if :{?wall_key}
-- The key travels in this one statement: keep it out of the server log.
SET LOCAL log_statement = 'none';
SET LOCAL log_min_duration_statement = -1;
SELECT pgwarden_wall.set_key(:'wall_key') AS wall_key_id;
RESET log_statement;
RESET log_min_duration_statement;
\endif

-- pgwarden pins the signature with SET statements, whose text pg_stat_statements keeps and shows to
-- every session of the same role; with pooling, a signature read there could be replayed on its
-- backend once that backend is lent to another actor. Utility tracking goes off for pgwarden's
-- sessions (where the module is loaded the setting is superuser-only; where it is not, there is
-- nothing to track).
SELECT format('ALTER ROLE %I IN DATABASE %I SET pg_stat_statements.track_utility = off', :'svc_role',
	      current_database())
\gexec

-- ---- 2. The verified identity -----------------------------------------------------------------

-- Every wall function is PL/pgSQL: PL/pgSQL keeps its query plans for the session, while a LANGUAGE
-- sql function that cannot be inlined (SECURITY DEFINER, SET) is parsed and planned on every call,
-- which cost about 0.5 ms per statement here. Every one sets search_path, so no object of a caller's
-- schema can stand in for a built-in.

-- HMAC-SHA256(key, msg) in hex. The signing oracle: nobody but the owner may call it.
-- decode(..., 'escape') with backslashes doubled is the text's bytes as they are (UTF-8 in a UTF8
-- database), like convert_to(); it is used because pgwarden's classifier knows it to be read-only,
-- so statements calling the wall are not judged as writes.
CREATE OR REPLACE FUNCTION pgwarden_wall.mac(msg text) RETURNS text
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r text;
BEGIN
	SELECT encode(sha256(k.k_opad || sha256(k.k_ipad || decode(replace(msg, E'\\', E'\\\\'), 'escape'))), 'hex')
	INTO r FROM pgwarden_wall.key k;
	RETURN r;
END
$$;
ALTER FUNCTION pgwarden_wall.mac(text) OWNER TO pgwarden_wall_owner;
REVOKE ALL ON FUNCTION pgwarden_wall.mac(text) FROM PUBLIC;
DROP FUNCTION IF EXISTS pgwarden_wall.pin_message();  -- folded into verified()

-- Whether this session's identity is the one pgwarden signed: pgwarden.pin must be the HMAC of the
-- message proxy/wall.c signs, rebuilt here from what the database sees. Every field ends with a
-- newline, and no field pgwarden signs can hold one (token-file fields have no white space), so two
-- identities never give the same message. The backend pid makes a signature seen elsewhere (a log,
-- another session) worthless here. STABLE: RLS calls it once per statement when written as
-- (SELECT pgwarden_wall.verified()).
CREATE OR REPLACE FUNCTION pgwarden_wall.verified() RETURNS boolean
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	sig text := current_setting('pgwarden.pin', true);
	ok boolean;
BEGIN
	IF sig IS NULL OR length(sig) <> 64 THEN  -- (a regular expression here cost 10 us a call)
		RETURN false;
	END IF;
	-- Why current_setting('role'): inside a SECURITY DEFINER function current_user is the owner,
	-- but the role setting is still the session's SET ROLE ('none' when there is none), and a
	-- session cannot change it without changing its current role with it.
	SELECT sig = encode(sha256(k.k_opad || sha256(k.k_ipad || decode(replace(
			'pgwarden-pin-v1' || E'\n' || pg_backend_pid() || E'\n' || current_setting('role') || E'\n'
			|| coalesce(current_setting(c.actor_setting, true), '') || E'\n'
			|| coalesce(current_setting(c.tenant_setting, true), '') || E'\n',
			E'\\', E'\\\\'), 'escape'))), 'hex')
	INTO ok FROM pgwarden_wall.key k, pgwarden_wall.config c;
	RETURN coalesce(ok, false);
END
$$;

-- The pinned tenant, or NULL when the identity is not the signed one (or there is no tenant).
CREATE OR REPLACE FUNCTION pgwarden_wall.tenant_id() RETURNS text
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	t text;
BEGIN
	IF NOT pgwarden_wall.verified() THEN
		RETURN NULL;
	END IF;
	SELECT nullif(current_setting(c.tenant_setting, true), '') INTO t FROM pgwarden_wall.config c;
	RETURN t;
END
$$;

-- The pinned actor id, or NULL when the identity is not the signed one.
CREATE OR REPLACE FUNCTION pgwarden_wall.actor_id() RETURNS text
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	a text;
BEGIN
	IF NOT pgwarden_wall.verified() THEN
		RETURN NULL;
	END IF;
	SELECT nullif(current_setting(c.actor_setting, true), '') INTO a FROM pgwarden_wall.config c;
	RETURN a;
END
$$;

-- Why the signature check failed, for pgwarden's check at session start and `SELECT` by hand:
-- 'ok', 'no key', 'unsigned' or 'mismatch'. Reveals nothing a caller could sign with.
CREATE OR REPLACE FUNCTION pgwarden_wall.pin_status() RETURNS text
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pgwarden_wall.key) THEN
		RETURN 'no key';
	ELSIF coalesce(current_setting('pgwarden.pin', true), '') = '' THEN
		RETURN 'unsigned';
	ELSIF pgwarden_wall.verified() THEN
		RETURN 'ok';
	END IF;
	RETURN 'mismatch';
END
$$;

-- The walls' version: pgwarden refuses a target whose walls are older than it needs.
CREATE OR REPLACE FUNCTION pgwarden_wall.version() RETURNS integer
	LANGUAGE sql IMMUTABLE AS $$ SELECT 1 $$;

-- Put a table behind the verified identity. With a tenant column: a RESTRICTIVE policy, ANDed with
-- the table's own permissive policies (they keep working), shows and accepts a row only when its
-- tenant is the signed one. Without (tenant_column NULL, for shared tables): rows are visible only
-- while the session's identity is the signed one, so a role reached by SET ROLE sees nothing there
-- either. Either way a permissive USING (true) is added when the table has no permissive policy,
-- since enabling RLS with only a restrictive policy would hide every row. RLS is enabled and forced. Superuser only (migrations).
CREATE OR REPLACE FUNCTION pgwarden_wall.protect_table(tbl regclass, tenant_column name DEFAULT NULL) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	cond text := '(SELECT pgwarden_wall.verified())';
BEGIN
	IF tenant_column IS NOT NULL THEN
		cond := format('%I = (SELECT pgwarden_wall.tenant_id())', tenant_column);
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = tbl AND polpermissive) THEN
		EXECUTE format('CREATE POLICY pgwarden_wall_all ON %s USING (true) WITH CHECK (true)', tbl);
	END IF;
	EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
	EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
	EXECUTE format('DROP POLICY IF EXISTS pgwarden_wall_tenant ON %s', tbl);
	EXECUTE format('CREATE POLICY pgwarden_wall_tenant ON %s AS RESTRICTIVE USING (%s) WITH CHECK (%s)',
		tbl, cond, cond);
END
$$;
REVOKE ALL ON FUNCTION pgwarden_wall.protect_table(regclass, name) FROM PUBLIC;

ALTER FUNCTION pgwarden_wall.verified() OWNER TO pgwarden_wall_owner;
ALTER FUNCTION pgwarden_wall.tenant_id() OWNER TO pgwarden_wall_owner;
ALTER FUNCTION pgwarden_wall.actor_id() OWNER TO pgwarden_wall_owner;
ALTER FUNCTION pgwarden_wall.pin_status() OWNER TO pgwarden_wall_owner;
ALTER FUNCTION pgwarden_wall.version() OWNER TO pgwarden_wall_owner;
GRANT EXECUTE ON FUNCTION pgwarden_wall.verified(), pgwarden_wall.tenant_id(), pgwarden_wall.actor_id(),
	pgwarden_wall.pin_status(), pgwarden_wall.version() TO PUBLIC;

-- ---- 3. The write wall (production) -------------------------------------------------------------

-- Whether a signed write grant for the present moment is pinned: pgwarden.write =
-- '<from>:<until>:<hex HMAC of pgwarden-write-v2, pid, role, actor, from, until>' (UTC seconds).
-- pgwarden pins one for the actor's window open now or opening next (so a session pinned before its
-- window can write in it); the database checks [from, until) against clock_timestamp(), so the grant
-- is worth nothing outside the window and lapses mid-transaction at its close.
CREATE OR REPLACE FUNCTION pgwarden_wall.write_granted() RETURNS boolean
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	g text[] := string_to_array(coalesce(current_setting('pgwarden.write', true), ''), ':');
	c pgwarden_wall.config;
	now_s numeric := extract(epoch FROM clock_timestamp());
BEGIN
	IF array_length(g, 1) IS DISTINCT FROM 3 OR length(g[3]) <> 64
	   OR g[1] !~ '^[0-9]{1,12}$' OR g[2] !~ '^[0-9]{1,12}$'
	   OR now_s < g[1]::bigint OR now_s >= g[2]::bigint OR NOT pgwarden_wall.verified() THEN
		RETURN false;
	END IF;
	SELECT * INTO c FROM pgwarden_wall.config;
	RETURN g[3] = pgwarden_wall.mac('pgwarden-write-v2' || E'\n' || pg_backend_pid() || E'\n'
		|| current_setting('role') || E'\n' || coalesce(current_setting(c.actor_setting, true), '') || E'\n'
		|| g[1] || E'\n' || g[2] || E'\n');
END
$$;
ALTER FUNCTION pgwarden_wall.write_granted() OWNER TO pgwarden_wall_owner;
GRANT EXECUTE ON FUNCTION pgwarden_wall.write_granted() TO PUBLIC;

-- Whether the wall applies to this session: pgwarden's login role, on a production database.
CREATE OR REPLACE FUNCTION pgwarden_wall.policed() RETURNS boolean
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p boolean;
BEGIN
	SELECT c.production AND session_user = c.svc_role INTO p FROM pgwarden_wall.config c;
	RETURN coalesce(p, true);  -- no config row: police everyone
END
$$;
ALTER FUNCTION pgwarden_wall.policed() OWNER TO pgwarden_wall_owner;
GRANT EXECUTE ON FUNCTION pgwarden_wall.policed() TO PUBLIC;

-- The table guard: statement level, so it costs one check per statement, not per row, and fires
-- for INSERT (COPY FROM included), UPDATE, DELETE, MERGE's parts and TRUNCATE.
CREATE OR REPLACE FUNCTION pgwarden_wall.guard_write() RETURNS trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF pgwarden_wall.policed() AND NOT pgwarden_wall.write_granted() THEN
		RAISE EXCEPTION 'pgwarden wall: % on %.% outside an approved window', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
			USING ERRCODE = '42501', DETAIL = 'rule: write-outside-window (database wall)';
	END IF;
	RETURN NULL;
END
$$;
ALTER FUNCTION pgwarden_wall.guard_write() OWNER TO pgwarden_wall_owner;
-- Callable only as a trigger; CREATE TRIGGER by a table's owner (the event trigger below) needs it.
GRANT EXECUTE ON FUNCTION pgwarden_wall.guard_write() TO PUBLIC;

-- Add the guard to one table (idempotent).
CREATE OR REPLACE FUNCTION pgwarden_wall.guard_table(tbl regclass) RETURNS void
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'pgwarden_wall_guard') THEN
		EXECUTE format('CREATE TRIGGER pgwarden_wall_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s'
			' FOR EACH STATEMENT EXECUTE FUNCTION pgwarden_wall.guard_write()', tbl);
	END IF;
END
$$;
REVOKE ALL ON FUNCTION pgwarden_wall.guard_table(regclass) FROM PUBLIC;

-- Tables that should carry the guard and do not: pgwarden logs them at each session check.
CREATE OR REPLACE FUNCTION pgwarden_wall.unguarded_tables() RETURNS SETOF regclass
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
	SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind IN ('r', 'p', 'f') AND c.relpersistence <> 't'
	  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgwarden_wall') AND n.nspname NOT LIKE 'pg_toast%'
	  AND (SELECT production FROM pgwarden_wall.config)
	  AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'pgwarden_wall_guard'
			  AND t.tgenabled <> 'D')
$$;
ALTER FUNCTION pgwarden_wall.unguarded_tables() OWNER TO pgwarden_wall_owner;
GRANT EXECUTE ON FUNCTION pgwarden_wall.unguarded_tables() TO PUBLIC;

-- DDL (CREATE, ALTER, DROP, GRANT, COMMENT, REFRESH MATERIALIZED VIEW, ...) in a policed session
-- needs the write grant too. Roles, databases and tablespaces fire no event trigger: the app roles
-- cannot touch them anyway (NOCREATEROLE, NOCREATEDB).
CREATE OR REPLACE FUNCTION pgwarden_wall.guard_ddl() RETURNS event_trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF pgwarden_wall.policed() AND NOT pgwarden_wall.write_granted() THEN
		RAISE EXCEPTION 'pgwarden wall: % outside an approved window', tg_tag
			USING ERRCODE = '42501', DETAIL = 'rule: write-outside-window (database wall)';
	END IF;
END
$$;
ALTER FUNCTION pgwarden_wall.guard_ddl() OWNER TO pgwarden_wall_owner;

-- New tables get the guard as they are created (runs as the creator, who owns the table).
CREATE OR REPLACE FUNCTION pgwarden_wall.guard_new_tables() RETURNS event_trigger
	LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	r record;
BEGIN
	-- (Installed on production databases only; runs as the invoker, who owns the new table.)
	FOR r IN SELECT d.objid FROM pg_event_trigger_ddl_commands() d JOIN pg_class c ON c.oid = d.objid
		 WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND c.relkind IN ('r', 'p', 'f')
		   AND c.relpersistence <> 't' AND d.schema_name <> 'pgwarden_wall'
	LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = r.objid AND tgname = 'pgwarden_wall_guard') THEN
			EXECUTE format('CREATE TRIGGER pgwarden_wall_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s'
				' FOR EACH STATEMENT EXECUTE FUNCTION pgwarden_wall.guard_write()', r.objid::regclass);
		END IF;
	END LOOP;
END
$$;
ALTER FUNCTION pgwarden_wall.guard_new_tables() OWNER TO pgwarden_wall_owner;
GRANT EXECUTE ON FUNCTION pgwarden_wall.guard_new_tables() TO PUBLIC;

DROP EVENT TRIGGER IF EXISTS pgwarden_wall_ddl;
DROP EVENT TRIGGER IF EXISTS pgwarden_wall_new_tables;
\if :production
CREATE EVENT TRIGGER pgwarden_wall_ddl ON ddl_command_start EXECUTE FUNCTION pgwarden_wall.guard_ddl();
CREATE EVENT TRIGGER pgwarden_wall_new_tables ON ddl_command_end
	WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'CREATE FOREIGN TABLE')
	EXECUTE FUNCTION pgwarden_wall.guard_new_tables();
SELECT pgwarden_wall.guard_table(c.oid::regclass)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f') AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgwarden_wall') AND n.nspname NOT LIKE 'pg_toast%';
\endif

-- ---- 4. What writes outside tables, and what reaches other sessions ------------------------------

-- Large objects: PostgreSQL lets lo_create and lowrite run in a read-only transaction's spirit
-- (they write pg_largeobject, which no trigger can guard). Nobody behind pgwarden needs them:
-- EXECUTE goes from PUBLIC on every function that creates, writes or removes one (reading stays).
-- lo_import/lo_export (server files) are in revoke-opaque-functions.sql. Grant back to a role by
-- name if an application really stores large objects.
-- pg_terminate_backend / pg_cancel_backend: every pgwarden session has the same session user, so a
-- session that got back to it (RESET ROLE, through a classifier miss) could end all the others.
-- pgwarden cancels through the protocol's CancelRequest, which does not need them.
-- pg_logical_emit_message: writes WAL (and, non-transactional, outside any rollback) that logical
-- replication consumers receive; nothing behind pgwarden needs it.
-- Advisory locks stay: they change no data (PostgreSQL allows them in read-only transactions on
-- purpose), applications use them for coordination, and pgwarden's pooling tracks them. What they
-- can do is block other sessions that use the same keys: a denial of service, not a breach.
SELECT format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', p.oid::regprocedure)
FROM pg_proc p
WHERE p.pronamespace = 'pg_catalog'::regnamespace
  AND p.proname IN ('lo_create', 'lo_creat', 'lo_from_bytea', 'lo_put', 'lowrite', 'lo_truncate', 'lo_truncate64',
		    'lo_unlink', 'lo_import', 'lo_export', 'pg_terminate_backend', 'pg_cancel_backend',
		    'pg_logical_emit_message')
\gexec

-- Sequences: setval needs UPDATE on the sequence; nextval needs USAGE (kept: INSERT defaults call
-- it). No trigger fires for either, so UPDATE goes from every role pgwarden can become. nextval
-- outside a window only consumes numbers (a gap), which a read-only transaction allows too.
SELECT format('REVOKE UPDATE ON SEQUENCE %s FROM %I', c.oid::regclass, r.rolname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
     pg_roles r
WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND (r.rolname = :'svc_role' OR pg_has_role(:'svc_role', r.oid, 'MEMBER'))
  AND has_sequence_privilege(r.oid, c.oid, 'UPDATE')
\gexec

-- ---- 5. The grant wall ----------------------------------------------------------------------------

-- Protected roles (pgwarden's protected_roles but public; PUBLIC is grantee 0 in an aclitem), kept
-- by OID: a role renamed later (ALTER ROLE anon RENAME TO ...) stays protected.
DROP TABLE IF EXISTS pgwarden_wall.protected_role;  -- walls version 1 kept names here
CREATE TABLE IF NOT EXISTS pgwarden_wall.protected (
	roleid oid PRIMARY KEY  -- a role nothing may be granted to from a pgwarden session
);
ALTER TABLE pgwarden_wall.protected OWNER TO pgwarden_wall_owner;
REVOKE ALL ON pgwarden_wall.protected FROM PUBLIC;
INSERT INTO pgwarden_wall.protected
SELECT r.oid FROM pg_roles r
WHERE r.rolname = ANY (string_to_array(replace(:'protected_roles', ' ', ''), ','))
ON CONFLICT DO NOTHING;

-- Every privilege the catalogs give a protected role or PUBLIC on an object of this database, and
-- every policy that names one, as text. PUBLIC's defaults (EXECUTE on functions, USAGE on types and
-- languages) are left out: an ACL that gets written down for another grant lists them too.
CREATE OR REPLACE FUNCTION pgwarden_wall.protected_grants() RETURNS SETOF text
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
	WITH prot AS (SELECT 0::oid AS oid UNION ALL SELECT roleid FROM pgwarden_wall.protected),
	acls(cat, objid, sub, acl, def) AS (
		SELECT 'class', oid, 0, relacl, NULL::text FROM pg_class WHERE relacl IS NOT NULL
		UNION ALL SELECT 'column', attrelid, attnum::int, attacl, NULL FROM pg_attribute WHERE attacl IS NOT NULL
		UNION ALL SELECT 'proc', oid, 0, proacl, 'EXECUTE' FROM pg_proc WHERE proacl IS NOT NULL
		UNION ALL SELECT 'namespace', oid, 0, nspacl, NULL FROM pg_namespace WHERE nspacl IS NOT NULL
		UNION ALL SELECT 'type', oid, 0, typacl, 'USAGE' FROM pg_type WHERE typacl IS NOT NULL
		UNION ALL SELECT 'language', oid, 0, lanacl, 'USAGE' FROM pg_language WHERE lanacl IS NOT NULL
		UNION ALL SELECT 'largeobject', oid, 0, lomacl, NULL FROM pg_largeobject_metadata WHERE lomacl IS NOT NULL
		UNION ALL SELECT 'fdw', oid, 0, fdwacl, NULL FROM pg_foreign_data_wrapper WHERE fdwacl IS NOT NULL
		UNION ALL SELECT 'server', oid, 0, srvacl, NULL FROM pg_foreign_server WHERE srvacl IS NOT NULL
		UNION ALL SELECT 'default:' || defaclobjtype::text, oid, 0, defaclacl, NULL FROM pg_default_acl)
	SELECT a.cat || ':' || a.objid || ':' || a.sub || ':' || x.grantee || ':' || x.privilege_type
	FROM acls a, aclexplode(a.acl) x
	WHERE a.objid >= 16384  -- FirstNormalObjectId: built-in objects are not ours to police
	  AND x.grantee IN (SELECT oid FROM prot)
	  AND NOT (x.grantee = 0 AND x.privilege_type IS NOT DISTINCT FROM a.def)
	UNION ALL
	SELECT 'policy:' || p.oid || ':' || r
	FROM pg_policy p, unnest(p.polroles) r
	WHERE r IN (SELECT oid FROM prot) AND r <> 0  -- TO PUBLIC is every policy's default: it grants nothing
$$;
ALTER FUNCTION pgwarden_wall.protected_grants() OWNER TO pgwarden_wall_owner;
REVOKE ALL ON FUNCTION pgwarden_wall.protected_grants() FROM PUBLIC;

-- The grants that existed when this script last ran (a DBA's decision, re-run the script to
-- accept new ones): only new ones made in a pgwarden session are refused.
CREATE TABLE IF NOT EXISTS pgwarden_wall.accepted_grant (
	item text PRIMARY KEY  -- one protected_grants() entry accepted by the operator
);
ALTER TABLE pgwarden_wall.accepted_grant OWNER TO pgwarden_wall_owner;
REVOKE ALL ON pgwarden_wall.accepted_grant FROM PUBLIC;
TRUNCATE pgwarden_wall.accepted_grant;
INSERT INTO pgwarden_wall.accepted_grant SELECT DISTINCT * FROM pgwarden_wall.protected_grants();

-- After every DDL command in a pgwarden session (GRANT, ALTER DEFAULT PRIVILEGES, CREATE/ALTER
-- POLICY, the grants inside CREATE SCHEMA, default privileges applied by a CREATE ...; DDL through
-- pgwarden is rare, and the scan takes milliseconds): refuse (roll back) if a protected role gained
-- anything. The
-- catalog is read after the command, so the name it was given by (rename, quoting, U&"") does
-- not matter. Role membership (GRANT role TO anon) fires no event trigger: README says what
-- covers it.
CREATE OR REPLACE FUNCTION pgwarden_wall.guard_grants() RETURNS event_trigger
	LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	bad text;
BEGIN
	IF session_user <> (SELECT svc_role FROM pgwarden_wall.config) THEN
		RETURN;
	END IF;
	SELECT g INTO bad FROM pgwarden_wall.protected_grants() g
	WHERE g NOT IN (SELECT item FROM pgwarden_wall.accepted_grant) LIMIT 1;
	IF bad IS NOT NULL THEN
		RAISE EXCEPTION 'pgwarden wall: % would grant to a protected role (%)', tg_tag, bad
			USING ERRCODE = '42501', DETAIL = 'rule: grant-to-protected-role (database wall)';
	END IF;
END
$$;
ALTER FUNCTION pgwarden_wall.guard_grants() OWNER TO pgwarden_wall_owner;
DROP EVENT TRIGGER IF EXISTS pgwarden_wall_grants;
CREATE EVENT TRIGGER pgwarden_wall_grants ON ddl_command_end EXECUTE FUNCTION pgwarden_wall.guard_grants();

COMMIT;

-- Check (read-only): the identity wall answers, and which tables still lack the write guard.
SELECT pgwarden_wall.version() AS wall_version,
	(SELECT key_id FROM pgwarden_wall.key) AS wall_key_id,
	(SELECT count(*) FROM pgwarden_wall.unguarded_tables()) AS unguarded_tables;
