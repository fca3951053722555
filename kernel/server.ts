/**
 * The kernel's socket: a Unix stream socket in a 0700 folder, itself 0600 (or, shared with a
 * group, 0660 in a 0750 folder of that group: kernel/perms.ts), carrying length-prefixed frames
 * (kernel/wire.ts). The only file in kernel/ that touches sockets.
 *
 * Every bad input gets an answer with a reason code and the kernel keeps serving:
 *   FRAME_TOO_LARGE   a header announces more than limits.kernel.frameBytesMax; answered at
 *                     once (nothing of the body is buffered), then that connection is closed,
 *                     because its framing can no longer be trusted;
 *   FRAME_MALFORMED   a frame that is not a Request, or a stream that ends inside a frame;
 *                     the connection stays usable after the former;
 *   PAYLOAD_REJECTED  a Request that fails validation (kernel/wire.ts, kernel/kernel.ts).
 */
import { chmodSync, chownSync, lstatSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { CustodyError, isCustodyError } from '../proto/errors.js';
import { kernel as limits } from '../proto/limits.js';
import type { CrashPoint, Kernel } from './kernel.js';
import { groupMembers, socketBoundary } from './perms.js';
import { FrameDecoder, decodeRequest, encodeResponse, frame, type ResponseBody } from './wire.js';

export interface ServerOptions {
  socketPath: string;
  /** Share the socket with this group: folder 0750 and socket 0660, both of the group. */
  socketGid?: number;
  kernel: Kernel;
  crashPoint?: (p: CrashPoint) => void;
  log?: (line: string) => void;
}

/**
 * Creates the socket folder 0700 (an existing one must belong to this user; it is set to 0700),
 * owned by group `gid` if given. The folder opens to the group (0750) only once the socket in it
 * is the group's (serve), so a client of the group never meets a socket it may not use yet.
 */
function socketDir(dir: string, gid: number | undefined): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  if (!st.isDirectory()) throw new CustodyError('CONFIG_INVALID', `${dir} is not a folder`);
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) throw new CustodyError('CONFIG_INVALID', `${dir} belongs to another user`);
  if ((st.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
  if (gid !== undefined && st.gid !== gid) giveToGroup(dir, st.uid, gid);
}

function giveToGroup(path: string, uid: number, gid: number): void {
  try {
    chownSync(path, uid, gid);
  } catch (e) {
    throw new CustodyError('CONFIG_INVALID', `socketGroup: cannot give ${path} to group ${gid} (${(e as NodeJS.ErrnoException).code}): the kernel's user must be a member of that group`, { cause: e });
  }
}

function removeStaleSocket(path: string): void {
  try {
    const st = lstatSync(path);
    if (!st.isSocket()) throw new CustodyError('CONFIG_INVALID', `${path} exists and is not a socket`);
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

export async function serve(o: ServerOptions): Promise<Server> {
  socketDir(dirname(o.socketPath), o.socketGid);
  removeStaleSocket(o.socketPath);
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  let connections = 0;

  const server = createServer({ allowHalfOpen: true }, (sock: Socket) => {
    if (connections >= limits.connectionsMax) {
      sock.end(frame(encodeResponse({ callId: 0, body: { kind: 'error', reason: 'LIMIT_EXCEEDED', detail: 'too many connections' } })));
      return;
    }
    connections++;
    const decoder = new FrameDecoder(limits.frameBytesMax);
    let chain: Promise<void> = Promise.resolve();
    let closing = false;
    let backlog = 0;

    const send = (callId: number, body: ResponseBody): Promise<void> =>
      new Promise((resolve) => {
        if (sock.destroyed || !sock.writable) return resolve();
        sock.write(frame(encodeResponse({ callId, body })), () => resolve());
      });

    const handleFrame = async (payload: Buffer): Promise<void> => {
      let callId = 0;
      try {
        const req = decodeRequest(payload);
        callId = req.callId;
        const res = await o.kernel.handle(req.body);
        await send(callId, res);
        if (res.kind === 'signatureShares') o.crashPoint?.('sign:replied');
      } catch (e) {
        if (isCustodyError(e)) {
          const id = (e as CustodyError & { callId?: number }).callId ?? callId;
          await send(id, { kind: 'error', reason: e.reason, detail: e.detail });
          return;
        }
        if (e instanceof Error && e.message.startsWith('assertion failed')) throw e; // a bug: crash (TigerBeetle style)
        log(`kernel: internal error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
        await send(callId, { kind: 'error', reason: 'INTERNAL', detail: 'internal error' });
      }
    };

    sock.on('data', (chunk: Buffer) => {
      if (closing) return;
      for (const ev of decoder.push(chunk)) {
        if (ev.kind === 'tooLarge') {
          closing = true;
          chain = chain.then(async () => {
            await send(0, { kind: 'error', reason: 'FRAME_TOO_LARGE', detail: `frame of ${ev.announced} bytes exceeds ${limits.frameBytesMax}` });
            sock.end();
          });
          return;
        }
        // A client that pipelines faster than the kernel answers is cut off at the bound rather
        // than buffered without limit.
        if (++backlog > limits.queuedRequestsMax) {
          closing = true;
          chain = chain.then(async () => {
            await send(0, { kind: 'error', reason: 'LIMIT_EXCEEDED', detail: `more than ${limits.queuedRequestsMax} requests queued on one connection` });
            sock.end();
          });
          return;
        }
        const payload = Buffer.from(ev.payload);
        chain = chain.then(() => handleFrame(payload)).finally(() => {
          backlog--;
        });
      }
    });
    sock.on('end', () => {
      chain = chain.then(async () => {
        if (!closing && decoder.pending > 0) await send(0, { kind: 'error', reason: 'FRAME_MALFORMED', detail: `the stream ended inside a frame (${decoder.pending} bytes pending)` });
        sock.end();
      });
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      connections--;
    });
  });

  const umask = process.umask(o.socketGid === undefined ? 0o177 : 0o117);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(o.socketPath, () => resolve());
    });
  } finally {
    process.umask(umask);
  }
  if (o.socketGid !== undefined) giveToGroup(o.socketPath, statSync(o.socketPath).uid, o.socketGid);
  chmodSync(o.socketPath, o.socketGid === undefined ? 0o600 : 0o660);
  if (o.socketGid !== undefined) chmodSync(dirname(o.socketPath), 0o750);
  // Who may connect is decided by the file system (kernel/perms.ts socketBoundary): check it is
  // exactly what was asked for before serving anyone, and say who the group admits.
  try {
    socketBoundary(o.socketPath, dirname(o.socketPath), typeof process.getuid === 'function' ? process.getuid() : statSync(o.socketPath).uid, o.socketGid);
  } catch (e) {
    server.close();
    throw e;
  }
  if (o.socketGid !== undefined) {
    const members = groupMembers(o.socketGid);
    log(`kernel: socket ${o.socketPath} admits its own user, root and group ${o.socketGid}: ${members === null ? 'members unknown (getent failed)' : members.length === 0 ? 'no members' : members.join(', ')}`);
  }
  return server;
}
