/* The SQLite request store and its writer thread (see obs_store.h for the contract,
 * states and schema). Only the writer thread touches the database connection; callers
 * touch only the queue, under the mutex, for a memcpy. Never prints, never exits. */
#define _GNU_SOURCE
#include "obs/obs_store.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/mem.h"

#define BATCH_MAX 64
#define MAX_ATTEMPTS 8        /* a batch is dropped after this many failed attempts */
#define BACKOFF_MIN_S 0.1
#define BACKOFF_MAX_S 5.0
#define STOP_DRAIN_S 2.0      /* obs_store_free writes for at most this long */
#define SCHEMA_VERSION 1

typedef enum item_kind { ITEM_REQUEST, ITEM_MODEL_EVENT } item_kind;

typedef struct item {
    item_kind kind;
    union {
        obs_store_request r;
        obs_store_model_event e;
    } u;
} item;

struct obs_store {
    obs_store_config cfg;
    char *path, *vfs;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t wake;       /* the writer: records queued, or stop */
    pthread_cond_t progress;   /* waiters of obs_store_wait_idle */
    item *q;                   /* ring of cfg.queue_cap records */
    size_t head, n;
    bool stop;
    uint64_t n_put, n_done;    /* records accepted / finished (written or dropped) */
    obs_store_status st;       /* under mu */
    /* writer thread only: */
    sqlite3 *db;
    sqlite3_stmt *ins_req, *ins_ev;
    item batch[BATCH_MAX];
    size_t n_batch;
    int attempts;
    double retry_at;           /* monotonic seconds of the next attempt */
};

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double unix_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void obs_store_config_default(obs_store_config *c) {
    *c = (obs_store_config){
        .max_age_s = 30.0 * 86400,
        .max_rows = 1000000,
        .queue_cap = 4096,
        .busy_timeout_ms = 200,
    };
}

/* ---- status ------------------------------------------------------------------------- */

static void set_error(obs_store *s, const char *what, int rc, const char *detail) {
    pthread_mutex_lock(&s->mu);
    s->st.failures++;
    s->st.up = false;
    snprintf(s->st.last_error, sizeof s->st.last_error, "%s: %s", what, detail ? detail : sqlite3_errstr(rc));
    pthread_mutex_unlock(&s->mu);
}

static void finish_batch(obs_store *s, bool written) {
    pthread_mutex_lock(&s->mu);
    if (written) {
        s->st.written += (int64_t)s->n_batch;
        s->st.up = true;
    } else {
        s->st.dropped += (int64_t)s->n_batch;
    }
    s->n_done += s->n_batch;
    pthread_cond_broadcast(&s->progress);
    pthread_mutex_unlock(&s->mu);
    s->n_batch = 0;
    s->attempts = 0;
}

/* ---- database (writer thread) ------------------------------------------------------ */

static void db_close(obs_store *s) {
    sqlite3_finalize(s->ins_req);
    sqlite3_finalize(s->ins_ev);
    sqlite3_close_v2(s->db);
    s->ins_req = s->ins_ev = NULL;
    s->db = NULL;
}

/* mkdir -p of the folder holding path (0700 for what it creates). */
static void make_parent(const char *path) {
    char dir[4096];
    size_t n = strlen(path);
    if (n >= sizeof dir) return;
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) return;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(dir, 0700);
        *p = '/';
    }
    mkdir(dir, 0700);
}

static const char SCHEMA[] =
    "BEGIN IMMEDIATE;"
    "CREATE TABLE IF NOT EXISTS requests("
    " id INTEGER PRIMARY KEY, ts REAL NOT NULL, request_id TEXT, key_name TEXT, method TEXT, route TEXT,"
    " model TEXT, target TEXT, status INTEGER, stream INTEGER, end_reason TEXT, prompt_tokens INTEGER,"
    " completion_tokens INTEGER, cached_tokens INTEGER, ttft_ms REAL, duration_ms REAL, error TEXT);"
    "CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts);"
    "CREATE TABLE IF NOT EXISTS model_events("
    " id INTEGER PRIMARY KEY, ts REAL NOT NULL, model TEXT, state TEXT, duration_ms REAL, error TEXT);"
    "CREATE INDEX IF NOT EXISTS model_events_ts ON model_events(ts);"
    "PRAGMA user_version = 1;"
    "COMMIT;";

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

