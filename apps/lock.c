/* apps/lock.c: the output directory's lock (see lock.h). */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int exp_lock_dir(const char *dir, char *err, size_t errn) {
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/.lock", dir) >= sizeof path) {
        snprintf(err, errn, "%s: path too long for its lock file", dir);
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errn, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            char pid[32] = {0};
            ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
            if (n > 0) pid[strcspn(pid, "\n")] = 0;
            snprintf(err, errn, "%s is in use by another train (pid %s; lock %s): give each run its own --output_dir",
                     dir, n > 0 && pid[0] ? pid : "unknown", path);
        } else {
            snprintf(err, errn, "%s: flock: %s", path, strerror(e));
        }
        close(fd);
        return -1;
    }
    char buf[32];
    int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
        snprintf(err, errn, "%s: cannot write the pid: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}
