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

typedef struct cfg_build_ctx {
    cfg_config *c;
    cfg_errors *errs;
    const char *file;               /* name used in messages */
    char *dir;                      /* directory of the file (relative paths), or NULL */
    cfg_model_locs *locs;           /* [CFG_MAX_MODELS] */
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

/* Built-in defaults of a model entry. */
void cfg_model_defaults(cfg_model *m);

#endif
