/* UTF-8-safe JSON strings (see obs_json.h). */
#include "obs/obs_json.h"

#include <string.h>

#include "base/mem.h"
#include "base/utf8.h"

json_t *obs_json_strn(const char *s, size_t n) {
    if (!s) return json_string("");
    if (utf8_valid(s, n)) return json_stringn(s, n);
    char *out = mem_alloc_array(n + 1, 3); /* each bad byte becomes 3 bytes of U+FFFD */
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_decode(s + i, n - i, &cp);
        if (len == 0) {
            memcpy(out + k, "\xEF\xBF\xBD", 3);
            k += 3;
            i++;
        } else {
            memcpy(out + k, s + i, len);
            k += len;
            i += len;
        }
    }
    json_t *v = json_stringn(out, k);
    mem_free(out);
    return v;
}

json_t *obs_json_str(const char *s) { return obs_json_strn(s, s ? strlen(s) : 0); }
