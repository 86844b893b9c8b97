/*
 * config_json: the effective configuration as JSON (what the admin
 * listener will serve as /config_dump and `--print-config` prints).
 *
 * Field names follow the YAML input (Istio's names for the Istio kinds);
 * defaults are filled in, durations are written as strings ("1500ms",
 * "2s"), unset optional fields are left out.
 */
#ifndef OUTRIDER_PROXY_CONFIG_JSON_H
#define OUTRIDER_PROXY_CONFIG_JSON_H

#include "buf.h"
#include "config.h"

/* Append cfg as one JSON object (no trailing newline) to out. */
void proxy_config_to_json(const proxy_config_t *cfg, buf_t *out);

#endif
