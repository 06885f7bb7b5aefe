/* apps/lock.h: one train per output directory. Two trainers writing the same checkpoints would
 * each overwrite the other's good state with a mix of both runs; the second one refuses instead.
 * The lock is an advisory flock(2) on <dir>/.lock, held by an open descriptor: the kernel drops it
 * when the process ends, however it ends (exit, crash, SIGKILL), so a stale lock never blocks a
 * resume. The file holds the holder's pid, for the error message only. */
#pragma once
#include <stddef.h>

/* Takes the lock on <dir>/.lock without waiting; returns its descriptor (>= 0, keep it open for
 * the run's life) or -1 with a one-line message in err (held by another process, or an I/O error
 * naming the file). */
int exp_lock_dir(const char *dir, char *err, size_t errn);
