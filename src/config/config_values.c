/* Scalar values of the configuration: sizes, durations, checksums and names, parsed
 * strictly (no trailing junk, no negative sizes, no overflow) and formatted so that the
 * parser reads them back unchanged. Never allocates. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config.h"

/* A non-negative decimal number (digits with an optional fraction) at *s; advances. */
static bool number_at(const char **s, double *out) {
    const char *p = *s;
    if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1]))) return false;
    char *end = NULL;
    double v = strtod(p, &end);
    if (end == p || !isfinite(v) || v < 0) return false;
    /* strtod also takes exponents and hex: only digits and one dot are allowed here */
    for (const char *q = p; q < end; q++)
        if (!isdigit((unsigned char)*q) && *q != '.') return false;
    *s = end;
    *out = v;
    return true;
}

bool cfg_parse_size(const char *s, int64_t *out) {
    static const struct { const char *unit; double mul; } units[] = {
        {"", 1}, {"b", 1},
        {"k", 1e3}, {"kb", 1e3}, {"kib", 1024.0},
        {"m", 1e6}, {"mb", 1e6}, {"mib", 1048576.0},
        {"g", 1e9}, {"gb", 1e9}, {"gib", 1073741824.0},
        {"t", 1e12}, {"tb", 1e12}, {"tib", 1099511627776.0},
    };
    const char *p = s;
    double v = 0;
    if (!number_at(&p, &v)) return false;
    if (*p == ' ') p++;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(p, units[i].unit) != 0) continue;
        double bytes = v * units[i].mul;
        if (bytes >= 9.2e18 || bytes != floor(bytes)) return false; /* fractions of a byte make no sense */
        *out = (int64_t)bytes;
        return true;
    }
    return false;
}

bool cfg_parse_duration(const char *s, bool allow_forever, double *out) {
    if (!strcmp(s, "forever")) {
        if (!allow_forever) return false;
        *out = CFG_FOREVER;
        return true;
    }
    const char *p = s;
    double total = 0, v = 0;
    if (!number_at(&p, &v)) return false;
    if (*p == '\0') { /* a bare number: seconds */
        *out = v;
        return true;
    }
    for (;;) {
        double mul;
        if (!strncmp(p, "ms", 2)) mul = 1e-3, p += 2;
        else if (*p == 's') mul = 1, p++;
        else if (*p == 'm') mul = 60, p++;
        else if (*p == 'h') mul = 3600, p++;
        else if (*p == 'd') mul = 86400, p++;
        else return false;
        total += v * mul;
        if (*p == '\0') break;
        if (!number_at(&p, &v)) return false;
    }
    if (!isfinite(total) || total > 1e12) return false;
    *out = total;
    return true;
}

void cfg_format_duration(double s, char *buf, size_t cap) {
    if (s < 0) {
        snprintf(buf, cap, "forever");
        return;
    }
    if (s != floor(s)) {
        snprintf(buf, cap, "%gs", s);
        return;
    }
    long long v = (long long)s, h = v / 3600, m = v % 3600 / 60, sec = v % 60;
    size_t n = 0;
    if (v == 0) {
        snprintf(buf, cap, "0s");
        return;
    }
    buf[0] = '\0';
    if (h) n += (size_t)snprintf(buf + n, n < cap ? cap - n : 0, "%lldh", h);
    if (m && n < cap) n += (size_t)snprintf(buf + n, cap - n, "%lldm", m);
    if (sec && n < cap) snprintf(buf + n, cap - n, "%llds", sec);
}

void cfg_format_size(int64_t bytes, char *buf, size_t cap) {
    static const char *const units[] = {"TiB", "GiB", "MiB", "KiB"};
    for (int i = 0; i < 4; i++) {
        int64_t u = (int64_t)1 << (10 * (4 - i));
        if (bytes >= u && bytes % u == 0) {
            snprintf(buf, cap, "%lld%s", (long long)(bytes / u), units[i]);
            return;
        }
    }
    snprintf(buf, cap, "%lld", (long long)bytes);
}

bool cfg_valid_sha256(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!isxdigit((unsigned char)s[n])) return false;
    return n == 64;
}

bool cfg_valid_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > CFG_NAME_MAX || s[0] == '/' || s[n - 1] == '/' || strstr(s, "..")) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._:@+/-", s[i])) return false;
    return true;
}

int64_t cfg_memory_budget(const cfg_server *s, int64_t ram) {
    if (s->memory_budget > 0) return s->memory_budget;
    if (s->memory_budget_pct > 0 && ram > 0) return (int64_t)((double)ram * s->memory_budget_pct / 100.0);
    return 0;
}

bool cfg_valid_file_name(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > 200 || s[0] == '.') return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._+-", s[i])) return false;
    return true;
}

bool cfg_url_file_name(const char *url, char *out, size_t cap) {
    size_t end = strcspn(url, "?#");
    size_t start = end;
    while (start > 0 && url[start - 1] != '/') start--;
    size_t n = end - start;
    if (n == 0 || n >= cap || start == 0) return false;
    memcpy(out, url + start, n);
    out[n] = '\0';
    return cfg_valid_file_name(out);
}
