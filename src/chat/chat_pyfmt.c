/* Python's two string formatting languages as templates use them: printf-style
 * `fmt % args` (and the |format filter), with %(key)s, flags, width, precision and '*',
 * and str.format with field names, attribute/index access, !r/!s conversions and the
 * format-spec mini-language (fill, align, sign, '#', '0', width, grouping, precision,
 * type). Widths count code points. Never formats outside its output buffer. */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/chat_internal.h"

#define MAX_WIDTH 100000 /* widths and precisions beyond this are refused */

static bool is_num(cv v) { return v.t == CV_BOOL || v.t == CV_INT || v.t == CV_FLOAT; }
static double as_f(cv v) { return v.t == CV_FLOAT ? v.u.f : v.t == CV_INT ? (double)v.u.i : (double)v.u.b; }
static int64_t as_i(cv v) { return v.t == CV_INT ? v.u.i : v.t == CV_BOOL ? (int64_t)v.u.b : (int64_t)v.u.f; }

static void put_fill(chat_ctx *c, cbuf *b, const char *fill, size_t fill_len, int64_t n) {
    for (int64_t k = 0; k < n; k++) cb_put(c, b, fill, fill_len);
}

static int64_t cplen(const char *s, size_t n) {
    int64_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

/* Writes sign + body padded to width: align '<', '>', '^', or '=' (fill between the
 * sign and the body). */
static void put_aligned(chat_ctx *c, cbuf *b, const char *sign, const char *body, size_t body_len, int64_t width,
                        char align, const char *fill, size_t fill_len) {
    int64_t len = cplen(sign, strlen(sign)) + cplen(body, body_len), pad = width > len ? width - len : 0;
    int64_t left = align == '<' ? 0 : align == '^' ? pad / 2 : pad;
    if (align == '=') {
        cb_puts(c, b, sign);
        put_fill(c, b, fill, fill_len, pad);
        cb_put(c, b, body, body_len);
        return;
    }
    put_fill(c, b, fill, fill_len, left);
    cb_puts(c, b, sign);
    cb_put(c, b, body, body_len);
    put_fill(c, b, fill, fill_len, pad - left);
}

/* ---- printf-style ----------------------------------------------------------------- */

/* A width or precision: digits, or '*' taking the next argument (a negative one sets
 * *negative, which Python reads as the '-' flag of a width). */
static int64_t star_or_digits(chat_ctx *c, cstr *fmt, size_t *i, cv args, size_t *ai, bool tuple, bool *negative) {
    int64_t v = 0;
    if (*i < fmt->len && fmt->s[*i] == '*') {
        (*i)++;
        cv x = tuple && *ai < args.u.l->n ? args.u.l->v[(*ai)++] : cv_undef();
        if (x.t != CV_INT) chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "* wants int");
        if (x.u.i < -MAX_WIDTH || x.u.i > MAX_WIDTH) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "width too big");
        *negative = x.u.i < 0;
        return x.u.i < 0 ? -x.u.i : x.u.i;
    }
    while (*i < fmt->len && fmt->s[*i] >= '0' && fmt->s[*i] <= '9') {
        v = v * 10 + (fmt->s[(*i)++] - '0');
        if (v > MAX_WIDTH) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "width too big");
    }
    return v;
}

