/* dist.c: the process group (see dist.h): OpenMPI when built with it (SGT_HAVE_MPI), NCCL when
 * built with the CUDA backend and libnccl (SGT_HAVE_NCCL). Every MPI, NCCL and CUDA call goes
 * through a check macro that names the call, file and line, and stops every rank on failure. */
#include "dist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef SGT_HAVE_MPI
#include <mpi.h>
#endif
#ifdef SGT_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#endif

static int env_int(const char *const *names, int dflt) {
    for (; *names; names++) {
        const char *v = getenv(*names);
        if (v && *v) return atoi(v);
    }
    return dflt;
}

/* what the launchers export: OpenMPI, PMIx, MPICH/Hydra, Slurm */
static const char *const size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE", NULL};
#ifdef SGT_HAVE_MPI
static const char *const local_vars[] = {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", NULL};
#endif

#ifdef SGT_HAVE_MPI
#define MPI_CHECK(call)                                                                           \
    do {                                                                                          \
        int rc_ = (call);                                                                         \
        if (rc_ != MPI_SUCCESS) {                                                                 \
            char msg_[MPI_MAX_ERROR_STRING];                                                      \
            int len_ = 0;                                                                         \
            MPI_Error_string(rc_, msg_, &len_);                                                   \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, msg_);           \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                         \
        }                                                                                         \
    } while (0)
#endif
#ifdef SGT_HAVE_NCCL
#define NCCL_CHECK(d, call)                                                                       \
    do {                                                                                          \
        ncclResult_t rc_ = (call);                                                                \
        if (rc_ != ncclSuccess) {                                                                 \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, ncclGetErrorString(rc_)); \
            dist_abort(d, 1);                                                                     \
        }                                                                                         \
    } while (0)
#define CUDA_CHECK(d, call)                                                                       \
    do {                                                                                          \
        cudaError_t rc_ = (call);                                                                 \
        if (rc_ != cudaSuccess) {                                                                 \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(rc_)); \
            dist_abort(d, 1);                                                                     \
        }                                                                                         \
    } while (0)
#endif

int dist_init(dist_ctx *d, int *argc, char ***argv, char *err, size_t errn) {
    memset(d, 0, sizeof *d);
    d->world = d->local_world = 1;
    const int want = env_int(size_vars, 1);
#ifdef SGT_HAVE_MPI
    if (want > 1) {
        int provided = 0;
        MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
        d->mpi = true;
        MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &d->rank));
        MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &d->world));
        d->local_world = env_int(local_vars, d->world);
        if (d->local_world < 1) d->local_world = 1;
    }
    (void)err;
    (void)errn;
    return 0;
#else
    (void)argc;
    (void)argv;
    if (want > 1) {
        snprintf(err, errn,
                 "started as one of %d ranks, but this build has no MPI (install libopenmpi-dev and reconfigure "
                 "with -Dmpi=enabled)", want);
        return -1;
    }
    return 0;
#endif
}

void dist_finalize(dist_ctx *d) {
#ifdef SGT_HAVE_NCCL
    if (d->nccl) ncclCommDestroy((ncclComm_t)d->nccl);
    d->nccl = NULL;
#endif
#ifdef SGT_HAVE_MPI
    if (d->mpi) MPI_Finalize();
#endif
    d->mpi = false;
}

void dist_abort(dist_ctx *d, int code) {
#ifdef SGT_HAVE_MPI
    if (d->mpi) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    (void)d;
    exit(code);
}

bool dist_have_nccl(void) {
#ifdef SGT_HAVE_NCCL
    return true;
#else
    return false;
#endif
}

int dist_nccl_init(dist_ctx *d, char *err, size_t errn) {
#ifdef SGT_HAVE_NCCL
    int ngpu = 0;
    if (cudaGetDeviceCount(&ngpu) != cudaSuccess || ngpu < 1) {
        snprintf(err, errn, "NCCL: no CUDA device on rank %d", d->rank);
        return -1;
    }
    const int local = env_int((const char *const[]){"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", NULL}, d->rank);
    d->cuda_device = local % ngpu;
    CUDA_CHECK(d, cudaSetDevice(d->cuda_device));
    ncclUniqueId id;
    if (d->rank == 0) NCCL_CHECK(d, ncclGetUniqueId(&id));
    dist_bcast(d, &id, sizeof id, 0);
    ncclComm_t comm;
    NCCL_CHECK(d, ncclCommInitRank(&comm, d->world, id, d->rank));
    d->nccl = comm;
    return 0;
#else
    snprintf(err, errn, "this build has no NCCL (the CUDA backend and libnccl are needed)");
    (void)d;
    return -1;
#endif
}

