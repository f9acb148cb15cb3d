import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cpuWindow, percentileSorted, procCpuMs, procMemory, summarize } from './stats.ts';
import { smallMultiplesSvg } from './svg.ts';

const test = suite('bench/lib/stats');

test('nearest-rank percentiles', () => {
  const v = Float64Array.from({ length: 100 }, (_, i) => i + 1);
  assert.is(percentileSorted(v, 50), 50);
  assert.is(percentileSorted(v, 99), 99);
  assert.is(percentileSorted(v, 100), 100);
  assert.is(percentileSorted(v, 0), 1);
  assert.is(percentileSorted([7], 99), 7);
  assert.ok(Number.isNaN(percentileSorted([], 50)));
});

test('summarize sorts its input and reports count, extremes and mean', () => {
  const s = summarize([5, 1, 4, 2, 3]);
  assert.equal(s, { count: 5, min: 1, p50: 3, p90: 5, p99: 5, max: 5, mean: 3 });
  assert.is(summarize([]).count, 0);
});

test('CPU and memory of a process from /proc', () => {
  const before = procCpuMs(process.pid);
  const w = cpuWindow(process.pid);
  let x = 0;
  const until = Date.now() + 60;
  while (Date.now() < until) x += Math.sqrt(x + 1);
  const r = w.stop();
  assert.ok(x > 0);
  assert.ok(procCpuMs(process.pid) >= before);
  assert.ok(r.cpuMs >= 0 && r.wallMs >= 0);
  const m = procMemory(process.pid);
  assert.ok(m.rssBytes > 1024 * 1024 && m.peakRssBytes >= m.rssBytes);
});

test('the SVG chart has one panel per metric, a point per measured value, gaps for null', () => {
  const svg = smallMultiplesSvg('t', 's & <sub>', [100, 1000, 10000], [
    { title: 'rate', unit: '/s', values: [3000, 2500, null], target: { value: 2000, label: '≥ 2,000' } },
    { title: 'rss', unit: 'MiB', values: [100, 200, 400] },
  ]);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /s &amp; &lt;sub&gt;/);
  assert.is((svg.match(/<circle /g) ?? []).length, 5);
  assert.is((svg.match(/<polyline /g) ?? []).length, 2);
  assert.is((svg.match(/stroke-dasharray/g) ?? []).length, 1);
  assert.match(svg, />10,000</);
  assert.match(svg, /<\/svg>\n$/);
});

test.run();
