/* The security part of the configuration: API keys (`keys:`), hardening limits
 * (`limits:`) and the whole-config rules that go with them (a non-loopback bind needs
 * keys unless explicitly allowed). Key secrets given by environment variable or file are
 * read here, hashed at once and wiped; only the sha256 digest is kept. Never prints and
 * never puts a secret into an error message. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"
#include "config/config_internal.h"

#define KEY_MIN_LEN 16    /* bytes of a key read from env or file */
#define KEY_FILE_MAX 4096

void cfg_limits_defaults(cfg_limits *l) {
    l->max_tokens = 32768;
    l->n = 8;
    l->stop = 4;
    l->stop_length = 256;
    l->messages = 1024;
    l->headers = 64;
    l->connections_per_ip = 64;
    l->header_timeout_s = 30;
    l->idle_timeout_s = 60;
}

static bool to_i64(const char *s, int64_t lo, int64_t hi, int64_t *out) {
    if (!*s || !(isdigit((unsigned char)*s) || *s == '-')) return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool to_bool(const char *s, bool *out) {
    if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on")) return *out = true, true;
    if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off")) return *out = false, true;
    return false;
}

static cfg_set_result int_in(const char *v, int64_t lo, int64_t hi, int64_t *out, char *why, size_t cap) {
    if (to_i64(v, lo, hi, out)) return CFG_SET_OK;
    snprintf(why, cap, "expected an integer from %lld to %lld, got '%.60s'", (long long)lo, (long long)hi, v);
    return CFG_SET_BAD;
}

cfg_set_result cfg_set_limits_key(cfg_limits *l, const char *key, const char *v, char *why, size_t cap) {
    static const struct { const char *key; size_t off; int64_t lo, hi; } ints[] = {
        {"max_tokens", offsetof(cfg_limits, max_tokens), 1, INT32_MAX},
        {"n", offsetof(cfg_limits, n), 1, 8},
        {"stop", offsetof(cfg_limits, stop), 0, 16},
        {"stop_length", offsetof(cfg_limits, stop_length), 1, 256},
        {"messages", offsetof(cfg_limits, messages), 1, 4096},
        {"headers", offsetof(cfg_limits, headers), 8, 1000},
        {"connections_per_ip", offsetof(cfg_limits, connections_per_ip), 1, 100000},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!strcmp(key, ints[i].key)) return int_in(v, ints[i].lo, ints[i].hi, (int64_t *)((char *)l + ints[i].off), why, cap);
    if (!strcmp(key, "header_timeout") || !strcmp(key, "idle_timeout")) {
        double d = 0;
        if (!cfg_parse_duration(v, false, &d) || d < 1 || d > 3600) {
            snprintf(why, cap, "expected a duration from 1s to 1h such as 30s, got '%.60s'", v);
            return CFG_SET_BAD;
        }
        *(key[0] == 'h' ? &l->header_timeout_s : &l->idle_timeout_s) = d;
        return CFG_SET_OK;
    }
    return CFG_SET_UNKNOWN;
}

static bool valid_key_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 64) return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-", *p)) return false;
    return true;
}

