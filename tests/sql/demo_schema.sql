-- demo_schema.sql - the database world pgwarden's integration tests, bench and demo run against.
--
-- Run with psql as a superuser, connected to the "postgres" database of a fresh cluster:
--   psql -v ON_ERROR_STOP=1 -v svc_password=SECRET -d postgres -f tests/sql/demo_schema.sql
-- svc_password is the password of pgwarden's upstream login role; it defaults to
-- 'pgwarden-demo' so the demo works without it (never use that anywhere real).
--
-- It builds database "app" (the production target in tests and demo), then copies it
-- whole into "app_staging" (the staging target) so both always have the same shape.

\set ON_ERROR_STOP 1
\if :{?svc_password}
\else
\set svc_password 'pgwarden-demo'
\endif

-- Roles are cluster-wide, so they are made once, here.
--
-- pgwarden_svc: the only role pgwarden logs in as. NOINHERIT and no privileges of
-- its own: everything it may touch comes from SET ROLE to an app role, which is
-- exactly what pgwarden pins per actor. Not a superuser, so RLS applies.
CREATE ROLE pgwarden_svc LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
ALTER ROLE pgwarden_svc PASSWORD :'svc_password';

-- App roles named by token records. NOLOGIN: reachable only through pgwarden_svc.
CREATE ROLE bookkeeper NOLOGIN;   -- human finance users: read/write invoices of their tenant
CREATE ROLE agent_rw NOLOGIN;     -- automated agents: same table rights, restricted by token targets=
-- Membership is what makes "SET ROLE bookkeeper" legal for pgwarden_svc.
GRANT bookkeeper, agent_rw TO pgwarden_svc;

-- Protected roles (CONTRACT protected_roles): things must never be granted to them
-- through pgwarden. They exist so a GRANT to them would succeed if not stopped.
CREATE ROLE anon NOLOGIN;
CREATE ROLE guest NOLOGIN;

CREATE DATABASE app;
\connect app

-- Unqualified names resolve into the billing schema for every role in this database
-- (ALTER ROLE ... SET would not follow SET ROLE; a database setting does).
CREATE SCHEMA billing;
ALTER DATABASE app SET search_path = billing, public;

-- The tenant-isolated table. RLS is ENABLED (policies apply to non-owners) and FORCED
-- (would apply even to the owner), and the policy reads the tenant that pgwarden
-- pins in app.tenant_id; missing_ok=true makes an unset tenant see nothing rather
-- than raise an error.
CREATE TABLE billing.invoices (
	id serial PRIMARY KEY,
	tenant text NOT NULL,
	amount numeric,
	note text
);
ALTER TABLE billing.invoices ENABLE ROW LEVEL SECURITY;
ALTER TABLE billing.invoices FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON billing.invoices
	USING (tenant = current_setting('app.tenant_id', true))
	WITH CHECK (tenant = current_setting('app.tenant_id', true));

-- Rows for two tenants, so isolation is visible (acme: 3 rows, globex: 2 rows).
INSERT INTO billing.invoices (tenant, amount, note) VALUES
	('acme', 100.00, 'acme consulting'),
	('acme', 250.50, 'acme licences'),
	('acme', 75.25, 'acme support'),
	('globex', 999.99, 'globex hardware'),
	('globex', 10.00, 'globex coffee');

-- App-role rights: use the schema, read and write invoices (RLS still filters rows).
GRANT USAGE ON SCHEMA billing TO bookkeeper, agent_rw;
GRANT SELECT, INSERT, UPDATE, DELETE ON billing.invoices TO bookkeeper, agent_rw;
GRANT USAGE ON SEQUENCE billing.invoices_id_seq TO bookkeeper, agent_rw;

-- Harmless read-only helpers (plain SQL, STABLE): the kind of function pgwarden must
-- classify as read-only from its body and allow on production.
CREATE FUNCTION billing.tenant_total() RETURNS numeric
	LANGUAGE sql STABLE
	AS $$ SELECT coalesce(sum(amount), 0) FROM billing.invoices $$;
