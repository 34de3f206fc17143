/*
 * preflight.h - `pgwarden --check --connect -c FILE`: the config checks of
 * --check, then each target is connected to and the token records are
 * checked against its catalog (role exists, the login role can SET ROLE to
 * it), the login role's attributes are judged, and windows that are over or
 * name actors with no token record are warned about.
 */
#ifndef PGW_PREFLIGHT_H
#define PGW_PREFLIGHT_H

/* Errors and warnings go to stderr as FILE:LINE: ...; "ok" to stdout. Exit 0 ok (warnings allowed), 1 errors. */
int preflight_main(const char *config_path);

#endif
