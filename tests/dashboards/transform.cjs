// Runs the transformations of Grafana table panels, with Grafana's own code
// (@grafana/data), on the answers Prometheus gave to their queries.
//
//   node transform.cjs FRAMES.json OUT.json
//
// FRAMES.json is what `dashq.py run --frames` writes: for each panel with
// transformations, its targets and Prometheus's /api/v1/query answers.
// The answers become data frames the way Grafana's Prometheus data source
// shapes an instant query with format "table": one frame per query, named by
// its refId, with a Time field, a field per label (sorted by name, __name__
// left out), and the value field "Value", or "Value #<refId>" when the panel
// has more than one query. OUT.json gets, per panel, the frames that come out:
// [{uid, panel, title, frames: [{name, fields: [{name, values}]}]}].
// Exit 1 when a transformation throws or a panel ends with no rows.
'use strict';
const fs = require('node:fs');
const { standardTransformers, standardTransformersRegistry, transformDataFrame, FieldType } = require('@grafana/data');
globalThis.window = globalThis.window || {}; // transformDataFrame looks for a scenes context on window (after the
                                            // require: a library in it takes a window for a browser)
const { firstValueFrom } = require('rxjs');

// as Grafana registers them (some appear twice in the list, under two names)
standardTransformersRegistry.setInit(() => [...new Map(Object.values(standardTransformers).map((t) =>
  [t.id, { id: t.id, name: t.name, transformation: () => t }])).values()]);

function tableFrames(targets) {
  const many = targets.length > 1;
  return targets.map((t) => {
    const series = (t.result && t.result.result) || [];
    const labels = [...new Set(series.flatMap((s) => Object.keys(s.metric)))].filter((l) => l !== '__name__').sort();
    const fields = [{ name: 'Time', type: FieldType.time, config: {}, values: series.map((s) => s.value[0] * 1000) }];
    for (const l of labels) {
      fields.push({ name: l, type: FieldType.string, config: {}, values: series.map((s) => s.metric[l] ?? '') });
    }
    fields.push({ name: many ? `Value #${t.refId}` : 'Value', type: FieldType.number, config: {},
      values: series.map((s) => Number(s.value[1])) });
    return { refId: t.refId, name: t.refId, fields, length: series.length };
  });
}

async function main() {
  const [inPath, outPath] = process.argv.slice(2);
  const panels = JSON.parse(fs.readFileSync(inPath, 'utf8'));
  const out = [];
  let bad = 0;
  for (const p of panels) {
    const what = `${p.dashboard} | ${p.title}`;
    let frames;
    try {
      frames = await firstValueFrom(transformDataFrame(p.transformations, tableFrames(p.targets),
        { interpolate: (v) => v }));
    } catch (e) {
      console.log(`FAIL: ${what}: a transformation throws: ${e.stack || e}`);
      bad++;
      continue;
    }
    const shown = frames.map((f) => ({
      name: f.name ?? f.refId ?? '',
      fields: f.fields.map((x) => ({ name: x.config?.displayName ?? x.name, values: Array.from(x.values) })),
    }));
    const rows = shown.length ? Math.max(0, ...shown[0].fields.map((x) => x.values.length)) : 0;
    if (rows === 0) {
      console.log(`FAIL: ${what}: no rows after its transformations`);
      bad++;
    } else {
      console.log(`ok    ${what}: ${shown.length} frame(s), the first ${rows} rows x [${shown[0].fields.map((x) => x.name).join(', ')}]`);
    }
    out.push({ uid: p.uid, panel: p.panel, title: p.title, frames: shown });
  }
  fs.writeFileSync(outPath, JSON.stringify(out, null, 1));
  process.exit(bad ? 1 : 0);
}

main();