cv percent_format(chat_ctx *c, cstr *fmt, cv args) {
    cbuf *b = cb_new(c);
    size_t ai = 0;
    bool tuple = args.t == CV_LIST && args.u.l->tuple, mapping = args.t == CV_DICT, used_key = false;
    size_t nargs = tuple ? args.u.l->n : 1;
    for (size_t i = 0; i < fmt->len; i++) {
        if (fmt->s[i] != '%') {
            cb_putc(c, b, fmt->s[i]);
            continue;
        }
        if (++i >= fmt->len) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "incomplete format");
        cv v = cv_undef();
        bool have = false;
        if (fmt->s[i] == '(') {
            if (!mapping) chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "format requires a mapping");
            size_t k = ++i;
            int depth = 1;
            while (i < fmt->len && (depth += fmt->s[i] == '(' ? 1 : fmt->s[i] == ')' ? -1 : 0) > 0) i++;
            if (i >= fmt->len) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "incomplete format key");
            cv *got = cd_gets(args.u.d, fmt->s + k, i - k);
            if (!got) chat_fail(c, HEARTH_ERR_FORMAT, "KeyError", "'%.*s'", (int)(i - k), fmt->s + k);
            v = *got;
            have = used_key = true;
            i++;
        }
        char flags[8] = {0};
        int nf = 0;
        while (i < fmt->len && strchr("-+ #0", fmt->s[i]) && fmt->s[i]) {
            if (nf < 6 && !strchr(flags, fmt->s[i])) flags[nf++] = fmt->s[i];
            i++;
        }
        bool neg_width = false, neg_prec = false;
        int64_t width = star_or_digits(c, fmt, &i, args, &ai, tuple, &neg_width), prec = -1;
        if (neg_width && nf < 6 && !strchr(flags, '-')) flags[nf++] = '-';
        if (i < fmt->len && fmt->s[i] == '.') {
            i++;
            prec = star_or_digits(c, fmt, &i, args, &ai, tuple, &neg_prec);
            if (neg_prec) prec = 0;
        }
        while (i < fmt->len && strchr("hlL", fmt->s[i])) i++;
        if (i >= fmt->len) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "incomplete format");
        char type = fmt->s[i];
        if (type == '%') {
            cb_putc(c, b, '%');
            continue;
        }
        if (!have) {
            if (ai >= nargs) chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "not enough arguments for format string");
            v = tuple ? args.u.l->v[ai] : args;
            ai++;
        }
        bool left = strchr(flags, '-') != NULL;
        char spec[32], num[1024];
        if ((width > 900 || prec > 300) && strchr("diuoxXeEfFgG", type))
            chat_fail(c, HEARTH_ERR_FORMAT, "ValueError",
                      "a width over 900 or a precision over 300 in a numeric %% format is not supported");
        switch (type) {
        case 's':
        case 'r':
        case 'a': {
            cbuf *t = cb_new(c);
            if (type == 's') cv_write_str(c, t, v);
            else cv_write_repr(c, t, v, 0);
            size_t n = t->n;
            if (prec >= 0) {
                cv whole = cv_str(c, t->p, t->n);
                n = cs_cp_offset(whole.u.s, (size_t)(prec < (int64_t)cs_cplen(whole.u.s) ? prec : (int64_t)cs_cplen(whole.u.s)));
                cv_unref(c, whole);
            }
            put_aligned(c, b, "", t->p, n, width, left ? '<' : '>', " ", 1);
            chat_obj_unref(c, &t->h);
            break;
        }
        case 'c': {
            cbuf *t = cb_new(c);
            if (v.t == CV_INT && v.u.i >= 0 && v.u.i <= 0x10FFFF) chat_put_cp(c, t, (uint32_t)v.u.i);
            else if (v.t == CV_STR && cs_cplen(v.u.s) == 1) cb_put(c, t, v.u.s->s, v.u.s->len);
            else chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "%%c requires an int or a unicode character");
            put_aligned(c, b, "", t->p, t->n, width, left ? '<' : '>', " ", 1);
            chat_obj_unref(c, &t->h);
            break;
        }
        case 'd': case 'i': case 'u': case 'o': case 'x': case 'X': {
            bool intonly = type == 'o' || type == 'x' || type == 'X';
            if (!is_num(v) || (intonly && v.t == CV_FLOAT))
                chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "%%%c format: %s is required, not %s", type,
                          intonly ? "an integer" : "a real number", cv_pytype(v));
            if (v.t == CV_FLOAT && !(fabs(v.u.f) < 9.2e18))
                chat_fail(c, HEARTH_ERR_FORMAT, "OverflowError", "cannot convert float to integer");
            int64_t x = as_i(v);
            bool alt = strchr(flags, '#') != NULL;
            char t = type == 'i' || type == 'u' ? 'd' : type;
            /* C prints octal's alternate form as 0NN; Python as 0oNN */
            char fl[8] = {0};
            int k = 0;
            for (const char *p = flags; *p; p++)
                if (*p != '#' || t != 'o') fl[k++] = *p;
            snprintf(spec, sizeof spec, "%%%s*%s%s", fl, prec < 0 ? "" : ".*", t == 'd' ? PRId64 : PRIx64);
            if (t != 'd') spec[strlen(spec) - 1] = t;
            if (t == 'd' || x >= 0) {
                if (alt && t == 'o') {
                    char digits[64];
                    snprintf(digits, sizeof digits, "%" PRIo64, (uint64_t)x);
                    cbuf *tb = cb_new(c);
                    cb_puts(c, tb, "0o");
                    for (int64_t z = (int64_t)strlen(digits); z < prec; z++) cb_putc(c, tb, '0');
                    cb_puts(c, tb, digits);
                    const char *sign = strchr(flags, '+') ? "+" : strchr(flags, ' ') ? " " : "";
                    put_aligned(c, b, sign, tb->p, tb->n, width, left ? '<' : strchr(flags, '0') ? '=' : '>',
                                strchr(flags, '0') && !left ? "0" : " ", 1);
                    chat_obj_unref(c, &tb->h);
                    break;
                }
                if (prec < 0) snprintf(num, sizeof num, spec, (int)width, x);
                else snprintf(num, sizeof num, spec, (int)width, (int)prec, x);
            } else { /* Python prints negative hex/octal with a minus sign */
                char body[64];
                snprintf(body, sizeof body, t == 'o' ? "%" PRIo64 : t == 'x' ? "%" PRIx64 : "%" PRIX64,
                         x == INT64_MIN ? (uint64_t)1 << 63 : (uint64_t)-x);
                cbuf *tb = cb_new(c);
                if (alt) cb_puts(c, tb, t == 'o' ? "0o" : t == 'x' ? "0x" : "0X");
                for (int64_t z = (int64_t)strlen(body); z < prec; z++) cb_putc(c, tb, '0');
                cb_puts(c, tb, body);
                put_aligned(c, b, "-", tb->p, tb->n, width, left ? '<' : strchr(flags, '0') ? '=' : '>',
                            strchr(flags, '0') && !left ? "0" : " ", 1);
                chat_obj_unref(c, &tb->h);
                break;
            }
            cb_puts(c, b, num);
            break;
        }
        case 'e': case 'E': case 'f': case 'F': case 'g': case 'G': {
            if (!is_num(v))
                chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "must be real number, not %s", cv_pytype(v));
            snprintf(spec, sizeof spec, "%%%s*.*%c", flags, type);
            snprintf(num, sizeof num, spec, (int)width, (int)(prec < 0 ? 6 : prec), as_f(v));
            cb_puts(c, b, num);
            break;
        }
        default:
            chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "unsupported format character '%c' (0x%x) at index %zu",
                      type, (unsigned)(unsigned char)type, i);
        }
    }
    if (tuple ? ai < nargs : (!mapping && !used_key && ai == 0))
        chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "not all arguments converted during string formatting");
    return cb_take(c, b);
}

