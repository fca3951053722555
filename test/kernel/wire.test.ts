/**
 * The frame parser as a pure state machine (no server): frames split and joined at every byte,
 * the size bound enforced from the header, and request validation naming the bad field.
 */
import t from 'tap';
import { CustodyError } from '../../proto/errors.js';
import { kernel as limits, tlog as tlogLimits, tx as txLimits } from '../../proto/limits.js';
import type { EntryCertificate } from '../../ledger/tlog/ledger-log.js';
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

// ---------------------------------------------------------------------------------------------
// The sign request: every message of one act, a commitment list and a counter per message
// ---------------------------------------------------------------------------------------------

const point = (seed: number): Uint8Array => Uint8Array.from({ length: 33 }, (_, i) => (seed * 31 + i) & 0xff);
const ident = (n: number): string => n.toString(16).padStart(64, '0');
/** A certificate of the given sizes (the decoder checks bounds only; kernel/certificate.ts checks meaning). */
function certificateOf(noteBytes: number, eventBytes: number, proofHashes: number): EntryCertificate {
  return {
    note: 'n'.repeat(noteBytes),
    inclusions: [0, 1].map((i) => ({
      leafIndex: 2 ** 40 + i, entry: { index: 2 ** 40 + i, stampMs: 1_700_000_000_000, event: new Uint8Array(eventBytes).fill(i + 1) },
      proof: Array.from({ length: proofHashes }, (_, j) => new Uint8Array(32).fill(j)),
    })),
  };
}

function signBody(messages: Uint8Array[], signers: number, certificate: EntryCertificate | null = certificateOf(600, 300, 12)): Extract<RequestBody, { kind: 'sign' }> {
  return {
    kind: 'sign',
    permit: { keyId: 'k'.repeat(limits.idBytesMax), keyEpoch: 7, requestId: 'r'.repeat(limits.idBytesMax), messageDigest: new Uint8Array(32).fill(9), ledgerIndex: 2 ** 40 },
    messages,
    lists: messages.map((_, i) => Array.from({ length: signers }, (_, s) => ({ identifier: ident(s + 1), hiding: point(i * 64 + s), binding: point(i * 64 + s + 32) }))),
    counters: messages.map((_, i) => 2 ** 40 + i),
    ledgerConsumedCounter: 2 ** 40 - 1,
    certificate,
  };
}

t.test('a sign request round-trips, lists of lists included', async (t) => {
  const body = signBody([Uint8Array.from([1]), new Uint8Array(txLimits.solanaMessageBytesMax).fill(2), new Uint8Array(32).fill(3)], 3);
  const back = decodeRequest(encodeRequest({ callId: 11, body }));
  t.same(back, { callId: 11, body }, 'messages, lists and counters come back in order');
  const res = decodeResponse(encodeResponse({ callId: 11, body: { kind: 'signatureShares', identifier: ident(1), sigShares: [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)], counters: [5, 9] } }));
  t.same(res.body, { kind: 'signatureShares', identifier: ident(1), sigShares: [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)], counters: [5, 9] }, 'one share per message comes back in order');
});

t.test('the largest act fits one frame: every message with a full commitment list, and the largest certificate', async (t) => {
  const largest = certificateOf(tlogLimits.noteBytesMax, tlogLimits.certificateEntryBytesMax, tlogLimits.proofHashesMax);
  const body = signBody(Array.from({ length: txLimits.messagesPerActMax }, (_, i) => new Uint8Array(32).fill(i)), limits.participantsMax, largest);
  const bytes = encodeRequest({ callId: 2 ** 40, body });
  t.ok(bytes.length <= limits.frameBytesMax, `${txLimits.messagesPerActMax} messages x ${limits.participantsMax} signers with a certificate of two ${tlogLimits.certificateEntryBytesMax}-byte entries: ${bytes.length} bytes <= ${limits.frameBytesMax}`);
  t.same(decodeRequest(bytes).body, body, 'and decodes to itself');
});

