// Starting an exec'd application: clone (vfork semantics), then in the child only system calls
// until execve.
//
// Why not posix_spawn: it cannot enter a new network namespace (unshare), set resource limits
// or change the user of the child. Why C rather than Swift: between fork and exec the child of
// a multithreaded process may only call async-signal-safe functions (another thread may have
// held the malloc lock, or the Swift runtime's, at the moment of the fork), and Swift code can
// allocate or take runtime locks behind one's back. Everything below in `child` is a system call
// or an async-signal-safe libc wrapper (POSIX.1-2017 §2.4.3 plus the Linux-only setrlimit,
// unshare and close_range). The identity changes go through syscall(2) directly: glibc's
// setuid/setgid/setgroups in a threaded process first signal every thread to change it too
// (the "setxid" broadcast), which the child, single-threaded after fork, does not need.
//
// The parent blocks every signal around fork, so no handler of the daemon's runs in the child
// before the child has put every action back to its default. A failure in the child is written
// as (stage, errno, detail) on a close-on-exec pipe; a successful execve closes the pipe, so the
// parent reads either a report or end of file, and knows the program runs before it returns.
#define _GNU_SOURCE
#include "usp_spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

struct usp_spawn_report {
    int stage;
    int error;
    int detail;
};

static __attribute__((noreturn)) void fail(int report_fd, int stage, int detail) {
    struct usp_spawn_report r = { stage, errno, detail };
    ssize_t ignored = write(report_fd, &r, sizeof r);
    (void)ignored;
    _exit(127);
}

/// A copy of `fd` at 10 or above, so that placing the stream on 0, 1 and 3 cannot overwrite a
/// source that happens to sit there.
static int move_up(int fd) { return fcntl(fd, F_DUPFD, 10); }

/// Closes every descriptor from `first` up except `keep` (the report pipe, close-on-exec).
static void close_from(int first, int keep) {
#ifdef SYS_close_range
    int ok;
    if (keep >= first) {
        ok = (keep == first || syscall(SYS_close_range, first, keep - 1, 0) == 0)
            && syscall(SYS_close_range, keep + 1, ~0U, 0) == 0;
    } else {
        ok = syscall(SYS_close_range, first, ~0U, 0) == 0;
    }
    if (ok) return;
#endif
    // Kernels before 5.9: one close per possible descriptor.
    struct rlimit rl;
    long max = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < 1048576) max = (long)rl.rlim_cur;
    for (long fd = first; fd < max; fd++) {
        if (fd != keep) close((int)fd);
    }
}

static void write_pid(char *entry) {
    char digits[24];
    int n = 0;
    long pid = (long)getpid();
    do { digits[n++] = (char)('0' + pid % 10); pid /= 10; } while (pid > 0 && n < 20);
    char *p = entry + strlen("LISTEN_PID=");
    while (n > 0) *p++ = digits[--n];
    *p = '\0';
}

/// Writes `length` bytes of `text` to the file at `path` in one write(2); true on success.
static int write_file(const char *path, const char *text, size_t length) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = write(fd, text, length);
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)length;
}

/// Writes the one-line map "ID ID 1" (the id onto itself) to a uid_map or gid_map file.
static int write_id_map(const char *path, unsigned long id) {
    char digits[24];
    int n = 0;
    do { digits[n++] = (char)('0' + id % 10); id /= 10; } while (id > 0 && n < 20);
    char line[64];
    size_t length = 0;
    for (int round = 0; round < 2; round++) {
        for (int i = n - 1; i >= 0; i--) line[length++] = digits[i];
        line[length++] = ' ';
    }
    line[length++] = '1';
    line[length++] = '\n';
    return write_file(path, line, length);
}

