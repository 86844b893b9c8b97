/*
 * libFuzzer target: the proxy's configuration loader (proxy/config*.c) and
 * its JSON dump. The YAML parse runs in a child process (common/yaml.c), so
 * each input costs a fork: tests/fuzz/fuzz_proxy_config.runs keeps the
 * CTest run short. What it checks: no input crashes, hangs or leaks in our
 * code, whether it loads or not; a loaded model can be dumped and looked up.
 */
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "proxy/config.h"
#include "proxy/config_json.h"
#include "proxy/telemetry_policy.h"

static void ignore(void *ctx, const char *message)
{
    (void)ctx;
    (void)message;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    proxy_config_t *cfg = proxy_config_load_string("fuzz.yaml", (const char *)data, size, ignore, ignore, NULL);
    if (cfg == NULL)
        return 0;
    buf_t b = BUF_INIT;
    proxy_config_to_json(cfg, &b);
    buf_dispose(&b);
    tele_policy_t *policy = NULL;
    char err[256];
    if (tele_policy_create(&cfg->telemetry, &policy, err, sizeof(err)) != 0)
        __builtin_trap(); /* the loader checked every expression: a policy must build */
    tele_policy_unref(policy);
    for (size_t i = 0; i < cfg->n_virtual_services; i++)
        for (size_t h = 0; h < cfg->virtual_services[i].n_hosts; h++)
            (void)proxy_config_find_service(cfg, cfg->virtual_services[i].hosts[h].host, "default");
    proxy_config_destroy(cfg);
    return 0;
}
