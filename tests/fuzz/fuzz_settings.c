/* libFuzzer target: the collector's YAML settings loader (file:line:col errors, never a crash). */
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
    settings_load_yaml_string(collector_settings, collector_settings_count, &cfg, "fuzz.yaml", (const char *)data,
                              size, ignore, NULL);
    collector_config_dispose(&cfg);
    return 0;
}
