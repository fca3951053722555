/**
 * The publication gate from an operator's seat: two acts (a Taproot PSBT with two inputs, a
 * Solana transfer) are executed with real signatures and held at the gate. Every method of the
 * Admin service, enumerated from proto/admin.proto so that a method added later is walked too, is
 * called as every operator role against each held act; no reply, streamed message, error or
 * trailer may carry any signature: not in hex (any 8-byte window, so a prefix in a note counts),
 * base64, base64url or base58 (a Solana transaction id is its first signature), nor as raw bytes
 * (a snapshot stream). Then the act is published, and the same probe must find the signatures in
 * ShowAct: the probe can see what it looks for.
 */
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { getBase58Decoder } from '@solana/codecs';
import { getAddressDecoder } from '@solana/addresses';
import { AdminBackend } from '../../node/admin/backend.js';
import { AdminServer, adminPackage } from '../../node/admin/server.js';
import { OPERATOR_ROLES, issueOperatorCert, type OperatorRole } from '../../node/admin/roles.js';
import { ensureCa, issue } from '../../node/certs.js';
import { channelCredentials, identityOptions, loadTls } from '../../node/tls.js';
import { actFor } from '../../node/lifecycle/acts.js';
import { buildSolanaTransfer, buildTaprootPsbt } from '../../node/lifecycle/tx-build.js';
import { solanaAddress, taprootAddress } from '../../ledger/tx/parse.js';
import { toHex } from '../../ledger/encoding.js';
import { BTC, CUSTODIAN, SOL, StandInLedger } from '../node/act-fixtures.js';
import { signActRequest } from '../../ledger/act-request.js';
import { rid } from '../../ledger/scenario.js';
import { ed25519Key, taprootKey, txidOf } from '../ledger/tx-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'gate-adversary-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
ensureCa(dir);
const node = issue(dir, 'node', 'n1', ['127.0.0.1', 'localhost']);
/** One operator per role. */
const AS: { readonly [r in OperatorRole]: string } = { 'key-generator': 'kay', custodian: 'cara', approver: 'approver-0', auditor: 'audra' };
for (const role of OPERATOR_ROLES) issueOperatorCert(dir, AS[role], role);

const ledger = new StandInLedger();
const backend = new AdminBackend('n1', ledger, { notesOf: () => [], onNote: () => () => undefined });
// A snapshot of the replicated state carries every act's signatures as they are stored.
const snapshot = async function* (): AsyncGenerator<Buffer> {
  for (const op of Object.values(ledger.state().cluster!.ops)) for (const s of op.signatures ?? []) yield Buffer.from(s);
};
const server = new AdminServer({ listen: '127.0.0.1:0', tls: loadTls({ ca: join(dir, 'ca.crt'), cert: node.cert, key: node.key }), backend, snapshot });

const psbt = buildTaprootPsbt(BTC.key, [{ txid: txidOf('g1'), vout: 0, amountSat: 600_000n }, { txid: txidOf('g2'), vout: 1, amountSat: 400_000n }], [{ address: taprootAddress(taprootKey('gate-payee').key), amount: 150_000n }], 1_000n);

/** The held acts' ids: custodians' request ids. */
const HELD_BTC = rid('held-btc');
const HELD_SOL = rid('held-sol');

function submit(opId: string, keyId: string, kind: 'btc-psbt' | 'solana', tx: Uint8Array): void {
  const { act } = actFor(ledger.state(), { keyId, kind, tx }, 'cara');
  // The custodian's signed request the act carries (ledger/act-request.ts), as every act does.
  const request = signActRequest({
    clusterId: ledger.state().cluster!.clusterId, custodian: CUSTODIAN.id, requestId: opId, issuedMs: Date.now(),
    keyId, keyEpoch: act.keyEpoch, kind, tx, declared: { asset: '', amount: '', destination: '' },
  }, CUSTODIAN.secretKey);
  void ledger.propose({ type: 'ActSubmitted', opId, act, approval: null, request, nodeId: 'n1', passport: 'p1' });
}

