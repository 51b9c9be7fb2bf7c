#ifndef USP_SPAWN_H
#define USP_SPAWN_H

#include <sys/types.h>

/// One resource limit for the child: soft and hard are both set to `value`.
typedef struct {
    int resource;               /* RLIMIT_NOFILE, RLIMIT_AS, RLIMIT_CPU, RLIMIT_NPROC, ... */
    unsigned long long value;
} usp_rlimit;

/// What `usp_spawn` does in the child between fork and exec, in this order: its own process
/// group (or, with `new_session`, its own session); every signal back to its default action and an empty mask; the stream descriptors on
/// 0, 1 (and 3), everything else from 3 (or 4) up closed; the resource limits; a new network
/// namespace (with a user namespace when asked); supplementary groups cleared, then the group and the user; execve.
typedef struct {
    const char *path;           /* the program, already searched in PATH (execve does not search) */
    char *const *argv;
    char *const *envp;
    int stdin_fd;               /* -1: /dev/null */
    int stdout_fd;              /* -1: a copy of fd 2 */
    int stream_fd;              /* >= 0: placed on fd 3 (socket activation); -1: none */
    int stderr_fd;              /* >= 0: placed on fd 2; -1: fd 2 stays as it is */
    int new_session;            /* setsid() instead of setpgid(): no controlling terminal (a daemon) */
    /* Non-NULL: an entry of envp of the form "LISTEN_PID=" followed by room for 20 digits; the
       child writes its own pid there (it is its own copy of the memory after fork). */
    char *listen_pid;
    int new_network_namespace;  /* unshare(CLONE_NEWNET): only a `lo` that is down */
    /* With new_network_namespace, when unshare(CLONE_NEWNET) fails with EPERM (no CAP_SYS_ADMIN):
       unshare(CLONE_NEWUSER | CLONE_NEWNET) and map the child's uid and gid onto themselves
       (setgroups denied). */
    int user_namespace_fallback;
    int set_groups;             /* clear supplementary groups and setgid(gid) */
    unsigned int gid;
    int set_user;               /* setuid(uid), after the group */
    unsigned int uid;
    const usp_rlimit *rlimits;
    int rlimit_count;
} usp_spawn_request;

/// Where the child failed (`usp_spawn`'s `failed_stage`).
enum usp_spawn_stage {
    USP_SPAWN_STAGE_NONE = 0,
    USP_SPAWN_STAGE_PIPE = 1,
    USP_SPAWN_STAGE_FORK = 2,
    USP_SPAWN_STAGE_DESCRIPTORS = 3,
    USP_SPAWN_STAGE_RLIMIT = 4,
    USP_SPAWN_STAGE_NETWORK_NAMESPACE = 5,
    USP_SPAWN_STAGE_GROUPS = 6,
    USP_SPAWN_STAGE_SETGID = 7,
    USP_SPAWN_STAGE_SETUID = 8,
    USP_SPAWN_STAGE_EXEC = 9,
    USP_SPAWN_STAGE_USER_NAMESPACE = 10,  /* detail: 0 unshare, 1 setgroups, 2 uid_map, 3 gid_map */
    USP_SPAWN_STAGE_SESSION = 11,
};

/// Starts the child described by `request`. Returns 0 and the pid once the child has exec'd, or
/// an errno value with the stage that failed (`failed_stage`; for RLIMIT also the index of the
/// limit in `failed_detail`). A child that failed has been reaped.
int usp_spawn(const usp_spawn_request *request, pid_t *pid, int *failed_stage, int *failed_detail);

/// pipe2(fds, O_CLOEXEC), which Swift's Glibc module hides behind _GNU_SOURCE.
int usp_pipe_cloexec(int fds[2]);

/// Installs one handler (sigaction, SA_RESTART) for each of `signals[0..<count]` that writes the
/// signal's number, as one byte, to `fd` (which should be non-blocking). The handler only calls
/// write(2), so it is async-signal-safe, and it is in place when this returns: a signal sent
/// afterwards is never lost, whichever thread the kernel delivers it to. Later calls replace `fd`;
/// a call with no signals changes nothing.
/// Returns 0, or -1 with errno set by the first sigaction that failed.
int usp_signals_to_descriptor(int fd, const int *signals, int count);

#endif