static bool db_open(obs_store *s) {
    make_parent(s->path);
    int rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             s->vfs);
    const char *what = "open";
    int64_t version = 0;
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(s->db, s->cfg.busy_timeout_ms);
        what = "wal";
        rc = sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK && s->cfg.max_bytes > 0) {
        int64_t page = 4096;
        what = "max_bytes";
        rc = pragma_int(s->db, "PRAGMA page_size", &page);
        if (rc == SQLITE_OK && page > 0) {
            char sql[64];
            int64_t pages = s->cfg.max_bytes / page;
            snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", (long long)(pages > 4 ? pages : 4));
            rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        }
    }
    if (rc == SQLITE_OK) {
        what = "schema";
        rc = pragma_int(s->db, "PRAGMA user_version", &version);
        if (rc == SQLITE_OK && version > SCHEMA_VERSION) {
            set_error(s, "schema", SQLITE_ERROR, "the database was written by a newer Hearth");
            db_close(s);
            return false;
        }
        if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, SCHEMA, NULL, NULL, NULL); /* closing rolls back */
    }
    if (rc == SQLITE_OK) {
        what = "prepare";
        rc = sqlite3_prepare_v2(s->db,
                                "INSERT INTO requests(ts, request_id, key_name, method, route, model, target, status,"
                                " stream, end_reason, prompt_tokens, completion_tokens, cached_tokens, ttft_ms,"
                                " duration_ms, error) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                -1, &s->ins_req, NULL);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(s->db,
                                "INSERT INTO model_events(ts, model, state, duration_ms, error) VALUES(?,?,?,?,?)", -1,
                                &s->ins_ev, NULL);
    if (rc != SQLITE_OK) {
        char detail[200];
        snprintf(detail, sizeof detail, "%s: %s", s->path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        set_error(s, what, rc, detail);
        db_close(s);
        return false;
    }
    return true;
}

static int64_t changes_of(obs_store *s, int rc) { return rc == SQLITE_OK ? sqlite3_changes64(s->db) : 0; }

/* Retention inside the current transaction: age, then row count (ids only grow, and only
 * the oldest rows are ever deleted, so max(id) - max_rows is the cut). */
static int retention(obs_store *s, int64_t *pruned) {
    static const char *const tables[] = {"requests", "model_events"};
    char sql[200];
    int rc = SQLITE_OK;
    for (size_t t = 0; t < 2 && rc == SQLITE_OK; t++) {
        if (s->cfg.max_age_s > 0) {
            snprintf(sql, sizeof sql, "DELETE FROM %s WHERE ts < %.3f", tables[t], unix_s() - s->cfg.max_age_s);
            rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
            *pruned += changes_of(s, rc);
        }
        if (rc == SQLITE_OK && s->cfg.max_rows > 0) {
            snprintf(sql, sizeof sql, "DELETE FROM %s WHERE id <= (SELECT max(id) FROM %s) - %lld", tables[t],
                     tables[t], (long long)s->cfg.max_rows);
            rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
            *pruned += changes_of(s, rc);
        }
    }
    return rc;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
    if (v[0]) sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, i);
}

static int insert(obs_store *s, const item *it) {
    sqlite3_stmt *st;
    if (it->kind == ITEM_REQUEST) {
        const obs_store_request *r = &it->u.r;
        st = s->ins_req;
        sqlite3_bind_double(st, 1, r->ts);
        bind_text(st, 2, r->request_id);
        bind_text(st, 3, r->key_name);
        bind_text(st, 4, r->method);
        bind_text(st, 5, r->route);
        bind_text(st, 6, r->model);
        bind_text(st, 7, r->target);
        sqlite3_bind_int(st, 8, r->status);
        sqlite3_bind_int(st, 9, r->stream);
        bind_text(st, 10, r->end_reason);
        sqlite3_bind_int64(st, 11, r->prompt_tokens);
        sqlite3_bind_int64(st, 12, r->completion_tokens);
        sqlite3_bind_int64(st, 13, r->cached_tokens);
        if (r->ttft_ms >= 0) sqlite3_bind_double(st, 14, r->ttft_ms);
        else sqlite3_bind_null(st, 14);
        sqlite3_bind_double(st, 15, r->duration_ms);
        bind_text(st, 16, r->error);
    } else {
        const obs_store_model_event *e = &it->u.e;
        st = s->ins_ev;
        sqlite3_bind_double(st, 1, e->ts);
        bind_text(st, 2, e->model);
        bind_text(st, 3, e->state);
        if (e->duration_ms >= 0) sqlite3_bind_double(st, 4, e->duration_ms);
        else sqlite3_bind_null(st, 4);
        bind_text(st, 5, e->error);
    }
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* One transaction: the batch, then retention. On failure *detail names the error (read
 * before the rollback, which would reset it). */
static int write_batch(obs_store *s, int64_t *pruned, char *detail, size_t cap) {
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < s->n_batch; i++) rc = insert(s, &s->batch[i]);
    if (rc == SQLITE_OK) rc = retention(s, pruned);
    if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        snprintf(detail, cap, "%s: %s", s->path, sqlite3_errmsg(s->db));
        if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

/* The disk (or max_bytes) is full: delete the oldest tenth of each table (at least 64
 * rows). Returns the rows deleted. */
static int64_t make_room(obs_store *s) {
    static const char *const tables[] = {"requests", "model_events"};
    int64_t n = 0;
    for (size_t t = 0; t < 2; t++) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "DELETE FROM %s WHERE id < (SELECT min(id) FROM %s) + max(64, ((SELECT max(id) FROM %s) -"
                 " (SELECT min(id) FROM %s)) / 10)",
                 tables[t], tables[t], tables[t], tables[t]);
        int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        n += changes_of(s, rc);
    }
    return n;
}