/* ---- str.format ------------------------------------------------------------------- */

typedef struct fspec {
    char fill[5];
    size_t fill_len;
    char align, sign, type, group;
    bool alt, zero;
    int64_t width, prec;
} fspec;

static void parse_spec(chat_ctx *c, const char *s, size_t n, fspec *f) {
    memset(f, 0, sizeof *f);
    f->prec = -1;
    size_t i = 0;
    size_t cl = 1;
    while (cl < n && cl < 4 && ((unsigned char)s[cl] & 0xC0) == 0x80) cl++;
    if (n > cl && strchr("<>=^", s[cl]) && s[cl]) {
        memcpy(f->fill, s, cl);
        f->fill_len = cl;
        f->align = s[cl];
        i = cl + 1;
    } else if (n > 0 && strchr("<>=^", s[0]) && s[0]) {
        f->align = s[0];
        i = 1;
    }
    if (i < n && strchr("+- ", s[i]) && s[i]) f->sign = s[i++];
    if (i < n && s[i] == 'z') i++;
    if (i < n && s[i] == '#') f->alt = s[i++] == '#';
    if (i < n && s[i] == '0') f->zero = s[i++] == '0';
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        f->width = f->width * 10 + (s[i++] - '0');
        if (f->width > MAX_WIDTH) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "Too many decimal digits in format string");
    }
    if (i < n && (s[i] == ',' || s[i] == '_')) f->group = s[i++];
    if (i < n && s[i] == '.') {
        i++;
        if (i >= n || s[i] < '0' || s[i] > '9') chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "Format specifier missing precision");
        f->prec = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            f->prec = f->prec * 10 + (s[i++] - '0');
            if (f->prec > MAX_WIDTH) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "Too many decimal digits in format string");
        }
    }
    if (i < n) f->type = s[i++];
    if (i < n) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "Invalid format specifier '%.*s'", (int)n, s);
    if (!f->fill_len) { /* '0' pads with zeros whatever the alignment; it implies '=' for numbers only */
        f->fill[0] = f->zero ? '0' : ' ';
        f->fill_len = 1;
    }
}

