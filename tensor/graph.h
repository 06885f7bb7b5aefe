/* graph.h: recording a sequence of dispatched ops once and replaying it (CUDA graphs), so that a
 * short, shape-static step (batch-1 decoding) costs one launch instead of hundreds.
 *
 * Between sgt_graph_begin and sgt_graph_end, the ops dispatched on the device are recorded, not
 * run (CUDA stream capture). The recording bakes in every pointer and every shape: replaying it
 * is only right while the tensors it used still hold their bytes (keep their arena untouched) and
 * the inputs change through their contents only (device-held token ids, positions, lengths).
 * While recording, nothing may wait for the device: kernels that would copy indices to the host to
 * check them skip the check (check the inputs before they are copied in), and ops that need their
 * indices on the host (index_add_rows, cross-entropy, the block-sparse backward) fail clearly.
 *
 * On the CPU (and in builds without CUDA) there is nothing to record: sgt_graph_begin returns
 * false and the caller runs its step eagerly every time. */
#ifndef SGT_GRAPH_H
#define SGT_GRAPH_H

#include <stdbool.h>

#include "device.h"

typedef struct sgt_graph sgt_graph;

/* Starts recording on device d; false where graphs do not exist (then nothing is recording). */
bool sgt_graph_begin(sgt_device d);
/* Ends the recording and makes it launchable (fails clearly if a recorded op was not capturable). */
sgt_graph *sgt_graph_end(void);
/* Runs the recorded ops once more, on the device's stream (asynchronously, like any op). */
void sgt_graph_launch(sgt_graph *g);
void sgt_graph_destroy(sgt_graph *g);
/* Whether a recording is in progress (kernels consult it). */
bool sgt_graph_recording(void);

#endif
