/**
 * Bad frames get a clear error frame with a reason code, and the kernel keeps serving. Fuzzed
 * with fast-check (bounded runs) against a real kernel process: random payloads in well-formed
 * frames, random raw streams, truncated valid frames, oversized headers, wrong protobuf wire
 * types, and well-typed requests full of garbage. No case may produce INTERNAL or kill the
 * process; a valid request succeeds afterwards.
 */
import t from 'tap';
import fc from 'fast-check';
import { isReasonCode } from '../../proto/reasons.js';
import { kernel as limits } from '../../proto/limits.js';
import { KernelClient } from '../../kernel/client.js';
import { connect } from 'node:net';
import { FrameDecoder, decodeResponse, encodeRequest, frame, type RequestBody, type Response } from '../../kernel/wire.js';
import { Governance, PROFILES, setupKernel, startKernel, tempDir, type KernelProcess } from './harness.js';

const RUNS = { payload: 1000, raw: 500, truncated: 200, oversized: 100, wireTypes: 500, garbage: 500 };

function varint(n: number): number[] {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** One protobuf field with the given wire type and a payload of that type's shape. */
function field(num: number, wireType: number, payload: Uint8Array): number[] {
  const tag = varint((num << 3) | wireType);
  switch (wireType) {
    case 0: return [...tag, ...varint(payload.length ? payload[0]! : 0)];
    case 1: return [...tag, ...Array.from({ length: 8 }, (_, i) => payload[i] ?? 0)];
    case 5: return [...tag, ...Array.from({ length: 4 }, (_, i) => payload[i] ?? 0)];
    case 2: return [...tag, ...varint(payload.length), ...payload];
    default: return [...tag, ...payload]; // groups (3, 4) and invalid wire types (6, 7)
  }
}

for (const profile of PROFILES) {
  t.test(`fuzzed frames never break the kernel (${profile})`, { timeout: 600_000 }, async (t) => {
    const { dir, cleanup } = tempDir(`frames-${profile}`);
    const gov = new Governance();
    const k: KernelProcess = await startKernel(setupKernel(dir, 'n1', profile, gov));
    t.teardown(async () => {
      await k.stop();
      cleanup();
    });
    const seen = new Map<string, number>();
    const note = (r: Response): void => {
      const key = r.body.kind === 'error' ? r.body.reason : `served:${r.body.kind}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    };
    /** The property every bad input must satisfy: a reason code from the table, never INTERNAL. */
    const clear = (r: Response): boolean => {
      note(r);
      if (r.body.kind !== 'error') return true; // the fuzzer happened to write a valid request
      return isReasonCode(r.body.reason) && r.body.reason !== 'INTERNAL' && r.body.detail.length > 0;
    };
    const fresh = async <T>(f: (c: KernelClient) => Promise<T>): Promise<T> => {
      const c = await KernelClient.connect(k.setup.socketPath);
      try {
        return await f(c);
      } finally {
        c.close();
      }
    };

    await t.test('random payloads inside well-formed frames (one connection throughout)', async (t) => {
      await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), async (payload) =>
        clear(await k.client.rawExchange(frame(payload)))), { numRuns: RUNS.payload });
      t.ok(seen.get('FRAME_MALFORMED')! > 0 && seen.get('PAYLOAD_REJECTED')! > 0, 'both FRAME_MALFORMED and PAYLOAD_REJECTED were answered');
    });

    await t.test('random raw streams, each on its own connection', async (t) => {
      let answered = 0;
      await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 96 }), async (bytes) =>
        fresh(async (c) => clear(await c.rawExchange(bytes, true)) && ++answered > 0)), { numRuns: RUNS.raw });
      t.equal(answered, RUNS.raw, `${RUNS.raw} raw streams answered with a clear error`);
    });

    await t.test('truncated valid frames', async (t) => {
      let malformed = 0;
      const valid = frame(encodeRequest({ callId: 7, body: { kind: 'nonces', keyId: 'some-key', keyEpoch: 1, count: 3 } }));
      await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: valid.length - 1 }), async (cut) =>
        fresh(async (c) => {
          const r = await c.rawExchange(valid.subarray(0, cut), true);
          note(r);
          const ok = r.body.kind === 'error' && r.body.reason === 'FRAME_MALFORMED';
          if (ok) malformed++;
          return ok;
        })), { numRuns: RUNS.truncated });
      t.equal(malformed, RUNS.truncated, 'every truncation answered FRAME_MALFORMED');
    });

    await t.test('oversized frames are refused from the header alone', async (t) => {
      let tooLarge = 0;
      await fc.assert(fc.asyncProperty(fc.integer({ min: limits.frameBytesMax + 1, max: 0xffff_ffff }), fc.uint8Array({ maxLength: 64 }), async (n, tail) =>
        fresh(async (c) => {
          const head = Buffer.alloc(4);
          head.writeUInt32BE(n >>> 0);
          const r = await c.rawExchange(Buffer.concat([head, tail]));
          note(r);
          const ok = r.body.kind === 'error' && r.body.reason === 'FRAME_TOO_LARGE';
          if (ok) tooLarge++;
          return ok;
        })), { numRuns: RUNS.oversized });
      t.equal(tooLarge, RUNS.oversized, 'every oversized header answered FRAME_TOO_LARGE');
    });

    await t.test('wrong protobuf wire types for request fields', async (t) => {
      let mistyped = 0;
      await fc.assert(fc.asyncProperty(
        fc.integer({ min: 1, max: 25 }), fc.constantFrom(0, 1, 3, 4, 5, 6, 7), fc.uint8Array({ maxLength: 40 }),
        async (num, wireType, payload) => clear(await k.client.rawExchange(frame(Uint8Array.from(field(num, wireType, payload))))) && ++mistyped > 0),
      { numRuns: RUNS.wireTypes });
      t.equal(mistyped, RUNS.wireTypes, `${RUNS.wireTypes} mistyped frames answered with a clear error`);
    });

    await t.test('well-typed requests full of garbage', async (t) => {
      const str = fc.string({ maxLength: 200 });
      const bytes = fc.uint8Array({ maxLength: 80 });
      const num = fc.integer({ min: 0, max: 0xffff_ffff });
      const part = fc.record({ identifier: str, nodeId: str, transportPublicKey: bytes });
      const body: fc.Arbitrary<RequestBody> = fc.oneof(
        fc.record({ kind: fc.constant('dkgBegin' as const), ceremonyId: str, keyId: str, suite: str, min: num, participants: fc.array(part, { maxLength: 4 }), identifier: str }),
        fc.record({ kind: fc.constant('nonces' as const), keyId: str, keyEpoch: num, count: num }),
        fc.record({
          kind: fc.constant('sign' as const),
          permit: fc.record({ keyId: str, keyEpoch: num, requestId: str, messageDigest: bytes, ledgerIndex: num }),
          messages: fc.array(bytes, { maxLength: 3 }), lists: fc.array(fc.array(fc.record({ identifier: str, hiding: bytes, binding: bytes }), { maxLength: 4 }), { maxLength: 3 }),
          counters: fc.array(num, { maxLength: 3 }), ledgerConsumedCounter: num,
        }),
        fc.record({ kind: fc.constant('governance' as const), decisions: fc.array(fc.record({ decision: bytes, ledgerIndex: num, stampMs: num }), { maxLength: 3 }) }),
        fc.record({ kind: fc.constant('dkgRound2' as const), ceremonyId: str, round1: fc.array(fc.record({ identifier: str, commitment: fc.array(bytes, { maxLength: 3 }), proofOfKnowledge: bytes }), { maxLength: 3 }) }),
      ) as fc.Arbitrary<RequestBody>;
      let garbage = 0;
      await fc.assert(fc.asyncProperty(body, async (b) => clear(await k.client.exchange(b)) && ++garbage > 0), { numRuns: RUNS.garbage });
      t.equal(garbage, RUNS.garbage, `${RUNS.garbage} garbage requests answered with a clear error`);
    });

    await t.test('a connection that pipelines past the bound is answered LIMIT_EXCEEDED and closed', async (t) => {
      const n = limits.queuedRequestsMax * 2;
      const burst = Buffer.concat(Array.from({ length: n }, (_, i) => frame(encodeRequest({ callId: i + 1, body: { kind: 'status' } }))));
      const answers = await new Promise<Response[]>((resolve, reject) => {
        const sock = connect(k.setup.socketPath);
        const dec = new FrameDecoder(limits.responseBytesMax);
        const got: Response[] = [];
        sock.on('data', (d: Buffer) => {
          for (const ev of dec.push(d)) if (ev.kind === 'frame') got.push(decodeResponse(ev.payload));
        });
        sock.on('close', () => resolve(got));
        sock.on('error', reject);
        sock.write(burst);
      });
      const last = answers[answers.length - 1]!;
      t.equal(last.body.kind === 'error' ? last.body.reason : last.body.kind, 'LIMIT_EXCEEDED', 'the overflow is refused with a reason');
      t.ok(answers.length <= limits.queuedRequestsMax + 1, `at most the bound was served (${answers.length - 1} answers before the refusal)`);
      t.ok(answers.slice(0, -1).every((a) => a.body.kind === 'status'), 'everything within the bound was served');
    });

    await t.test('the kernel keeps serving', async (t) => {
      t.equal(k.proc.exitCode, null, 'the process is alive');
      const st = await fresh((c) => c.call({ kind: 'status' }, 'status'));
      t.equal(st.nodeId, 'n1', 'a valid request on a new connection succeeds');
      const again = await k.client.call({ kind: 'status' }, 'status');
      t.equal(again.profile, profile, 'and on the connection that carried the fuzzing');
      t.notOk(seen.has('INTERNAL'), 'no input produced INTERNAL');
      t.comment(`answers by reason: ${JSON.stringify(Object.fromEntries([...seen.entries()].sort()))}`);
    });
  });
}