/** The forms a signature could leave in. */
function forms(sig: Uint8Array): { text: string[]; raw: Buffer[] } {
  const text = [Buffer.from(sig).toString('base64'), Buffer.from(sig).toString('base64url'), getBase58Decoder().decode(sig)];
  const raw: Buffer[] = [];
  for (let i = 0; i + 8 <= sig.length; i++) {
    const w = sig.subarray(i, i + 8);
    text.push(toHex(w), toHex(w).toUpperCase());
    raw.push(Buffer.from(w));
  }
  return { text, raw };
}

/** Everything a call handed back: texts (JSON with bytes as hex and base64, error details, trailers) and raw bytes. */
class Seen {
  readonly text: string[] = [];
  readonly raw: Buffer[] = [];
  add(v: unknown): void {
    const bytes: Buffer[] = [];
    const json = JSON.stringify(v, (_k, x: unknown) => {
      if (Buffer.isBuffer(x) || x instanceof Uint8Array) {
        bytes.push(Buffer.from(x));
        return `${Buffer.from(x).toString('hex')} ${Buffer.from(x).toString('base64')}`;
      }
      if (x !== null && typeof x === 'object' && (x as { type?: unknown }).type === 'Buffer' && Array.isArray((x as { data?: unknown }).data)) {
        const b = Buffer.from((x as { data: number[] }).data);
        bytes.push(b);
        return `${b.toString('hex')} ${b.toString('base64')}`;
      }
      return typeof x === 'bigint' ? x.toString() : x;
    });
    this.text.push(json ?? String(v));
    this.raw.push(...bytes);
  }
  addError(e: grpc.ServiceError): void {
    this.text.push(e.details ?? '', e.message ?? '', JSON.stringify(e.metadata?.getMap() ?? {}));
  }
  leaks(f: { text: string[]; raw: Buffer[] }): string[] {
    const found: string[] = [];
    for (const s of f.text) if (this.text.some((x) => x.includes(s))) found.push(s);
    for (const w of f.raw) if (this.raw.some((b) => b.includes(w))) found.push(`raw ${w.toString('hex')}`);
    return found;
  }
}

type Def = { path: string; requestStream: boolean; responseStream: boolean };

function requestFor(method: string, opId: string, kind: string, keyId: string, tx: Uint8Array): object {
  const base = { opId, keyId, kind, tx: Buffer.from(tx), limit: 0, cid: '', nodeId: 'n1', reason: 'probe', confirmation: 'probe', passport: '' };
  switch (method) {
    case 'ProposeDecision': return { actionJson: JSON.stringify({ kind: 'PublicationReleased', opId }), ttlMs: 0 };
    case 'ApproveDecision': return { cid: '00'.repeat(32), approverId: 'approver-0', signature: Buffer.alloc(64) };
    case 'SubmitDecision': return { decisionCbor: Buffer.from([0xa0]) };
    // A new act from the same transaction: the held act itself is not replaced by the probe.
    case 'SubmitAct': return { ...base, opId: `probe-${opId}-${Math.random().toString(36).slice(2)}`, keyEpoch: -1 };
    default: return base;
  }
}

async function call(client: grpc.Client, name: string, def: Def, req: object, seen: Seen): Promise<string> {
  const f = (client as unknown as Record<string, (...a: unknown[]) => unknown>)[name] as (...a: unknown[]) => unknown;
  if (def.requestStream) return 'client-streaming: not probed';
  if (!def.responseStream) {
    return new Promise((res) => {
      f.call(client, req, new grpc.Metadata(), { deadline: Date.now() + 15_000 }, (e: grpc.ServiceError | null, r?: unknown) => {
        if (e) {
          seen.addError(e);
          return res(`error ${e.details}`);
        }
        seen.add(r);
        res('reply');
      });
    });
  }
  return new Promise((res) => {
    const stream = f.call(client, req, new grpc.Metadata(), { deadline: Date.now() + 15_000 }) as grpc.ClientReadableStream<unknown>;
    let n = 0;
    stream.on('data', (m: unknown) => {
      seen.add(m);
      // A watch of a held act does not end by itself: its first message is what it shows.
      if (++n === 1 && name === 'WatchAct') stream.cancel();
    });
    stream.on('status', (s: grpc.StatusObject) => seen.add({ details: s.details, metadata: s.metadata.getMap() }));
    stream.on('error', (e: grpc.ServiceError) => {
      seen.addError(e);
      res(`stream error after ${n}: ${e.details}`);
    });
    stream.on('end', () => res(`stream of ${n}`));
  });
}