/* Inserts the grouping character every 3 digits of the integer part of digits. */
static void put_grouped(chat_ctx *c, cbuf *b, const char *digits, char group, int every) {
    size_t ip = strspn(digits, "0123456789abcdefABCDEF");
    const char *dot = strchr(digits, '.');
    if (dot && (size_t)(dot - digits) < ip) ip = (size_t)(dot - digits);
    for (size_t k = 0; k < ip; k++) {
        if (group && k && (ip - k) % (size_t)every == 0) cb_putc(c, b, group);
        cb_putc(c, b, digits[k]);
    }
    cb_puts(c, b, digits + ip);
}

static void format_number(chat_ctx *c, cbuf *b, cv v, fspec *f) {
    char type = f->type, body[1024];
    bool neg;
    if (v.t == CV_FLOAT || strchr("eEfFgG%", type ? type : 'd')) {
        if (type && !strchr("eEfFgGn%", type))
            chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "Unknown format code '%c' for object of type 'float'", type);
        double x = as_f(v);
        neg = signbit(x) && !isnan(x);
        x = fabs(x);
        if (f->prec > 300)
            chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "a precision over 300 in a float format is not supported");
        int64_t prec = f->prec < 0 ? 6 : f->prec;
        if (type == '%') {
            snprintf(body, sizeof body, "%.*f%%", (int)prec, x * 100);
        } else if (type == 'n' || !type) {
            if (f->prec < 0 && !type) fmt_pyfloat(x, body);
            else {
                snprintf(body, sizeof body, "%.*g", (int)(f->prec == 0 ? 1 : prec), x);
                if (!type && isfinite(x) && !strpbrk(body, ".e")) strcat(body, ".0");
            }
        } else {
            char spec[16];
            snprintf(spec, sizeof spec, "%%%s.*%c", f->alt ? "#" : "", type);
            snprintf(body, sizeof body, spec, (int)prec, x);
        }
    } else {
        if (type && !strchr("bcdoxXn", type))
            chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "Unknown format code '%c' for object of type 'int'", type);
        if (f->prec >= 0) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "Precision not allowed in integer format specifier");
        int64_t x = as_i(v);
        neg = x < 0;
        uint64_t u = neg ? (uint64_t)0 - (uint64_t)x : (uint64_t)x;
        if (type == 'c') {
            if (neg || u > 0x10FFFF) chat_fail(c, HEARTH_ERR_FORMAT, "OverflowError", "%%c arg not in range(0x110000)");
            cbuf *t = cb_new(c);
            chat_put_cp(c, t, (uint32_t)u);
            put_aligned(c, b, "", t->p, t->n, f->width, f->align ? f->align : f->zero ? '=' : '<', f->fill, f->fill_len);
            chat_obj_unref(c, &t->h);
            return;
        }
        const char *prefix = "";
        if (type == 'b') {
            char tmp[70];
            int k = 0;
            do tmp[k++] = (char)('0' + (u & 1));
            while ((u >>= 1));
            for (int z = 0; z < k; z++) body[z] = tmp[k - 1 - z];
            body[k] = 0;
            prefix = "0b";
        } else if (type == 'o') {
            snprintf(body, sizeof body, "%" PRIo64, u);
            prefix = "0o";
        } else if (type == 'x' || type == 'X') {
            snprintf(body, sizeof body, type == 'x' ? "%" PRIx64 : "%" PRIX64, u);
            prefix = type == 'x' ? "0x" : "0X";
        } else
            snprintf(body, sizeof body, "%" PRIu64, u);
        if (f->alt && *prefix) {
            memmove(body + 2, body, strlen(body) + 1);
            memcpy(body, prefix, 2);
        }
    }
    /* the sign and any 0x-style prefix come before '=' padding: {:#010x} is 0x0012d687 */
    bool radix = f->alt && type && strchr("boxX", type);
    char sign[4] = {0};
    size_t ns = 0;
    if (neg || f->sign == '+' || f->sign == ' ') sign[ns++] = neg ? '-' : f->sign;
    if (radix) memcpy(sign + ns, body, 2);
    cbuf *t = cb_new(c);
    put_grouped(c, t, body + (radix ? 2 : 0), f->group, type && strchr("boxX", type) ? 4 : 3);
    put_aligned(c, b, sign, t->p, t->n, f->width, f->align ? f->align : f->zero ? '=' : '>', f->fill, f->fill_len);
    chat_obj_unref(c, &t->h);
}

