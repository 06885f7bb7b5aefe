/* graph.cu: CUDA graphs for tensor/graph.h: stream capture of the backend's one stream, and the
 * instantiated graph's replay on it. cuBLAS gets a fixed workspace at initialisation (backend.cu),
 * so it allocates nothing while captured; kernels ask sgt_cuda_graph_recording() before any host
 * round trip (sgt_cuda_fetch_indices). */
#include "cuda.h"

static bool recording;

extern "C" void sgt_cuda_graph_begin(void) {
    SGT_CHECK(!recording, "graph: a recording is already in progress");
    cudaStream_t s = sgt_cuda_stream();
    /* thread-local mode: another thread's unrelated CUDA calls do not break the capture */
    CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    recording = true;
}

extern "C" bool sgt_cuda_graph_recording(void) { return recording; }

extern "C" void *sgt_cuda_graph_end(void) {
    SGT_CHECK(recording, "graph: no recording in progress");
    recording = false;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(sgt_cuda_stream(), &graph);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        SGT_FAIL("graph: the recording failed (%s: %s): an op in it waited for the device or allocated "
                 "device memory; run the step once before recording it",
                 cudaGetErrorName(e), cudaGetErrorString(e));
    }
    cudaGraphExec_t exec = NULL;
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    CUDA_CHECK(cudaGraphDestroy(graph));
    return (void *)exec;
}

extern "C" void sgt_cuda_graph_launch(void *g) {
    CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)g, sgt_cuda_stream()));
}

extern "C" void sgt_cuda_graph_destroy(void *g) {
    CUDA_CHECK(cudaStreamSynchronize(sgt_cuda_stream()));
    CUDA_CHECK(cudaGraphExecDestroy((cudaGraphExec_t)g));
}
