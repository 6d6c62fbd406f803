# The sandbox's launcher. runner.py runs it as `python -I -S -B -c <this file> <plan JSON>`; it is
# trusted code that never runs anything of the candidate's itself, and compound never imports it.
# The plan (isolation.py builds it) says what to mount and which program to exec at the end.
#
# "namespaces" mode, three processes:
#   P0 (this process, a child of the runner): unshares user, mount, PID, network, IPC and UTS
#      namespaces. Under root a helper forked beforehand (still outside) maps uid/gid 0 and the
#      unprivileged uid onto themselves; otherwise P0 maps its own uid. P0 forks P1, then waits for P1
#      to end or for the runner's lifeline pipe to close (timeout, runner gone), and SIGKILLs P1 if so.
#   P1 (pid 1 of the new PID namespace, a tiny init): forbids nested user namespaces, builds the fresh root (a small read-only tmpfs,
#      read-only binds of only the listed host paths, empty masks over what must stay hidden, /dev
#      nodes, a size-limited tmpfs at the work dir), pivots into it, detaches the host's root, forks P2,
#      reaps every process until P2 ends, writes P2's wait status on the status pipe and exits: the
#      kernel then kills everything left in the namespace before P0 sees P1 end.
#   P2: rlimits, the unprivileged uid, no_new_privs, fds 0-3 only, then exec of the harness.
# "plain" mode (this machine refuses namespaces): P0 sets the rlimits, drops to the unprivileged uid
#   when root (or, where that uid cannot run the interpreter, empties the capability bounding set),
#   and execs the harness in a host work dir; the runner kills its process group.
#
# Any setup failure is one JSON line {"error": ...} on the status pipe and exit code 125.

import ctypes
import json
import os
import resource
import select
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 4096, 8192, 16384, 1 << 18
MNT_DETACH = 2
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC = 1, 2, 4, 8
AT_FDCWD = -100
SYS_MOUNT_SETATTR = 442  # the same number on every architecture (Linux >= 5.12)
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine)  # else: MS_MOVE + chroot
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
STATUS_FD = None


class SetupError(Exception):
    pass


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


LINUX = sys.platform.startswith("linux")  # elsewhere only plain mode, without prctl
libc = ctypes.CDLL(None, use_errno=True)
if LINUX:
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    libc.unshare.argtypes = [ctypes.c_int]
    libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def check(rc, what):
    if rc != 0:
        errno = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(errno)}")


def report(payload):
    if STATUS_FD is not None:
        try:
            os.write(STATUS_FD, (json.dumps(payload) + "\n").encode())
        except OSError:
            pass


def fail(message):
    report({"error": message})
    os._exit(125)


def write_file(path, text):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def encode(text):
    return None if text is None else os.fsencode(text)


def mount(source, target, fstype, flags, data, what):
    check(libc.mount(encode(source), encode(target), encode(fstype), flags, encode(data)), what)


def set_attrs(target, attrs, what):
    """Read-only, nosuid, nodev (noexec) on one mount; the old remount way before Linux 5.12."""
    attr = MountAttr(attrs, 0, 0, 0)
    path = os.fsencode(target)
    if libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, path, 0, ctypes.byref(attr), ctypes.sizeof(attr)) == 0:
        return
    flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
    flags |= MS_NOEXEC if attrs & MOUNT_ATTR_NOEXEC or os.statvfs(target).f_flag & os.ST_NOEXEC else 0
    mount(None, target, None, flags, None, what)


def make_mountpoint(path, is_dir):
    if is_dir:
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))


