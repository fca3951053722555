/**
 * `custody init node`: one host's node, lifecycle and kernel configs, its secrets and its
 * certificate request; `custody init genesis`: the genesis every node is installed with, on the
 * CA host. The procedure is README "Three hosts"; the files and the trust flow are described at
 * the top of node/deploy.ts.
 */
import type { CommandModule } from 'yargs';
import { DEFAULT_PORTS, initNode, makeGenesis } from '../deploy.js';

interface NodeArgs {
  id: string;
  host: string;
  peers: string[];
  out: string;
  'data-dir'?: string;
  'kernel-data-dir'?: string;
  'kernel-socket'?: string;
  'socket-group': string;
  port: number;
  'http-port': number;
  'admin-port': number;
  force: boolean;
}

const node: CommandModule<object, NodeArgs> = {
  command: 'node',
  describe: 'write this host\'s node config, lifecycle config and kernel config, its keys and a certificate request for the CA',
  builder: (y) =>
    y
      .option('id', { type: 'string', demandOption: true, describe: 'this node\'s id, as in every host\'s --peers (1-64 letters, digits, . _ -)' })
      .option('host', { type: 'string', demandOption: true, describe: 'the IP address or DNS name this node listens on and peers reach it at (also in its certificate)' })
      .option('peers', { type: 'string', array: true, demandOption: true, describe: 'every node of the cluster as <id>=<host>, repeated or comma-separated, the same list on every host (this node is added if missing; at least 3 nodes)' })
      .option('out', { type: 'string', demandOption: true, describe: 'the folder to write into (the systemd units expect /etc/custody)' })
      .option('data-dir', { type: 'string', describe: 'the node\'s store (absolute; default /var/lib/custody/<id>)' })
      .option('kernel-data-dir', { type: 'string', describe: 'the kernel\'s sealed store (absolute; default /var/lib/custody-kernel/<id>)' })
      .option('kernel-socket', { type: 'string', describe: 'the kernel\'s Unix socket (absolute; default /run/custody-kernel/kernel.sock)' })
      .option('socket-group', { type: 'string', default: 'custody', describe: 'the node daemon\'s group, which the kernel gives its socket to (0660 in a 0750 folder); "" keeps it private to the kernel\'s user' })
      .option('port', { type: 'number', default: DEFAULT_PORTS.raft, describe: 'Raft and client gRPC port (mutual TLS), the same on every host' })
      .option('http-port', { type: 'number', default: DEFAULT_PORTS.http, describe: 'HTTP port of /metrics /healthz /readyz /status' })
      .option('admin-port', { type: 'number', default: DEFAULT_PORTS.admin, describe: 'admin API and node-to-node lifecycle port (mutual TLS), the same on every host' })
      .option('force', { type: 'boolean', default: false, describe: 'replace files a previous run wrote (new keys: the old certificate and identity no longer match)' })
      .example('$0 init node --id n1 --host 10.0.0.1 --peers n1=10.0.0.1,n2=10.0.0.2,n3=10.0.0.3 --out /etc/custody', 'the first of three hosts')
      .epilogue('Every invalid value is refused with CONFIG_INVALID naming the option; an existing file is never replaced without --force. ' +
        'The private keys (TLS key, identity seed, kernel sealing key) are written 0600 and never leave this host; what goes to the CA host is ' +
        'certs/<id>.csr and the identity public key. The printed next steps, and README "Three hosts", finish the installation.') as never,
  handler: (a) => {
    const r = initNode({
      id: a.id, host: a.host, peers: a.peers, out: a.out, socketGroup: a['socket-group'], port: a.port, httpPort: a['http-port'], adminPort: a['admin-port'], force: a.force,
      ...(a['data-dir'] !== undefined ? { dataDir: a['data-dir'] } : {}),
      ...(a['kernel-data-dir'] !== undefined ? { kernelDataDir: a['kernel-data-dir'] } : {}),
      ...(a['kernel-socket'] !== undefined ? { kernelSocket: a['kernel-socket'] } : {}),
    });
    process.stdout.write(`${r.written.map((p) => `wrote ${p}`).join('\n')}\n\n${r.nextSteps}\n`);
  },
};

