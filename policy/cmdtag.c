/* cmdtag.c - a statement node's name in SQL's words: PostgreSQL's own command tag, for denial messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/classify_int.h"

/*
 * The reference is PostgreSQL 15's CreateCommandTag() (tcop/utility.c) and
 * tcop/cmdtaglist.h: "CREATE TABLE", "LOCK TABLE", "VACUUM", never the parse
 * node's name (CreateStmt, LockStmt, VacuumStmt). Tags that depend on a field
 * (DROP <object>, VACUUM vs ANALYZE, CREATE TABLE AS vs SELECT INTO) are
 * computed from it. Sorted by node name (strcmp) for bsearch; a unit test
 * checks the order.
 */
typedef struct node_tag {
	const char *node; /* libpg_query node type */
	const char *tag;  /* its command tag; NULL: built by tag_from_fields() */
} node_tag;

static const node_tag node_tags[] = {
	{ "AlterCollationStmt", "ALTER COLLATION" },
	{ "AlterDatabaseRefreshCollStmt", "ALTER DATABASE" },
	{ "AlterDatabaseSetStmt", "ALTER DATABASE" },
	{ "AlterDatabaseStmt", "ALTER DATABASE" },
	{ "AlterDefaultPrivilegesStmt", "ALTER DEFAULT PRIVILEGES" },
	{ "AlterDomainStmt", "ALTER DOMAIN" },
	{ "AlterEnumStmt", "ALTER TYPE" },
	{ "AlterEventTrigStmt", "ALTER EVENT TRIGGER" },
	{ "AlterExtensionContentsStmt", "ALTER EXTENSION" },
	{ "AlterExtensionStmt", "ALTER EXTENSION" },
	{ "AlterFdwStmt", "ALTER FOREIGN DATA WRAPPER" },
	{ "AlterForeignServerStmt", "ALTER SERVER" },
	{ "AlterFunctionStmt", NULL },
	{ "AlterObjectDependsStmt", NULL },
	{ "AlterObjectSchemaStmt", NULL },
	{ "AlterOpFamilyStmt", "ALTER OPERATOR FAMILY" },
	{ "AlterOperatorStmt", "ALTER OPERATOR" },
	{ "AlterOwnerStmt", NULL },
	{ "AlterPolicyStmt", "ALTER POLICY" },
	{ "AlterPublicationStmt", "ALTER PUBLICATION" },
	{ "AlterRoleSetStmt", "ALTER ROLE" },
	{ "AlterRoleStmt", "ALTER ROLE" },
	{ "AlterSeqStmt", "ALTER SEQUENCE" },
	{ "AlterStatsStmt", "ALTER STATISTICS" },
	{ "AlterSubscriptionStmt", "ALTER SUBSCRIPTION" },
	{ "AlterSystemStmt", "ALTER SYSTEM" },
	{ "AlterTSConfigurationStmt", "ALTER TEXT SEARCH CONFIGURATION" },
	{ "AlterTSDictionaryStmt", "ALTER TEXT SEARCH DICTIONARY" },
	{ "AlterTableMoveAllStmt", NULL },
	{ "AlterTableSpaceOptionsStmt", "ALTER TABLESPACE" },
	{ "AlterTableStmt", NULL },
	{ "AlterTypeStmt", "ALTER TYPE" },
	{ "AlterUserMappingStmt", "ALTER USER MAPPING" },
	{ "CallStmt", "CALL" },
	{ "CheckPointStmt", "CHECKPOINT" },
	{ "ClusterStmt", "CLUSTER" },
	{ "CommentStmt", "COMMENT" },
	{ "CompositeTypeStmt", "CREATE TYPE" },
	{ "CopyStmt", "COPY" },
	{ "CreateAmStmt", "CREATE ACCESS METHOD" },
	{ "CreateCastStmt", "CREATE CAST" },
	{ "CreateConversionStmt", "CREATE CONVERSION" },
	{ "CreateDomainStmt", "CREATE DOMAIN" },
	{ "CreateEnumStmt", "CREATE TYPE" },
	{ "CreateEventTrigStmt", "CREATE EVENT TRIGGER" },
	{ "CreateExtensionStmt", "CREATE EXTENSION" },
	{ "CreateFdwStmt", "CREATE FOREIGN DATA WRAPPER" },
	{ "CreateForeignServerStmt", "CREATE SERVER" },
	{ "CreateForeignTableStmt", "CREATE FOREIGN TABLE" },
	{ "CreateFunctionStmt", NULL },
	{ "CreateOpClassStmt", "CREATE OPERATOR CLASS" },
	{ "CreateOpFamilyStmt", "CREATE OPERATOR FAMILY" },
	{ "CreatePLangStmt", "CREATE LANGUAGE" },
	{ "CreatePolicyStmt", "CREATE POLICY" },
	{ "CreatePublicationStmt", "CREATE PUBLICATION" },
	{ "CreateRangeStmt", "CREATE TYPE" },
	{ "CreateRoleStmt", "CREATE ROLE" },
	{ "CreateSchemaStmt", "CREATE SCHEMA" },
	{ "CreateSeqStmt", "CREATE SEQUENCE" },
	{ "CreateStatsStmt", "CREATE STATISTICS" },
	{ "CreateStmt", "CREATE TABLE" },
	{ "CreateSubscriptionStmt", "CREATE SUBSCRIPTION" },
	{ "CreateTableAsStmt", NULL },
	{ "CreateTableSpaceStmt", "CREATE TABLESPACE" },
	{ "CreateTransformStmt", "CREATE TRANSFORM" },
	{ "CreateTrigStmt", "CREATE TRIGGER" },
	{ "CreateUserMappingStmt", "CREATE USER MAPPING" },
	{ "CreatedbStmt", "CREATE DATABASE" },
	{ "DefineStmt", NULL },
	{ "DeleteStmt", "DELETE" },
	{ "DoStmt", "DO" },
	{ "DropOwnedStmt", "DROP OWNED" },
	{ "DropRoleStmt", "DROP ROLE" },
	{ "DropStmt", NULL },
	{ "DropSubscriptionStmt", "DROP SUBSCRIPTION" },
	{ "DropTableSpaceStmt", "DROP TABLESPACE" },
	{ "DropUserMappingStmt", "DROP USER MAPPING" },
	{ "DropdbStmt", "DROP DATABASE" },
	{ "GrantRoleStmt", NULL },
	{ "GrantStmt", NULL },
	{ "ImportForeignSchemaStmt", "IMPORT FOREIGN SCHEMA" },
	{ "IndexStmt", "CREATE INDEX" },
	{ "InsertStmt", "INSERT" },
	{ "LoadStmt", "LOAD" },
	{ "LockStmt", "LOCK TABLE" },
	{ "MergeStmt", "MERGE" },
	{ "NotifyStmt", "NOTIFY" },
	{ "ReassignOwnedStmt", "REASSIGN OWNED" },
	{ "RefreshMatViewStmt", "REFRESH MATERIALIZED VIEW" },
	{ "ReindexStmt", "REINDEX" },
	{ "RenameStmt", NULL },
	{ "RuleStmt", "CREATE RULE" },
	{ "SecLabelStmt", "SECURITY LABEL" },
	{ "TruncateStmt", "TRUNCATE TABLE" },
	{ "UpdateStmt", "UPDATE" },
	{ "VacuumStmt", NULL },
	{ "ViewStmt", "CREATE VIEW" },
};

