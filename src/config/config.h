/* The server's configuration: one immutable struct built in layers, built-in defaults <
 * config file (YAML) < HEARTH_* environment variables < command-line flags, then checked
 * as a whole. Every problem is reported with where it came from: "file:line:column: key:
 * what is wrong" for the file, "environment HEARTH_X" or "flag --x" for the others.
 * Unknown keys are errors. A built config is never modified; a reload builds a new one.
 * This module never opens sockets, never loads models and never prints (cfg_dump returns
 * text). docs/CONFIG.md documents every key. */
#ifndef CONFIG_CONFIG_H
#define CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hearth.h"

#define CFG_FOREVER (-1.0)          /* a duration that never ends (ttl, max_keep_alive) */
#define CFG_MAX_MODELS 256
#define CFG_MAX_ALIASES 32
#define CFG_MAX_ADAPTERS 16
#define CFG_MAX_QUEUE_WAIT_S 3600.0 /* the largest max_queue_wait */
#define CFG_NAME_MAX 128            /* bytes of a model name or alias */
#define CFG_FILE_MAX ((size_t)1 << 20)

/* Default sampling of one model; a request's own fields win. Bits of `set` say which. */
enum {
    CFG_S_TEMPERATURE = 1 << 0, CFG_S_TOP_P = 1 << 1, CFG_S_TOP_K = 1 << 2, CFG_S_MIN_P = 1 << 3,
    CFG_S_REPEAT_PENALTY = 1 << 4, CFG_S_PRESENCE = 1 << 5, CFG_S_FREQUENCY = 1 << 6, CFG_S_SEED = 1 << 7,
    CFG_S_MAX_TOKENS = 1 << 8,
};
typedef struct cfg_sampling {
    unsigned set;
    double temperature, top_p, min_p, repeat_penalty, presence_penalty, frequency_penalty;
    int64_t top_k, max_tokens;
    int64_t seed;
} cfg_sampling;

/* A LoRA adapter: accepted and stored for the LoRA module. */
typedef struct cfg_adapter {
    char *name;
    char *path;
    double scale;                   /* default 1.0 */
} cfg_adapter;

/* Bits of cfg_model.set: the keys given explicitly (the rest come from `defaults`). */
enum {
    CFG_M_PRELOAD = 1 << 0, CFG_M_TTL = 1 << 1, CFG_M_CTX = 1 << 2, CFG_M_SLOTS = 1 << 3,
    CFG_M_THREADS = 1 << 4, CFG_M_MAX_QUEUE = 1 << 5, CFG_M_MAX_QUEUE_WAIT = 1 << 6,
    CFG_M_POOLING = 1 << 10,
};

typedef struct cfg_model {
    char *name;                     /* what requests ask for */
    char **aliases;                 /* [n_aliases] other names for it */
    size_t n_aliases;
    char *path;                     /* GGUF file; NULL when url is set */
    char *url;                      /* http(s):// or hf://OWNER/REPO[@REV]/FILE, pulled into the store */
    char *sha256;                   /* 64 lowercase hex digits, or NULL: not checked */
    char *chat_template;            /* Jinja file overriding the model's template, or NULL */
    bool preload;                   /* load at start (and /ready waits for it) */
    double ttl_s;                   /* idle seconds before unloading; CFG_FOREVER: never */
    int64_t ctx;                    /* positions per sequence; 0: min(training, 4096) */
    int32_t slots;                  /* sequences decoded at once */
    int32_t max_queue;              /* waiting requests beyond the slots */
    double max_queue_wait_s;        /* longest estimated or actual wait for a slot before 503; 0: off */
    int32_t threads;                /* compute threads; 0: physical cores */
    int32_t pooling;                /* embeddings: -1 the model's own, else embed_pooling (0 none .. 3 last) */
    cfg_sampling sampling;
    cfg_adapter *adapters;          /* [n_adapters] */
    size_t n_adapters;
    unsigned set;                   /* CFG_M_* bits given explicitly */
    int line, col;                  /* where the entry starts in the file (1-based); 0: not from the file */
} cfg_model;

