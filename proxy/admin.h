/* admin.h - the admin HTTP endpoints on admin_listen: /healthz, /metrics, /windows (CONTRACT §6). */
#ifndef PGW_ADMIN_H
#define PGW_ADMIN_H

struct pgw_server;

/* Start serving when admin_listen is set; 0 on success or when off. */
int admin_start(struct pgw_server *srv);
void admin_stop(struct pgw_server *srv);

#endif
