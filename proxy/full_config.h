/* full_config.h - the config as pgwarden runs it: conf's load plus the checks of the layers above conf. */
#ifndef PGW_FULL_CONFIG_H
#define PGW_FULL_CONFIG_H

#include "conf/config.h"

/* config_load, and each file check an upper layer adds (the audit checkpoint key); same contract. */
pgw_config *full_config_load(const char *path, pgw_errors *e);

#endif