cfg_set_result cfg_set_api_key_key(cfg_build_ctx *b, cfg_api_key *k, const char *key, const char *v, bool from_file,
                                   char *why, size_t cap) {
    if (!strcmp(key, "name")) {
        if (!valid_key_name(v)) {
            snprintf(why, cap, "a key name is 1 to 64 of A-Z a-z 0-9 . _ -, got '%.60s'", v);
            return CFG_SET_BAD;
        }
        mem_free(k->name);
        k->name = cfg_strdup(b, v);
        return CFG_SET_OK;
    }
    if (!strcmp(key, "sha256") || !strcmp(key, "env") || !strcmp(key, "file")) {
        if (k->ref) {
            snprintf(why, cap, "a key has one secret: sha256, env or file");
            return CFG_SET_BAD;
        }
        if (key[0] == 's') {
            if (!cfg_valid_sha256(v)) {
                snprintf(why, cap, "expected the key's sha256 as 64 hexadecimal digits");
                return CFG_SET_BAD;
            }
            k->source = CFG_KEY_SHA256;
            k->ref = cfg_strdup(b, v);
            for (char *p = k->ref; p && *p; p++) *p = (char)tolower((unsigned char)*p);
        } else if (key[0] == 'e') {
            if (!*v) {
                snprintf(why, cap, "expected an environment variable name");
                return CFG_SET_BAD;
            }
            k->source = CFG_KEY_ENV;
            k->ref = cfg_strdup(b, v);
        } else {
            if (!*v) {
                snprintf(why, cap, "expected a file path");
                return CFG_SET_BAD;
            }
            k->source = CFG_KEY_FILE;
            k->ref = cfg_path(b, v, from_file);
        }
        return CFG_SET_OK;
    }
    if (!strcmp(key, "admin") || !strcmp(key, "tools")) {
        if (!to_bool(v, key[0] == 'a' ? &k->admin : &k->tools)) {
            snprintf(why, cap, "expected true or false%s, got '%.60s'", key[0] == 't' ? " (or a list of tool names)" : "",
                     v);
            return CFG_SET_BAD;
        }
        if (key[0] == 't') cfg_list_free(&k->tool_names, &k->n_tool_names);
        return CFG_SET_OK;
    }
    if (!strcmp(key, "requests_per_minute")) return int_in(v, 0, 1000000000, &k->requests_per_minute, why, cap);
    if (!strcmp(key, "tokens_per_minute")) return int_in(v, 0, INT64_C(1) << 40, &k->tokens_per_minute, why, cap);
    if (!strcmp(key, "max_concurrent")) return int_in(v, 0, 100000, &k->max_concurrent, why, cap);
    return CFG_SET_UNKNOWN;
}

bool cfg_list_add(cfg_build_ctx *b, char ***list, size_t *n, const char *v, char *why, size_t cap) {
    if (*n >= CFG_MAX_KEY_ITEMS) {
        snprintf(why, cap, "at most %d entries", CFG_MAX_KEY_ITEMS);
        return false;
    }
    char **grown = mem_realloc_array(*list, *n + 1, sizeof *grown);
    if (!grown) {
        b->nomem = true;
        return true;
    }
    *list = grown;
    char *d = cfg_strdup(b, v);
    if (d) grown[(*n)++] = d;
    return true;
}

void cfg_list_free(char ***list, size_t *n) {
    for (size_t i = 0; i < *n; i++) mem_free((*list)[i]);
    mem_free(*list);
    *list = NULL;
    *n = 0;
}

cfg_api_key *cfg_add_api_key(cfg_build_ctx *b, cfg_loc at) {
    cfg_config *c = b->c;
    if (c->n_keys >= CFG_MAX_KEYS) return NULL;
    cfg_api_key *grown = mem_realloc_array(c->keys, c->n_keys + 1, sizeof *grown);
    if (!grown) {
        b->nomem = true;
        return NULL;
    }
    c->keys = grown;
    cfg_api_key *k = &c->keys[c->n_keys++];
    memset(k, 0, sizeof *k);
    k->tools = true;
    k->line = at.line;
    k->col = at.col;
    return k;
}

static void key_clear(cfg_api_key *k) {
    mem_free(k->name);
    mem_free(k->ref);
    cfg_list_free(&k->models, &k->n_models);
    cfg_list_free(&k->tool_names, &k->n_tool_names);
    OPENSSL_cleanse(k->digest, sizeof k->digest);
}

void cfg_free_security(cfg_config *c) {
    for (size_t i = 0; i < c->n_keys; i++) key_clear(&c->keys[i]);
    mem_free(c->keys);
    c->keys = NULL;
    c->n_keys = 0;
    cfg_list_free(&c->server.cors_origins, &c->server.n_cors_origins);
}

bool cfg_host_is_loopback(const char *host) {
    if (!host) return true; /* the default bind is 127.0.0.1 */
    unsigned char a[16];
    if (inet_pton(AF_INET, host, a) == 1) return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) != 1) return false;
    static const unsigned char one[16] = {[15] = 1};
    static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
    return !memcmp(a, one, 16) || (!memcmp(a, mapped, 12) && a[12] == 127);
}

static void hash(const char *secret, size_t n, unsigned char out[CFG_KEY_DIGEST]) {
    unsigned int len = 0;
    EVP_Digest(secret, n, out, &len, EVP_sha256(), NULL);
}

/* "*", or scheme://host[:port] without a path. */
static bool valid_origin(const char *v) {
    if (!strcmp(v, "*")) return true;
    const char *sep = strstr(v, "://");
    if (!sep || sep == v || strlen(sep + 3) == 0 || strlen(v) > 200) return false;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == ',' || *p == '"' || (p > sep + 2 && *p == '/')) return false;
    return true;
}

