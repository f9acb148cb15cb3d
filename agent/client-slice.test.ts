/**
 * The agent's slice fetch is conditional (issue 19): after a 200 with an ETag, the next fetch
 * sends If-None-Match and a 304 yields the slice already held; a new ETag replaces it; an error
 * answer forgets it (the next fetch is unconditional). Against a local HTTP server that records
 * what the agent asked, so the test sees the header itself.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sampleFleet, signIndex, signFleet } from '../fixtures/artifacts.ts';
import { mintReleaseKey } from '../fixtures/keys.ts';
import { toBase64 } from '../protocol/crypto.ts';
import { sliceFor } from '../protocol/slice.ts';
import type { SliceResponse } from '../protocol/api.ts';
import { CpClient } from './client.ts';

function sliceBody(hosts: number): SliceResponse {
  const signed = signFleet(sampleFleet({ hosts, waves: 1, closures: true }), mintReleaseKey());
  const idx = signIndex(signed, mintReleaseKey());
  const s = sliceFor(idx.tree, 'host-0000')!;
  return { ...s, index: new TextDecoder().decode(idx.bytes), indexSignature: toBase64(idx.signature) };
}

test('a repeat slice fetch asks If-None-Match and reuses the held slice on 304', async () => {
  const first = sliceBody(3);
  const second = sliceBody(4);
  const answers: Array<{ status: number; etag?: string; body?: unknown }> = [
    { status: 200, etag: '"slice-a"', body: first },
    { status: 304, etag: '"slice-a"' },
    { status: 200, etag: '"slice-b"', body: second },
    { status: 404, body: { error: { code: 'NO_SLICE', message: 'none' } } },
    { status: 200, etag: '"slice-b"', body: second },
  ];
  const asked: Array<string | undefined> = [];
  const server = createServer((req: IncomingMessage, res) => {
    asked.push(req.headers['if-none-match'] as string | undefined);
    const a = answers.shift()!;
    const headers: Record<string, string> = a.etag === undefined ? {} : { etag: a.etag };
    if (a.body === undefined) res.writeHead(a.status, headers).end();
    else res.writeHead(a.status, { ...headers, 'content-type': 'application/json' }).end(JSON.stringify(a.body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = new CpClient({ cpUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, tls: null, requestTimeoutSecs: 5, maxArtifactBytes: 1 << 20 });
  try {
    const r1 = await client.fetchSlice();
    assert.ok(r1.ok && r1.value.leaf === first.leaf);
    const r2 = await client.fetchSlice();
    assert.ok(r2.ok, '304 yields the held slice');
    assert.equal(r2.ok && r2.value, first);
    const r3 = await client.fetchSlice();
    assert.ok(r3.ok && r3.value.index === second.index, 'a new ETag brings the new slice');
    const r4 = await client.fetchSlice();
    assert.ok(!r4.ok && r4.error.errorCode === 'NO_SLICE');
    const r5 = await client.fetchSlice();
    assert.ok(r5.ok && r5.value.index === second.index);
    assert.equal(asked, [undefined, '"slice-a"', '"slice-a"', '"slice-b"', undefined], 'If-None-Match carries the last ETag; forgotten after an error');
  } finally {
    await client.close();
    server.close();
  }
});

test.run();
