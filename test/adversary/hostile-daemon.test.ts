/**
 * A stolen node against a real cluster: three `custody node` daemons with their kernel processes
 * sign under a 2-of-3 key; then node n3's daemon is stopped and a hostile daemon takes its seat
 * (its certificate, identity key, peer address and kernel socket; test/adversary/hostile.ts). It
 * asks n3's kernel for shares under permits and certificates it made up, puts foreign keys into
 * and floods the peers' blob exchange, leads a higher term to append forged entries (acts without
 * a custodian's signature, a decision under forged approver keys, journal events in another node's
 * name, a stamp a year ahead), sends entries over committed ones, and lies in the observation
 * exchange (a second leader for the current term, a double vote). Each is refused with its reason
 * code, no kernel releases a share, the alarms fire, and after each the honest majority (n1, n2
 * and their kernels) signs a governed act whose signature verifies under the group key.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { ed25519 } from '@noble/curves/ed25519.js';
import { decisionBodyFromCbor, decisionSigningBytes, ed25519Sign } from '../../ledger/decision.js';
import { decode, fromHex } from '../../ledger/encoding.js';
import { messagesDigest } from '../../ledger/tx/messages.js';
import type { AdminClient, ActView } from '../../node/admin/client.js';
import { issueOperatorCert } from '../../node/admin/roles.js';
import { loadConfig } from '../../node/config.js';
import { DaemonCluster } from '../../node/lifecycle/daemon-cluster.js';
import { keys as blobKeys } from '../../node/lifecycle/participant.js';
import { until } from '../../node/probe.js';
import { CLI, OPERATORS, POLICY, actTx, labelled, rid, type LabelledClient } from '../lifecycle/harness.js';
import { HostileDaemon } from './hostile.js';

const eventually = <T>(what: string, f: () => Promise<T | null | undefined | false>, timeoutMs = 120_000): Promise<T> => until(what, f, timeoutMs, 200);

function scrape(address: string): Promise<string> {
  const [host, port] = address.split(':');
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), path: '/metrics', timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The value of one series (name and exact label set as exported), 0 when absent. */
function series(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(?:\{([^}]*)\})? (.+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = (m[2] ?? '').split(',').filter((x) => x !== '');
    if (want.every((w) => have.includes(w))) return Number(m[3]);
  }
  return 0;
}