bool cmdtag_table_sorted(void)
{
	for (size_t i = 1; i < sizeof(node_tags) / sizeof(node_tags[0]); i++) {
		if (strcmp(node_tags[i - 1].node, node_tags[i].node) >= 0)
			return false;
	}
	return true;
}

/* ObjectType names whose SQL spelling is not the enum's words (OBJECT_MATVIEW -> MATERIALIZED VIEW). */
static const struct {
	const char *obj, *sql;
} object_words[] = {
	{ "ATTRIBUTE", "TYPE" },
	{ "COLUMN", "TABLE" },
	{ "DOMCONSTRAINT", "DOMAIN" },
	{ "FDW", "FOREIGN DATA WRAPPER" },
	{ "FOREIGN_SERVER", "SERVER" },
	{ "MATVIEW", "MATERIALIZED VIEW" },
	{ "OPCLASS", "OPERATOR CLASS" },
	{ "OPFAMILY", "OPERATOR FAMILY" },
	{ "STATISTIC_EXT", "STATISTICS" },
	{ "TABCONSTRAINT", "TABLE" },
	{ "TSCONFIGURATION", "TEXT SEARCH CONFIGURATION" },
	{ "TSDICTIONARY", "TEXT SEARCH DICTIONARY" },
	{ "TSPARSER", "TEXT SEARCH PARSER" },
	{ "TSTEMPLATE", "TEXT SEARCH TEMPLATE" },
};

