// OpenTelemetry OTLP/HTTP protobuf client for test_otel_otlp_proto.sh.
//
// Usage: node otel_otlp_client.mjs traces  OTLP_URL OUT_JSON
//        node otel_otlp_client.mjs metrics OTLP_URL OUT_JSON
// traces: exports the scenario of otel_scenario.mjs with
//   @opentelemetry/exporter-trace-otlp-proto (BatchSpanProcessor) to
//   OTLP_URL/v1/traces through a recording proxy, and writes OUT_JSON:
//   {"traceId", "posts": [{path, status, contentType}], "expected": [...]}
//   where expected holds, per span, the Zipkin v2 span the OpenTelemetry ->
//   Zipkin mapping gives (checked by otel_otlp_check.mjs).
// metrics: exports a DELTA counter and histogram with
//   @opentelemetry/exporter-metrics-otlp-proto (gzip) twice, with new
//   measurements in between, and writes {"posts": [...], "expected": {...}}
//   with the cumulative values /metrics must then show.
import { writeFileSync } from 'node:fs';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import {
    BasicTracerProvider, BatchSpanProcessor, SimpleSpanProcessor, InMemorySpanExporter,
} from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { AggregationTemporalityPreference } from '@opentelemetry/exporter-metrics-otlp-http';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { recordScenario, startRecordingProxy, SERVICE_NAME, SCOPE_NAME, SCOPE_VERSION } from './otel_scenario.mjs';

const [mode, otlpUrl, outPath] = process.argv.slice(2);
if (!['traces', 'metrics'].includes(mode) || !otlpUrl || !outPath) {
    console.error('usage: node otel_otlp_client.mjs traces|metrics OTLP_URL OUT_JSON');
    process.exit(2);
}

const RESOURCE = { [ATTR_SERVICE_NAME]: SERVICE_NAME, 'deployment.environment': 'compat' };
const ZIPKIN_KIND = {
    [SpanKind.CLIENT]: 'CLIENT', [SpanKind.SERVER]: 'SERVER',
    [SpanKind.PRODUCER]: 'PRODUCER', [SpanKind.CONSUMER]: 'CONSUMER', [SpanKind.INTERNAL]: undefined,
};

function micros(hrTime) {
    // the scenario uses whole microseconds, so this is exact
    return hrTime[0] * 1e6 + hrTime[1] / 1e3;
}

// The Zipkin v2 span a Zipkin server returns for an OTLP span (OpenTelemetry
// Zipkin exporter spec), split into the fields that must match exactly and
// the tags that may or may not be there.
function toZipkinExpectation(s) {
    const span = {
        traceId: s.spanContext().traceId,
        id: s.spanContext().spanId,
        name: s.name.toLowerCase(),
        timestamp: micros(s.startTime),
        duration: micros(s.duration),
        localEndpoint: { serviceName: SERVICE_NAME.toLowerCase() },
    };
    if (s.parentSpanContext) span.parentId = s.parentSpanContext.spanId;
    if (ZIPKIN_KIND[s.kind]) span.kind = ZIPKIN_KIND[s.kind];
    const tags = {};
    const optionalTags = {
        'otel.scope.name': SCOPE_NAME, 'otel.scope.version': SCOPE_VERSION,
        'otel.library.name': SCOPE_NAME, 'otel.library.version': SCOPE_VERSION,
    };
    for (const [k, v] of Object.entries(RESOURCE)) {
        optionalTags[k] = String(v);
    }
    for (const [k, v] of Object.entries(s.attributes)) {
        if (k === 'peer.service') {
            // mapped to remoteEndpoint; keeping it as a tag too is allowed
            span.remoteEndpoint = { serviceName: String(v).toLowerCase() };
            optionalTags[k] = String(v);
        } else {
            tags[k] = String(v);
        }
    }
    if (s.status.code === SpanStatusCode.OK) tags['otel.status_code'] = 'OK';
    if (s.status.code === SpanStatusCode.ERROR) {
        tags['otel.status_code'] = 'ERROR';
        tags.error = s.status.message || '';
        // the OpenTelemetry Collector's translator also keeps the description
        if (s.status.message) optionalTags['otel.status_description'] = s.status.message;
    }
    // ... and marks INTERNAL spans, which have no Zipkin kind, with a tag
    if (s.kind === SpanKind.INTERNAL) optionalTags['span.kind'] = 'internal';
    const annotations = s.events.map((e) => ({
        timestamp: micros(e.time),
        name: e.name,
        attributes: e.attributes && Object.keys(e.attributes).length ? e.attributes : null,
    }));
    return { span, tags, optionalTags, annotations };
}