def build_root(plan):
    """The fresh root, built under plan["root"] (an empty host directory), then pivoted into."""
    root = plan["root"]

    def inside(path):  # every inside path is absolute
        return root + path

    mount(None, "/", None, MS_REC | MS_PRIVATE, None, "make the mounts private")
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=256k,nr_inodes=512,mode=0755", "mount the root tmpfs")
    for source, target in plan["binds"]:
        make_mountpoint(inside(target), os.path.isdir(source))
        mount(source, inside(target), None, MS_BIND, None, f"bind {source}")
        set_attrs(inside(target), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, f"read-only {source}")
    for target, link in plan["symlinks"]:
        os.makedirs(os.path.dirname(inside(link)), exist_ok=True)
        os.symlink(target, inside(link))
    for device in plan["devices"]:
        make_mountpoint(inside(device), False)
        mount(device, inside(device), None, MS_BIND, None, f"bind {device}")
        set_attrs(inside(device), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, f"nosuid {device}")
    for mask in plan["masks"]:
        if os.path.isdir(inside(mask)):
            options = "size=4k,nr_inodes=2,mode=0555"
            mount("tmpfs", inside(mask), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, options, f"mask {mask}")
    work = inside(plan["cwd"])
    os.makedirs(work, exist_ok=True)
    mount("tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV, plan["tmpfs"], "mount the work tmpfs")
    set_attrs(root, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, "read-only root")
    os.chdir(root)
    if SYS_PIVOT_ROOT is not None:
        check(libc.syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
        check(libc.umount2(b".", MNT_DETACH), "detach the host root")
    else:  # no pivot_root number known: move the new root over / and chroot (no caps to undo it later)
        mount(root, "/", None, MS_MOVE, None, "move the new root")
        os.chroot(".")
    os.chdir("/")


def exec_candidate(plan):
    """P2 (or P0 in plain mode): limits, identity, fds 0-3, exec. Never returns."""
    try:
        os.dup2(plan["fds"]["result"], 3)
        os.set_inheritable(3, True)
        for fd in plan["fds"].values():  # the only inheritable ones (Python opens fds close-on-exec)
            if fd > 3:
                os.close(fd)
        os.closerange(4, 1 << 16)
        for res, soft, hard in plan["rlimits"]:
            resource.setrlimit(res, (soft, hard))
        if plan["uid"] is not None:
            if plan.get("setgroups", True):
                os.setgroups([])
            os.setresgid(plan["gid"], plan["gid"], plan["gid"])
            os.setresuid(plan["uid"], plan["uid"], plan["uid"])
        if LINUX:
            check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        if LINUX and plan.get("drop_capabilities"):  # plain mode as root: uid 0, but no capability after exec
            with open("/proc/sys/kernel/cap_last_cap") as handle:
                last = int(handle.read())
            for cap in range(last + 1):
                check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
        os.chdir(plan["cwd"])
        os.execve(plan["argv"][0], plan["argv"], plan["env"])
    except BaseException as exc:  # noqa: BLE001 - whatever broke, the candidate did not run
        try:
            os.write(2, f"sandbox: could not start the candidate: {exc}\n".encode())
        finally:
            os._exit(126)


def init(plan, parent_alive):
    """P1: pid 1 of the namespace."""
    check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "parent-death signal")
    if select.select([parent_alive], [], [], 0)[0]:
        os._exit(1)  # P0 is already gone
    os.close(parent_alive)
    hostname = b"sandbox"
    check(libc.sethostname(hostname, len(hostname)), "set the host name")
    # No nested user namespace: in one the candidate could mount a tmpfs without the quota.
    write_file("/proc/sys/user/max_user_namespaces", "0")
    build_root(plan)
    child = os.fork()
    if child == 0:
        exec_candidate(plan)
    for fd in (0, 1, 2, plan["fds"]["result"], plan["fds"]["lifeline"]):
        os.close(fd)
    while True:  # reap everything; P2's end is the end of the namespace
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == child:
            report({"exit": status})
            os._exit(0)


def map_ids(plan):
    """Unshare the namespaces and give the new user namespace its uid/gid maps."""
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    me = os.getpid()
    if plan["map"] == "root":
        # Only a process outside the new namespace may map ids other than its own: fork it first.
        go_r, go_w = os.pipe()
        helper = os.fork()
        if helper == 0:
            os.close(go_w)
            if os.read(go_r, 1) != b"1":
                os._exit(0)  # unshare failed; P0 reports it
            try:
                write_file(f"/proc/{me}/uid_map", f"0 0 1\n{plan['uid']} {plan['uid']} 1\n")
                write_file(f"/proc/{me}/gid_map", f"0 0 1\n{plan['gid']} {plan['gid']} 1\n")
                os._exit(0)
            except OSError:
                os._exit(1)
        os.close(go_r)
        try:
            check(libc.unshare(flags), "unshare")
        except SetupError:
            os.write(go_w, b"0")
            os.waitpid(helper, 0)
            raise
        os.write(go_w, b"1")
        os.close(go_w)
        _, status = os.waitpid(helper, 0)
        if status != 0:
            raise SetupError("writing the uid/gid maps of the sandbox's user namespace failed")
    else:
        uid, gid = os.getuid(), os.getgid()
        check(libc.unshare(flags), "unshare")
        write_file("/proc/self/setgroups", "deny")
        write_file("/proc/self/uid_map", f"{uid} {uid} 1\n")
        write_file("/proc/self/gid_map", f"{gid} {gid} 1\n")


def supervise(plan):
    """P0 in namespaces mode."""
    try:
        map_ids(plan)
    except (SetupError, OSError) as exc:
        fail(str(exc))
    alive_r, alive_w = os.pipe()
    first = os.fork()
    if first == 0:
        os.close(alive_w)
        try:
            init(plan, alive_r)
        except (SetupError, OSError) as exc:
            fail(str(exc))
        os._exit(1)
    os.close(alive_r)
    for fd in (0, 1, 2, plan["fds"]["result"]):
        os.close(fd)
    lifeline = plan["fds"]["lifeline"]
    pidfd = os.pidfd_open(first)
    ready, _, _ = select.select([pidfd, lifeline], [], [])
    if pidfd not in ready:  # the runner closed the lifeline: timeout, or the runner is gone
        os.kill(first, signal.SIGKILL)
    os.waitpid(first, 0)  # returns once every process of the namespace is gone
    os._exit(0)


def main():
    global STATUS_FD
    plan = json.loads(sys.argv[1])
    STATUS_FD = plan["fds"].get("status")
    if plan["mode"] == "namespaces":
        supervise(plan)
    exec_candidate(plan)


main()
