/* Private to src/config: the state of one cfg_build (the config being built, where each
 * value came from, the collected errors) and the key setters shared by the YAML reader
 * and the environment/flag layer. Nothing outside src/config includes this file. */
#ifndef CONFIG_CONFIG_INTERNAL_H
#define CONFIG_CONFIG_INTERNAL_H

#include "config/config.h"

/* Where a value was given: a file position, or an origin such as "flag --port". */
typedef struct cfg_loc {
    int line, col;                  /* 1-based; 0 when origin is used */
    const char *origin;
} cfg_loc;

typedef struct cfg_model_locs {
    cfg_loc entry, name, path, url, sha256;
    cfg_loc alias[CFG_MAX_ALIASES];
} cfg_model_locs;

typedef struct cfg_gateway_build cfg_gateway_build; /* config_gateway.c */

typedef struct cfg_build_ctx {
    cfg_config *c;
    cfg_errors *errs;
    const char *file;               /* name used in messages */
    char *dir;                      /* directory of the file (relative paths), or NULL */
    cfg_model_locs *locs;           /* [c->n_models], grown with the models */
    cfg_gateway_build *gateway;     /* the gateway sections read so far, or NULL */
    bool nomem;
} cfg_build_ctx;

/* Adds "where: key: message" to the errors. */
void cfg_error(cfg_build_ctx *b, cfg_loc at, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

typedef enum cfg_set_result { CFG_SET_OK, CFG_SET_UNKNOWN, CFG_SET_BAD } cfg_set_result;

/* Scalar keys of a model entry (or of `defaults` when is_defaults: only the keys a
 * default makes sense for). from_file: relative paths are taken from the file's
 * directory. On CFG_SET_BAD, why says what is wrong. */
cfg_set_result cfg_set_model_key(cfg_build_ctx *b, cfg_model *m, bool is_defaults, const char *key, const char *v,
                                 bool from_file, char *why, size_t cap);
cfg_set_result cfg_set_server_key(cfg_build_ctx *b, const char *key, const char *v, bool from_file, char *why,
                                  size_t cap);
cfg_set_result cfg_set_embeddings_key(cfg_embeddings *e, const char *key, const char *v, char *why, size_t cap);
/* "none", "mean", "cls", "last" or "default" (-1): a model's embedding pooling. */
bool cfg_parse_pooling(const char *v, int32_t *out);
const char *cfg_pooling_name(int32_t p);
cfg_set_result cfg_set_sampling_key(cfg_sampling *s, const char *key, const char *v, char *why, size_t cap);
/* A string copy for the config (NULL and b->nomem set on NOMEM). */
char *cfg_strdup(cfg_build_ctx *b, const char *s);
/* An adapter path or model path made absolute against the file's directory when
 * from_file; "~/" expands to $HOME. */
char *cfg_path(cfg_build_ctx *b, const char *v, bool from_file);

/* Appends an empty model (fields from defaults applied later); NULL past the cap. */
cfg_model *cfg_add_model(cfg_build_ctx *b, cfg_loc at);

/* Reads YAML text into b->c (config_yaml.c). */
void cfg_read_yaml(cfg_build_ctx *b, const char *text, size_t len);

/* ---- gateway sections (config_gateway.c) ---- */
struct yaml_document_s;
struct yaml_node_s;
/* Takes a top-level gateway section (providers, routes, breaker, retry, gateway) into b. */
void cfg_gateway_yaml(cfg_build_ctx *b, struct yaml_document_s *doc, const char *key, struct yaml_node_s *node);
/* Checks the sections read (gw_config_parse, route names against model names, local
 * targets naming configured models) and stores their JSON text in b->c. */
void cfg_gateway_finish(cfg_build_ctx *b);
void cfg_gateway_build_free(cfg_build_ctx *b);
/* ---- security (config_auth.c) ---------------------------------------------------- */
void cfg_limits_defaults(cfg_limits *l);
cfg_set_result cfg_set_limits_key(cfg_limits *l, const char *key, const char *v, char *why, size_t cap);
/* Scalar keys of a `keys:` entry (name, sha256, env, file, admin, tools as a bool, the limits). */
cfg_set_result cfg_set_api_key_key(cfg_build_ctx *b, cfg_api_key *k, const char *key, const char *v, bool from_file,
                                   char *why, size_t cap);
/* Appends an empty key entry (defaults applied); NULL past CFG_MAX_KEYS or on NOMEM. */
cfg_api_key *cfg_add_api_key(cfg_build_ctx *b, cfg_loc at);
/* Appends a copy of v to a string list; false (why set) past CFG_MAX_KEY_ITEMS. */
bool cfg_list_add(cfg_build_ctx *b, char ***list, size_t *n, const char *v, char *why, size_t cap);
void cfg_list_free(char ***list, size_t *n);
/* Adds comma-separated CORS origins to server.cors_origins. */
cfg_set_result cfg_add_cors_origins(cfg_build_ctx *b, const char *v, char *why, size_t cap);
/* Whole-config checks: every key complete and named once, env and file secrets read and
 * hashed, and no unauthenticated non-loopback bind unless allowed. */
void cfg_check_security(cfg_build_ctx *b);
void cfg_free_security(cfg_config *c);

/* Built-in defaults of a model entry. */
void cfg_model_defaults(cfg_model *m);

#endif