async function traces() {
    const proxy = await startRecordingProxy(otlpUrl);
    const memory = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
        resource: resourceFromAttributes(RESOURCE),
        spanProcessors: [
            new BatchSpanProcessor(new OTLPTraceExporter({ url: `${proxy.url}/v1/traces` })),
            new SimpleSpanProcessor(memory),
        ],
    });
    const traceId = recordScenario(provider.getTracer(SCOPE_NAME, SCOPE_VERSION));
    await provider.forceFlush();
    // read before shutdown: shutting the in-memory exporter down empties it
    const expected = memory.getFinishedSpans().map(toZipkinExpectation);
    await provider.shutdown();
    await proxy.close();
    return { traceId, expected, posts: proxy.exchanges };
}

async function metrics() {
    const proxy = await startRecordingProxy(otlpUrl);
    const reader = new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter({
            url: `${proxy.url}/v1/metrics`,
            temporalityPreference: AggregationTemporalityPreference.DELTA,
            compression: 'gzip',
        }),
        exportIntervalMillis: 60 * 60 * 1000, // flushed by hand
    });
    const provider = new MeterProvider({ resource: resourceFromAttributes(RESOURCE), readers: [reader] });
    const meter = provider.getMeter(SCOPE_NAME, SCOPE_VERSION);
    const counter = meter.createCounter('compat_requests_total', { description: 'Requests seen by the compat client.' });
    const histogram = meter.createHistogram('compat_latency_ms', {
        description: 'Latency seen by the compat client.',
        unit: 'ms',
        advice: { explicitBucketBoundaries: [10, 100, 1000] },
    });
    counter.add(3, { route: '/a', code: '200' });
    counter.add(1, { route: '/b', code: '500' });
    histogram.record(5, { route: '/a' });
    histogram.record(50, { route: '/a' });
    await reader.forceFlush();
    counter.add(4, { route: '/a', code: '200' });
    histogram.record(700, { route: '/a' });
    await reader.forceFlush();
    await provider.shutdown();
    await proxy.close();
    const expected = {
        counter: { name: 'compat_requests_total', series: [
            { labels: { route: '/a', code: '200' }, value: 7 },
            { labels: { route: '/b', code: '500' }, value: 1 },
        ] },
        histogram: {
            name: 'compat_latency_ms', labels: { route: '/a' }, count: 3, sum: 755,
            buckets: { 10: 1, 100: 2, 1000: 3, '+Inf': 3 },
        },
    };
    return { expected, posts: proxy.exchanges };
}

const result = mode === 'traces' ? await traces() : await metrics();
result.posts = result.posts.map((e) => ({
    path: e.path,
    status: e.status,
    contentType: e.headers['content-type'] || null,
    contentEncoding: e.headers['content-encoding'] || null,
    bytes: e.body.length,
    response: e.response ? e.response.toString('utf8') : e.error,
}));
writeFileSync(outPath, JSON.stringify(result, null, 1));
console.error(`otlp ${mode}: ${result.posts.length} POSTs, statuses ${result.posts.map((p) => p.status).join(',')}`);
if (result.posts.length === 0) process.exit(1);
