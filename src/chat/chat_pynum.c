/* Python's number conversions as Jinja2's filters use them: int(text, base) and
 * float(text) parsing (whitespace, signs, underscores between digits, base prefixes,
 * inf/nan; no C-only forms such as hexadecimal floats), and round(x, ndigits) rounded
 * correctly half to even on the exact binary value. Never reads past the given text. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat_internal.h"

static int digit_value(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'Z') return ch - 'A' + 10;
    return 99;
}

bool py_parse_int(const char *s, size_t n, int base, int64_t *out) {
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (base == 0 || base == 16 || base == 8 || base == 2) {
        char p = i + 1 < n && s[i] == '0' ? (char)(s[i + 1] | 0x20) : 0;
        int pb = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
        if (pb && (base == 0 || base == pb)) {
            base = pb;
            i += 2;
            if (i < n && s[i] == '_') i++; /* 0x_1f */
        } else if (base == 0) {
            base = 10;
            for (size_t k = i; k < n; k++) /* base 0 refuses leading zeros in a nonzero number */
                if (s[k] != '0' && s[k] != '_') {
                    if (s[i] == '0') return false;
                    break;
                }
        }
    }
    if (base < 2 || base > 36 || i >= n) return false;
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    bool prev_digit = false;
    for (; i < n; i++) {
        if (s[i] == '_') {
            if (!prev_digit || i + 1 >= n) return false;
            prev_digit = false;
            continue;
        }
        int d = digit_value(s[i]);
        if (d >= base) return false;
        if (v > (limit - (uint64_t)d) / (uint64_t)base) return false; /* would not fit in 64 bits */
        v = v * (uint64_t)base + (uint64_t)d;
        prev_digit = true;
    }
    if (!prev_digit) return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static bool word_ci(const char *s, size_t n, const char *w) {
    return strlen(w) == n && !strncasecmp(s, w, n);
}

bool py_parse_float(const char *s, size_t n, double *out) {
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (word_ci(s + i, n - i, "inf") || word_ci(s + i, n - i, "infinity") || word_ci(s + i, n - i, "nan")) {
        double v = (s[i] | 0x20) == 'n' ? NAN : INFINITY;
        *out = neg ? -v : v;
        return true;
    }
    char buf[512];
    size_t o = 0, digits = 0;
    if (n - i >= sizeof buf - 2) return false;
    buf[o++] = neg ? '-' : '+';
    bool prev_digit = false, dot = false, exp = false;
    for (; i < n; i++) {
        char ch = s[i];
        if (ch >= '0' && ch <= '9') {
            buf[o++] = ch;
            prev_digit = true;
            digits++;
        } else if (ch == '_') {
            if (!prev_digit || i + 1 >= n || s[i + 1] < '0' || s[i + 1] > '9') return false;
            prev_digit = false;
        } else if (ch == '.' && !dot && !exp) {
            buf[o++] = ch;
            dot = true;
            prev_digit = false;
        } else if ((ch == 'e' || ch == 'E') && !exp && digits) {
            buf[o++] = 'e';
            exp = true;
            prev_digit = false;
            if (i + 1 < n && (s[i + 1] == '+' || s[i + 1] == '-')) buf[o++] = s[++i];
            if (i + 1 >= n) return false;
        } else
            return false;
    }
    if (!digits || !(prev_digit || (dot && !exp && s[n - 1] == '.'))) return false;
    buf[o] = 0;
    *out = strtod(buf, NULL);
    return true;
}

/* Rounds the decimal digits d[0..n), of which the first ip are the integer part, half
 * to even at ip + nd digits, in place. d[0] is a leading '0' that takes any carry. */
static void round_digits(char *d, int n, int ip, int64_t nd) {
    int64_t keep = ip + nd;
    if (keep < 1) { /* the rounding unit is over ten times x */
        memset(d, '0', (size_t)n);
        return;
    }
    if (keep >= n) return;
    bool up;
    if (d[keep] != '5') up = d[keep] > '5';
    else {
        up = false;
        for (int k = (int)keep + 1; k < n; k++)
            if (d[k] != '0') up = true;
        if (!up) up = (d[keep - 1] - '0') % 2 == 1; /* a tie: to even */
    }
    for (int k = (int)keep; k < n; k++) d[k] = '0';
    for (int k = (int)keep - 1; up && k >= 0; k--) {
        if (d[k] == '9') d[k] = '0';
        else {
            d[k]++;
            up = false;
        }
    }
}

double py_round(double x, int64_t ndigits) {
    if (!isfinite(x) || x == 0) return x;
    if (ndigits > 330) return x;
    if (ndigits < -330) return copysign(0.0, x);
    enum { FRAC = 1100 };
    char exact[1500], digits[1500];
    snprintf(exact, sizeof exact, "%.*f", FRAC, fabs(x)); /* glibc prints the exact value */
    int n = 0, ip = 1;
    digits[n++] = '0';
    bool seen_dot = false;
    for (const char *p = exact; *p; p++) {
        if (*p == '.') seen_dot = true;
        else {
            digits[n++] = *p;
            if (!seen_dot) ip++;
        }
    }
    round_digits(digits, n, ip, ndigits);
    char text[1600];
    int o = 0;
    text[o++] = x < 0 ? '-' : '+';
    for (int k = 0; k < n; k++) {
        if (k == ip) text[o++] = '.';
        text[o++] = digits[k];
    }
    text[o] = 0;
    return strtod(text, NULL);
}
