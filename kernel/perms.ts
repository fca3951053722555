/**
 * Who may touch the kernel's files.
 *
 * Secrets (the software key file or passphrase file, the HSM PIN file, the sealed store's folder)
 * must be private to the kernel's user: a secret file or folder with any group or world bit set
 * is refused at start with SECRET_EXPOSED, naming it and the chmod that fixes it. The sealed
 * store holds only sealed blobs, but a readable copy of it is what an offline attack on a
 * passphrase or a rollback by substitution starts from, so its folder is held to the same rule;
 * a store folder that does not exist yet is created 0700.
 *
 * The socket is the one thing shared: by default its folder is 0700 and the socket 0600 (only
 * the kernel's own user, i.e. node and kernel run as one user). With `socketGroup` configured,
 * the folder becomes 0750 and the socket 0660, both owned by that group, so a node daemon
 * running as another user in that group can connect and nobody else can. The kernel's user must
 * be a member of the group (systemd: SupplementaryGroups=) or root to give files to it.
 */
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, statSync } from 'node:fs';
import { CustodyError } from '../proto/errors.js';

/** Refuses `path` (a secret of kind `what`) if its mode has any group or world bit. */
export function refuseExposed(path: string, what: string): void {
  let mode: number;
  let dir: boolean;
  try {
    const st = statSync(path);
    mode = st.mode & 0o777;
    dir = st.isDirectory();
  } catch (e) {
    throw new CustodyError('CONFIG_INVALID', `${what} ${path}: ${(e as Error).message}`, { cause: e });
  }
  if ((mode & 0o077) !== 0) {
    throw new CustodyError('SECRET_EXPOSED', `${what} ${path} has mode ${mode.toString(8).padStart(4, '0')}: its group or other users have access; run \`chmod ${dir ? '700' : '600'} ${path}\``);
  }
}

/** The sealed store's folder: created 0700 when missing, refused when open to others. */
export function privateStoreDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  refuseExposed(dir, 'kernel store folder');
}

/**
 * A group given by name or number, as a gid. Names are resolved through the system's name
 * service (`getent group`), so LDAP or sssd groups work as well as /etc/group.
 */
export function resolveGroup(spec: string | number, field: string): number {
  if (typeof spec === 'number' || /^[0-9]+$/.test(spec)) {
    const gid = Number(spec);
    if (!Number.isSafeInteger(gid) || gid < 0 || gid > 0xfffffffe) throw new CustodyError('CONFIG_INVALID', `${field}: ${spec} is not a group id`);
    return gid;
  }
  if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/.test(spec)) throw new CustodyError('CONFIG_INVALID', `${field}: "${spec}" is not a group name`);
  const r = spawnSync('getent', ['group', spec], { encoding: 'utf8' });
  const gid = r.status === 0 ? Number(r.stdout.split(':')[2]) : NaN;
  if (!Number.isSafeInteger(gid)) throw new CustodyError('CONFIG_INVALID', `${field}: no group named "${spec}" on this system`);
  return gid;
}

/**
 * Who can connect to the kernel's socket, and the check that the file system says so.
 *
 * Node offers no SO_PEERCRED (unix(7)) to read a connecting process's uid, and reading a peer's
 * credentials from /proc/net/unix and /proc/<pid>/status is racy (the pid can exit and be reused;
 * the inode lookup is not tied to the accepted descriptor), so the kernel does not pretend to
 * check a uid per connection. What decides instead is the kernel of the operating system:
 * connect(2) on a Unix socket needs write permission on the socket file and search permission on
 * every directory above it (unix(7), "Pathname socket ownership and permissions"). The kernel makes
 * these exactly: folder owned by the kernel's user with mode 0700 (or 0750 and the socket group),
 * socket 0600 (or 0660 and the socket group), and verifies them after binding (socketBoundary):
 * so the uids that can connect are the kernel's own, the members of the socket group, and root.
 * At start it names the group's members (primary and supplementary), so the operator sees who
 * that is.
 */
export interface SocketBoundary {
  readonly folderMode: number;
  readonly socketMode: number;
  readonly uid: number;
  readonly gid: number;
}

/**
 * Refuses (CONFIG_INVALID) unless the socket and its folder belong to `uid`, to group `gid` when
 * one is shared, and carry exactly the modes that admit nobody else.
 */
export function socketBoundary(socketPath: string, folder: string, uid: number, gid: number | undefined): SocketBoundary {
  const sock = lstatSync(socketPath);
  const dir = lstatSync(folder);
  const want = gid === undefined ? { folder: 0o700, socket: 0o600 } : { folder: 0o750, socket: 0o660 };
  const problems: string[] = [];
  if (!sock.isSocket()) problems.push(`${socketPath} is not a socket`);
  if (!dir.isDirectory()) problems.push(`${folder} is not a folder`);
  if (sock.uid !== uid || dir.uid !== uid) problems.push(`owner uid ${sock.uid}/${dir.uid}, expected ${uid}`);
  if (gid !== undefined && (sock.gid !== gid || dir.gid !== gid)) problems.push(`group ${sock.gid}/${dir.gid}, expected ${gid}`);
  if ((dir.mode & 0o7777) !== want.folder) problems.push(`folder mode ${(dir.mode & 0o7777).toString(8)}, expected ${want.folder.toString(8)}`);
  if ((sock.mode & 0o777) !== want.socket) problems.push(`socket mode ${(sock.mode & 0o777).toString(8)}, expected ${want.socket.toString(8)}`);
  if (problems.length > 0) throw new CustodyError('CONFIG_INVALID', `the kernel socket admits more than its user and group: ${problems.join('; ')}`);
  return { folderMode: dir.mode & 0o7777, socketMode: sock.mode & 0o777, uid, gid: gid ?? dir.gid };
}

/**
 * The user names whose processes the socket group admits: the group's supplementary members and
 * every user whose primary group it is (getent, so LDAP/sssd users count too). Null when the
 * name service cannot be asked.
 */
export function groupMembers(gid: number): string[] | null {
  const g = spawnSync('getent', ['group', String(gid)], { encoding: 'utf8' });
  const p = spawnSync('getent', ['passwd'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (g.status !== 0 || p.status !== 0) return null;
  const supplementary = (g.stdout.trim().split(':')[3] ?? '').split(',').filter((x) => x.length > 0);
  const primary = p.stdout.split('\n').map((l) => l.split(':')).filter((f) => f.length >= 4 && Number(f[3]) === gid).map((f) => f[0] as string);
  return [...new Set([...primary, ...supplementary])].sort();
}
