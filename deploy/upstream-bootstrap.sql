-- upstream-bootstrap.sql - the roles and grants pgwarden needs on one upstream PostgreSQL (15+) cluster.
--
-- Run once per target cluster, as a superuser, directly (NOT through pgwarden):
--
--   psql -X -v ON_ERROR_STOP=1 -v app_db=app -v production=1 -d postgres -f upstream-bootstrap.sql
--   psql -X -d postgres -c '\password pgwarden_svc'          # then set the login password
--
-- Variables:
--   app_db        the database the [target.*] conninfo names (default: app)
--   production    1 if that database is a production target (default: 1); adds the read-only default
--   svc_password  optional; sets pgwarden_svc's password here. It then travels in a statement and
--                 can reach the server log (log_statement = ddl/all): prefer \password afterwards.
--
-- Then, in each target database: revoke-opaque-functions.sql, and walls.sql (the walls that hold
-- when pgwarden's classifier misses: signed identity for RLS, production write guard, grant guard).
--
-- Re-runnable: roles are created only when missing, everything else is ALTER/GRANT/REVOKE.
-- The app role names (bookkeeper, agent_rw) are examples: use the roles your token file names.

\set ON_ERROR_STOP 1
\if :{?app_db}
\else
\set app_db app
\endif
\if :{?production}
\else
\set production 1
\endif

-- ---- 1. The login role pgwarden uses ---------------------------------------------------------

-- Create it only when missing, so the script can be run again after editing.
SELECT 'CREATE ROLE pgwarden_svc' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgwarden_svc')
\gexec

-- LOGIN: the only role pgwarden logs in as (conninfo user=pgwarden_svc).
-- NOINHERIT: pgwarden_svc holds no usable privilege of its own; what a session may touch comes
--   only from the SET ROLE pgwarden pins per actor, so a session that is not pinned can do nothing.
-- NOSUPERUSER: a superuser bypasses RLS and every grant, and could undo anything pgwarden pins.
-- NOCREATEROLE: it must not mint roles or change memberships (an escape from the pinned role).
-- NOCREATEDB: nothing it does needs a new database.
-- NOREPLICATION: a replication connection would stream every table, bypassing RLS and grants.
-- NOBYPASSRLS: row-level security must apply to everything it does.
-- (pgwarden opens one upstream session per client session: add CONNECTION LIMIT n to bound them.)
-- Authenticate it with a TLS client certificate (pg_hba.conf: hostssl app pgwarden_svc 10.0.0.0/8 cert)
--   where you can: PostgreSQL lets any role change its own password, so a session that got back to
--   pgwarden_svc through a classifier miss (RESET ROLE) could lock pgwarden out by changing it;
--   with cert authentication the password does not matter. (README, "Walls in the database".)
ALTER ROLE pgwarden_svc LOGIN NOINHERIT NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS;

\if :{?svc_password}
-- The upstream password; the conninfo reads it from a passfile (see pgwarden.example.ini).
ALTER ROLE pgwarden_svc PASSWORD :'svc_password';
\endif

-- ---- 2. Application roles the token file names ---------------------------------------------

SELECT 'CREATE ROLE bookkeeper' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bookkeeper')
\gexec
SELECT 'CREATE ROLE agent_rw' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'agent_rw')
\gexec

-- NOLOGIN: an app role is reachable only as pgwarden_svc + SET ROLE, i.e. only through pgwarden,
--   so every session in it is authenticated by a token, policed and audited.
-- NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS: the same reasons as above; these
--   are the privileges a session actually runs with after SET ROLE.
-- An app role must not own the tables it uses: owners bypass RLS (unless FORCE, section 5) and
--   can ALTER or DROP them. Keep ownership with a separate NOLOGIN owner role.
ALTER ROLE bookkeeper NOLOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS;
ALTER ROLE agent_rw NOLOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS;

-- Membership is what makes "SET ROLE bookkeeper" legal for pgwarden_svc (with NOINHERIT it grants
-- nothing until the SET ROLE). The set of roles granted here is the upper bound of what any token
-- record can become, whatever the token file says: grant only app roles, never an owner role, an
-- admin role, or pg_read_server_files / pg_write_server_files / pg_execute_server_program.
-- No WITH ADMIN OPTION: pgwarden_svc must not be able to pass the membership on.
GRANT bookkeeper, agent_rw TO pgwarden_svc;

-- ---- 3. Protected roles ----------------------------------------------------------------------