/** custody_ledger_entries_refused_total by reason. */
function refusedByReason(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^custody_ledger_entries_refused_total\{reason="([A-Z_]+)"\} (.+)$/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

t.test('a hostile daemon with one node\'s certificate, identity and kernel socket gets no signature and stops no governed act', { timeout: 900_000 }, async (t) => {
  // A port drawn free can be taken by another process before a daemon binds it: then the cluster
  // is made again on other ports (the attack needs three daemons up, not these ports).
  let dir = '';
  let cluster: DaemonCluster | null = null;
  for (let attempt = 1; cluster === null; attempt++) {
    dir = mkdtempSync(join(tmpdir(), 'custody-hostile-'));
    const c = await DaemonCluster.create(dir, POLICY, 3, 3_000);
    for (const [id, role] of Object.entries(OPERATORS)) issueOperatorCert(c.certs, id, role);
    try {
      await c.start('audra', CLI, 120_000);
      cluster = c;
    } catch (e) {
      await c.stop();
      const logs = c.nodes.map((n) => { try { return readFileSync(join(dir, `${n.id}.log`), 'utf8'); } catch { return ''; } }).join('\n');
      rmSync(dir, { recursive: true, force: true });
      if (attempt >= 3 || !logs.includes('EADDRINUSE')) throw e;
      t.comment(`attempt ${attempt}: a port was taken before a daemon bound it; again on other ports`);
    }
  }
  const ids = cluster.nodes.map((n) => n.id);
  const clients: AdminClient[] = [];
  const client = (as: string, id: string): LabelledClient => {
    const c = cluster.client(id, as);
    clients.push(c);
    return labelled(c, cluster.custodians[0]!);
  };
  let hostile: HostileDaemon | null = null;
  t.teardown(async () => {
    await hostile?.close();
    for (const c of clients) c.close();
    await cluster.stop();
    if (!t.passing()) for (const id of ids) t.comment(`--- ${id}.log (last lines)\n${readFileSync(join(dir, `${id}.log`), 'utf8').split('\n').slice(-40).join('\n')}`);
    rmSync(dir, { recursive: true, force: true });
  });
  const metricsOf = (id: string): Promise<string> => scrape(loadConfig(join(dir, `${id}.yaml`)).http);

  const approve = async (cid: string, who: string[]): Promise<void> => {
    for (const a of who) {
      const c = client(a, 'n1');
      const d = await c.getDecision(cid);
      await c.approveDecision(cid, a, ed25519Sign(decisionSigningBytes(decisionBodyFromCbor(decode(new Uint8Array(d.bodyCbor)))), cluster.approvers.find((x) => x.id === a)!.secretKey));
    }
  };
  const d = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'DkgAuthorized', keyId: 'k', scheme: 'ed25519', network: 'solana-devnet', threshold: 2, participants: ids }));
  await approve(d.cid, ['approver-1', 'approver-2']);
  await eventually('key k published', async () => (await client('audra', 'n1').status()).keys[0]?.epochs.includes('0:published'));
  const a = await client('kim', 'n1').proposeDecision(JSON.stringify({ kind: 'KeyActivated', keyId: 'k', keyEpoch: 0 }));
  await approve(a.cid, ['approver-2', 'approver-3']);
  const key = (await client('audra', 'n1').status()).keys[0]!;
  t.equal(key.status, 'active', 'key k active');
  const groupKey = fromHex(key.publicKey);

  /** A governed act (the policy's sol-small rule) submitted to an honest node, to Published, its signature checked. */
  const signs = async (t: Test, label: string): Promise<ActView> => {
    const honest = (await client('audra', 'n1').status()).leader === 'n2' ? 'n2' : 'n1';
    const c = client('cara', honest);
    await c.submitAct({ opId: label, keyId: 'k', ...(await actTx(c, 'k', '100', 'sol-treasury')) });
    const v = await eventually(`${label} ends`, async () => {
      const x = await client('audra', honest).showAct(label);
      return ['Published', 'Aborted', 'Denied'].includes(x.state) ? x : null;
    }, 180_000);
    t.equal(v.state, 'Published', `${label}: the honest majority signs a governed act (${v.state} ${v.reason}, rule ${v.rule})`);
    t.ok(v.signature.length === 128 && ed25519.verify(fromHex(v.signature), new Uint8Array(v.tx), groupKey), `${label}: its signature verifies under the group key`);
    return v;
  };
  const before = await signs(t, 'before');

  // n3's daemon stops; its kernel keeps running. The hostile daemon takes the seat.
  const n3 = cluster.node('n3');
  const exited = new Promise((r) => n3.daemon!.once('exit', r));
  n3.daemon!.kill('SIGTERM');
  await exited;
  hostile = await HostileDaemon.start(join(dir, 'n3.yaml'), join(dir, 'n3.lifecycle.yaml'));
  const h = hostile;

  await t.test('kernel protocol: no share under a permit or certificate the host made up', async (t) => {
    const st = await h.ask({ kind: 'status' }, 'status');
    const consumed = st.body!.keys.find((k) => k.keyId === 'k')!.consumedCounter;
    const message = new Uint8Array(Buffer.from('pay everything to the attacker'));
    const keyCtx = { keyId: 'k', scheme: 'ed25519' as const, groupKey, network: 'solana-devnet' as const };
    const tx = await actTx(client('audra', 'n1'), 'k', '100', 'sol-treasury');
    const act = h.act(keyCtx, tx.kind, tx.tx);
    const strangers = ['n1', 'n2'].map((name) => ({ name, seed: new Uint8Array(32).fill(name === 'n1' ? 1 : 2) }));

    t.equal((await h.madeUpSign('k', message)).outcome, 'CHECKPOINT_NOT_CERTIFIED', 'a made-up permit without a certificate');
    t.equal((await h.madeUpSign('k', message, { permit: { requestId: rid('made-up-request') } })).outcome, 'CHECKPOINT_NOT_CERTIFIED', 'a made-up request id');
    t.equal((await h.madeUpSign('k', message, { certificate: (b) => h.certificate(b, act, [h.selfSigner]) })).outcome, 'CHECKPOINT_NOT_CERTIFIED', 'a checkpoint cosigned by the host alone');
    t.equal((await h.madeUpSign('k', message, { certificate: (b) => h.certificate(b, act, [h.selfSigner, ...strangers]) })).outcome, 'CHECKPOINT_NOT_CERTIFIED', 'the host\'s cosignature beside ones under the other nodes\' names by keys it made up (unknown keys count for nothing)');
    t.equal((await h.madeUpSign('k', message, { certificate: (b) => h.certificate(b, act, strangers) })).outcome, 'NOTE_SIGNATURE_INVALID', 'cosignatures only under the other nodes\' names by keys the host made up');
    // The permit of an act the cluster signed, replayed over its own transaction.
    const replay = { requestId: before.requestId, messageDigest: messagesDigest([new Uint8Array(before.tx)]), ledgerIndex: Math.max(...before.history.map((x) => x.index)) };
    t.equal((await h.madeUpSign('k', new Uint8Array(before.tx), { permit: replay })).outcome, 'CHECKPOINT_NOT_CERTIFIED', 'a replayed permit without its certificate');
    t.equal((await h.madeUpSign('k', new Uint8Array(before.tx), { permit: replay, certificate: (b) => h.certificate(b, act, [h.selfSigner]) })).outcome, 'CHECKPOINT_NOT_CERTIFIED', 'a replayed permit under a checkpoint the host cosigned');
    const head = fromHex((await client('audra', 'n1').status()).governanceHead);
    const gov = await h.ask({ kind: 'governance', decisions: [h.forgedKernelDecision({ kind: 'NodeRemoved', nodeId: 'n1' }, head, 1_000_000, ['approver-1', 'approver-2'])] }, 'governance');
    t.match(gov.outcome, /^(SIGNATURE_INVALID|QUORUM_NOT_MET|BINDING_MISMATCH)$/, `a decision under forged approver keys (${gov.outcome})`);
    const after = await h.ask({ kind: 'status' }, 'status');
    t.equal(after.body!.keys.find((k) => k.keyId === 'k')!.consumedCounter, consumed, 'the kernel consumed no nonce: no share left it');
    await signs(t, 'after-kernel');
  });

  await t.test('blob exchange: foreign keys, overwrites and a flood are refused', async (t) => {
    for (const p of ['n1', 'n2']) {
      t.equal(await h.put(p, blobKeys.transport('n1'), new Uint8Array([1])), 'BLOB_KEY_FOREIGN', `${p}: n1's transport statement`);
      t.equal(await h.put(p, blobKeys.publicPackage('k', 0, 'n2'), new Uint8Array([1])), 'BLOB_KEY_FOREIGN', `${p}: n2's public package`);
      t.equal(await h.put(p, blobKeys.publicPackage('k', 0, 'n3'), new Uint8Array([6, 6, 6])), 'BLOB_EXISTS', `${p}: its own public package overwritten`);
    }
    const flood = await h.floodBlobs('n2');
    t.equal(flood.refusal, 'BLOB_BUDGET_EXCEEDED', `n2 took ${flood.taken} blobs of the largest size, then refused the flood`);
    await signs(t, 'after-blobs');
  });

  await t.test('forged entries at a higher term: committed by Raft, refused by every replica\'s ledger', async (t) => {
    const leader = await h.leader();
    const tx = await actTx(client('audra', 'n1'), 'k', '100', 'sol-treasury');
    const keyCtx = { keyId: 'k', scheme: 'ed25519' as const, groupKey, network: 'solana-devnet' as const };
    const act = h.act(keyCtx, tx.kind, tx.tx);
    const head = fromHex((await client('audra', 'n1').status()).governanceHead);
    const YEAR = 365 * 24 * 3600 * 1000;
    const n1Passport = (await client('audra', 'n1').status()).nodes.find((n) => n.id === 'n1')!.passport;
    // Acts without a custodian's request are journaled as Denied with the reason (the journal keeps
    // the refusal); every other forged entry is refused without moving the state.
    const forged = [
      { what: 'an act without a custodian\'s signed request', denied: 'hostile-unsigned', reason: 'REQUEST_UNSIGNED', data: h.command(h.unsignedSubmission(rid('hostile-unsigned'), act)) },
      { what: 'an act whose request the host signed in the custodian\'s name', denied: 'hostile-missigned', reason: 'REQUEST_SIGNATURE_INVALID', data: h.command(h.misSignedSubmission(rid('hostile-missigned'), act)) },
      { what: 'a decision removing n1 under approver keys the host made up', reason: 'SIGNATURE_INVALID', data: h.command(h.forgedDecision({ kind: 'NodeRemoved', nodeId: 'n1' }, ['approver-1', 'approver-2'], head)) },
      { what: 'a permit in n1\'s name under a passport n1 does not hold', reason: 'BINDING_MISMATCH', data: h.command({ type: 'ActPermitIssued', opId: before.opId, nodeId: 'n1', passport: 'n1-forged' }) },
      { what: 'an execution in n1\'s name (n1 never signed it)', reason: 'PROPOSER_SIGNATURE_INVALID', data: h.command({ type: 'ActExecuted', opId: before.opId, permitId: new Uint8Array(32), signatures: [new Uint8Array(64)], nodeId: 'n1', passport: n1Passport }) },
      { what: 'an execution in n3\'s own name under a permit the ledger never issued', reason: 'PERMIT_MISSING', data: h.command({ type: 'ActExecuted', opId: before.opId, permitId: new Uint8Array(32), signatures: [new Uint8Array(64)], nodeId: 'n3', passport: h.passport }) },
      { what: 'a clock tick stamped a year ahead', reason: 'STAMP_AHEAD', data: h.command({ type: 'ClockTick', nodeId: 'n3', passport: h.passport }, Date.now() + YEAR) },
    ];
    const was = await Promise.all(['n1', 'n2'].map(metricsOf));
    const r = await h.appendForged(leader, forged);
    t.equal(r.indexes.length, forged.length, `${leader} (the leader) took ${forged.length} forged entries at term ${r.term} and marked them committed`);
    const refused = forged.filter((f) => f.denied === undefined);
    for (const [i, id] of ['n1', 'n2'].entries()) {
      const grew = await eventually(`${id} applied the forged entries`, async () => {
        const now = refusedByReason(await metricsOf(id));
        const then = refusedByReason(was[i]!);
        const g = Object.fromEntries(Object.entries(now).map(([k, v]) => [k, v - (then[k] ?? 0)]).filter(([, v]) => (v as number) > 0)) as Record<string, number>;
        return refused.every((f) => (g[f.reason] ?? 0) > 0) ? g : null;
      }).catch(async () => refusedByReason(await metricsOf(id)));
      t.comment(`${id} refused: ${JSON.stringify(grew)}`);
      for (const f of refused) t.ok((grew[f.reason] ?? 0) > 0, `${id}: ${f.what}: refused ${f.reason} (custody_ledger_entries_refused_total)`);
      for (const f of forged.filter((x) => x.denied !== undefined)) {
        const v = await client('audra', id).showAct(f.denied!);
        t.same([v.state, v.reason], ['Denied', f.reason], `${id}: ${f.what}: journaled Denied ${f.reason}`);
        t.equal(v.signature, '', `${id}: ${f.denied} carries no signature`);
      }
    }
    for (const id of ['n1', 'n2']) {
      t.equal((await client('audra', id).showAct(before.opId)).state, 'Published', `${id}: the published act is untouched`);
      t.equal((await client('audra', id).status()).nodes.find((n) => n.id === 'n1')?.status, 'active', `${id}: n1 is still a member`);
    }
    await signs(t, 'after-forged');
  });

  await t.test('an abort of an open act in n1\'s name, under n1\'s public passport: refused by every replica (PROPOSER_SIGNATURE_INVALID)', async (t) => {
    const passport = (await client('audra', 'n1').status()).nodes.find((n) => n.id === 'n1')!.passport;
    const honest = (await client('audra', 'n1').status()).leader === 'n2' ? 'n2' : 'n1';
    const c = client('cara', honest);
    const label = 'abort-target';
    await c.submitAct({ opId: label, keyId: 'k', ...(await actTx(c, 'k', '100', 'sol-treasury')) });
    const opId = rid(label);
    const was = await Promise.all(['n1', 'n2'].map(metricsOf));
    const at = (await client('audra', honest).showAct(label)).state;
    // The act was just submitted: the abort goes in while it is being signed (or, on a fast
    // machine, just after); either way the only thing between it and the journal is n1's signature.
    const r = await eventually('the forged abort reaches the leader', async () => {
      const x = await h.abortInNameOf(await h.leader(), opId, 'n1', passport).catch(() => null);
      return x !== null && x.indexes.length > 0 ? x : null;
    });
    t.comment(`abort of ${label} (state ${at} when sent) appended at ${r.indexes.join(',')}, term ${r.term}`);
    for (const [i, id] of ['n1', 'n2'].entries()) {
      const grew = await eventually(`${id} refused the forged abort`, async () => {
        const d = (refusedByReason(await metricsOf(id)).PROPOSER_SIGNATURE_INVALID ?? 0) - (refusedByReason(was[i]!).PROPOSER_SIGNATURE_INVALID ?? 0);
        return d > 0 ? d : null;
      }).catch(() => 0);
      t.ok(grew > 0, `${id}: custody_ledger_entries_refused_total{reason="PROPOSER_SIGNATURE_INVALID"} rose by ${grew}`);
    }
    const v = await eventually(`${label} ends`, async () => {
      const x = await client('audra', honest).showAct(label);
      return ['Published', 'Aborted', 'Denied'].includes(x.state) ? x : null;
    }, 180_000);
    t.equal(v.state, 'Published', `${label} is not Aborted: the honest pair signs it (${v.state} ${v.reason})`);
    for (const id of ['n1', 'n2']) t.not((await client('audra', id).showAct(label)).state, 'Aborted', `${id}: ${label} not Aborted`);
    await signs(t, 'after-abort-in-name');
  });

  await t.test('entries over committed ones are not taken, and no follower crashes', async (t) => {
    const leader = await h.leader();
    const r = await h.overwriteCommitted(leader);
    t.notOk(r.answer.reject, 'answered, not as a log mismatch');
    t.ok(r.answer.index >= r.sent.commit, `the answer names the peer's commit index (${r.answer.index} >= ${r.sent.commit}): the forged entries below it were dropped`);
    for (const id of ['n1', 'n2']) t.equal(cluster.node(id).daemon!.exitCode, null, `${id} is running`);
    await eventually('the honest nodes agree again', async () => {
      const s = await Promise.all(['n1', 'n2'].map((id) => client('audra', id).status()));
      return s[0]!.applied === s[1]!.applied && s[0]!.stateRoot === s[1]!.stateRoot;
    });
    await signs(t, 'after-overwrite');
  });

  await t.test('a forged snapshot at a higher term: refused SNAPSHOT_NOT_CERTIFIED, every replica kept', async (t) => {
    // A state n3 made up: the ledger's whole replica replaced by one n3 alone vouches for.
    const forged = new TextEncoder().encode(JSON.stringify({ forged: 'state in which n3 holds every permit', at: Date.now() }));
    for (const target of ['n1', 'n2']) {
      const was = await metricsOf(target);
      const before = await eventually(`${target} answers`, async () => h.raftStatus(target).catch(() => null));
      const { meta, answer } = await h.forgedSnapshot(target, forged, 100);
      t.comment(`${target}: snapshot claimed at index ${meta.index} term ${meta.term}; answer ${JSON.stringify(answer && { type: answer.type, reject: answer.reject, index: answer.index })}`);
      t.ok(answer === null || answer.index < meta.index, `${target} did not acknowledge the forged snapshot's index ${meta.index}`);
      await eventually(`${target} counts the refusal`, async () => series(await metricsOf(target), 'custody_snapshot_refused_total', { reason: 'SNAPSHOT_NOT_CERTIFIED' }) > series(was, 'custody_snapshot_refused_total', { reason: 'SNAPSHOT_NOT_CERTIFIED' }));
      t.pass(`${target}: custody_snapshot_refused_total{reason="SNAPSHOT_NOT_CERTIFIED"} rose`);
      const after = await eventually(`${target} answers`, async () => h.raftStatus(target).catch(() => null));
      t.ok(after.applied < meta.index, `${target} applied ${after.applied}, below the forged snapshot's ${meta.index} (was ${before.applied})`);
    }
    await eventually('the honest nodes agree', async () => {
      const s = await Promise.all(['n1', 'n2'].map((id) => client('audra', id).status()));
      return s[0]!.applied === s[1]!.applied && s[0]!.stateRoot === s[1]!.stateRoot;
    });
    t.pass('n1 and n2 hold the same state root at the same index');
    await signs(t, 'after-snapshot');
  });

  await t.test('a membership change no decision asked for: held out of every honest log (CONF_CHANGE_UNAUTHORIZED)', async (t) => {
    const was = await Promise.all(['n1', 'n2'].map(metricsOf));
    // Leadership may still be settling after the previous attack: the forgery follows the leader's log head.
    const { leader, r } = await eventually('the forged change reaches the leader', async () => {
      const l = await h.leader();
      return h.offerConfChange(l, { changes: [{ type: 'remove', node: 'n1' }], transition: 'auto' }).then((x) => ({ leader: l, r: x }));
    });
    t.comment(`answer: ${JSON.stringify(r.answer && { reject: r.answer.reject, index: r.answer.index, term: r.answer.term })}, change at ${r.index}`);
    t.notOk(r.took, `${leader} did not take the configuration change at ${r.index} from n3 (it names no NodeRemoved decision)`);
    const refusedOn = await eventually('a refusal is counted', async () => {
      const now = await Promise.all(['n1', 'n2'].map(metricsOf));
      const grew = ['n1', 'n2'].filter((_, i) => series(now[i]!, 'custody_raft_conf_changes_refused_total') > series(was[i]!, 'custody_raft_conf_changes_refused_total'));
      return grew.length > 0 ? grew : null;
    });
    t.ok(refusedOn.includes(leader), `custody_raft_conf_changes_refused_total rose on ${refusedOn.join(', ')}`);
    for (const id of ['n1', 'n2']) {
      const s = await eventually(`${id} answers`, async () => h.raftStatus(id).catch(() => null));
      t.same([...s.voters].sort(), ['n1', 'n2', 'n3'], `${id}: the voters are unchanged`);
      t.equal((await client('audra', id).status()).nodes.find((n) => n.id === 'n1')?.status, 'active', `${id}: n1 is still a member`);
    }
    await signs(t, 'after-conf-change');
  });

  await t.test('fencing the others with one node\'s identity key: recorded pending, fences nobody', async (t) => {
    const nodes = (await client('audra', 'n1').status()).nodes;
    for (const victim of ['n1', 'n2']) {
      const passport = nodes.find((n) => n.id === victim)!.passport;
      await eventually(`a report against ${victim} reaches the leader`, async () => h.forgedFencing(await h.leader(), victim, passport).catch(() => null));
    }
    for (const id of ['n1', 'n2']) {
      const view = await eventually(`${id} shows n3's reports`, async () => {
        const s = await client('audra', id).status();
        return ['n1', 'n2'].every((v) => s.nodes.find((n) => n.id === v)?.fenceReporters.includes('n3')) ? s : null;
      });
      for (const victim of ['n1', 'n2']) {
        const n = view.nodes.find((x) => x.id === victim)!;
        t.equal(n.status, 'active', `${id}: ${victim} stays active (reported by ${n.fenceReporters.join(', ')}: ${n.fenceReporters.length} of ${n.fenceNeeded} voters needed)`);
        t.ok(n.fenceReporters.length < n.fenceNeeded, `${id}: one reporter is below the majority a node fence needs`);
      }
      t.equal(series(await metricsOf(id), 'custody_fenced_passports'), 0, `${id}: custody_fenced_passports is 0`);
    }
    await signs(t, 'after-fencing');
  });

  await t.test('lies in the observation exchange: a second leader and a double vote raise the alarms', async (t) => {
    const s = await client('audra', 'n1').status();
    h.sendExchange({ term: s.term, leader: h.id, appliedIndex: s.applied, stateRoot: s.stateRoot, statements: h.doubleVote(s.term + 1, 'n1', 'n2') });
    for (const id of ['n1', 'n2']) {
      await eventually(`${id}: two leaders for term ${s.term}`, async () => series(await metricsOf(id), 'custody_split_brain_active', { kind: 'two_leaders' }) === 1);
      t.pass(`${id}: custody_split_brain_active{kind="two_leaders"} is 1`);
    }
    await eventually('the double vote is evidence', async () => {
      const ms = await Promise.all(['n1', 'n2'].map(metricsOf));
      return ms.some((m) => series(m, 'custody_equivocation_evidence_total', { kind: 'RaftVote' }) >= 1);
    });
    t.pass('custody_equivocation_evidence_total{kind="RaftVote"} counted');
    const flagged = await eventually('the ledger flags n3', async () => (await client('audra', 'n1').status()).nodes.find((n) => n.id === 'n3')?.equivocated === true);
    t.ok(flagged, 'the ledger records n3\'s equivocation');
    await eventually('custody_equivocation_active names n3', async () => series(await metricsOf('n1'), 'custody_equivocation_active', { offender: 'n3', kind: 'RaftVote' }) === 1);
    t.pass('custody_equivocation_active{offender="n3"} is 1');
    await signs(t, 'after-equivocation');
  });

  await t.test('a second leader in the current term: a follower takes no entries from it', async (t) => {
    const leader = await h.leader();
    const follower = leader === 'n1' ? 'n2' : 'n1';
    const was = await h.raftStatus(follower);
    const r = await h.appendForged(follower, [{ data: h.command({ type: 'ClockTick', nodeId: 'n3', passport: h.passport }) }], 'same', 5_000);
    t.comment(`answer: ${JSON.stringify(r.answer && { reject: r.answer.reject, index: r.answer.index, term: r.answer.term })} prev ${r.prevIndex} term ${r.term}`);
    t.same(r.indexes, [], `${follower} (following ${leader} in term ${was.term}) took no entry from n3 in that term`);
    const now = await h.raftStatus(follower);
    t.equal(now.leader, leader, `${follower} still follows ${leader}`);
    await eventually('the honest nodes agree', async () => {
      const s = await Promise.all(['n1', 'n2'].map((id) => client('audra', id).status()));
      return s[0]!.applied === s[1]!.applied && s[0]!.stateRoot === s[1]!.stateRoot;
    });
    for (const id of ['n1', 'n2']) t.equal(series(await metricsOf(id), 'custody_split_brain_active', { kind: 'two_roots' }), 0, `${id}: no two roots for one index`);
    await signs(t, 'after-second-leader');
  });

  // Last, since it leaves the honest replicas on two branches for good: a 3-node cluster cannot
  // both tolerate a lying leader and keep every branch signing (README "Split-brain, equivocation
  // and rollback"). What must hold is that the alarms fire and nothing is signed on two histories.
  await t.test('different entries to the two honest nodes in one new term: each applies its own, two_roots fires on both, and no act is signed on either branch', async (t) => {
    const leader = await h.leader();
    const follower = leader === 'n1' ? 'n2' : 'n1';
    const r = await h.forkHonest(leader, follower);
    t.ok(r.leader !== null && r.follower !== null, `${leader} and ${follower} each took n3's entry at the same index and term (${r.leader?.indexes.join(',') ?? 'none'} / ${r.follower?.indexes.join(',') ?? 'none'})`);
    for (const id of ['n1', 'n2']) {
      await eventually(`${id}: two roots for one index`, async () => series(await metricsOf(id), 'custody_split_brain_active', { kind: 'two_roots' }) === 1, 180_000);
      t.equal(series(await metricsOf(id), 'custody_split_brain_active', { kind: 'two_roots' }), 1, `${id}: custody_split_brain_active{kind="two_roots"} is 1`);
    }
    const s = await Promise.all(['n1', 'n2'].map((id) => client('audra', id).status()));
    t.not(s[0]!.stateRoot, s[1]!.stateRoot, `the honest replicas hold different states (${s[0]!.stateRoot.slice(0, 12)} / ${s[1]!.stateRoot.slice(0, 12)})`);
    // An act after the fork: neither honest node's checkpoint finds a majority without n3 (they
    // cosign only their own roots), and n3's kernel signs on one history only
    // (CHECKPOINT_INCONSISTENT, kernel/certificate.ts), so no act is signed on both branches.
    const honest = (await client('audra', 'n1').status()).leader === 'n2' ? 'n2' : 'n1';
    const c = client('cara', honest);
    await c.submitAct({ opId: 'after-fork', keyId: 'k', ...(await actTx(c, 'k', '100', 'sol-treasury')) }).catch(() => undefined);
    const views = await Promise.all(['n1', 'n2'].map((id) => client('audra', id).showAct('after-fork').catch(() => null)));
    const published = views.filter((v) => v !== null && ['Published', 'Settled'].includes(v.state));
    t.ok(published.length <= 1, `the act is signed on at most one branch (${views.map((v, i) => `n${i + 1}: ${v?.state ?? 'absent'}`).join(', ')})`);
  });

  const st = await h.ask({ kind: 'status' }, 'status');
  t.ok(st.body !== null, 'n3\'s kernel still answers');
});