t.test('the sign request\'s bounds name the field', async (t) => {
  const bad = (body: unknown): string => {
    try {
      decodeRequest(encodeRequest({ callId: 9, body: body as RequestBody }));
      return 'OK';
    } catch (e) {
      return e instanceof CustodyError ? `${e.reason} ${e.detail}` : String(e);
    }
  };
  const one = signBody([Uint8Array.from([1])], 2);
  t.equal(bad(one), 'OK', 'a one-message act');
  t.equal(bad(signBody([Uint8Array.from([1])], 2, null)), 'OK', 'no certificate decodes (the kernel refuses it CHECKPOINT_NOT_CERTIFIED)');
  t.match(bad(signBody([Uint8Array.from([1])], 2, certificateOf(tlogLimits.noteBytesMax + 1, 10, 1))), /^PAYLOAD_REJECTED sign\.certificate\.note is longer than/, 'a note past its bound');
  t.match(bad(signBody([Uint8Array.from([1])], 2, certificateOf(10, tlogLimits.certificateEntryBytesMax + 1, 1))), /^PAYLOAD_REJECTED sign\.certificate\.inclusions\[0\]\.event has/, 'an entry past its bound');
  t.match(bad(signBody([Uint8Array.from([1])], 2, certificateOf(10, 10, tlogLimits.proofHashesMax + 1))), /^PAYLOAD_REJECTED sign\.certificate\.inclusions\[0\]\.proof has/, 'a proof past its bound');
  const three = certificateOf(10, 10, 1);
  t.match(bad(signBody([Uint8Array.from([1])], 2, { ...three, inclusions: [...three.inclusions, three.inclusions[0]!] })), /^PAYLOAD_REJECTED sign\.certificate\.inclusions has 3 entries/, 'more inclusions than a certificate carries');
  const short = certificateOf(10, 10, 1);
  t.match(bad(signBody([Uint8Array.from([1])], 2, { ...short, inclusions: [{ ...short.inclusions[0]!, proof: [new Uint8Array(31)] }] })), /^PAYLOAD_REJECTED sign\.certificate\.inclusions\[0\]\.proof\[0\]/, 'a proof hash of 31 bytes');
  const n = txLimits.messagesPerActMax + 1;
  const over = signBody(Array.from({ length: n }, () => Uint8Array.from([1])), 2);
  t.match(bad(over), /^PAYLOAD_REJECTED sign\.messages has 65 entries/, 'more messages than an act carries');
  t.match(bad({ ...one, messages: [] }), /^PAYLOAD_REJECTED sign\.messages has 0 entries/, 'no message');
  t.match(bad({ ...one, messages: [new Uint8Array(0)] }), /^PAYLOAD_REJECTED sign\.messages\[0\]/, 'an empty message');
  t.match(bad({ ...one, messages: [new Uint8Array(limits.messageBytesMax + 1)] }), /^PAYLOAD_REJECTED sign\.messages\[0\]/, 'a message over the kernel bound');
  t.match(bad({ ...one, lists: [] }), /^PAYLOAD_REJECTED sign\.lists has 0 entries/, 'no commitment list');
  t.match(bad({ ...one, lists: [one.lists[0]!.slice(0, 1)] }), /^PAYLOAD_REJECTED sign\.lists\[0\]\.commitments has 1 entries/, 'a list of one signer');
  t.match(bad({ ...one, lists: [[{ ...one.lists[0]![0]!, hiding: new Uint8Array(31) }, one.lists[0]![1]!]] }), /^PAYLOAD_REJECTED sign\.lists\[0\]\.commitments\[0\]\.hiding/, 'a short commitment point');
  t.match(bad({ ...one, counters: [] }), /^PAYLOAD_REJECTED sign\.counters has 0 entries/, 'no counter');
  t.match(bad({ ...one, counters: [0] }), /^PAYLOAD_REJECTED sign\.counters\[0\]/, 'counter 0 (counters start at 1)');
});
