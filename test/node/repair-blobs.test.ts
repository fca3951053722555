/**
 * The peer exchange's keys of a share repair (node/lifecycle/repair.ts repairKeys): each blob is
 * its author's own (peer.ts blobAuthor), so a peer can put only its own deltas, sums and public
 * package, and only the target its transport-key statement; any other form names no author and is
 * refused BLOB_KEY_FOREIGN.
 */
import t from 'tap';
import { blobAuthor } from '../../node/lifecycle/peer.js';
import { repairKeys } from '../../node/lifecycle/repair.js';

const cid = new Uint8Array(32).fill(0xab);
const k = repairKeys({ keyId: 'k/with/slashes', keyEpoch: 3, nodeId: 'n3', decisionCid: cid });

t.test('each repair blob names its author', async (t) => {
  t.equal(blobAuthor(k.delta('n1', 'n2')), 'n1', 'a delta is its sender\'s');
  t.equal(blobAuthor(k.sum('n2')), 'n2', 'a sum is its sender\'s');
  t.equal(blobAuthor(k.public('n1')), 'n1', 'a public package is its publisher\'s');
  t.equal(blobAuthor(k.target), 'n3', 'the target statement is the target\'s');
});

t.test('other forms name no author: nobody can put them', async (t) => {
  const base = `repair/k1/0/n3/${'ab'.repeat(32)}`;
  for (const key of [
    `${base}/target/n1`, // a target statement under another node's name
    `${base}/delta/n1`, `${base}/sum/n1/n2`, `${base}/public`, `${base}/other/n1`,
    `repair/k1/0/n3/${'ab'.repeat(31)}/sum/n1`, `repair/k1/0/n3/${'AB'.repeat(32)}/sum/n1`, `repair/k1/x/n3/${'ab'.repeat(32)}/sum/n1`,
    `repair/k1/0/${'ab'.repeat(32)}/sum/n1`, `../${base}/sum/n1`,
  ]) t.equal(blobAuthor(key), null, `no author: ${key}`);
});