static bool transient(int rc) { return (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED; }

static void backoff(obs_store *s) {
    double d = BACKOFF_MIN_S;
    for (int i = 1; i < s->attempts && d < BACKOFF_MAX_S; i++) d *= 2;
    s->retry_at = mono_s() + (d < BACKOFF_MAX_S ? d : BACKOFF_MAX_S);
}

/* One attempt at the pending batch: open if needed, write, handle the failure. */
static void attempt(obs_store *s) {
    if (!s->db && !db_open(s)) {
        s->attempts++;
        backoff(s);
        return;
    }
    int64_t pruned = 0;
    char detail[200];
    int rc = write_batch(s, &pruned, detail, sizeof detail);
    if (rc == SQLITE_OK) {
        pthread_mutex_lock(&s->mu);
        s->st.pruned += pruned;
        pthread_mutex_unlock(&s->mu);
        finish_batch(s, true);
        return;
    }
    set_error(s, "write", rc, detail);
    s->attempts++;
    if ((rc & 0xff) == SQLITE_FULL) {
        int64_t freed = make_room(s);
        pthread_mutex_lock(&s->mu);
        s->st.pruned += freed;
        pthread_mutex_unlock(&s->mu);
        if (freed > 0) {
            s->retry_at = 0; /* try again at once in the room made */
            return;
        }
    } else if (!transient(rc)) {
        db_close(s); /* read-only, I/O error, corrupt: reopen later */
    }
    backoff(s);
}

static void *writer_main(void *arg) {
    obs_store *s = arg;
    double drain_until = 0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->stop && drain_until == 0) drain_until = mono_s() + STOP_DRAIN_S;
        if (s->n_batch == 0) {
            while (s->n > 0 && s->n_batch < BATCH_MAX) {
                s->batch[s->n_batch++] = s->q[s->head];
                s->head = (s->head + 1) % (size_t)s->cfg.queue_cap;
                s->n--;
            }
            s->st.queued = (int64_t)s->n;
        }
        if (s->n_batch == 0) {
            if (s->stop) break;
            pthread_cond_wait(&s->wake, &s->mu);
            continue;
        }
        double now = mono_s();
        if (s->stop && now > drain_until) {
            s->st.dropped += (int64_t)(s->n_batch + s->n);
            s->n_done += s->n_batch + s->n;
            s->n_batch = s->n = 0;
            pthread_cond_broadcast(&s->progress);
            break;
        }
        if (now < s->retry_at) {
            double wait = s->retry_at - now;
            if (s->stop && drain_until - now < wait) wait = drain_until - now + 0.001;
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            double t = (double)until.tv_sec + (double)until.tv_nsec / 1e9 + wait;
            until.tv_sec = (time_t)t;
            until.tv_nsec = (long)((t - (double)until.tv_sec) * 1e9);
            pthread_cond_timedwait(&s->wake, &s->mu, &until);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        attempt(s);
        if (s->n_batch > 0 && s->attempts >= MAX_ATTEMPTS) finish_batch(s, false);
        pthread_mutex_lock(&s->mu);
    }
    s->st.queued = 0;
    pthread_mutex_unlock(&s->mu);
    db_close(s);
    return NULL;
}

/* ---- public ------------------------------------------------------------------------ */

hearth_status obs_store_new(const obs_store_config *c, obs_store **out, hearth_err *err) {
    *out = NULL;
    if (!c->path || !*c->path) return err_set(err, HEARTH_ERR_INVALID, "the request store needs a database path");
    if (c->queue_cap < 1 || c->queue_cap > (1 << 20) || c->busy_timeout_ms < 0 || c->max_bytes < 0)
        return err_set(err, HEARTH_ERR_INVALID, "invalid request store limits (queue %d, busy timeout %d ms)",
                       c->queue_cap, c->busy_timeout_ms);
    obs_store *s = mem_calloc(1, sizeof *s);
    if (!s) return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    s->cfg = *c;
    s->path = mem_strdup(c->path);
    s->vfs = c->vfs ? mem_strdup(c->vfs) : NULL;
    s->q = mem_calloc((size_t)c->queue_cap, sizeof *s->q);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->wake, NULL);
    pthread_cond_init(&s->progress, NULL);
    if (!s->path || !s->q || (c->vfs && !s->vfs)) {
        obs_store_free(s);
        return err_set(err, HEARTH_ERR_NOMEM, "out of memory");
    }
    s->cfg.path = s->path;
    s->cfg.vfs = s->vfs;
    if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
        obs_store_free(s);
        return err_set(err, HEARTH_ERR_NOMEM, "cannot start the request store's writer thread");
    }
    s->thread_started = true;
    *out = s;
    return HEARTH_OK;
}

