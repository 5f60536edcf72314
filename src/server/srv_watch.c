/* The header-read deadline watcher (see srv_watch.h). Never closes a descriptor it did
 * not duplicate itself, and never blocks a connection thread longer than a list update. */
#include "server/srv_watch.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"

#define SCAN_MS 250

struct srv_watch_conn {
    int fd;                   /* our duplicate of the connection's socket */
    uint64_t deadline_ns;     /* clock_mono_ns; 0: no deadline (a request is running) */
    srv_watch_conn *prev, *next;
};

struct srv_watch {
    uint64_t timeout_ns;
    pthread_mutex_t mu;
    pthread_cond_t wake;      /* srv_watch_free */
    bool stop;
    srv_watch_conn *head;
    pthread_t thread;
};

static void shut_overdue(srv_watch *w) {
    uint64_t now = clock_mono_ns();
    for (srv_watch_conn *c = w->head; c; c = c->next) {
        if (!c->deadline_ns || now < c->deadline_ns) continue;
        shutdown(c->fd, SHUT_RDWR); /* the connection's thread sees the end and closes it */
        c->deadline_ns = 0;
    }
}

static void *watch_main(void *arg) {
    srv_watch *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        struct timespec until;
        clock_timespec_in(CLOCK_REALTIME, SCAN_MS, &until);
        pthread_cond_timedwait(&w->wake, &w->mu, &until);
        if (!w->stop) shut_overdue(w);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

hearth_status srv_watch_new(double header_timeout_s, srv_watch **out, hearth_err *err) {
    *out = NULL;
    srv_watch *w = mem_calloc(1, sizeof *w);
    if (!w) return err_set(err, HEARTH_ERR_NOMEM, "out of memory starting the header deadline watcher");
    w->timeout_ns = (uint64_t)(header_timeout_s * 1e9);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->wake, NULL);
    int rc = pthread_create(&w->thread, NULL, watch_main, w);
    if (rc) {
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->mu);
        mem_free(w);
        return err_set(err, HEARTH_ERR_IO, "cannot start the header deadline watcher: %s", strerror(rc));
    }
    *out = w;
    return HEARTH_OK;
}

void srv_watch_free(srv_watch *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    while (w->head) srv_watch_close(w, w->head);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mu);
    mem_free(w);
}

srv_watch_conn *srv_watch_open(srv_watch *w, int fd) {
    srv_watch_conn *c = mem_calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fd = fd >= 0 ? dup(fd) : -1;
    if (c->fd < 0) {
        mem_free(c);
        return NULL;
    }
    pthread_mutex_lock(&w->mu);
    c->deadline_ns = clock_mono_ns() + w->timeout_ns;
    c->next = w->head;
    if (w->head) w->head->prev = c;
    w->head = c;
    pthread_mutex_unlock(&w->mu);
    return c;
}

static void set_deadline(srv_watch *w, srv_watch_conn *c, bool due) {
    if (!c) return;
    pthread_mutex_lock(&w->mu);
    c->deadline_ns = due ? clock_mono_ns() + w->timeout_ns : 0;
    pthread_mutex_unlock(&w->mu);
}

void srv_watch_headers_done(srv_watch *w, srv_watch_conn *c) { set_deadline(w, c, false); }
void srv_watch_next_request(srv_watch *w, srv_watch_conn *c) { set_deadline(w, c, true); }

void srv_watch_close(srv_watch *w, srv_watch_conn *c) {
    if (!c) return;
    pthread_mutex_lock(&w->mu);
    if (c->prev) c->prev->next = c->next;
    else w->head = c->next;
    if (c->next) c->next->prev = c->prev;
    pthread_mutex_unlock(&w->mu);
    close(c->fd);
    mem_free(c);
}