typedef struct cfg_server {
    char *host;                     /* IPv4 or IPv6 literal */
    int port;
    double timeout_s;               /* longest a request may run */
    int max_connections;
    int64_t max_body;               /* bytes */
    int64_t max_header;             /* bytes */
    double shutdown_grace_s;
    char *model_store;              /* where pulled models go; NULL: ~/.local/share/hearth/models */
    int64_t memory_budget;          /* bytes; 0: see memory_budget_pct, both 0: unlimited */
    double memory_budget_pct;       /* percent of physical RAM (0 < pct <= 100), or 0 */
    double max_keep_alive_s;        /* the most a request's keep_alive may ask; CFG_FOREVER allowed */
    bool allow_unauthenticated;     /* serve a non-loopback address without API keys */
    char **cors_origins;            /* [n_cors_origins] origins browsers may call from; none: CORS off */
    size_t n_cors_origins;
} cfg_server;

/* ---- security: API keys and request limits (config_auth.c) ------------------------ */
#define CFG_MAX_KEYS 256
#define CFG_MAX_KEY_ITEMS 64        /* models or tools listed by one key, CORS origins */
#define CFG_KEY_DIGEST 32           /* bytes of a sha256 */

typedef enum cfg_key_source { CFG_KEY_SHA256, CFG_KEY_ENV, CFG_KEY_FILE } cfg_key_source;

/* An API key. The secret itself is never kept: env and file keys are read while the
 * configuration is built and only their sha256 digest stays. */
typedef struct cfg_api_key {
    char *name;                     /* logged instead of the key */
    cfg_key_source source;
    char *ref;                      /* the digest's hex as given, the variable's name, or the file path */
    unsigned char digest[CFG_KEY_DIGEST];
    char **models;                  /* [n_models] model names or aliases; "*" every model (the default) */
    size_t n_models;
    bool tools;                     /* requests may carry tools (default true) */
    char **tool_names;              /* [n_tool_names] when non-empty: only these function names */
    size_t n_tool_names;
    int64_t requests_per_minute;    /* 0: unlimited */
    int64_t tokens_per_minute;      /* prompt + completion, charged when a request ends; 0: unlimited */
    int64_t max_concurrent;         /* requests in flight; 0: unlimited */
    bool admin;                     /* may use /metrics, the admin routes and the dashboard */
    int line, col;                  /* where the entry starts in the file; 0: not from the file */
} cfg_api_key;

/* Hardening limits (`limits:`); each has a safe default. */
typedef struct cfg_limits {
    int64_t max_tokens;             /* largest max_tokens a request may ask */
    int64_t n;                      /* choices per request */
    int64_t stop;                   /* stop strings per request */
    int64_t stop_length;            /* bytes per stop string */
    int64_t messages;               /* chat messages per request */
    int64_t headers;                /* request header lines (431 beyond) */
    int64_t connections_per_ip;     /* open connections from one client address */
    double header_timeout_s;        /* a connection must deliver its request headers within this */
    double idle_timeout_s;          /* a connection silent this long (not reading, not sending) is closed */
} cfg_limits;

/* True for an IPv4 127.0.0.0/8 or IPv6 ::1 (or ::ffff:127.x) literal. */
bool cfg_host_is_loopback(const char *host);
/* The embeddings endpoint: its cache and its cross-request batching. */
typedef struct cfg_embeddings {
    bool cache;                     /* cache finished vectors (default true) */
    int64_t cache_max_entries;      /* default 10000 */
    int64_t cache_max_bytes;        /* default 64 MiB */
    double cache_ttl_s;             /* default 1h; 0: entries never expire */
    int32_t max_inputs;             /* inputs per request (default 2048) */
    int32_t max_request_tokens;     /* tokens summed over a request's inputs (default 300000) */
    int32_t batch_tokens;           /* most tokens per forward pass (default 2048) */
    int32_t max_queue;              /* inputs waiting per model before 503 (default 8192) */
} cfg_embeddings;

typedef struct cfg_config {
    char *source;                   /* config file path, or NULL */
    cfg_server server;
    cfg_embeddings embeddings;
    cfg_model defaults;             /* name/path/url unused: defaults for every model */
    cfg_model *models;              /* [n_models] */
    size_t n_models;
    /* The gateway sections (providers, routes, breaker, retry) as the compact JSON text
     * gw_config_parse reads, already checked by it; NULL when the file has none. */
    char *gateway_json;
    cfg_api_key *keys;              /* [n_keys]; none: no authentication */
    size_t n_keys;
    cfg_limits limits;
} cfg_config;

