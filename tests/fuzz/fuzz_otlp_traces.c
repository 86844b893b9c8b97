/* Fuzz target for the OTLP protobuf decoders (traces, metrics, logs); see fuzz_otlp_common.h. */
#define FUZZ_OTLP_TRACES otlp_traces_decode_proto
#define FUZZ_OTLP_METRICS otlp_metrics_decode_proto
#define FUZZ_OTLP_LOGS otlp_logs_decode_proto
#include "fuzz_otlp_common.h"
