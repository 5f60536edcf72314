/* JSON strings for the obs module from bytes that may not be valid UTF-8 (a model file
 * name, a header): invalid bytes become U+FFFD, so a log line or report is always valid
 * JSON. Values only. */
#ifndef OBS_OBS_JSON_H
#define OBS_OBS_JSON_H

#include <jansson.h>
#include <stddef.h>

/* A new JSON string of s (NULL: ""). NULL on NOMEM. */
json_t *obs_json_str(const char *s);
/* The same of s[0..n). */
json_t *obs_json_strn(const char *s, size_t n);

#endif
