/**
 * No response type can carry a share, nonce or presign secret (DESIGN.md §4). The test walks
 * every message reachable from `Response` in proto/kernel.proto and checks (1) no field name
 * suggests secret material, and (2) every bytes field is on an audited list of public values —
 * a new bytes field fails here until someone decides it is public and says why.
 */
import t from 'tap';
import protobuf from 'protobufjs';
import { schema } from '../../kernel/wire.js';

/** Public bytes in responses, each with the reason it is public. */
const PUBLIC_BYTES: Record<string, string> = {
  'StatusReply.transport_public_key': 'X25519 public key (RFC 9180 pkR)',
  'KeyInfo.group_public_key': 'the group verifying key',
  'Round1Package.commitment': 'VSS commitment points (RFC 9591 App. C.2), public by design',
  'Round1Package.proof_of_knowledge': 'Schnorr proof of knowledge, public',
  'SealedPackage.enc': 'HPKE encapsulated key (RFC 9180 §4), public',
  'SealedPackage.ciphertext': 'HPKE ciphertext to another kernel: the only way a share travels',
  'PublicPackage.commitments': 'group commitment points, public',
  'VerifyingShare.point': 'verifying share s_i·G, public',
  'RedealDealtReply.commitments': 'redeal commitment points, public',
  'NonceCommitment.hiding': 'hiding nonce commitment point D_i = d_i·G, public (§5.1)',
  'NonceCommitment.binding': 'binding nonce commitment point E_i = e_i·G, public (§5.1)',
  'SignatureSharesReply.sig_shares': 'signature shares z_i, one per message, public output of §5.2',
  'ShareBackupReply.file': 'an age file to the custodians of the verified BackupPolicy: the share only inside its encrypted payload (kernel/backup.ts)',
  'ShareBackupReply.recipients_digest': 'digest of the decided recipient list, public',
};

const SECRETISH = /(signing_?share|secret|private|coefficient|presign|seed|password|pin\b|(^|_)nonce(s)?($|_)(?!commitment))/i;

function walk(type: protobuf.Type, seen: Set<string>, out: { path: string; field: protobuf.Field }[]): void {
  if (seen.has(type.fullName)) return;
  seen.add(type.fullName);
  for (const f of type.fieldsArray) {
    f.resolve();
    out.push({ path: `${type.name}.${f.name}`, field: f });
    if (f.resolvedType instanceof protobuf.Type) walk(f.resolvedType, seen, out);
  }
}

t.test('no response message can carry secret material', async (t) => {
  const fields: { path: string; field: protobuf.Field }[] = [];
  walk(schema.lookupType('custody.kernel.v1.Response'), new Set(), fields);
  t.ok(fields.length > 30, `walked ${fields.length} response fields`);
  for (const { path, field } of fields) {
    const snake = path.split('.')[1]!.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    t.notOk(SECRETISH.test(snake), `${path} does not name secret material`);
    if (field.type === 'bytes') t.ok(PUBLIC_BYTES[path.replace(/\.[^.]+$/, '.') + snake] !== undefined, `${path} is an audited public bytes field`);
  }
  const listed = Object.keys(PUBLIC_BYTES);
  const bytesPaths = fields.filter((f) => f.field.type === 'bytes').map((f) => f.path.replace(/\.([^.]+)$/, (_, n: string) => `.${n.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`));
  t.same(bytesPaths.sort(), listed.sort(), 'the audited list matches the schema exactly');
});

t.test('the check would catch a secret field', async (t) => {
  for (const name of ['signing_share', 'hiding_nonce', 'nonces', 'secret_key', 'coefficients', 'presign_blob']) {
    t.ok(SECRETISH.test(name), `${name} is flagged`);
  }
  for (const name of ['sig_share', 'commitments_available', 'hiding', 'binding', 'nonce_commitment']) {
    t.notOk(SECRETISH.test(name), `${name} is not flagged`);
  }
});