static void format_value(chat_ctx *c, cbuf *b, cv v, const char *spec, size_t n) {
    if (!n) {
        cv_write_str(c, b, v);
        return;
    }
    fspec f;
    parse_spec(c, spec, n, &f);
    if (v.t == CV_STR) {
        if (f.type && f.type != 's')
            chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "Unknown format code '%c' for object of type 'str'", f.type);
        if (f.sign) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "Sign not allowed in string format specifier");
        if (f.align == '=') chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "'=' alignment not allowed in string format specifier");
        size_t len = v.u.s->len;
        if (f.prec >= 0 && (size_t)f.prec < cs_cplen(v.u.s)) len = cs_cp_offset(v.u.s, (size_t)f.prec);
        put_aligned(c, b, "", v.u.s->s, len, f.width, f.align ? f.align : '<', f.fill, f.fill_len);
        return;
    }
    if (is_num(v)) {
        format_number(c, b, v, &f);
        return;
    }
    chat_fail(c, HEARTH_ERR_FORMAT, "TypeError", "unsupported format string passed to %s.__format__", cv_pytype(v));
}

/* The value of a field name: an argument, then .attr and [key] accessors. */
static cv field_value(chat_ctx *c, const char *s, size_t n, cargs *a, int *auto_idx) {
    size_t k = 0;
    while (k < n && s[k] != '.' && s[k] != '[') k++;
    cv v;
    if (k == 0) {
        if (*auto_idx < 0)
            chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "cannot switch from manual field specification to automatic field numbering");
        v = arg_get(a, (*auto_idx)++, NULL);
    } else if (s[0] >= '0' && s[0] <= '9') {
        if (*auto_idx > 0)
            chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "cannot switch from automatic field numbering to manual field specification");
        *auto_idx = -1;
        long idx = strtol(s, NULL, 10); /* an index past INT_MAX is past every argument */
        v = idx <= INT_MAX ? arg_get(a, (int)idx, NULL) : cv_undef();
    } else {
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(k < 127 ? k : 127), s);
        v = arg_get(a, -1, name);
        if (v.t == CV_UNDEF) chat_fail(c, HEARTH_ERR_FORMAT, "KeyError", "'%s'", name);
    }
    if (v.t == CV_UNDEF) chat_fail(c, HEARTH_ERR_FORMAT, "IndexError", "tuple index out of range");
    v = cv_ref(v);
    while (k < n) {
        size_t z = k + 1;
        cv key;
        if (s[k] == '.') {
            while (z < n && s[z] != '.' && s[z] != '[') z++;
            key = cv_str(c, s + k + 1, z - k - 1);
            cv next = env_getattr(c, v, key.u.s);
            cv_unref(c, key);
            cv_unref(c, v);
            v = next;
            k = z;
            continue;
        }
        while (z < n && s[z] != ']') z++;
        if (z >= n) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "Missing ']' in format string");
        int64_t idx;
        key = py_parse_int(s + k + 1, z - k - 1, 10, &idx) && s[k + 1] >= '0' && s[k + 1] <= '9' ? cv_int(idx)
                                                                                              : cv_str(c, s + k + 1, z - k - 1);
        cv next = env_getitem(c, v, key);
        cv_unref(c, key);
        cv_unref(c, v);
        v = next;
        k = z + 1;
    }
    return v;
}