CREATE FUNCTION billing.whoami(OUT actor text, OUT tenant text, OUT db_role text)
	LANGUAGE sql STABLE
	AS $$ SELECT current_setting('app.actor_id', true), current_setting('app.tenant_id', true),
		     current_user::text $$;

-- Functions pgwarden must NOT allow, for policy tests (CONTRACT §4, user-defined
-- functions are judged by their bodies). Creating them here is safe: they only do
-- harm when called, and calling them through pgwarden is what the tests check is denied.
-- 1. Changes a pinned setting: identity-change.
CREATE FUNCTION billing.switch_tenant(t text) RETURNS text
	LANGUAGE sql VOLATILE
	AS $$ SELECT set_config('app.tenant_id', t, false) $$;
-- 2. Runs SQL given as text: opaque-sql (pgwarden cannot see what it does).
CREATE FUNCTION billing.run_sql(q text) RETURNS void
	LANGUAGE plpgsql VOLATILE
	AS $$ BEGIN EXECUTE q; END $$;
-- 3. Writes: a write, denied on production outside a window.
CREATE FUNCTION billing.add_invoice(a numeric) RETURNS integer
	LANGUAGE sql VOLATILE
	AS $$ INSERT INTO billing.invoices (tenant, amount, note)
	      VALUES (current_setting('app.tenant_id', true), a, 'added by function') RETURNING id $$;
GRANT EXECUTE ON FUNCTION billing.tenant_total(), billing.whoami(), billing.switch_tenant(text),
	billing.run_sql(text), billing.add_invoice(numeric) TO bookkeeper, agent_rw;

-- The staging target: an exact copy of app. Must be made from another database
-- (a template cannot have connections); the search_path setting is per database,
-- so it is set again.
\connect postgres
CREATE DATABASE app_staging TEMPLATE app;
ALTER DATABASE app_staging SET search_path = billing, public;

-- The walled production copy: app with deploy/walls.sql installed (production), for the tests
-- that switch pgwarden's classification off (tests/integration/test_walls.py) and for anyone
-- trying the walls by hand. No key is stored here: whoever uses it sets one first, as a superuser,
-- with SELECT pgwarden_wall.set_key('<64 hex>') (the demo and the tests make their own).
CREATE DATABASE app_walled TEMPLATE app;
ALTER DATABASE app_walled SET search_path = billing, public;
\connect app_walled

-- Trigger and DDL material for the walls tests: a table whose row trigger sets the tenant (an
-- escape pgwarden's classifier cannot see, since nothing in the INSERT names it), and CREATE on
-- billing so that DDL inside a window can succeed.
CREATE TABLE billing.notes (
	id serial PRIMARY KEY,
	tenant text NOT NULL DEFAULT current_setting('app.tenant_id', true),
	body text
);
CREATE FUNCTION billing.notes_set_tenant() RETURNS trigger
	LANGUAGE plpgsql
	AS $$ BEGIN PERFORM set_config('app.tenant_id', 'globex', false); RETURN NEW; END $$;
CREATE TRIGGER notes_set_tenant BEFORE INSERT ON billing.notes
	FOR EACH ROW EXECUTE FUNCTION billing.notes_set_tenant();
GRANT SELECT, INSERT ON billing.notes TO bookkeeper, agent_rw;
GRANT USAGE ON SEQUENCE billing.notes_id_seq TO bookkeeper, agent_rw;
GRANT CREATE ON SCHEMA billing TO bookkeeper;

-- The walls (production = 1: identity, write, grant walls), then the tenant tables behind the
-- verified tenant.
\ir ../../deploy/walls.sql
SELECT pgwarden_wall.protect_table('billing.invoices', 'tenant');
SELECT pgwarden_wall.protect_table('billing.notes', 'tenant');