/* "verb OBJECT" from an ObjectType string token ("OBJECT_TABLE"); "verb" alone when it has none. */
static const char *object_tag(const jdoc *d, const char *verb, uint32_t objtype, char *buf, size_t bufsz)
{
	char *t = objtype ? jstr_dup(d, objtype) : NULL;
	const char *o = t && strncmp(t, "OBJECT_", 7) == 0 ? t + 7 : NULL;
	char words[64];
	size_t k;

	if (!o) {
		free(t);
		return verb;
	}
	snprintf(words, sizeof(words), "%s", o);
	for (k = 0; k < sizeof(object_words) / sizeof(object_words[0]); k++) {
		if (strcmp(o, object_words[k].obj) == 0) {
			snprintf(words, sizeof(words), "%s", object_words[k].sql);
			break;
		}
	}
	for (char *p = words; *p; p++)
		*p = *p == '_' ? ' ' : *p;
	snprintf(buf, bufsz, "%s %s", verb, words);
	free(t);
	return buf;
}

static bool field_true(const jdoc *d, uint32_t obj, const char *key)
{
	uint32_t v = jobj_get(d, obj, key);

	return v && d->t[v].type == J_LIT && d->text[d->t[v].start] == 't';
}

/* The tags that depend on a field of the node. */
static const char *tag_from_fields(const jdoc *d, const char *node, uint32_t body, char *buf, size_t bufsz)
{
	if (strcmp(node, "DropStmt") == 0)
		return object_tag(d, "DROP", jobj_get(d, body, "removeType"), buf, bufsz);
	if (strcmp(node, "RenameStmt") == 0)
		return object_tag(d, "ALTER", jobj_get(d, body, "renameType"), buf, bufsz);
	if (strcmp(node, "AlterObjectSchemaStmt") == 0 || strcmp(node, "AlterOwnerStmt") == 0 ||
	    strcmp(node, "AlterObjectDependsStmt") == 0)
		return object_tag(d, "ALTER", jobj_get(d, body, "objectType"), buf, bufsz);
	if (strcmp(node, "AlterTableStmt") == 0 || strcmp(node, "AlterTableMoveAllStmt") == 0)
		return object_tag(d, "ALTER", jobj_get(d, body, "objtype"), buf, bufsz);
	if (strcmp(node, "AlterFunctionStmt") == 0)
		return object_tag(d, "ALTER", jobj_get(d, body, "objtype"), buf, bufsz);
	if (strcmp(node, "DefineStmt") == 0)
		return object_tag(d, "CREATE", jobj_get(d, body, "kind"), buf, bufsz);
	if (strcmp(node, "CreateFunctionStmt") == 0)
		return field_true(d, body, "is_procedure") ? "CREATE PROCEDURE" : "CREATE FUNCTION";
	if (strcmp(node, "VacuumStmt") == 0)
		return field_true(d, body, "is_vacuumcmd") ? "VACUUM" : "ANALYZE";
	if (strcmp(node, "GrantStmt") == 0 || strcmp(node, "GrantRoleStmt") == 0)
		return field_true(d, body, "is_grant") ? "GRANT" : "REVOKE";
	if (strcmp(node, "CreateTableAsStmt") == 0) {
		uint32_t into = jobj_get(d, body, "objtype");

		if (into && jstr_eq(d, into, "OBJECT_MATVIEW"))
			return "CREATE MATERIALIZED VIEW";
		return field_true(d, body, "is_select_into") ? "SELECT INTO" : "CREATE TABLE AS";
	}
	return NULL;
}

static int cmp_node(const void *key, const void *elem)
{
	return strcmp(key, ((const node_tag *)elem)->node);
}

const char *stmt_command_tag(const jdoc *d, uint32_t body, char *buf, size_t bufsz)
{
	const jtok *t = body > 0 ? &d->t[body - 1] : NULL;
	char node[64];
	const node_tag *nt;

	/* Why body - 1: walk_node hands a handler the body of {"Type": body}, right after its key. */
	if (!t || t->type != J_STR || t->len == 0 || t->len >= sizeof(node) || t->esc)
		return NULL;
	memcpy(node, d->text + t->start, t->len);
	node[t->len] = '\0';
	nt = bsearch(node, node_tags, sizeof(node_tags) / sizeof(node_tags[0]), sizeof(node_tags[0]), cmp_node);
	if (!nt)
		return NULL;
	return nt->tag ? nt->tag : tag_from_fields(d, node, body, buf, bufsz);
}
