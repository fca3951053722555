/**
 * `custody admin policy` end to end against a running cluster: show the policy in force, diff and
 * propose a new document through the approval book, the new document in force on every node after
 * the approvers sign, and a dry run of admission naming the rule that matched. Refusals carry
 * reason codes (exit status 3).
 */
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toHex } from '../../ledger/encoding.js';
import { LEDGER_ASSETS } from '../../ledger/asset-table.js';
import { renderPolicyYaml } from '../../ledger/policy-engine/index.js';
import { POLICY, actTx, rid, startHarness, submitAs, waitAct } from './harness.js';
import { until } from '../../node/lifecycle/local-cluster.js';

t.test('custody admin policy: show, diff, propose, test', { timeout: 300_000 }, async (t) => {
  const h = await startHarness();
  t.teardown(() => h.close());

  const shown = await h.cli('audra', ['policy', 'show']);
  t.equal(shown.code, 0, shown.stderr);
  t.match(shown.stdout, /^# act policy in force at governance epoch 0/, 'names the governance epoch');
  t.ok(shown.stdout.includes(renderPolicyYaml(POLICY, LEDGER_ASSETS).replace(/\n$/, '')), 'prints the genesis policy in canonical YAML');

  const same = join(h.dir, 'same.yaml');
  writeFileSync(same, renderPolicyYaml(POLICY, LEDGER_ASSETS));
  const none = await h.cli('audra', ['policy', 'diff', '--file', same]);
  t.equal(none.code, 0, none.stderr);
  t.match(none.stdout, /is the policy in force \(no change\)/);
  const again = await h.cli('approver-1', ['policy', 'propose', '--file', same]);
  t.equal(again.code, 3, 'proposing the policy in force is refused');
  t.match(again.stderr, /^INVALID_ARGUMENT: .* is the policy in force/m);

  // Withdraw the automatic small SOL payments: SOL payments then all need approvals.
  const next = { ...POLICY, rules: POLICY.rules.filter((r) => r.id !== 'sol-small') };
  const file = join(h.dir, 'next.yaml');
  writeFileSync(file, renderPolicyYaml(next, LEDGER_ASSETS));
  const d = await h.cli('audra', ['policy', 'diff', '--file', file]);
  t.equal(d.code, 0, d.stderr);
  t.match(d.stdout, /^- +- id: sol-small$/m, 'the diff shows the rule that goes');
  t.notMatch(d.stdout, /^\+ /m, 'and nothing that comes');

  const byAuditor = await h.cli('audra', ['policy', 'propose', '--file', file]);
  t.equal(byAuditor.code, 3);
  t.match(byAuditor.stderr, /^ROLE_NOT_ALLOWED: /m, 'an auditor may not propose a policy');

  const bad = join(h.dir, 'bad.yaml');
  writeFileSync(bad, 'version: 1\nrules:\n  - id: sign-anything\n    match: { kinds: [raw] }\n    action: ALLOW\n');
  const refused = await h.cli('approver-1', ['policy', 'propose', '--file', bad]);
  t.equal(refused.code, 3);
  t.match(refused.stderr, /^POLICY_DOCUMENT_INVALID: rules\[0\]\.action: an ALLOW rule may not match raw acts/m, 'a document the ledger would refuse is refused before it is proposed');

  const p = await h.cli('approver-1', ['policy', 'propose', '--file', file]);
  t.equal(p.code, 0, p.stderr);
  const cid = /decision ([0-9a-f]{64}): PolicyChanged pending/.exec(p.stdout)?.[1];
  t.ok(cid, `a PolicyChanged decision is pending: ${p.stdout}`);
  const rev = await h.cli('approver-2', ['policy', 'review', '--cid', cid as string]);
  t.equal(rev.code, 0, rev.stderr);
  t.match(rev.stdout, /PolicyChanged for governance epoch 0, pending \(0 of 2 approvals\)/, 'an approver reviews the pending decision');
  t.match(rev.stdout, /^- +- id: sol-small$/m, 'with the diff from the policy in force');
  t.notMatch(rev.stdout.split('the policy it installs:')[1] ?? 'sol-small', /sol-small/, 'and the policy it installs, read from the signed body');
  const notPolicy = await h.client('approver-1').proposeDecision('{"kind":"Unfreeze"}');
  const wrong = await h.cli('approver-2', ['policy', 'review', '--cid', notPolicy.cid]);
  t.equal(wrong.code, 3);
  t.match(wrong.stderr, /^INVALID_ARGUMENT: decision [0-9a-f]+ is Unfreeze, not PolicyChanged/m);
  await h.approve(cid as string, ['approver-1', 'approver-2']);
  await until('the new policy is in force on every node', () => h.cluster.nodes.every((n) => n.ledger.state().cluster?.governance.policy.rules.length === next.rules.length), 30_000);
  const after = await h.cli('audra', ['policy', 'show'], h.cluster.nodes[2]!.id);
  t.equal(after.code, 0, after.stderr);
  t.match(after.stdout, /^# act policy in force at governance epoch 1/, 'another node shows the new policy at the next governance epoch');
  t.notMatch(after.stdout, /sol-small/);

  await h.createKey('k', 'ed25519');
  const act = join(h.dir, 'raw.json');
  writeFileSync(act, JSON.stringify({ keyId: 'k', kind: 'raw', txHex: toHex(new TextEncoder().encode('attest: reserves at block 840000')) }));
  const dry = await h.cli('cara', ['policy', 'test', '--act', act]);
  t.equal(dry.code, 0, dry.stderr);
  t.match(dry.stdout, /^REFUSED QUORUM_NOT_MET by rule raw-with-approvals$/m, 'a raw act is held for approvals by the rule that names raw acts');
  t.match(dry.stdout, /^rule raw-with-approvals: MATCHED$/m, 'the explanation marks the matching rule');
  t.match(dry.stdout, /^rule sol-approved: after the match/m, 'and the rules after it');
  t.match(dry.stdout, /text: "attest: reserves at block 840000"/, 'and shows what an approver would read');
  t.equal(h.cluster.nodes[0]!.ledger.state().cluster?.opCount, 0, 'a dry run records nothing');

  // The kernels follow the PolicyChanged too (kernel/policy-check.ts): a SOL payment the new
  // document holds for approvals signs once two approvers approved it, the kernels verifying that
  // approval themselves under the new governance epoch before any share.
  const cara = h.client('cara');
  const held = { keyId: 'k', ...(await actTx(cara, 'k', '1000', 'sol-treasury')) };
  const refusedWithout = await submitAs(cara, h.custodian, { opId: 'pay-unapproved', ...held }).then(() => 'admitted', (e: { reason?: string }) => e.reason ?? String(e));
  t.equal(refusedWithout, 'QUORUM_NOT_MET', 'without approvals the payment is refused under the new policy');
  const payment = { keyId: 'k', ...(await actTx(cara, 'k', '1000', 'sol-treasury')) };
  const approval = await cara.proposeDecision(JSON.stringify({ kind: 'ActApproved', opId: rid('pay-approved'), act: { keyId: payment.keyId, kind: payment.kind, tx: toHex(payment.tx) } }));
  await h.approve(approval.cid, ['approver-1', 'approver-2']);
  await submitAs(cara, h.custodian, { opId: 'pay-approved', ...payment, approvalCid: approval.cid });
  const published = await waitAct(cara, rid('pay-approved'), 'Published');
  t.equal(published.state, 'Published', 'with two approvals the kernels sign it and it passes the gate');
  t.equal(published.signatures.length, 1, 'one signature over its one message');

  const missing = join(h.dir, 'missing.json');
  writeFileSync(missing, JSON.stringify({ keyId: 'nope', kind: 'raw', txHex: '00' }));
  const unknown = await h.cli('cara', ['policy', 'test', '--act', missing]);
  t.equal(unknown.code, 3);
  t.match(unknown.stderr, /^UNKNOWN_KEY: no key nope/m);
  const malformed = join(h.dir, 'malformed.json');
  writeFileSync(malformed, JSON.stringify({ keyId: 'k', kind: 'raw', txHex: '00', txFile: 'x' }));
  const both = await h.cli('cara', ['policy', 'test', '--act', malformed]);
  t.equal(both.code, 3);
  t.match(both.stderr, /^INVALID_ARGUMENT: .*give exactly one of txHex and txFile/m);

  const help = await h.cli('audra', ['policy', '--help']);
  for (const c of ['show', 'diff', 'propose', 'review', 'test']) t.match(help.stdout, new RegExp(`policy ${c}\\s+\\S`), `--help explains policy ${c}`);
  const testHelp = await h.cli('audra', ['policy', 'test', '--help']);
  t.match(testHelp.stdout, /--act\s+JSON file \{"keyId", "kind"/, 'policy test --help explains the act file');
});
