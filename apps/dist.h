/* dist.h: the process group of data-parallel training, on existing engines: OpenMPI between
 * processes and machines (`mpirun -np N`, `mpirun -H host1,host2`), NCCL between GPUs (its unique
 * id broadcast over MPI). We write no network layer of our own.
 *
 * A process started without MPI in its environment is a group of one and needs no MPI library at
 * run time: every collective below is then a copy or nothing. A build without MPI (-Dmpi=disabled,
 * or libopenmpi-dev absent) refuses to start as one of several ranks instead of training N
 * unrelated copies.
 *
 * Collectives on host memory are deterministic: a reduction sums the ranks' contributions in rank
 * order 0, 1, ..., N-1 on every rank (an all-to-all followed by a local sum), so every rank gets
 * bit-identical results and the same run gives the same bits every time. */
#ifndef SGT_APPS_DIST_H
#define SGT_APPS_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dist_ctx {
    int rank, world;      /* this process, of how many */
    int local_world;      /* ranks on this machine (OMPI_COMM_WORLD_LOCAL_SIZE), for thread counts */
    bool mpi;             /* MPI_Init was called */
    void *nccl;           /* ncclComm_t once dist_nccl_init succeeded, else NULL */
    int cuda_device;      /* the GPU of this rank when nccl is set */
} dist_ctx;

/* Joins the group the launcher made (mpirun), or makes a group of one. Returns 0, or -1 with err. */
int dist_init(dist_ctx *d, int *argc, char ***argv, char *err, size_t errn);
/* Leaves it (MPI_Finalize, NCCL destroyed). */
void dist_finalize(dist_ctx *d);
/* Stops every rank now: MPI_Abort when several, exit(code) when one. */
void dist_abort(dist_ctx *d, int code);
/* Is the NCCL path built in? */
bool dist_have_nccl(void);
/* NCCL communicator over the MPI group, on this rank's GPU (local rank modulo the GPUs). */
int dist_nccl_init(dist_ctx *d, char *err, size_t errn);

void dist_barrier(dist_ctx *d);
/* Broadcast of n bytes from root. */
void dist_bcast(dist_ctx *d, void *buf, size_t n, int root);
/* x[0..n) becomes the sum over ranks, in rank order (identical on every rank). */
void dist_sum_f64(dist_ctx *d, double *x, int64_t n);
/* Reduce-scatter of a host buffer laid out as world chunks of `chunk` floats: on return
 * out[0..chunk) holds the rank-order sum of every rank's chunk number `rank`. scratch holds
 * world * chunk floats. */
void dist_reduce_scatter_f32(dist_ctx *d, const float *in, float *out, float *scratch, int64_t chunk);
/* All-gather: out (world * chunk floats) gets every rank's `in` (chunk floats) in rank order. */
void dist_allgather_f32(dist_ctx *d, const float *in, float *out, int64_t chunk);

/* On device memory through NCCL (dist_nccl_init first); synchronous; in/out are CUDA device
 * pointers. The reductions average (ncclAvg) rather than sum. NCCL's own reduction order is fixed
 * for a given world size and size. */
void dist_nccl_reduce_scatter_avg_f32(dist_ctx *d, const float *in, float *out, int64_t chunk);
void dist_nccl_allreduce_avg_f32(dist_ctx *d, float *buf, int64_t n);
void dist_nccl_allgather_f32(dist_ctx *d, const float *in, float *out, int64_t chunk);

#endif
