/* SQLite request store: rows written in WAL mode with every field (and no prompt column),
 * retention by row count and by age, and the failure modes that must never fail or stall
 * a caller: a path that cannot be opened, a read-only database, a full disk (a real
 * SQLITE_FULL from a size cap, and an injected one), a database locked by another
 * connection, and a full queue. Faults are injected by a VFS shim that wraps SQLite's
 * default VFS (opening files read-only, or failing writes with SQLITE_FULL). No timed
 * assertions: the tests wait for outcomes with generous bounds. */
#include "testutil.h"

#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "obs/obs_store.h"

/* ---- fault-injecting VFS ------------------------------------------------------------ */

enum { FAULT_NONE, FAULT_READONLY, FAULT_FULL };
static _Atomic int g_fault;
static sqlite3_vfs *g_base;
static sqlite3_vfs g_shim;

typedef struct shim_file {
    sqlite3_file base;
    sqlite3_file *real; /* follows this struct */
} shim_file;

#define REAL(f) (((shim_file *)(f))->real)
static int s_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int s_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o) {
    return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int s_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o) {
    if (g_fault == FAULT_FULL) return SQLITE_FULL;
    return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int s_truncate(sqlite3_file *f, sqlite3_int64 n) { return REAL(f)->pMethods->xTruncate(REAL(f), n); }
static int s_sync(sqlite3_file *f, int fl) { return REAL(f)->pMethods->xSync(REAL(f), fl); }
static int s_size(sqlite3_file *f, sqlite3_int64 *n) { return REAL(f)->pMethods->xFileSize(REAL(f), n); }
static int s_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int s_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int s_check(sqlite3_file *f, int *o) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), o); }
static int s_fcntl(sqlite3_file *f, int op, void *a) { return REAL(f)->pMethods->xFileControl(REAL(f), op, a); }
static int s_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int s_caps(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int s_shmmap(sqlite3_file *f, int i, int sz, int ext, void volatile **p) {
    return REAL(f)->pMethods->xShmMap(REAL(f), i, sz, ext, p);
}
static int s_shmlock(sqlite3_file *f, int o, int n, int fl) { return REAL(f)->pMethods->xShmLock(REAL(f), o, n, fl); }
static void s_shmbarrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int s_shmunmap(sqlite3_file *f, int d) { return REAL(f)->pMethods->xShmUnmap(REAL(f), d); }

static const sqlite3_io_methods shim_io = {
    2, s_close, s_read, s_write, s_truncate, s_sync, s_size, s_lock, s_unlock, s_check, s_fcntl, s_sector, s_caps,
    s_shmmap, s_shmlock, s_shmbarrier, s_shmunmap, NULL, NULL,
};

static int s_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out) {
    shim_file *sf = (shim_file *)f;
    sf->real = (sqlite3_file *)(sf + 1);
    if (g_fault == FAULT_READONLY && (flags & SQLITE_OPEN_MAIN_DB)) {
        /* what SQLite sees when the file's permissions deny writing */
        flags = (flags & ~(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_READONLY;
    }
    int rc = g_base->xOpen(g_base, name, sf->real, flags, out);
    sf->base.pMethods = rc == SQLITE_OK && sf->real->pMethods ? &shim_io : NULL;
    return rc;
}

static void shim_register(void) {
    if (g_base) return;
    g_base = sqlite3_vfs_find(NULL);
    g_shim = *g_base;
    g_shim.iVersion = 1 < g_base->iVersion ? g_base->iVersion : 1;
    g_shim.zName = "hearth-test-fault";
    g_shim.szOsFile = (int)sizeof(shim_file) + g_base->szOsFile;
    g_shim.xOpen = s_open;
    g_shim.pAppData = NULL;
    sqlite3_vfs_register(&g_shim, 0);
}

/* ---- helpers -------------------------------------------------------------------------- */

static char g_dir[64];

static int setup(void **state) {
    snprintf(g_dir, sizeof g_dir, "/tmp/hearth-store-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    shim_register();
    g_fault = FAULT_NONE;
    return 0;
}

static int teardown(void **state) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *db_path(const char *name) {
    static char p[128];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return p;
}

static obs_store *open_store(const obs_store_config *c) {
    obs_store *s = NULL;
    hearth_err err = {0};
    if (obs_store_new(c, &s, &err) != HEARTH_OK) fail_msg("obs_store_new: %s", err.msg);
    return s;
}

static obs_store_request request(int i, double ts) {
    obs_store_request r = {.ts = ts, .status = 200, .prompt_tokens = 10 + i, .completion_tokens = i,
                           .cached_tokens = 1, .ttft_ms = 5.5, .duration_ms = 20 + i, .stream = i % 2};
    snprintf(r.request_id, sizeof r.request_id, "req-%d", i);
    snprintf(r.method, sizeof r.method, "POST");
    snprintf(r.route, sizeof r.route, "chat");
    snprintf(r.model, sizeof r.model, "m");
    snprintf(r.target, sizeof r.target, "m");
    snprintf(r.end_reason, sizeof r.end_reason, "ok");
    return r;
}

static int64_t count_rows(const char *path, const char *sql) {
    sqlite3 *db = NULL;
    int64_t n = -1;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_busy_timeout(db, 5000);
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    sqlite3_close_v2(db);
    return n;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits (at most 20 s) until the store has recorded at least one failure. */
static obs_store_status wait_failure(obs_store *s) {
    obs_store_status st;
    for (int i = 0; i < 400; i++) {
        obs_store_get_status(s, &st);
        if (st.failures > 0) return st;
        sleep_ms(50);
    }
    fail_msg("the store never reported a failure");
    return st;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_rows_written(void **state) {
    obs_store_config c;
    obs_store_config_default(&c);
    c.path = db_path("sub/dir/h.db"); /* folders are created */
    obs_store *s = open_store(&c);
    for (int i = 0; i < 150; i++) {
        obs_store_request r = request(i, 0);
        if (i == 7) snprintf(r.error, sizeof r.error, "server_busy"), r.status = 503, r.ttft_ms = -1;
        assert_true(obs_store_put_request(s, &r));
    }
    obs_store_model_event ev = {.duration_ms = 1234.5};
    snprintf(ev.model, sizeof ev.model, "m");
    snprintf(ev.state, sizeof ev.state, "ready");
    assert_true(obs_store_put_model_event(s, &ev));
    assert_true(obs_store_wait_idle(s, 20000));
    obs_store_status st;
    obs_store_get_status(s, &st);
    assert_true(st.up);
    assert_int_equal(st.written, 151);
    assert_int_equal(st.dropped, 0);
    obs_store_free(s);

    const char *p = db_path("sub/dir/h.db");
    assert_int_equal(count_rows(p, "SELECT count(*) FROM requests"), 150);
    assert_int_equal(count_rows(p, "SELECT count(*) FROM requests WHERE request_id = 'req-42' AND status = 200 AND"
                                   " route = 'chat' AND model = 'm' AND prompt_tokens = 52 AND completion_tokens = 42"
                                   " AND duration_ms = 62 AND ttft_ms = 5.5 AND stream = 0 AND error IS NULL"),
                     1);
    assert_int_equal(count_rows(p, "SELECT count(*) FROM requests WHERE request_id = 'req-7' AND status = 503 AND"
                                   " error = 'server_busy' AND ttft_ms IS NULL"),
                     1);
    assert_int_equal(count_rows(p, "SELECT count(*) FROM model_events WHERE model = 'm' AND state = 'ready' AND"
                                   " duration_ms = 1234.5"),
                     1);
    assert_int_equal(count_rows(p, "SELECT count(*) FROM pragma_table_info('requests') WHERE name LIKE '%prompt%'"
                                   " AND name != 'prompt_tokens'"),
                     0);
    sqlite3 *db = NULL;
    sqlite3_open(p, &db);
    sqlite3_stmt *st2 = NULL;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st2, NULL);
    assert_int_equal(sqlite3_step(st2), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st2, 0), "wal");
    sqlite3_finalize(st2);
    sqlite3_close(db);
}

static void test_retention_rows(void **state) {
    obs_store_config c;
    obs_store_config_default(&c);
    c.path = db_path("rows.db");
    c.max_rows = 5;
    obs_store *s = open_store(&c);
    for (int i = 0; i < 12; i++) {
        obs_store_request r = request(i, 0);
        assert_true(obs_store_put_request(s, &r));
        if (i % 4 == 3) assert_true(obs_store_wait_idle(s, 20000)); /* several batches */
    }
    assert_true(obs_store_wait_idle(s, 20000));
    obs_store_status st;
    obs_store_get_status(s, &st);
    obs_store_free(s);
    int64_t n = count_rows(c.path, "SELECT count(*) FROM requests");
    if (n != 5) fail_msg("rows kept: want 5, got %lld", (long long)n);
    assert_int_equal(count_rows(c.path, "SELECT count(*) FROM requests WHERE request_id IN"
                                        " ('req-7','req-8','req-9','req-10','req-11')"),
                     5);
    assert_int_equal(st.pruned, 7);
}

static void test_retention_age(void **state) {
    obs_store_config c;
    obs_store_config_default(&c);
    c.path = db_path("age.db");
    c.max_age_s = 86400;
    obs_store *s = open_store(&c);
    double now = (double)time(NULL);
    for (int i = 0; i < 6; i++) {
        obs_store_request r = request(i, i < 4 ? now - 3 * 86400 : 0); /* four are three days old */
        assert_true(obs_store_put_request(s, &r));
    }
    obs_store_model_event old = {.ts = now - 5 * 86400, .duration_ms = -1};
    snprintf(old.state, sizeof old.state, "loading");
    assert_true(obs_store_put_model_event(s, &old));
    assert_true(obs_store_wait_idle(s, 20000));
    obs_store_free(s);
    int64_t n = count_rows(c.path, "SELECT count(*) FROM requests");
    if (n != 2) fail_msg("rows younger than a day: want 2, got %lld", (long long)n);
    assert_int_equal(count_rows(c.path, "SELECT count(*) FROM requests WHERE request_id IN ('req-4','req-5')"), 2);
    assert_int_equal(count_rows(c.path, "SELECT count(*) FROM model_events"), 0);
}

static void test_unopenable_path(void **state) {
    obs_store_config c;
    obs_store_config_default(&c);
    char path[128];
    snprintf(path, sizeof path, "%s/file/h.db", g_dir);
    FILE *f = fopen(db_path("file"), "w"); /* a file where a folder should be */
    fclose(f);
    c.path = path;
    obs_store *s = open_store(&c);
    for (int i = 0; i < 20; i++) {
        obs_store_request r = request(i, 0);
        assert_true(obs_store_put_request(s, &r)); /* accepted at once, whatever the disk */
    }
    obs_store_status st = wait_failure(s);
    assert_false(st.up);
    assert_true(strstr(st.last_error, "h.db") != NULL);
    obs_store_free(s); /* gives up on what it could not write */
    obs_store_get_status(NULL, &st);
}

static void test_read_only(void **state) {
    obs_store_config c;
    obs_store_config_default(&c);
    c.path = db_path("ro.db");
    c.vfs = "hearth-test-fault";
    obs_store *s = open_store(&c);
    obs_store_request r0 = request(0, 0);
    assert_true(obs_store_put_request(s, &r0));
    assert_true(obs_store_wait_idle(s, 20000));
    obs_store_free(s);

    g_fault = FAULT_READONLY;
    s = open_store(&c);
    for (int i = 1; i <= 5; i++) {
        obs_store_request r = request(i, 0);
        assert_true(obs_store_put_request(s, &r));
    }
    obs_store_status st = wait_failure(s);
    if (!strstr(st.last_error, "readonly")) fail_msg("want a read-only error, got '%s'", st.last_error);
    g_fault = FAULT_NONE; /* the file becomes writable: the store recovers by itself */
    assert_true(obs_store_wait_idle(s, 30000));
    obs_store_get_status(s, &st);
    assert_true(st.up);
    assert_int_equal(st.dropped, 0);
    obs_store_free(s);
    assert_int_equal(count_rows(c.path, "SELECT count(*) FROM requests"), 6);

    if (geteuid() != 0) { /* root ignores permissions; the shim covered it above */
        chmod(c.path, 0444);
        c.vfs = NULL;
        s = open_store(&c);
        obs_store_request r = request(9, 0);
        assert_true(obs_store_put_request(s, &r));
        wait_failure(s);
        obs_store_free(s);
        chmod(c.path, 0644);
    }
}

static void test_disk_full_cap(void **state) {
    obs_store_config c;
    obs_store_config_default(&c);
    c.path = db_path("full.db");
    c.max_bytes = 48 * 1024; /* a tiny "disk": SQLite answers SQLITE_FULL past it */
    obs_store *s = open_store(&c);
    int n = 1500;
    for (int i = 0; i < n; i++) {
        obs_store_request r = request(i, 0);
        assert_true(obs_store_put_request(s, &r));
    }
    assert_true(obs_store_wait_idle(s, 30000));
    obs_store_status st;
    obs_store_get_status(s, &st);
    obs_store_free(s);
    if (st.failures == 0 || st.pruned == 0)
        fail_msg("the cap was never reached: failures %lld, pruned %lld", (long long)st.failures, (long long)st.pruned);
    int64_t pages = count_rows(c.path, "PRAGMA page_count"), page = count_rows(c.path, "PRAGMA page_size");
    if (pages * page > c.max_bytes) fail_msg("database %lld bytes, over the %lld cap", (long long)(pages * page),
                                             (long long)c.max_bytes);
    /* the newest records made it: room was made by deleting the oldest */
    assert_int_equal(count_rows(c.path, "SELECT count(*) FROM requests WHERE request_id = 'req-1499'"), 1);
    assert_int_equal(count_rows(c.path, "SELECT count(*) FROM requests WHERE request_id = 'req-0'"), 0);
}

static void test_disk_full_injected(void **state) {
    obs_store_config c;
    obs_store_config_default(&c);
    c.path = db_path("inj.db");
    c.vfs = "hearth-test-fault";
    obs_store *s = open_store(&c);
    obs_store_request r0 = request(0, 0);
    assert_true(obs_store_put_request(s, &r0));
    assert_true(obs_store_wait_idle(s, 20000));
    g_fault = FAULT_FULL;
    for (int i = 1; i <= 3; i++) {
        obs_store_request r = request(i, 0);
        assert_true(obs_store_put_request(s, &r));
    }
    obs_store_status st = wait_failure(s);
    if (!strstr(st.last_error, "full")) fail_msg("want a disk-full error, got '%s'", st.last_error);
    g_fault = FAULT_NONE;
    assert_true(obs_store_wait_idle(s, 30000));
    obs_store_free(s);
    /* each failed attempt made room by deleting the oldest rows; the new rows are there */
    assert_int_equal(count_rows(c.path, "SELECT count(*) FROM requests WHERE request_id IN ('req-1','req-2','req-3')"),
                     3);
}

static void test_locked_and_full_queue(void **state) {
    obs_store_config c;
    obs_store_config_default(&c);
    c.path = db_path("locked.db");
    c.queue_cap = 8;
    c.busy_timeout_ms = 50;
    obs_store *s = open_store(&c);
    obs_store_request r0 = request(0, 0);
    assert_true(obs_store_put_request(s, &r0));
    assert_true(obs_store_wait_idle(s, 20000));

    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(c.path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE; INSERT INTO model_events(ts) VALUES(1);", NULL, NULL, NULL),
                     SQLITE_OK);
    int accepted = 0, refused = 0;
    for (int i = 1; i <= 100; i++) { /* never blocks, however long the lock is held */
        obs_store_request r = request(i, 0);
        if (obs_store_put_request(s, &r)) accepted++;
        else refused++;
    }
    obs_store_status st = wait_failure(s);
    assert_true(strstr(st.last_error, "locked") != NULL);
    assert_true(refused > 0);
    assert_true(accepted >= 8);
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_true(obs_store_wait_idle(s, 30000));
    obs_store_get_status(s, &st);
    obs_store_free(s);
    assert_true(st.up);
    if (st.dropped != refused) fail_msg("dropped %lld, refused %d", (long long)st.dropped, refused);
    int64_t n = count_rows(c.path, "SELECT count(*) FROM requests");
    if (n != 1 + accepted) fail_msg("rows: want %d, got %lld", 1 + accepted, (long long)n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rows_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unopenable_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_injected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_locked_and_full_queue, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
