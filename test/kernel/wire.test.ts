/**
 * The frame parser as a pure state machine (no server): frames split and joined at every byte,
 * the size bound enforced from the header, and request validation naming the bad field.
 */
import t from 'tap';
import { CustodyError } from '../../proto/errors.js';
import { kernel as limits } from '../../proto/limits.js';
import { FrameDecoder, decodeRequest, decodeResponse, encodeRequest, encodeResponse, frame, type RequestBody } from '../../kernel/wire.js';

const reqs: RequestBody[] = [
  { kind: 'status' },
  { kind: 'nonces', keyId: 'k1', keyEpoch: 3, count: 16 },
  { kind: 'fence', passport: 'p-9', reason: 'two leaders in term 4' },
];

t.test('frames survive any chunking', async (t) => {
  const stream = Buffer.concat(reqs.map((body, i) => frame(encodeRequest({ callId: i + 1, body }))));
  for (let chunk = 1; chunk <= stream.length; chunk += 3) {
    const d = new FrameDecoder(limits.frameBytesMax);
    const got: RequestBody[] = [];
    for (let i = 0; i < stream.length; i += chunk) {
      for (const ev of d.push(stream.subarray(i, i + chunk))) {
        if (ev.kind !== 'frame') throw new Error('unexpected event');
        got.push(decodeRequest(ev.payload).body);
      }
    }
    if (got.length !== reqs.length) t.fail(`chunk ${chunk}: ${got.length} frames`);
    t.same(got, reqs, `chunk size ${chunk}`);
    t.equal(d.pending, 0);
  }
});

t.test('an oversized header is reported before any body arrives', async (t) => {
  const d = new FrameDecoder(16);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(17);
  t.same(d.push(head), [{ kind: 'tooLarge', announced: 17 }]);
  t.same(d.push(Buffer.alloc(100)), [], 'and nothing after it is parsed');
});

t.test('validation names the field and gives the reason code', async (t) => {
  const bad = (body: unknown): string => {
    try {
      decodeRequest(encodeRequest({ callId: 9, body: body as RequestBody }));
      return 'OK';
    } catch (e) {
      return e instanceof CustodyError ? `${e.reason} ${e.detail}` : String(e);
    }
  };
  t.match(bad({ kind: 'nonces', keyId: 'k', keyEpoch: 1, count: limits.nonceBatchMax + 1 }), /^PAYLOAD_REJECTED nonces.count/);
  t.match(bad({ kind: 'nonces', keyId: '', keyEpoch: 1, count: 1 }), /^PAYLOAD_REJECTED nonces.keyId is empty/);
  t.match(bad({ kind: 'nonces', keyId: 'x'.repeat(limits.idBytesMax + 1), keyEpoch: 1, count: 1 }), /longer than/);
  t.match(bad({ kind: 'sign', messages: [new Uint8Array(1)], lists: [[]], counters: [1], ledgerConsumedCounter: 0 }), /^PERMIT_MISSING/);
  t.match(bad({ kind: 'fence', passport: 'p', reason: 'tab\there' }), /printable/);
  t.equal(bad({ kind: 'status' }), 'OK');
  const e = (() => { try { decodeRequest(Uint8Array.from([0xff, 0xff, 0xff])); return 'OK'; } catch (x) { return (x as CustodyError).reason; } })();
  t.equal(e, 'FRAME_MALFORMED');
});

t.test('responses round-trip and error frames carry a table reason', async (t) => {
  const r = decodeResponse(encodeResponse({ callId: 4, body: { kind: 'error', reason: 'NONCE_REUSED', detail: 'nonce 7 burned' } }));
  t.same(r, { callId: 4, body: { kind: 'error', reason: 'NONCE_REUSED', detail: 'nonce 7 burned' } });
});
