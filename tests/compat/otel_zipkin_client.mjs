// @opentelemetry/exporter-zipkin client for test_otel_zipkin_exporter.sh.
//
// Usage: node otel_zipkin_client.mjs ZIPKIN_URL OUT_JSON
// A BasicTracerProvider (resource service.name) exports the scenario of
// otel_scenario.mjs through the Zipkin exporter to ZIPKIN_URL/api/v2/spans,
// via a recording proxy; OUT_JSON gets
//   {"traceId": "...", "posts": [{"path", "status", "contentType", "body": [span, ...]}]}
import { writeFileSync } from 'node:fs';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { ZipkinExporter } from '@opentelemetry/exporter-zipkin';
import { recordScenario, startRecordingProxy, SERVICE_NAME, SCOPE_NAME, SCOPE_VERSION } from './otel_scenario.mjs';

const [zipkinUrl, outPath] = process.argv.slice(2);
if (!zipkinUrl || !outPath) {
    console.error('usage: node otel_zipkin_client.mjs ZIPKIN_URL OUT_JSON');
    process.exit(2);
}

const proxy = await startRecordingProxy(zipkinUrl);
const exporter = new ZipkinExporter({ url: `${proxy.url}/api/v2/spans` });
const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: SERVICE_NAME, 'deployment.environment': 'compat' }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
});
const traceId = recordScenario(provider.getTracer(SCOPE_NAME, SCOPE_VERSION));
await provider.forceFlush();
await provider.shutdown();
await proxy.close();

const posts = proxy.exchanges.map((e) => ({
    path: e.path,
    status: e.status,
    contentType: e.headers['content-type'] || null,
    body: JSON.parse(e.body.toString('utf8')),
    response: e.response ? e.response.toString('utf8') : e.error,
}));
writeFileSync(outPath, JSON.stringify({ traceId, posts }, null, 1));
console.error(`exporter-zipkin: trace ${traceId}, ${posts.flatMap((p) => p.body).length} spans in ${posts.length} POSTs, statuses ${posts.map((p) => p.status).join(',')}`);
if (posts.length === 0) process.exit(1);
