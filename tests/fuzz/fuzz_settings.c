/*
 * libFuzzer target: the collector's YAML settings loader. The YAML parse
 * runs in a child process (common/yaml.c), so libFuzzer sees coverage of
 * our side only, and each input costs a fork: tests/fuzz/fuzz_settings.runs
 * keeps the CTest run short. What it checks: no input crashes or hangs the
 * loader, whatever libfyaml does with it.
 */
#include <stddef.h>
#include <stdint.h>

#include "config.h"

static void ignore(void *ctx, const char *message)
{
    (void)ctx;
    (void)message;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    collector_config_t cfg;
    collector_config_init(&cfg);
    settings_load_yaml_string(collector_settings, collector_settings_count, &cfg, "fuzz.yaml", (const char *)data, size,
                              ignore, NULL);
    collector_config_dispose(&cfg);
    return 0;
}
