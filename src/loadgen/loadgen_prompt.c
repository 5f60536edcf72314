/* Seeded prompts for the load generator: W words drawn from a fixed list of common
 * English words by a splitmix64 stream per request, so a run is reproducible and no two
 * requests share more than a word or two of prefix (prefix caching cannot flatter the
 * figures). Never reads anything but its arguments. */
#include "loadgen/loadgen.h"

#include <string.h>

#include "base/mem.h"

static const char *const words[] = {
    "river",   "stone",   "light",   "garden",  "window",  "market",  "winter",  "summer",  "letter",  "yellow",
    "bridge",  "forest",  "silver",  "candle",  "harbor",  "engine",  "orange",  "pocket",  "island",  "ladder",
    "morning", "evening", "quiet",   "little",  "ancient", "simple",  "careful", "gentle",  "honest",  "narrow",
    "walk",    "write",   "carry",   "follow",  "answer",  "listen",  "gather",  "wander",  "build",   "open",
    "house",   "road",    "table",   "paper",   "music",   "number",  "water",   "mountain","village", "city",
    "teacher", "farmer",  "doctor",  "sailor",  "painter", "child",   "friend",  "stranger","neighbor","king",
    "under",   "over",    "between", "behind",  "across",  "through", "toward",  "beyond",  "inside",  "around",
    "and",     "but",     "because", "while",   "after",   "before",  "since",   "until",   "although","so",
    "the",     "a",       "this",    "that",    "every",   "some",    "many",    "few",     "each",    "another",
    "red",     "green",   "blue",    "black",   "white",   "brown",   "golden",  "gray",    "purple",  "pale",
    "cloud",   "rain",    "snow",    "wind",    "storm",   "sun",     "moon",    "star",    "sky",     "sea",
    "bread",   "apple",   "cheese",  "honey",   "salt",    "tea",     "soup",    "rice",    "plum",    "pepper",
    "quickly", "slowly",  "often",   "rarely",  "always",  "never",   "softly",  "loudly",  "almost",  "together",
    "think",   "remember","forget",  "believe", "wonder",  "explain", "promise", "decide",  "imagine", "notice",
    "door",    "wall",    "roof",    "floor",   "chair",   "lamp",    "clock",   "mirror",  "basket",  "blanket",
    "horse",   "bird",    "fish",    "dog",     "cat",     "wolf",    "fox",     "bear",    "owl",     "rabbit",
    "old",     "new",     "young",   "bright",  "dark",    "warm",    "cold",    "heavy",   "empty",   "full",
    "journey", "story",   "song",    "dream",   "question","reason",  "secret",  "plan",    "chance",  "moment",
    "run",     "sing",    "read",    "cook",    "paint",   "climb",   "swim",    "travel",  "learn",   "teach",
    "field",   "valley",  "desert",  "coast",   "meadow",  "lake",    "cave",    "hill",    "path",    "shore",
};

#define N_WORDS (sizeof words / sizeof words[0])

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

char *loadgen_prompt(uint64_t seed, uint64_t index, int n_words) {
    uint64_t state = seed ^ (index * 0xD1B54A32D192ED03ull);
    splitmix64(&state);
    size_t longest = 0;
    for (size_t i = 0; i < N_WORDS; i++)
        if (strlen(words[i]) > longest) longest = strlen(words[i]);
    size_t cap = (size_t)(n_words > 0 ? n_words : 0) * (longest + 1) + 1;
    char *out = mem_alloc(cap);
    if (!out) return NULL;
    size_t len = 0;
    for (int w = 0; w < n_words; w++) {
        const char *word = words[splitmix64(&state) % N_WORDS];
        size_t n = strlen(word);
        if (w > 0) out[len++] = ' ';
        memcpy(out + len, word, n);
        len += n;
    }
    out[len] = '\0';
    return out;
}
