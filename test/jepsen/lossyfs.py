#!/usr/bin/python3
"""
lossyfs: a FUSE file system for tests that loses what was not fsynced when its process dies.

  /usr/bin/python3 test/jepsen/lossyfs.py BACKING MOUNTPOINT

Mounts MOUNTPOINT as a pass-through view of the directory BACKING, with one difference: file data
written through the mount reaches BACKING only when the file is fsynced. Until then it lives in
this process's memory, the model of the operating system's page cache. Killing this process
(SIGKILL) is the power cut: the memory is gone, BACKING holds exactly what was synced, and a new
lossyfs mounted on BACKING shows the disk as it would be after the machine came back. kill -9 of a
program that writes through the mount keeps its unsynced writes (they are in our memory, as in
the kernel's page cache), so kill -9 of the program alone cannot show a missing fsync; the power
cut can.

The model is LazyFS (Ramos, Azevedo, Neves, Paulo, "When Amnesia Strikes: Understanding and
Reproducing Data Loss Bugs with Fault Injection", VLDB 2024): a FUSE layer with its own page cache
whose unsynced pages are dropped on a simulated crash. Which bugs that exposes is the question of
ALICE (Pillai et al., "All File Systems Are Not Created Equal", OSDI 2014): an application is
crash-consistent only if it orders its fsyncs so that every state a crash can leave is one it
recovers from.

File data (per file, keyed by the backing inode, so it follows the file through a rename):
  write      goes to the file's pending pages (4 KiB, loaded from BACKING on first touch) and
             grows its pending size; reads see it (read-your-writes), getattr reports the size;
  truncate   (and open with O_TRUNC) sets the pending size: the pages past it are dropped, and
             bytes past the smallest size truncated to since the last sync read as zeros;
  fsync,     (fdatasync alike) write the file's pending pages and size to BACKING, after which
             the file has nothing pending. Only the file synced: another file's pages stay pending;
  close      is NOT a sync (nor is flush): a closed file keeps its pending pages until it is
             fsynced through a later handle, the mount is unmounted cleanly, or the power is cut;
  unmount    a clean unmount (fusermount -u, SIGTERM) writes every pending page, as an orderly
             shutdown's sync would; only SIGKILL of this process loses them.

Metadata (create, mkdir, rename, link, unlink, rmdir, chmod, utimens) is applied to BACKING at once
(an open file's unlink too: mounted with hard_remove, no .fuse_hidden name is left behind),
so it is durable the moment it returns; directory fsync is accepted and does nothing. That is
stronger than a real file system, where a rename or a new file's directory entry may be lost
without an fsync of the directory, so this layer cannot show a missing directory fsync. It is
still the failure that matters most for a store: LevelDB's correctness (and ours on top of it)
rests on fsyncing a file's data before the rename or manifest record that makes it live. Here a
rename of a file whose data was never synced survives the cut with the data gone, exactly the
state ALICE shows such a program meeting (the "rename without fsync" pattern): the file is live
and empty or torn.

What is not modelled: torn or reordered writes inside one file's pending pages (all of a file's
unsynced data is lost together, none partly), and the loss of BACKING's own data: BACKING is the
disk, and the host's own durability is not in question (no fsync of BACKING is done).

Prints "lossyfs: mounted BACKING on MOUNTPOINT" on stdout once the mount serves requests. Dies with
its parent (PR_SET_PDEATHSIG, SIGTERM: the mount is left cleanly). For tests only: it serves one
user (root), keeps every pending byte in memory, and runs single-threaded.
"""
import ctypes
import errno
import os
import signal
import stat
import sys

try:
    import fusepy as fuse  # Debian's python3-fusepy names the module fusepy
except ImportError:  # pragma: no cover - upstream fusepy names it fuse
    import fuse

PAGE = 4096


