/* Downloads into the model store with libcurl: NAME.part is written (resumed with an
 * HTTP Range request when it exists), hashed on the way, verified, synced and renamed to
 * NAME, so NAME only ever appears whole. Names are plain file names checked before
 * anything is written, and every file is opened relative to the store directory without
 * following links, so nothing is written outside the store. A server that cannot resume
 * gets the whole file asked again. The partial file is kept
 * only when the transfer itself broke (the next pull resumes it); any other failure
 * removes it. Only http and https are followed, redirects included. Never prints
 * (progress goes to the caller's callback). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "base/err.h"
#include "fleet/fleet.h"

#define MAX_REDIRECTS 10
#define STALL_SECONDS 60L

typedef struct pull {
    int fd;
    EVP_MD_CTX *md;
    int64_t offset;          /* bytes of the partial file before this transfer */
    int64_t written;         /* bytes written by this transfer */
    bool write_failed;
    int write_errno;
    CURL *curl;
    const fleet_pull_opts *o;
} pull;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static bool mkdirs(const char *dir, hearth_err *err) {
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s", dir) >= sizeof buf) {
        err_set(err, HEARTH_ERR_INVALID, "the model store path is too long");
        return false;
    }
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
            err_set(err, HEARTH_ERR_IO, "cannot create the model store %s: %s", buf, strerror(errno));
            return false;
        }
        *p = c;
        if (!c) return true;
    }
}

static bool hash_existing(pull *p, hearth_err *err) {
    static __thread unsigned char buf[1 << 16];
    for (int64_t off = 0; off < p->offset;) {
        ssize_t n = pread(p->fd, buf, sizeof buf, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            err_set(err, HEARTH_ERR_IO, "cannot read the partial download: %s", n < 0 ? strerror(errno) : "short file");
            return false;
        }
        EVP_DigestUpdate(p->md, buf, (size_t)n);
        off += n;
    }
    return true;
}

static size_t on_data(char *data, size_t size, size_t nmemb, void *ud) {
    pull *p = ud;
    size_t len = size * nmemb;
    for (size_t done = 0; done < len;) {
        ssize_t n = pwrite(p->fd, data + done, len - done, (off_t)(p->offset + p->written));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            p->write_failed = true;
            p->write_errno = n < 0 ? errno : ENOSPC;
            return 0;
        }
        p->written += n;
        done += (size_t)n;
    }
    EVP_DigestUpdate(p->md, data, len);
    return len;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    pull *p = ud;
    if (p->o->progress) p->o->progress(p->o->ud, p->offset + (int64_t)dlnow, dltotal > 0 ? p->offset + (int64_t)dltotal : 0);
    return 0;
}

/* A broken transfer, as opposed to a refusal: the partial file is worth keeping. */
static bool interrupted(CURLcode rc) {
    return rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR || rc == CURLE_OPERATION_TIMEDOUT ||
           rc == CURLE_GOT_NOTHING || rc == CURLE_SEND_ERROR || rc == CURLE_COULDNT_CONNECT ||
           rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_HTTP2 ||
           rc == CURLE_HTTP2_STREAM || rc == CURLE_ABORTED_BY_CALLBACK;
}

static hearth_status transfer(pull *p, const char *url, const fleet_pull_opts *o, hearth_err *err) {
    CURL *c = p->curl;
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, (long)MAX_REDIRECTS);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "hearth/" HEARTH_VERSION);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)((o->connect_timeout_s > 0 ? o->connect_timeout_s : 10) * 1000));
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, STALL_SECONDS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, p);
    curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)p->offset);
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (rc == CURLE_OK) return HEARTH_OK;
    if (rc == CURLE_RANGE_ERROR && p->offset > 0) return HEARTH_ERR_RANGE; /* cannot resume: start over */
    if (p->write_failed)
        return err_set(err, HEARTH_ERR_IO, "cannot write the download: %s", strerror(p->write_errno));
    if (rc == CURLE_HTTP_RETURNED_ERROR)
        return err_set(err, HEARTH_ERR_IO, "the server answered HTTP %ld for %s", code, url);
    if (rc == CURLE_TOO_MANY_REDIRECTS)
        return err_set(err, HEARTH_ERR_IO, "more than %d redirects from %s", MAX_REDIRECTS, url);
    if (rc == CURLE_UNSUPPORTED_PROTOCOL)
        return err_set(err, HEARTH_ERR_IO, "%s: only http and https are allowed (also for redirects)", url);
    return err_set(err, interrupted(rc) ? HEARTH_ERR_TIMEOUT : HEARTH_ERR_IO, "%s: %s", url,
                   errbuf[0] ? errbuf : curl_easy_strerror(rc));
}

