#include "usp_spawn.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t usp_signal_fd = -1;

static void usp_signal_write(int signo) {
    int saved = errno;
    int fd = usp_signal_fd;
    if (fd >= 0) {
        unsigned char byte = (unsigned char)signo;
        (void)write(fd, &byte, 1);
    }
    errno = saved;
}

int usp_signals_to_descriptor(int fd, const int *signals, int count) {
    if (count <= 0) return 0;
    usp_signal_fd = fd;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = usp_signal_write;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    for (int i = 0; i < count; i++) {
        if (sigaction(signals[i], &action, NULL) != 0) return -1;
    }
    return 0;
}