interface GenesisArgs {
  out: string;
  node: string[];
  approver: string[];
  security: string[];
  custodian: string[];
  threshold: number;
  'freeze-threshold': number;
  'cluster-id'?: string;
  policy?: string;
  force: boolean;
}

const genesis: CommandModule<object, GenesisArgs> = {
  command: 'genesis',
  describe: 'on the CA host: write genesis.hex, the cluster\'s first event (nodes with their identity keys, approver roster, quorum, act policy)',
  builder: (y) =>
    y
      .option('out', { type: 'string', demandOption: true, describe: 'the file to write (hex of the event\'s canonical CBOR); copy it beside every node\'s config' })
      .option('node', { type: 'string', array: true, demandOption: true, describe: '<id>=<identity public key>: 64 hex digits or the <id>.identity.pub file `init node` wrote (repeatable)' })
      .option('approver', { type: 'string', array: true, demandOption: true, describe: '<id>=<Ed25519 public key>: 64 hex digits (as `custody admin approver-key` prints) or a file holding them; every approver is a governor (repeatable)' })
      .option('security', { type: 'string', array: true, default: [], describe: 'an approver id that also holds the security role (may freeze the cluster) (repeatable)' })
      .option('custodian', { type: 'string', array: true, default: [], describe: '<id>=<Ed25519 public key>: a custodian, who signs act requests (`custody admin approver-key --custodian`); 64 hex digits or a file holding them; never counts toward a quorum (repeatable; without one no act can be submitted until an ApproversChanged decision adds one)' })
      .option('threshold', { type: 'number', default: 2, describe: 'governor signatures a decision needs (at least 2, at most the number of approvers)' })
      .option('freeze-threshold', { type: 'number', default: 1, describe: 'governor or security signatures an emergency freeze needs' })
      .option('cluster-id', { type: 'string', describe: 'the cluster\'s id (default: cluster-<8 random hex digits>)' })
      .option('policy', { type: 'string', describe: 'YAML policy document (ordered rules, first match, default deny; see cluster-configs/policy.genesis.yaml); default: no rules, so every act is refused until a PolicyChanged decision' })
      .option('force', { type: 'boolean', default: false, describe: 'replace an existing --out file' })
      .example('$0 init genesis --out genesis.hex --node n1=n1.identity.pub --node n2=n2.identity.pub --node n3=n3.identity.pub --approver alice=<hex> --approver bob=<hex> --approver carol=<hex> --security carol --custodian cara=<hex>', 'three nodes, three approvers, 2 of 3, one custodian') as never,
  handler: (a) => {
    const r = makeGenesis({
      out: a.out, nodes: a.node, approvers: a.approver, security: a.security, custodians: a.custodian, threshold: a.threshold, freezeThreshold: a['freeze-threshold'], force: a.force,
      ...(a['cluster-id'] !== undefined ? { clusterId: a['cluster-id'] } : {}),
      ...(a.policy !== undefined ? { policyFile: a.policy } : {}),
    });
    const g = r.genesis;
    process.stdout.write(`wrote ${r.path}: genesis of ${g.clusterId} (cid ${r.cid})\n` +
      `  nodes: ${g.nodes.map((n) => n.id).join(', ')}; approvers: ${g.roster.approvers.map((x) => `${x.id} (${x.roles.join(', ')})`).join(', ')}; ` +
      `quorum ${g.roster.quorum.threshold}, freeze ${g.roster.quorum.freezeThreshold}\n` +
      'Copy it to every node host, beside the node config (same file everywhere).\n');
  },
};

export const initCommand: CommandModule<object, object> = {
  command: 'init',
  describe: 'set up a cluster on separate hosts: `init node` on each host, `init genesis` on the CA host (README "Three hosts")',
  builder: (y) => y.command(node).command(genesis).demandCommand(1) as never,
  handler: () => {},
};
