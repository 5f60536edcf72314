/* The model store: where pulled models live, how a model address becomes an https://
 * address, and the sha256 of a file. Addresses are checked piece by piece (owner, repo,
 * revision, path segments) so that no address can name something outside what it says.
 * Never prints; never writes (fleet_pull.c does). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "fleet/fleet.h"

hearth_status fleet_store_dir(const char *configured, char *out, size_t cap, hearth_err *err) {
    const char *env = getenv("HEARTH_MODELS"), *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    int n;
    if (env && *env) n = snprintf(out, cap, "%s", env);
    else if (configured && *configured) n = snprintf(out, cap, "%s", configured);
    else if (xdg && xdg[0] == '/') n = snprintf(out, cap, "%s/hearth/models", xdg);
    else if (home && *home) n = snprintf(out, cap, "%s/.local/share/hearth/models", home);
    else return err_set(err, HEARTH_ERR_INVALID, "no model store: set HEARTH_MODELS or server.model_store (HOME is unset)");
    if (n < 0 || (size_t)n >= cap) return err_set(err, HEARTH_ERR_INVALID, "the model store path is too long");
    while (n > 1 && out[n - 1] == '/') out[--n] = '\0';
    return HEARTH_OK;
}

/* [A-Za-z0-9._-]+ not starting with '.', at most max bytes, ending at one of stops. */
static size_t segment(const char *s, const char *stops, size_t max) {
    size_t n = 0;
    while (s[n] && !strchr(stops, s[n])) {
        if (!isalnum((unsigned char)s[n]) && !strchr("._-", s[n])) return 0;
        n++;
    }
    return n > 0 && n <= max && s[0] != '.' ? n : 0;
}

hearth_status fleet_url_resolve(const char *url, char *out, size_t cap, hearth_err *err) {
    if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8)) {
        for (const char *p = url; *p; p++)
            if ((unsigned char)*p <= ' ' || *p == 0x7f)
                return err_set(err, HEARTH_ERR_INVALID, "the url contains a space or control character");
        if ((size_t)snprintf(out, cap, "%s", url) >= cap) return err_set(err, HEARTH_ERR_INVALID, "the url is too long");
        return HEARTH_OK;
    }
    if (strncmp(url, "hf://", 5) != 0)
        return err_set(err, HEARTH_ERR_INVALID, "'%.200s' is not an http://, https:// or hf:// address", url);
    const char *p = url + 5, *bad = "an hf:// address is hf://OWNER/REPO[@REVISION]/FILE.gguf";
    size_t owner = segment(p, "/", 96);
    if (!owner || p[owner] != '/') return err_set(err, HEARTH_ERR_INVALID, "%s", bad);
    const char *repo = p + owner + 1;
    size_t rn = segment(repo, "/@", 96);
    if (!rn) return err_set(err, HEARTH_ERR_INVALID, "%s", bad);
    const char *rev = "main", *path = repo + rn;
    size_t revn = 4;
    if (*path == '@') {
        rev = path + 1;
        revn = segment(rev, "/", 64);
        if (!revn) return err_set(err, HEARTH_ERR_INVALID, "%s", bad);
        path = rev + revn;
    }
    if (*path != '/') return err_set(err, HEARTH_ERR_INVALID, "%s", bad);
    path++;
    for (const char *q = path;;) { /* every path segment is a plain name: no "..", no empty segment */
        size_t sn = segment(q, "/", 200);
        if (!sn) return err_set(err, HEARTH_ERR_INVALID, "%s (bad file path)", bad);
        if (q[sn] == '\0') break;
        q += sn + 1;
    }
    const char *base = getenv("HF_ENDPOINT");
    if (!base || !*base) base = "https://huggingface.co";
    size_t bn = strlen(base);
    while (bn > 0 && base[bn - 1] == '/') bn--;
    int n = snprintf(out, cap, "%.*s/%.*s/%.*s/resolve/%.*s/%s", (int)bn, base, (int)owner, p, (int)rn, repo, (int)revn,
                     rev, path);
    if (n < 0 || (size_t)n >= cap) return err_set(err, HEARTH_ERR_INVALID, "the url is too long");
    return HEARTH_OK;
}

hearth_status fleet_sha256_file(const char *path, char out[65], hearth_err *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(err, errno == ENOENT ? HEARTH_ERR_NOT_FOUND : HEARTH_ERR_IO, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    hearth_status st = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? HEARTH_OK
                                                                             : err_set(err, HEARTH_ERR_NOMEM, "sha256: out of memory");
    static __thread unsigned char buf[1 << 16];
    while (st == HEARTH_OK) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) st = err_set(err, HEARTH_ERR_IO, "%s: %s", path, strerror(errno));
        if (n <= 0) break;
        if (EVP_DigestUpdate(md, buf, (size_t)n) != 1) st = err_set(err, HEARTH_ERR_INTERNAL, "sha256 failed");
    }
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dn = 0;
    if (st == HEARTH_OK && (EVP_DigestFinal_ex(md, d, &dn) != 1 || dn != 32))
        st = err_set(err, HEARTH_ERR_INTERNAL, "sha256 failed");
    if (st == HEARTH_OK)
        for (unsigned i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
    EVP_MD_CTX_free(md);
    close(fd);
    return st;
}
