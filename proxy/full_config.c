/* full_config.c - config_load with the file checks of every layer above conf (see full_config.h). */
#include "proxy/full_config.h"

#include "audit/audit.h"

/* Why here: conf sits below audit and cannot load an audit key itself, yet a bad key must fail --check and reload. */
static const config_file_check file_checks[] = {
	{ "audit_checkpoint_key", audit_signing_key_usable },
};

pgw_config *full_config_load(const char *path, pgw_errors *e)
{
	return config_load_checked(path, e, file_checks, sizeof(file_checks) / sizeof(file_checks[0]));
}