class Pending:
    """The unsynced state of one file: its pages written since the last sync, and its size."""

    __slots__ = ('fd', 'size', 'floor', 'pages')

    def __init__(self, fd, size):
        # Our own descriptor of the backing file: the inode stays alive (its number is not reused)
        # while pending data refers to it, and a clean unmount can write it without a path.
        self.fd = fd
        self.size = size
        # Bytes at or past `floor` that are in no pending page read as zeros: a truncate below the
        # backing file's size since the last sync made them so, whatever BACKING still holds there.
        self.floor = size
        self.pages = {}

    def _backing(self, start, end):
        """Bytes [start, end) as BACKING holds them below `floor`, zeros past it."""
        out = bytearray(end - start)
        lim = min(end, self.floor)
        if lim > start:
            got = os.pread(self.fd, lim - start, start)
            out[0:len(got)] = got
        return out

    def read(self, offset, size):
        end = min(offset + size, self.size)
        if end <= offset:
            return b''
        out = bytearray()
        pos = offset
        while pos < end:
            p = pos // PAGE
            pend = min((p + 1) * PAGE, end)
            page = self.pages.get(p)
            if page is not None:
                out += page[pos - p * PAGE:pend - p * PAGE]
            else:
                out += self._backing(pos, pend)
            pos = pend
        return bytes(out)

    def write(self, data, offset):
        pos = offset
        end = offset + len(data)
        while pos < end:
            p = pos // PAGE
            base = p * PAGE
            page = self.pages.get(p)
            if page is None:
                page = self._backing(base, base + PAGE)
                self.pages[p] = page
            pend = min(base + PAGE, end)
            page[pos - base:pend - base] = data[pos - offset:pend - offset]
            pos = pend
        self.size = max(self.size, end)

    def truncate(self, length):
        if length < self.size:
            for p in [p for p in self.pages if p * PAGE >= length]:
                del self.pages[p]
            tail = self.pages.get(length // PAGE)
            if tail is not None:
                cut = length - (length // PAGE) * PAGE
                tail[cut:] = bytes(PAGE - cut)
            self.floor = min(self.floor, length)
        self.size = length

    def sync(self):
        """Writes the pending pages and size to BACKING."""
        os.ftruncate(self.fd, self.floor)
        for p in sorted(self.pages):
            base = p * PAGE
            os.pwrite(self.fd, bytes(self.pages[p][:max(0, min(PAGE, self.size - base))]), base)
        os.ftruncate(self.fd, self.size)


class LossyFS(fuse.Operations):
    use_ns = True

    def __init__(self, backing, mountpoint):
        self.backing = os.path.realpath(backing)
        self.mountpoint = mountpoint
        self.pending = {}   # (st_dev, st_ino) -> Pending
        self.handles = {}   # fh -> (fd, key)
        self.open_count = {}  # key -> handles open
        self.next_fh = 1

    def _p(self, path):
        return os.path.join(self.backing, path.lstrip('/'))

    @staticmethod
    def _key(st):
        return (st.st_dev, st.st_ino)

    def _pending_for(self, fd, key):
        pend = self.pending.get(key)
        if pend is None:
            pend = Pending(os.dup(fd), os.fstat(fd).st_size)
            self.pending[key] = pend
        return pend

    def _drop_if_gone(self, key):
        """Forgets a file's pending data once no name and no handle refers to it."""
        pend = self.pending.get(key)
        if pend is None or self.open_count.get(key, 0) > 0:
            return
        if os.fstat(pend.fd).st_nlink == 0:
            os.close(pend.fd)
            del self.pending[key]

    # -- lifecycle --------------------------------------------------------------------------------
    def init(self, path):
        print(f'lossyfs: mounted {self.backing} on {self.mountpoint}', flush=True)

    def destroy(self, path):
        # A clean unmount is an orderly shutdown: what was written reaches the disk.
        for pend in self.pending.values():
            pend.sync()
            os.close(pend.fd)
        self.pending.clear()

    # -- metadata: applied to BACKING at once ---------------------------------------------------
    def getattr(self, path, fh=None):
        st = os.fstat(self.handles[fh][0]) if fh in self.handles else os.lstat(self._p(path))
        attrs = {k: getattr(st, k) for k in ('st_mode', 'st_nlink', 'st_uid', 'st_gid', 'st_size', 'st_blocks')}
        attrs.update(st_atime=st.st_atime_ns, st_mtime=st.st_mtime_ns, st_ctime=st.st_ctime_ns)
        if stat.S_ISREG(st.st_mode):
            pend = self.pending.get(self._key(st))
            if pend is not None:
                attrs['st_size'] = pend.size
                attrs['st_blocks'] = (pend.size + 511) // 512
        return attrs

    def readdir(self, path, fh):
        return ['.', '..'] + os.listdir(self._p(path))

    def readlink(self, path):
        return os.readlink(self._p(path))

    def statfs(self, path):
        sv = os.statvfs(self._p(path))
        return {k: getattr(sv, k) for k in ('f_bavail', 'f_bfree', 'f_blocks', 'f_bsize', 'f_favail',
                                            'f_ffree', 'f_files', 'f_flag', 'f_frsize', 'f_namemax')}

    def access(self, path, amode):
        if not os.access(self._p(path), amode):
            raise fuse.FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        os.chmod(self._p(path), mode)

    def chown(self, path, uid, gid):
        os.lchown(self._p(path), uid, gid)

    def utimens(self, path, times=None):
        if times is None:
            os.utime(self._p(path))
        else:
            os.utime(self._p(path), ns=times)

    def mkdir(self, path, mode):
        os.mkdir(self._p(path), mode)

    def rmdir(self, path):
        os.rmdir(self._p(path))

    def mknod(self, path, mode, dev):
        os.mknod(self._p(path), mode, dev)

    def symlink(self, target, source):
        os.symlink(source, self._p(target))

    def link(self, target, source):
        os.link(self._p(source), self._p(target))

    def unlink(self, path):
        st = os.lstat(self._p(path))
        os.unlink(self._p(path))
        self._drop_if_gone(self._key(st))

    def rename(self, old, new):
        try:
            replaced = self._key(os.lstat(self._p(new)))
        except FileNotFoundError:
            replaced = None
        os.rename(self._p(old), self._p(new))
        if replaced is not None:
            self._drop_if_gone(replaced)

    def fsyncdir(self, path, datasync, fh):
        return 0

    # -- file data: pending until fsync -----------------------------------------------------------
    def _open_backing(self, path, flags):
        fd = os.open(self._p(path), os.O_RDWR)
        key = self._key(os.fstat(fd))
        fh = self.next_fh
        self.next_fh += 1
        self.handles[fh] = (fd, key)
        self.open_count[key] = self.open_count.get(key, 0) + 1
        if flags & os.O_TRUNC:
            self._pending_for(fd, key).truncate(0)
        return fh

    def open(self, path, flags):
        return self._open_backing(path, flags)

    def create(self, path, mode, fi=None):
        # The new, empty file is metadata: durable at once.
        os.close(os.open(self._p(path), os.O_WRONLY | os.O_CREAT, mode))
        return self._open_backing(path, 0)

    def read(self, path, size, offset, fh):
        fd, key = self.handles[fh]
        pend = self.pending.get(key)
        if pend is None:
            return os.pread(fd, size, offset)
        return pend.read(offset, size)

    def write(self, path, data, offset, fh):
        fd, key = self.handles[fh]
        self._pending_for(fd, key).write(data, offset)
        return len(data)

    def truncate(self, path, length, fh=None):
        if fh is not None and fh in self.handles:
            fd, key = self.handles[fh]
            self._pending_for(fd, key).truncate(length)
            return
        fd = os.open(self._p(path), os.O_RDWR)
        try:
            self._pending_for(fd, self._key(os.fstat(fd))).truncate(length)
        finally:
            os.close(fd)

    def fsync(self, path, datasync, fh):
        fd, key = self.handles[fh]
        pend = self.pending.pop(key, None)
        if pend is not None:
            pend.sync()
            os.close(pend.fd)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        fd, key = self.handles.pop(fh)
        self.open_count[key] -= 1
        if self.open_count[key] == 0:
            del self.open_count[key]
        os.close(fd)
        self._drop_if_gone(key)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__.split('\n\n')[1] + '\n')
        return 2
    backing, mountpoint = argv[1], argv[2]
    if not os.path.isdir(backing) or not os.path.isdir(mountpoint):
        sys.stderr.write(f'lossyfs: {backing} and {mountpoint} must be directories\n')
        return 2
    # PR_SET_PDEATHSIG (1): a SIGTERM when the parent dies, on which libfuse leaves the mount.
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    if os.getppid() == 1:
        return 1
    fuse.FUSE(LossyFS(backing, mountpoint), mountpoint, foreground=True, nothreads=True, big_writes=True,
              fsname='lossyfs', subtype='lossyfs', default_permissions=True, hard_remove=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
