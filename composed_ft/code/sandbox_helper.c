#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/keyctl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* cft-sandbox [-n] [-u UID -g GID] [-c DIRFD] [-x EXEFD] [-m CGFD] -r REPORTFD -l CPU,AS,FSIZE,NOFILE,NPROC -- ARGV...
   -n  fresh network, IPC, PID and mount namespaces; private tmpfs over the world-writable temp dirs
   -c  working dir (a descriptor); without it, the private /tmp (-n only)
   -x  execute this descriptor (fexecve); ARGV[0] is then only the program's name
   -m  join the memory cgroup whose cgroup.procs this descriptor is open on (before anything starts)
   -r  setup errors go here as "E what: why" (never into the program's output), and the program's
       wait status as "S status"
   Every path: the helper leads a session of its own with no controlling terminal, and the program
   runs in a child that is not a session leader (it can never gain one); stdin, stdout and stderr
   must not be terminals; the program gets a fresh, empty session keyring. */
static int report = 2, cwd_fd = -1, exe_fd = -1, cg_fd = -1, ns = 0;
static long uid = -1, gid = -1, lim[5];
static const char *shared_temp[] = {"/var/tmp", "/dev/shm", "/run/lock", 0};  /* get the private /tmp */

static void fail(const char *what) {
    int e = errno;
    dprintf(report, "E %s: %s\n", what, strerror(e));
    _exit(125);
}

static void limit(int what, long soft, long hard) {
    struct rlimit r = {(rlim_t)soft, (rlim_t)hard};
    if (setrlimit(what, &r)) fail("setrlimit");
}

static long keyctl(long op, long a, long b) { return syscall(SYS_keyctl, op, a, b, 0, 0); }

static void fresh_keyring(void) {  /* a new anonymous session keyring: the judge's keys are out of reach */
    if (keyctl(KEYCTL_JOIN_SESSION_KEYRING, 0, 0) < 0) {
        int e = errno;
        /* no keyrings here at all (a kernel without them, or keyctl filtered out): nothing to hide */
        if ((e != ENOSYS && e != EPERM) || keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) >= 0)
            errno = e, fail("join a fresh session keyring");
    }
    if (uid >= 0)  /* the pool uid's own keyrings: empty, so no earlier program leaves keys for this one */
        for (long k = KEY_SPEC_USER_SESSION_KEYRING; k <= KEY_SPEC_USER_KEYRING; k++)
            keyctl(KEYCTL_CLEAR, k, 0);
}

static void start(char **argv) {  /* enter the work dir, drop root, set the limits, exec */
    if (cwd_fd >= 0 ? fchdir(cwd_fd) : (ns ? chdir("/tmp") : (errno = EINVAL, -1))) fail("work dir");
    if (cwd_fd >= 0) close(cwd_fd);
    if (uid >= 0) {
        if (setgroups(0, 0) || setgid(gid) || setuid(uid)) fail("drop privileges");
        if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid)
            errno = EPERM, fail("drop privileges");
    }
    fresh_keyring();  /* after the uid change, so the keyring is the program's own */
    /* after the uid change, which clears the parent-death signal */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_PDEATHSIG, SIGKILL)) fail("prctl");
    limit(RLIMIT_CORE, 0, 0);
    limit(RLIMIT_MSGQUEUE, 0, 0);
    limit(RLIMIT_CPU, lim[0], lim[0] + 1);
    limit(RLIMIT_AS, lim[1], lim[1]);
    limit(RLIMIT_FSIZE, lim[2], lim[2]);
    limit(RLIMIT_NOFILE, lim[3], lim[3]);
    limit(RLIMIT_NPROC, lim[4], lim[4]);
    /* ETXTBSY: a process the judge forked in another thread still holds, until its own exec, a copy of
       the descriptor the executable was just written through; it goes within milliseconds */
    for (int tries = 0; tries < 500; tries++) {
        if (exe_fd >= 0) fexecve(exe_fd, argv, environ); else execvp(argv[0], argv);
        if (errno != ETXTBSY) break;
        usleep(2000);
    }
    fail("exec");
}

static void run_and_report(char **argv) {  /* the program in a child (never a session leader); its status */
    pid_t pid = fork();
    if (pid < 0) fail("fork");
    if (pid == 0) start(argv);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) fail("wait");
    dprintf(report, "S %d\n", st);
}

static void put(const char *path, const char *text) {  /* best effort (a read-only /proc/sys in a container) */
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (write(fd, text, strlen(text)) < 0) { /* the cgroup, where there is one, still counts them */ }
        close(fd);
    }
}

static void init(char **argv) {  /* PID 1 of the new namespaces: mounts, then waits for the program */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL)) fail("prctl");
    if (mount(0, "/", 0, MS_REC | MS_PRIVATE, 0)) fail("make mounts private");  /* nothing leaks out */
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, 0)) fail("mount /proc");
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,nr_inodes=4096,mode=1777")) fail("/tmp");
    for (const char **d = shared_temp; *d; d++)  /* one tmpfs, so one size limit, for all of them */
        if (access(*d, F_OK) == 0 && mount("/tmp", *d, 0, MS_BIND, 0)) fail(*d);
    /* the new IPC namespace's System V limits: no shared memory or message queues, whose memory no
       rlimit counts (the namespace's own sysctls; the host's are untouched) */
    put("/proc/sys/kernel/shmmni", "0");
    put("/proc/sys/kernel/msgmni", "0");
    run_and_report(argv);
    _exit(0);
}

int main(int argc, char **argv) {
    int c;
    while ((c = getopt(argc, argv, "+nu:g:c:x:m:r:l:")) != -1) {
        if (c == 'n') ns = 1;
        else if (c == 'u') uid = atol(optarg);
        else if (c == 'g') gid = atol(optarg);
        else if (c == 'c') cwd_fd = atoi(optarg);
        else if (c == 'x') exe_fd = atoi(optarg);
        else if (c == 'm') cg_fd = atoi(optarg);
        else if (c == 'r') report = atoi(optarg);
        else if (c != 'l' || sscanf(optarg, "%ld,%ld,%ld,%ld,%ld", lim, lim + 1, lim + 2, lim + 3, lim + 4) != 5)
            errno = EINVAL, fail("usage");
    }
    if (optind >= argc || (uid >= 0) != (gid >= 0) || report < 3) errno = EINVAL, fail("usage");
    if (fcntl(report, F_SETFD, FD_CLOEXEC) || (exe_fd >= 0 && fcntl(exe_fd, F_SETFD, FD_CLOEXEC))) fail("fcntl");
    if (prctl(PR_SET_PDEATHSIG, SIGKILL)) fail("prctl");  /* dies with the judge's thread */
    /* a session of our own, without a controlling terminal (the judge may have started us in one already) */
    if (getsid(0) != getpid() && setsid() < 0) fail("setsid");
    for (int fd = 0; fd < 3; fd++)
        if (isatty(fd)) errno = EPERM, fail("stdin, stdout and stderr must not be terminals");
    if (cg_fd >= 0) {  /* everything started from here on is counted in the cgroup */
        char pid[32];
        snprintf(pid, sizeof pid, "%d\n", (int)getpid());
        if (write(cg_fd, pid, strlen(pid)) < 0) fail("join the memory cgroup");
        close(cg_fd);
    }
    if (!ns) {
        run_and_report(argv + optind);
        return 0;
    }
    if (unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWPID)) fail("unshare");
    pid_t pid = fork();
    if (pid < 0) fail("fork");
    if (pid == 0) init(argv + optind);
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) fail("wait");
    return 0;
}
