/**
 * `custody certs ...`: the cluster CA and the node, operator and client certificates that mutual
 * TLS on the peer and client ports requires.
 */
import type { CommandModule } from 'yargs';
import { ensureCa, issue, signRequest } from '../certs.js';
import { checkOperatorDays } from '../admin/roles.js';
import { certs as certLimits } from '../../proto/limits.js';

interface Common {
  dir: string;
}

const ca: CommandModule<object, Common & { name: string; days: number }> = {
  command: 'ca',
  describe: 'create the cluster CA (ca.crt, ca.key) in --dir; an existing CA is kept',
  builder: (y) =>
    y
      .option('dir', { type: 'string', demandOption: true, describe: 'directory holding the CA and issued certificates' })
      .option('name', { type: 'string', default: 'custody cluster CA', describe: 'CA subject common name' })
      .option('days', { type: 'number', default: 3650, describe: 'validity in days' }) as never,
  handler: (a) => {
    const r = ensureCa(a.dir, a.name, a.days);
    process.stdout.write(`${r.created ? 'created' : 'kept existing'} CA: ${r.cert}\n`);
  },
};

function leaf(role: 'node' | 'operator' | 'client', describe: string): CommandModule<object, Common & { id: string; host: string[]; days: number; force: boolean }> {
  return {
    command: role,
    describe,
    builder: (y) =>
      y
        .option('dir', { type: 'string', demandOption: true, describe: 'directory holding ca.crt and ca.key' })
        .option('id', { type: 'string', demandOption: true, describe: role === 'node' ? 'node id (as in the cluster roster)' : `${role} name` })
        .option('host', { type: 'string', array: true, default: [], describe: 'extra subjectAltName: an IP address or DNS name the holder is reached at (repeatable)' })
        .option('days', role === 'operator'
          ? { type: 'number', default: certLimits.operatorDaysDefault, describe: `validity in days (at most ${certLimits.operatorDaysMax}); rotate with --force before it ends` }
          : { type: 'number', default: 825, describe: 'validity in days' })
        .option('force', { type: 'boolean', default: false, describe: 'replace an existing certificate and key (rotation: a new key and serial)' }) as never,
    handler: (a) => {
      if (role === 'operator') checkOperatorDays(a.days);
      const r = issue(a.dir, role, a.id, a.host, a.days, a.force);
      process.stdout.write(`${r.created ? 'issued' : 'kept existing'} ${role} certificate ${r.cert} (key ${r.key})\n`);
    },
  };
}

const sign: CommandModule<object, Common & { csr: string; out?: string; days: number; force: boolean }> = {
  command: 'sign',
  describe: 'on the CA host: turn a node\'s certificate request (from `custody init node`) into its certificate, signed by the CA in --dir',
  builder: (y) =>
    y
      .option('dir', { type: 'string', demandOption: true, describe: 'directory holding ca.crt and ca.key' })
      .option('csr', { type: 'string', demandOption: true, describe: 'the request, <id>.csr: subject O=custody, OU=node, CN=<node id>; its DNS and IP subjectAltNames are kept' })
      .option('out', { type: 'string', describe: 'where to write the certificate (default: beside the request, <id>.crt)' })
      .option('days', { type: 'number', default: 825, describe: 'validity in days' })
      .option('force', { type: 'boolean', default: false, describe: 'replace an existing certificate file' })
      .epilogue('The request\'s self-signature is checked; the certificate gets the CA\'s own extensions (node: serverAuth and clientAuth). Copy it and ca.crt to the node host\'s certs/ folder.') as never,
  handler: (a) => {
    const r = signRequest(a.dir, a.csr, a.out ?? a.csr.replace(/(\.csr)?$/, '.crt'), a.days, a.force);
    process.stdout.write(`signed node certificate ${r.cert} for ${r.id} (subjectAltName ${r.san.join(', ')})\n`);
  },
};

export const certsCommand: CommandModule<object, object> = {
  command: 'certs',
  describe: 'create the cluster CA and node, operator and client certificates (uses the openssl tool)',
  builder: (y) =>
    y
      .command(ca)
      .command(leaf('node', 'issue a node certificate: CN = node id, OU = node, usable for serving and dialling peers'))
      .command(leaf('operator', 'issue an operator certificate: CN = name, OU = operator (client port only)'))
      .command(leaf('client', 'issue a client certificate: CN = name, OU = client (client port only)'))
      .command(sign)
      .demandCommand(1) as never,
  handler: () => {},
};
