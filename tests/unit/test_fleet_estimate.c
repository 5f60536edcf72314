/* The fleet reserves memory for repacked weights before it builds a model: for every
 * fixture model (F16, quants, an encoder, tied outputs) the estimate
 * from the file alone equals what model_new then repacks, at the active CPU level. */
#include <stdio.h>

#include "testutil.h"

#include "fleet/fleet_internal.h"
#include "gguf/gguf.h"
#include "model/model.h"

static void test_estimate_equals_repacked(void **state) {
    (void)state;
    if (!fixtures_available()) {
        printf("fixtures not available: skipped\n");
        return;
    }
    static const char *const files[] = {"models/llama-2-tiny-random.gguf", "models/llama-spm-f16.gguf",
                                        "models/llama-spm-q4_0.gguf",      "models/llama-spm-q4_k_m.gguf",
                                        "models/llama-spm-q8_0.gguf",      "models/qwen2t-bpe-q8_0.gguf",
                                        "models/bert-wpm-f16.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        hearth_err err = {0};
        gguf_file *f = NULL;
        model *m = NULL;
        assert_int_equal(gguf_open(fixture_path(files[i]), &f, &err), HEARTH_OK);
        assert_int_equal(model_new(f, &m, &err), HEARTH_OK);
        int64_t est = fleet_repack_estimate(f), got = (int64_t)model_packed_bytes(m);
        printf("%s: estimate %lld, repacked %lld\n", files[i], (long long)est, (long long)got);
        if (est != got) fail_msg("%s: repack estimate %lld bytes, model_new repacked %lld", files[i], (long long)est, (long long)got);
        model_free(m);
        gguf_close(f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_estimate_equals_repacked)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