-- anon and guest (pgwarden's default protected_roles, with public) are the unauthenticated roles of
-- setups such as PostgREST. pgwarden denies any grant to them; they stay NOLOGIN and are NOT granted
-- to pgwarden_svc, so no token record could SET ROLE to them even if the config were wrong.
SELECT 'CREATE ROLE anon' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon')
\gexec
SELECT 'CREATE ROLE guest' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'guest')
\gexec
ALTER ROLE anon NOLOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS;
ALTER ROLE guest NOLOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS;
SELECT format('REVOKE %I FROM pgwarden_svc', r.rolname)
FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
WHERE u.rolname = 'pgwarden_svc' AND r.rolname IN ('anon', 'guest')
\gexec

-- ---- 4. The target database ------------------------------------------------------------------

-- CONNECT: by default every role may connect to every database. Take it from PUBLIC and give it to
--   pgwarden_svc (the login role is the one checked), so the database is reached through pgwarden.
--   Grant CONNECT to your migration/DBA roles separately; they do not go through pgwarden.
-- TEMPORARY: temp objects live in pg_temp, which is searched before other schemas for tables and
--   views, so a temp object can shadow a real one; it is also write capability nobody asked for.
--   Grant TEMPORARY to the app roles that really need temp tables.
REVOKE CONNECT, TEMPORARY ON DATABASE :"app_db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"app_db" TO pgwarden_svc;

\if :production
-- Second wall for production (walls.sql adds the third, which a turned-off default cannot
-- bypass: table writes and DDL need a write grant signed by pgwarden while a window is open):
-- pgwarden already runs production sessions with
-- default_transaction_read_only = on outside approved windows (and denies turning it off). This
-- makes on the upstream default for every pgwarden_svc session in this database, so a session
-- that pgwarden failed to pin still starts read-only. pgwarden's own SET ... TO off when a window
-- opens still works: it is a default, not a lock. "IN DATABASE" keeps it off staging databases
-- on the same cluster. (ALTER ROLE ... SET applies to the login role at connect time; it does not
-- follow SET ROLE, which is why it is set on pgwarden_svc and not on the app roles.)
ALTER ROLE pgwarden_svc IN DATABASE :"app_db" SET default_transaction_read_only = on;
\else
ALTER ROLE pgwarden_svc IN DATABASE :"app_db" RESET default_transaction_read_only;
\endif

\connect :"app_db"

-- CREATE on schema public: PostgreSQL 15 no longer grants it to PUBLIC, but a database upgraded
-- from an older version keeps the old grant; a role that can create objects in a schema on the
-- search path can plant functions or operators that others then call.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- ---- 5. Row-level security: advice, to apply per table ---------------------------------------
--
-- pgwarden pins the actor's tenant in app.tenant_id (tenant_setting); RLS is what turns that into
-- row isolation. For each tenant table (names are examples):
--
--   ALTER TABLE billing.invoices OWNER TO app_owner;          -- a NOLOGIN role nobody SETs ROLE to
--   ALTER TABLE billing.invoices ENABLE ROW LEVEL SECURITY;   -- policies apply to non-owners
--   ALTER TABLE billing.invoices FORCE ROW LEVEL SECURITY;    -- and to the owner too: a SECURITY
--                                                             -- DEFINER function owned by app_owner
--                                                             -- stays filtered
--   CREATE POLICY tenant_isolation ON billing.invoices
--       USING (tenant = current_setting('app.tenant_id', true))        -- true: missing = NULL,
--       WITH CHECK (tenant = current_setting('app.tenant_id', true));  -- so no tenant sees nothing
--
--   GRANT USAGE ON SCHEMA billing TO bookkeeper, agent_rw;    -- table rights go to app roles,
--   GRANT SELECT, INSERT, UPDATE, DELETE ON billing.invoices TO bookkeeper, agent_rw;  -- never to
--                                                             -- pgwarden_svc itself
--
-- With walls.sql installed, prefer the verified tenant, which a client cannot change by changing the
-- setting (set_config through a function, a trigger, attribute notation ...): it adds a RESTRICTIVE
-- policy tenant = (SELECT pgwarden_wall.tenant_id()) to the table's own policies:
--
--   SELECT pgwarden_wall.protect_table('billing.invoices', 'tenant');
--
-- Superusers and BYPASSRLS roles skip RLS even when it is forced: keep them away from pgwarden_svc.
-- Tables in this database that have no forced RLS yet (read-only check; review the list):
SELECT n.nspname AS schema, c.relname AS table_without_forced_rls
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relforcerowsecurity
	AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 1, 2;