cv str_format(chat_ctx *c, cstr *fmt, cargs *a) {
    cbuf *b = cb_new(c);
    int auto_idx = 0;
    for (size_t i = 0; i < fmt->len; i++) {
        char ch = fmt->s[i];
        if ((ch == '{' || ch == '}') && i + 1 < fmt->len && fmt->s[i + 1] == ch) {
            cb_putc(c, b, ch);
            i++;
            continue;
        }
        if (ch == '}') chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "Single '}' encountered in format string");
        if (ch != '{') {
            cb_putc(c, b, ch);
            continue;
        }
        const char *close = memchr(fmt->s + i, '}', fmt->len - i);
        if (!close) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "Single '{' encountered in format string");
        const char *field = fmt->s + i + 1;
        size_t fl = (size_t)(close - field);
        if (memchr(field, '{', fl))
            chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "nested replacement fields in str.format are not supported");
        size_t name_len = 0;
        while (name_len < fl && field[name_len] != '!' && field[name_len] != ':') name_len++;
        char conv = 0;
        size_t spec_at = name_len;
        if (name_len < fl && field[name_len] == '!') {
            if (name_len + 1 >= fl) chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "end of string while looking for conversion specifier");
            conv = field[name_len + 1];
            if (conv != 'r' && conv != 's' && conv != 'a')
                chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "Unknown conversion specifier %c", conv);
            spec_at = name_len + 2;
            if (spec_at < fl && field[spec_at] != ':')
                chat_fail(c, HEARTH_ERR_FORMAT, "ValueError", "expected ':' after conversion specifier");
        }
        const char *spec = spec_at < fl ? field + spec_at + 1 : field + fl;
        size_t spec_len = spec_at < fl ? fl - spec_at - 1 : 0;
        cv v = field_value(c, field, name_len, a, &auto_idx);
        if (conv) {
            cbuf *t = cb_new(c);
            if (conv == 's') cv_write_str(c, t, v);
            else cv_write_repr(c, t, v, 0);
            cv s = cb_take(c, t);
            cv_unref(c, v);
            v = s;
        }
        format_value(c, b, v, spec, spec_len);
        cv_unref(c, v);
        i += fl + 1;
    }
    return cb_take(c, b);
}