/* Collected problems, in order; the first CFG_MAX_ERRORS are kept. */
#define CFG_MAX_ERRORS 32
typedef struct cfg_errors {
    size_t n;                       /* kept */
    size_t more;                    /* dropped past the cap */
    char msg[CFG_MAX_ERRORS][320];
} cfg_errors;

/* One setting given outside the file: key as in the file ("server.port", "models.ctx"
 * sets every model, "model" adds or repoints the command-line model, "model.chat_template"
 * gives it a template), its text value, and the origin used in messages ("flag --port"). */
typedef struct cfg_setting {
    const char *key;
    const char *value;
    const char *origin;
} cfg_setting;

/* Builds a configuration: defaults, then the file (when path is non-NULL), then the
 * HEARTH_* environment when use_env, then settings[n] in order, then checks the whole.
 * On failure *out is NULL, errs lists every problem found, and err holds the first
 * (with a count of the others). Errors: INVALID (a problem in the configuration),
 * NOT_FOUND/IO (the file), NOMEM. */
hearth_status cfg_build(const char *path, bool use_env, const cfg_setting *settings, size_t n, cfg_config **out,
                        cfg_errors *errs, hearth_err *err);

/* The same from text in memory (name appears in messages as the file name). */
hearth_status cfg_build_text(const char *text, size_t len, const char *name, bool use_env, const cfg_setting *settings,
                             size_t n, cfg_config **out, cfg_errors *errs, hearth_err *err);

void cfg_free(cfg_config *c); /* accepts NULL */

/* The effective configuration as YAML that cfg_build reads back to the same result.
 * mem_alloc'd; NULL on NOMEM. */
char *cfg_dump(const cfg_config *c);

/* The model named name or having it as an alias; NULL when none. */
const cfg_model *cfg_find_model(const cfg_config *c, const char *name);

/* True when loading a with b's settings gives the same loaded model (file, checksum,
 * context, slots, threads, queue, template, adapters); TTL, aliases, preload and
 * sampling may differ. */
bool cfg_model_same_load(const cfg_model *a, const cfg_model *b);

/* Deep copy of a model entry into *dst (fully replaced). NOMEM leaves *dst zeroed. */
hearth_status cfg_model_copy(cfg_model *dst, const cfg_model *src);
void cfg_model_clear(cfg_model *m);

/* The memory budget in bytes for a machine with ram bytes of memory; 0: unlimited. */
int64_t cfg_memory_budget(const cfg_server *s, int64_t ram);

/* ---- values (config_values.c), shared with the CLI -------------------------------- */
/* "8GiB", "512MB", "1.5G", "4096" (bytes). False when malformed or negative. */
bool cfg_parse_size(const char *s, int64_t *out);
/* "10m", "90s", "1h30m", "250ms", "2.5" (seconds); "forever" only when allow_forever
 * (gives CFG_FOREVER). False when malformed or negative. */
bool cfg_parse_duration(const char *s, bool allow_forever, double *out);
/* Writes a duration the parser reads back ("10m", "1h30m", "forever", "2.5s"). */
void cfg_format_duration(double s, char *buf, size_t cap);
/* Writes a size in the largest exact binary unit ("8GiB", "1536KiB", "1000"). */
void cfg_format_size(int64_t bytes, char *buf, size_t cap);
/* True for a valid sha256: 64 hex digits (either case). */
bool cfg_valid_sha256(const char *s);
/* True for a valid model name or alias: 1..CFG_NAME_MAX of [A-Za-z0-9._:@+/-], not
 * starting or ending with '/', without "..". */
bool cfg_valid_name(const char *s);
/* True for a file name a download may take in the store: 1..200 of [A-Za-z0-9._+-],
 * not starting with a dot. */
bool cfg_valid_file_name(const char *s);
/* The store file name of a model url: its last path segment (before any ? or #), or for
 * hf://OWNER/REPO[@REV]/PATH the last segment of PATH. False when there is none or it
 * is not a valid file name. */
bool cfg_url_file_name(const char *url, char *out, size_t cap);

#endif