static __attribute__((noreturn)) void child(const usp_spawn_request *q, int report_fd) {
    // A fresh child is never a process group leader, so setsid() cannot fail with EPERM here
    // (the parent does not setpgid a child that makes its own session).
    if (q->new_session) {
        if (setsid() < 0) fail(report_fd, USP_SPAWN_STAGE_SESSION, 0);
    } else {
        setpgid(0, 0);
    }

    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++) {
        if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, NULL);
    }

    int report = fcntl(report_fd, F_DUPFD_CLOEXEC, 10);
    if (report < 0) fail(report_fd, USP_SPAWN_STAGE_DESCRIPTORS, 0);
    int in;
    if (q->stdin_fd >= 0) {
        in = move_up(q->stdin_fd);
    } else {
        int null = open("/dev/null", O_RDONLY);
        if (null < 0) fail(report, USP_SPAWN_STAGE_DESCRIPTORS, 0);
        in = move_up(null);
        close(null);
    }
    int out = move_up(q->stdout_fd >= 0 ? q->stdout_fd : 2);
    int err = q->stderr_fd >= 0 ? move_up(q->stderr_fd) : -1;
    int stream = q->stream_fd >= 0 ? move_up(q->stream_fd) : -1;
    if (in < 0 || out < 0 || (q->stderr_fd >= 0 && err < 0) || (q->stream_fd >= 0 && stream < 0)) fail(report, USP_SPAWN_STAGE_DESCRIPTORS, 0);
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || (err >= 0 && dup2(err, 2) < 0) || (stream >= 0 && dup2(stream, 3) < 0)) {
        fail(report, USP_SPAWN_STAGE_DESCRIPTORS, 0);
    }
    // Nothing of the daemon's (listeners, other sessions' pipes, the database) reaches the program.
    close_from(stream >= 0 ? 4 : 3, report);

    for (int i = 0; i < q->rlimit_count; i++) {
        struct rlimit rl = { (rlim_t)q->rlimits[i].value, (rlim_t)q->rlimits[i].value };
        if (setrlimit(q->rlimits[i].resource, &rl) != 0) fail(report, USP_SPAWN_STAGE_RLIMIT, i);
    }
    // Needs CAP_SYS_ADMIN, so before the user changes. The new namespace has only `lo`, down.
    // Without the capability (uspd not root: EPERM), the network namespace comes with a user
    // namespace of its own, in which the child keeps its uid and gid (a one-line map of each
    // onto itself) and, once it has exec'd a program as that non-zero uid, no capability.
    if (q->new_network_namespace && unshare(CLONE_NEWNET) != 0) {
        if (errno != EPERM || !q->user_namespace_fallback) fail(report, USP_SPAWN_STAGE_NETWORK_NAMESPACE, 0);
        uid_t uid = geteuid();
        gid_t gid = getegid();
        if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) fail(report, USP_SPAWN_STAGE_USER_NAMESPACE, 0);
        if (!write_file("/proc/self/setgroups", "deny", 4)) fail(report, USP_SPAWN_STAGE_USER_NAMESPACE, 1);
        if (!write_id_map("/proc/self/uid_map", uid)) fail(report, USP_SPAWN_STAGE_USER_NAMESPACE, 2);
        if (!write_id_map("/proc/self/gid_map", gid)) fail(report, USP_SPAWN_STAGE_USER_NAMESPACE, 3);
    }
    if (q->set_groups) {
        if (syscall(SYS_setgroups, 0, NULL) != 0) fail(report, USP_SPAWN_STAGE_GROUPS, 0);
        if (syscall(SYS_setgid, q->gid) != 0) fail(report, USP_SPAWN_STAGE_SETGID, 0);
    }
    // Last: as root it sets the real, effective and saved IDs and drops every capability.
    if (q->set_user && syscall(SYS_setuid, q->uid) != 0) fail(report, USP_SPAWN_STAGE_SETUID, 0);

    if (q->listen_pid) write_pid(q->listen_pid);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(q->path, q->argv, q->envp);
    fail(report, USP_SPAWN_STAGE_EXEC, 0);
}

/// What the clone'd child starts with.
struct child_start {
    const usp_spawn_request *q;
    int report_fd;
    int parent_end;
};

static int child_entry(void *arg) {
    struct child_start *start = arg;
    close(start->parent_end);
    child(start->q, start->report_fd);
}

/// The child's stack while it shares the daemon's memory (until execve). `child` needs a few KiB.
#define USP_SPAWN_STACK_SIZE (256 * 1024)

int usp_spawn(const usp_spawn_request *q, pid_t *pid_out, int *failed_stage, int *failed_detail) {
    *failed_stage = USP_SPAWN_STAGE_NONE;
    *failed_detail = 0;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        *failed_stage = USP_SPAWN_STAGE_PIPE;
        return errno;
    }
    // vfork semantics (as glibc's posix_spawn): the child shares the daemon's memory on a stack
    // of its own and this thread waits until it has exec'd or exited, so no page table of a
    // daemon with many sessions is copied per launch. The child touches only its stack, `q` and
    // the report pipe; its signal actions are its own copy (no CLONE_SIGHAND), its descriptors
    // too (no CLONE_FILES).
    void *stack = mmap(NULL, USP_SPAWN_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        *failed_stage = USP_SPAWN_STAGE_FORK;
        return e;
    }
    struct child_start start = { q, fds[1], fds[0] };
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = clone(child_entry, (char *)stack + USP_SPAWN_STACK_SIZE, CLONE_VM | CLONE_VFORK | SIGCHLD, &start);
    int fork_error = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, USP_SPAWN_STACK_SIZE);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        *failed_stage = USP_SPAWN_STAGE_FORK;
        return fork_error;
    }
    // Also set here: the daemon may signal the group before the child has run setpgid itself.
    // Not for a child that makes its own session: setsid() fails in a process group leader.
    if (!q->new_session) setpgid(pid, pid);
    struct usp_spawn_report r;
    ssize_t n;
    do { n = read(fds[0], &r, sizeof r); } while (n < 0 && errno == EINTR);
    close(fds[0]);
    if (n == (ssize_t)sizeof r) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *failed_stage = r.stage;
        *failed_detail = r.detail;
        return r.error != 0 ? r.error : EINVAL;
    }
    *pid_out = pid;
    return 0;
}

int usp_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
