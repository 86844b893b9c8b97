// OpenTelemetry OTLP/HTTP protobuf exporter configured only by the standard
// OTEL_EXPORTER_OTLP_* environment, for test_otel_otlp_auth.sh.
//
// Usage: node otel_otlp_auth_client.mjs OUT_JSON
// Records one span and exports it with @opentelemetry/exporter-trace-otlp-proto
// built without options, so that the endpoint, the headers (a bearer token),
// the CA and the client certificate and key come from the environment, as an
// operator sets them (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS,
// OTEL_EXPORTER_OTLP_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE,
// OTEL_EXPORTER_OTLP_CLIENT_KEY). Writes {"traceId", "result": 0 (success) or
// 1 (failed), "error"} to OUT_JSON; exits 0 either way.
import { writeFileSync } from 'node:fs';
import { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';

const [outPath] = process.argv.slice(2);
if (!outPath) {
    console.error('usage: node otel_otlp_auth_client.mjs OUT_JSON');
    process.exit(2);
}
const memory = new InMemorySpanExporter();
const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'auth-compat' }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
});
provider.getTracer('outrider-compat').startSpan('secured export').end();
const spans = memory.getFinishedSpans();
const exporter = new OTLPTraceExporter();
const result = await new Promise((resolve) => exporter.export(spans, resolve));
await exporter.shutdown();
writeFileSync(outPath, JSON.stringify({
    traceId: spans[0].spanContext().traceId,
    result: result.code,
    error: result.error ? String(result.error.message || result.error) : null,
}));