void dist_barrier(dist_ctx *d) {
#ifdef SGT_HAVE_MPI
    if (d->mpi) MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
#endif
    (void)d;
}

void dist_bcast(dist_ctx *d, void *buf, size_t n, int root) {
#ifdef SGT_HAVE_MPI
    if (d->mpi) MPI_CHECK(MPI_Bcast(buf, (int)n, MPI_BYTE, root, MPI_COMM_WORLD));
#endif
    (void)d, (void)buf, (void)n, (void)root;
}

void dist_sum_f64(dist_ctx *d, double *x, int64_t n) {
    if (d->world == 1 || n <= 0) return;
#ifdef SGT_HAVE_MPI
    double *all = malloc(sizeof(double) * (size_t)(n * d->world));
    if (!all) {
        fprintf(stderr, "%s:%d: out of host memory (%lld doubles)\n", __FILE__, __LINE__, (long long)(n * d->world));
        dist_abort(d, 1);
    }
    MPI_CHECK(MPI_Allgather(x, (int)n, MPI_DOUBLE, all, (int)n, MPI_DOUBLE, MPI_COMM_WORLD));
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int r = 0; r < d->world; r++) s += all[(int64_t)r * n + i];
        x[i] = s;
    }
    free(all);
#else
    (void)x; /* a group of one: the sum is x */
#endif
}

void dist_reduce_scatter_f32(dist_ctx *d, const float *in, float *out, float *scratch, int64_t chunk) {
    if (d->world == 1) {
        memcpy(out, in, sizeof(float) * (size_t)chunk);
        return;
    }
#ifdef SGT_HAVE_MPI
    /* scratch[r * chunk ..] = rank r's copy of our chunk; then the sum in rank order */
    MPI_CHECK(MPI_Alltoall(in, (int)chunk, MPI_FLOAT, scratch, (int)chunk, MPI_FLOAT, MPI_COMM_WORLD));
    for (int64_t i = 0; i < chunk; i++) {
        float s = scratch[i];
        for (int r = 1; r < d->world; r++) s += scratch[(int64_t)r * chunk + i];
        out[i] = s;
    }
#else
    (void)scratch; /* without MPI the world is 1 (dist_init refuses more): handled above */
#endif
}

void dist_allgather_f32(dist_ctx *d, const float *in, float *out, int64_t chunk) {
    if (d->world == 1) {
        if (out != in) memmove(out, in, sizeof(float) * (size_t)chunk);
        return;
    }
#ifdef SGT_HAVE_MPI
    MPI_CHECK(MPI_Allgather(in, (int)chunk, MPI_FLOAT, out, (int)chunk, MPI_FLOAT, MPI_COMM_WORLD));
#endif
}

void dist_nccl_reduce_scatter_avg_f32(dist_ctx *d, const float *in, float *out, int64_t chunk) {
#ifdef SGT_HAVE_NCCL
    NCCL_CHECK(d, ncclReduceScatter(in, out, (size_t)chunk, ncclFloat, ncclAvg, (ncclComm_t)d->nccl, 0));
    CUDA_CHECK(d, cudaStreamSynchronize(0));
#else
    (void)d, (void)in, (void)out, (void)chunk;
#endif
}

void dist_nccl_allreduce_avg_f32(dist_ctx *d, float *buf, int64_t n) {
#ifdef SGT_HAVE_NCCL
    NCCL_CHECK(d, ncclAllReduce(buf, buf, (size_t)n, ncclFloat, ncclAvg, (ncclComm_t)d->nccl, 0));
    CUDA_CHECK(d, cudaStreamSynchronize(0));
#else
    (void)d, (void)buf, (void)n;
#endif
}

void dist_nccl_allgather_f32(dist_ctx *d, const float *in, float *out, int64_t chunk) {
#ifdef SGT_HAVE_NCCL
    NCCL_CHECK(d, ncclAllGather(in, out, (size_t)chunk, ncclFloat, (ncclComm_t)d->nccl, 0));
    CUDA_CHECK(d, cudaStreamSynchronize(0));
#else
    (void)d, (void)in, (void)out, (void)chunk;
#endif
}
