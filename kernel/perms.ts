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
import { mkdirSync, statSync } from 'node:fs';
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
