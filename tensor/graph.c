/* graph.c: the device-independent face of graph.h; the CUDA backend does the recording. */
#include "graph.h"

#include "error.h"
#ifdef SGT_HAVE_CUDA
#include "cuda/backend.h"
#endif

bool sgt_graph_begin(sgt_device d) {
#ifdef SGT_HAVE_CUDA
    if (d == SGT_CUDA) {
        sgt_cuda_graph_begin();
        return true;
    }
#endif
    (void)d;
    return false;
}

sgt_graph *sgt_graph_end(void) {
#ifdef SGT_HAVE_CUDA
    return (sgt_graph *)sgt_cuda_graph_end();
#else
    SGT_FAIL("graph: no recording in progress (this build has no CUDA backend)");
#endif
}

void sgt_graph_launch(sgt_graph *g) {
#ifdef SGT_HAVE_CUDA
    sgt_cuda_graph_launch(g);
#else
    (void)g;
    SGT_FAIL("graph: nothing to launch (this build has no CUDA backend)");
#endif
}

void sgt_graph_destroy(sgt_graph *g) {
#ifdef SGT_HAVE_CUDA
    if (g) sgt_cuda_graph_destroy(g);
#else
    (void)g;
#endif
}

bool sgt_graph_recording(void) {
#ifdef SGT_HAVE_CUDA
    return sgt_cuda_graph_recording();
#else
    return false;
#endif
}