t.test('no read path returns a signature before the act is published', async (t) => {
  const port = await server.start();
  t.teardown(() => server.stop(1000));
  const sol = await buildSolanaTransfer(SOL.key, [{ address: solanaAddress(ed25519Key('gate-payee-sol').key), amount: 1_000_000n }], getAddressDecoder().decode(new Uint8Array(32).fill(9)));
  submit(HELD_BTC, BTC.key.keyId, 'btc-psbt', psbt);
  submit(HELD_SOL, SOL.key.keyId, 'solana', sol);
  const held = [
    { opId: HELD_BTC, keyId: BTC.key.keyId, kind: 'btc-psbt', tx: psbt, sigs: ledger.execute(HELD_BTC) },
    { opId: HELD_SOL, keyId: SOL.key.keyId, kind: 'solana', tx: sol, sigs: ledger.execute(HELD_SOL) },
  ];
  t.equal(held[0]!.sigs.length, 2, 'the PSBT holds two signatures');
  const all = held.flatMap((h) => h.sigs.map(forms));
  const merged = { text: all.flatMap((f) => f.text), raw: all.flatMap((f) => f.raw) };

  const defs = adminPackage()['custody.admin.v1.Admin'] as unknown as Record<string, Def>;
  const methods = Object.keys(defs).filter((k) => /^[A-Z]/.test(k));
  t.ok(methods.length >= 16, `every method of the Admin service: ${methods.join(', ')}`);
  const Ctor = grpc.makeGenericClientConstructor(adminPackage()['custody.admin.v1.Admin'] as grpc.ServiceDefinition, 'Admin');
  const clients = new Map(OPERATOR_ROLES.map((role) => {
    const tls = loadTls({ ca: join(dir, 'ca.crt'), cert: join(dir, `${AS[role]}.crt`), key: join(dir, `${AS[role]}.key`) });
    return [role, new Ctor(`127.0.0.1:${port}`, channelCredentials(tls), { ...identityOptions('n1'), 'grpc.max_receive_message_length': 16 * 1024 * 1024 })] as const;
  }));
  t.teardown(() => {
    for (const c of clients.values()) c.close();
  });

  for (const h of held) {
    for (const role of OPERATOR_ROLES) {
      for (const m of methods) {
        const seen = new Seen();
        const outcome = await call(clients.get(role)!, m, defs[m]!, requestFor(m, h.opId, h.kind, h.keyId, h.tx), seen);
        t.same(seen.leaks(merged), [], `${m} as ${role} on ${h.opId}: ${outcome}`);
      }
    }
  }

  // The snapshot is refused with its code while an act is held.
  const snap = new Seen();
  t.match(await call(clients.get('auditor')!, 'SaveSnapshot', defs.SaveSnapshot!, {}, snap), /SIGNATURE_WITHHELD/, 'SaveSnapshot: refused while acts are held');

  // Released: the same probe now finds the signatures, so it can see what it looks for.
  ledger.publish(HELD_BTC);
  const after = new Seen();
  await call(clients.get('auditor')!, 'ShowAct', defs.ShowAct!, { opId: HELD_BTC }, after);
  const btc = held[0]!.sigs.map(forms);
  t.ok(after.leaks({ text: btc.flatMap((f) => f.text), raw: btc.flatMap((f) => f.raw) }).length > 0, 'once published, ShowAct carries the signatures and the probe finds them');
  const ev = new Seen();
  await call(clients.get('auditor')!, 'ExportEvidence', defs.ExportEvidence!, { opId: HELD_BTC }, ev);
  t.ok(ev.leaks({ text: btc.flatMap((f) => f.text), raw: [] }).length > 0, 'and the evidence bundle carries them');
  const sol2 = held[1]!.sigs.map(forms);
  t.same(after.leaks({ text: sol2.flatMap((f) => f.text), raw: sol2.flatMap((f) => f.raw) }), [], 'the act still held stays withheld');
});