void obs_store_free(obs_store *s) {
    if (!s) return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_signal(&s->wake);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->progress);
    pthread_mutex_destroy(&s->mu);
    mem_free(s->q);
    mem_free(s->path);
    mem_free(s->vfs);
    mem_free(s);
}

static bool put(obs_store *s, const item *it) {
    if (!s) return false;
    pthread_mutex_lock(&s->mu);
    bool ok = !s->stop && s->n < (size_t)s->cfg.queue_cap;
    if (ok) {
        s->q[(s->head + s->n) % (size_t)s->cfg.queue_cap] = *it;
        s->n++;
        s->n_put++;
        s->st.queued = (int64_t)s->n;
        pthread_cond_signal(&s->wake);
    } else {
        s->st.dropped++;
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

bool obs_store_put_request(obs_store *s, const obs_store_request *r) {
    item it = {.kind = ITEM_REQUEST, .u.r = *r};
    if (it.u.r.ts <= 0) it.u.r.ts = unix_s();
    return put(s, &it);
}

bool obs_store_put_model_event(obs_store *s, const obs_store_model_event *e) {
    item it = {.kind = ITEM_MODEL_EVENT, .u.e = *e};
    if (it.u.e.ts <= 0) it.u.e.ts = unix_s();
    return put(s, &it);
}

bool obs_store_wait_idle(obs_store *s, int timeout_ms) {
    if (!s) return true;
    struct timespec until;
    clock_timespec_in(CLOCK_REALTIME, timeout_ms, &until);
    pthread_mutex_lock(&s->mu);
    uint64_t target = s->n_put;
    int rc = 0;
    while (s->n_done < target && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&s->progress, &s->mu, &until);
    bool idle = s->n_done >= target;
    pthread_mutex_unlock(&s->mu);
    return idle;
}

void obs_store_get_status(obs_store *s, obs_store_status *st) {
    if (!s) {
        *st = (obs_store_status){0};
        return;
    }
    pthread_mutex_lock(&s->mu);
    *st = s->st;
    pthread_mutex_unlock(&s->mu);
}

/* ---- reading (hearth stats) -------------------------------------------------------- */

hearth_status obs_store_read_requests(const char *path, double since, obs_agg *agg, double *first_ts,
                                      double *last_ts, hearth_err *err) {
    *first_ts = *last_ts = 0;
    struct stat sb;
    if (stat(path, &sb) != 0) return err_set(err, HEARTH_ERR_NOT_FOUND, "%s: %s", path, strerror(errno));
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    sqlite3_stmt *st = NULL;
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(db, 2000);
        rc = sqlite3_prepare_v2(db,
                                "SELECT model, route, error, status, duration_ms, ttft_ms, prompt_tokens,"
                                " completion_tokens, ts FROM requests WHERE ts >= ?",
                                -1, &st, NULL);
    }
    if (rc != SQLITE_OK) {
        hearth_status s = err_set(err, HEARTH_ERR_FORMAT, "%s: not a Hearth request database (%s)", path,
                                  db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_finalize(st);
        sqlite3_close_v2(db);
        return s;
    }
    sqlite3_bind_double(st, 1, since);
    hearth_status status = HEARTH_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        obs_sample smp = {
            .model = (const char *)sqlite3_column_text(st, 0),
            .route = (const char *)sqlite3_column_text(st, 1),
            .error = (const char *)sqlite3_column_text(st, 2),
            .status = sqlite3_column_int(st, 3),
            .duration_ms = sqlite3_column_double(st, 4),
            .ttft_ms = sqlite3_column_type(st, 5) == SQLITE_NULL ? -1 : sqlite3_column_double(st, 5),
            .prompt_tokens = sqlite3_column_int64(st, 6),
            .completion_tokens = sqlite3_column_int64(st, 7),
        };
        double ts = sqlite3_column_double(st, 8);
        if (*first_ts == 0 || ts < *first_ts) *first_ts = ts;
        if (ts > *last_ts) *last_ts = ts;
        if (!obs_agg_add(agg, &smp)) {
            status = err_set(err, HEARTH_ERR_NOMEM, "out of memory reading %s", path);
            break;
        }
    }
    if (status == HEARTH_OK && rc != SQLITE_DONE)
        status = err_set(err, HEARTH_ERR_IO, "%s: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close_v2(db);
    return status;
}