hearth_status fleet_pull(const char *url, const char *store_dir, const fleet_pull_opts *o, char *out_path, size_t cap,
                         char *sha256_out, hearth_err *err) {
    char https[4096], name[256], part[272];
    hearth_status st = fleet_url_resolve(url, https, sizeof https, err);
    if (st != HEARTH_OK) return st;
    if (o->name) {
        if (!cfg_valid_file_name(o->name))
            return err_set(err, HEARTH_ERR_INVALID,
                           "'%.200s' is not a valid file name for the store (1 to 200 of A-Z a-z 0-9 . _ + -, not "
                           "starting with a dot)",
                           o->name);
        snprintf(name, sizeof name, "%s", o->name);
    } else if (!cfg_url_file_name(url, name, sizeof name)) {
        return err_set(err, HEARTH_ERR_INVALID, "'%.200s' does not end in a usable file name: give one with --name", url);
    }
    if (o->sha256 && !cfg_valid_sha256(o->sha256))
        return err_set(err, HEARTH_ERR_INVALID, "'%.80s' is not a sha256 (64 hexadecimal digits)", o->sha256);
    snprintf(part, sizeof part, "%s.part", name);
    if ((size_t)snprintf(out_path, cap, "%s/%s", store_dir, name) >= cap)
        return err_set(err, HEARTH_ERR_INVALID, "the store path is too long");
    if (!mkdirs(store_dir, err)) return HEARTH_ERR_IO;
    int dfd = open(store_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return err_set(err, HEARTH_ERR_IO, "cannot open the model store %s: %s", store_dir, strerror(errno));
    pull p = {.fd = -1, .o = o};
    bool keep_part = false, remove_part = true;
    int fd = openat(dfd, part, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = err_set(err, HEARTH_ERR_IO, "cannot write %s/%s: %s", store_dir, part, fd < 0 ? strerror(errno) : "not a file");
        remove_part = false; /* not ours to remove */
        goto done;
    }
    p.fd = fd;
    p.offset = sb.st_size;
    p.md = EVP_MD_CTX_new();
    pthread_once(&curl_once, curl_init_once);
    p.curl = curl_easy_init();
    if (!p.md || EVP_DigestInit_ex(p.md, EVP_sha256(), NULL) != 1 || !p.curl) {
        st = err_set(err, HEARTH_ERR_NOMEM, "out of memory starting the download");
        goto done;
    }
    if (!hash_existing(&p, err)) {
        st = HEARTH_ERR_IO;
        goto done;
    }
    st = transfer(&p, https, o, err);
    if (st == HEARTH_ERR_RANGE) { /* the server does not do ranges: the whole file again */
        p.offset = p.written = 0;
        if (ftruncate(fd, 0) != 0 || EVP_DigestInit_ex(p.md, EVP_sha256(), NULL) != 1) {
            st = err_set(err, HEARTH_ERR_IO, "cannot restart the download: %s", strerror(errno));
            goto done;
        }
        curl_easy_reset(p.curl);
        st = transfer(&p, https, o, err);
    }
    if (st == HEARTH_ERR_TIMEOUT) { /* the transfer broke: keep what arrived for the next pull */
        keep_part = p.offset + p.written > 0;
        if (keep_part)
            err_prefix(err, "download interrupted after %lld bytes (run the same pull again to resume)",
                       (long long)(p.offset + p.written));
        st = HEARTH_ERR_IO;
        goto done;
    }
    if (st != HEARTH_OK) goto done;
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dn = 0;
    char hex[65];
    if (EVP_DigestFinal_ex(p.md, d, &dn) != 1 || dn != 32) {
        st = err_set(err, HEARTH_ERR_INTERNAL, "sha256 failed");
        goto done;
    }
    for (unsigned i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    if (o->sha256 && strcasecmp(hex, o->sha256) != 0) {
        st = err_set(err, HEARTH_ERR_FORMAT, "%s: sha256 mismatch: expected %s, the download has %s (removed)", name,
                     o->sha256, hex);
        goto done;
    }
    if (fsync(fd) != 0 || renameat(dfd, part, dfd, name) != 0) {
        st = err_set(err, HEARTH_ERR_IO, "cannot finish %s: %s", out_path, strerror(errno));
        goto done;
    }
    fsync(dfd);
    remove_part = false;
    if (sha256_out) memcpy(sha256_out, hex, 65);
done:
    if (p.curl) curl_easy_cleanup(p.curl);
    EVP_MD_CTX_free(p.md);
    if (fd >= 0) close(fd);
    if (st != HEARTH_OK && remove_part && !keep_part) unlinkat(dfd, part, 0);
    close(dfd);
    return st;
}
