-- revoke-opaque-functions.sql - the database-side wall behind pgwarden's opaque-sql rule.
--
-- pgwarden refuses statements that call functions running SQL given as text
-- or touching server files (rule opaque-sql). This script removes EXECUTE on
-- those functions from PUBLIC, so that a path around pgwarden (a view, a
-- trigger, a user function) cannot reach them either. Run it as a superuser
-- in every database behind pgwarden:
--     psql -v ON_ERROR_STOP=1 -d app -f deploy/revoke-opaque-functions.sql
-- It is idempotent. Functions of extensions that are not installed are skipped.
-- Roles that legitimately need one of them (an admin role) must be granted it
-- explicitly afterwards; never grant them to the roles in pgwarden's tokens.
--
-- Not revoked: set_config(). PostgreSQL needs it public (pg_dump, drivers),
-- and pgwarden itself pins settings with it; identity settings are guarded by
-- pgwarden's identity-change rule and, with deploy/walls.sql, by the signed pin:
-- a tenant or role changed through set_config() reads as no tenant at all.
-- walls.sql also revokes the large-object writers (lo_create, lowrite, ...);
-- lo_import and lo_export are revoked by both scripts (either may run alone).

BEGIN;

DO $$
DECLARE
	f record;
BEGIN
	FOR f IN
		SELECT p.oid::regprocedure AS sig
		FROM pg_proc p
		JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE p.proname IN (
			-- run SQL given as text
			'query_to_xml', 'query_to_xml_and_xmlschema', 'query_to_xmlschema',
			'ts_stat',
			-- dblink (any schema it was installed in)
			'dblink', 'dblink_exec', 'dblink_open', 'dblink_fetch', 'dblink_close',
			'dblink_send_query', 'dblink_get_result', 'dblink_connect', 'dblink_connect_u',
			'dblink_disconnect', 'dblink_cancel_query', 'dblink_error_message',
			'dblink_get_connections', 'dblink_is_busy', 'dblink_get_notify',
			-- pg_background (extension)
			'pg_background_launch', 'pg_background_result', 'pg_background_detach',
			-- server files (most are already superuser/pg_read_server_files only)
			'lo_import', 'lo_export', 'pg_read_file', 'pg_read_binary_file', 'pg_ls_dir',
			'pg_stat_file', 'pg_file_write', 'pg_file_rename', 'pg_file_unlink', 'pg_file_sync',
			'pg_logdir_ls')
		   -- ts_rewrite only in its (tsquery, text) form, which runs a query.
		   OR (p.proname = 'ts_rewrite' AND p.pronargs = 2 AND n.nspname = 'pg_catalog')
	LOOP
		EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f.sig);
		RAISE NOTICE 'revoked EXECUTE on % from PUBLIC', f.sig;
	END LOOP;
END
$$;

COMMIT;

-- Check: application roles should see none of them as executable.
--   SELECT p.oid::regprocedure FROM pg_proc p
--   WHERE p.proname IN ('query_to_xml', 'ts_stat', 'dblink_exec', 'lo_import')
--     AND has_function_privilege('app_rw', p.oid, 'EXECUTE');
