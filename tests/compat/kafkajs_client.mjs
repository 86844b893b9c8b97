// kafkajs (a Kafka client written from the protocol, independent of librdkafka)
// for test_kafkajs.sh.
//
// Usage: node kafkajs_client.mjs consume BROKERS TOPIC COUNT OUT_JSON
//          joins group "kafkajs-check", reads TOPIC from the beginning until COUNT
//          messages have arrived and writes [{partition, offset, key, value}] (value
//          as text) to OUT_JSON; exits 1 if they do not arrive within 60 s.
//        node kafkajs_client.mjs produce BROKERS TOPIC IN_FILE
//          sends every line of IN_FILE as one message keyed by the traceId of its
//          first span (a Zipkin JSON list per line), and waits for the acks.
import { readFileSync, writeFileSync } from 'node:fs';
import kafkajs from 'kafkajs';

const { Kafka, logLevel } = kafkajs;
const [mode, brokers, topic, arg4, arg5] = process.argv.slice(2);
if (!['consume', 'produce'].includes(mode) || !brokers || !topic || !arg4) {
    console.error('usage: node kafkajs_client.mjs consume BROKERS TOPIC COUNT OUT_JSON | produce BROKERS TOPIC IN_FILE');
    process.exit(2);
}
const kafka = new Kafka({ clientId: 'kafkajs-check', brokers: brokers.split(','), logLevel: logLevel.WARN });

if (mode === 'produce') {
    const producer = kafka.producer();
    await producer.connect();
    const lines = readFileSync(arg4, 'utf8').split('\n').filter((l) => l.trim() !== '');
    const messages = lines.map((l) => ({ key: JSON.parse(l)[0].traceId, value: l }));
    await producer.send({ topic, messages, acks: -1 });
    await producer.disconnect();
    console.log(`produced ${messages.length} messages to ${topic}`);
} else {
    const want = Number(arg4);
    const got = [];
    const consumer = kafka.consumer({ groupId: 'kafkajs-check' });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    let done;
    const finished = new Promise((resolve) => { done = resolve; });
    await consumer.run({
        eachMessage: async ({ partition, message }) => {
            got.push({
                partition,
                offset: message.offset,
                key: message.key ? message.key.toString() : null,
                value: message.value.toString('utf8'),
            });
            if (got.length >= want) done();
        },
    });
    const timer = setTimeout(() => done(), 60000);
    await finished;
    clearTimeout(timer);
    await consumer.disconnect();
    writeFileSync(arg5, JSON.stringify(got));
    if (got.length < want) {
        console.error(`kafkajs: ${got.length} of ${want} messages arrived`);
        process.exit(1);
    }
}