cfg_set_result cfg_add_cors_origins(cfg_build_ctx *b, const char *v, char *why, size_t cap) {
    cfg_server *s = &b->c->server;
    char item[256];
    for (const char *p = v;;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        while (n > 0 && *p == ' ') p++, n--;
        while (n > 0 && p[n - 1] == ' ') n--;
        if (n == 0 || n >= sizeof item) {
            snprintf(why, cap, "expected origins such as https://app.example.com, comma-separated");
            return CFG_SET_BAD;
        }
        memcpy(item, p, n);
        item[n] = '\0';
        if (!valid_origin(item)) {
            snprintf(why, cap, "'%.80s' is not an origin (scheme://host[:port], or *)", item);
            return CFG_SET_BAD;
        }
        if (!cfg_list_add(b, &s->cors_origins, &s->n_cors_origins, item, why, cap)) return CFG_SET_BAD;
        if (!end) return CFG_SET_OK;
        p = end + 1;
    }
}

static int hexval(char c) { return isdigit((unsigned char)c) ? c - '0' : tolower((unsigned char)c) - 'a' + 10; }

/* The secret of an env or file key, hashed; false with why set (never naming the secret). */
static bool resolve(cfg_api_key *k, char *why, size_t cap) {
    if (k->source == CFG_KEY_SHA256) {
        for (size_t i = 0; i < CFG_KEY_DIGEST; i++)
            k->digest[i] = (unsigned char)(hexval(k->ref[2 * i]) << 4 | hexval(k->ref[2 * i + 1]));
        return true;
    }
    if (k->source == CFG_KEY_ENV) {
        const char *v = getenv(k->ref);
        size_t n = v ? strlen(v) : 0;
        if (n < KEY_MIN_LEN) {
            snprintf(why, cap, "environment variable %.80s is %s", k->ref,
                     v ? "shorter than 16 characters" : "not set");
            return false;
        }
        hash(v, n, k->digest);
        return true;
    }
    char buf[KEY_FILE_MAX + 1];
    FILE *f = fopen(k->ref, "rb");
    if (!f) {
        snprintf(why, cap, "cannot open key file %.160s: %s", k->ref, strerror(errno));
        return false;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    bool bad = ferror(f), big = n > KEY_FILE_MAX;
    fclose(f);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t')) n--;
    bool ok = !bad && !big && n >= KEY_MIN_LEN && !memchr(buf, '\n', n);
    if (ok) hash(buf, n, k->digest);
    else
        snprintf(why, cap, "key file %.160s %s", k->ref,
                 bad   ? "cannot be read"
                 : big ? "is larger than 4 KiB"
                 : n < KEY_MIN_LEN ? "holds fewer than 16 characters"
                                   : "holds more than one line");
    OPENSSL_cleanse(buf, sizeof buf);
    return ok;
}

void cfg_check_security(cfg_build_ctx *b) {
    cfg_config *c = b->c;
    for (size_t i = 0; i < c->n_keys; i++) {
        cfg_api_key *k = &c->keys[i];
        cfg_loc at = {.line = k->line, .col = k->col, .origin = "keys"};
        char kp[32], why[300];
        snprintf(kp, sizeof kp, "keys[%zu]", i);
        if (!k->name) {
            cfg_error(b, at, kp, "a key needs a name");
            continue;
        }
        for (size_t j = 0; j < i; j++)
            if (c->keys[j].name && !strcmp(c->keys[j].name, k->name))
                cfg_error(b, at, kp, "the key name '%s' is used twice", k->name);
        if (!k->ref) cfg_error(b, at, kp, "key '%s' needs its secret: sha256, env or file", k->name);
        else if (!resolve(k, why, sizeof why)) cfg_error(b, at, kp, "key '%s': %s", k->name, why);
        if (k->n_models == 0 && !cfg_list_add(b, &k->models, &k->n_models, "*", why, sizeof why))
            cfg_error(b, at, kp, "%s", why);
    }
    const char *host = c->server.host;
    if (c->n_keys == 0 && !c->server.allow_unauthenticated && !cfg_host_is_loopback(host))
        cfg_error(b, (cfg_loc){.origin = "server.host"}, host,
                  "listening on a non-loopback address without API keys is refused: configure keys (see "
                  "docs/CONFIG.md) or pass --allow-unauthenticated (server.allow_unauthenticated: true)");
}
