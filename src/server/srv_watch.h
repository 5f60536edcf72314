/* The header-read deadline: a client must finish sending a request's headers within
 * limits.header_timeout of connecting (or of its previous request ending), however
 * slowly it trickles bytes. libmicrohttpd's own timeout only measures silence, so a
 * client sending one byte every few seconds could hold a connection (and its thread)
 * for ever. A watcher thread shuts such sockets down; the HTTP glue tells it when a
 * connection opens, when its headers are complete and when it closes.
 *
 * The watcher keeps its own duplicate of each socket's descriptor, so shutting one down
 * can never touch a descriptor number the process has reused meanwhile. */
#ifndef SERVER_SRV_WATCH_H
#define SERVER_SRV_WATCH_H

#include <stdint.h>

#include "hearth.h"

typedef struct srv_watch srv_watch;
typedef struct srv_watch_conn srv_watch_conn;

/* Starts the watcher thread. Errors: NOMEM, IO (thread). */
hearth_status srv_watch_new(double header_timeout_s, srv_watch **out, hearth_err *err);
void srv_watch_free(srv_watch *w); /* stops the thread; accepts NULL */

/* A connection opened on fd: its headers are due within the timeout. NULL when the
 * descriptor cannot be duplicated or memory is short (the connection is then unwatched). */
srv_watch_conn *srv_watch_open(srv_watch *w, int fd);
/* Its request's headers are complete: no deadline while the request runs. */
void srv_watch_headers_done(srv_watch *w, srv_watch_conn *c);
/* Its request ended and the connection stays open: the next headers are due in time. */
void srv_watch_next_request(srv_watch *w, srv_watch_conn *c);
/* The connection closed. Accepts NULL. */
void srv_watch_close(srv_watch *w, srv_watch_conn *c);

#endif
