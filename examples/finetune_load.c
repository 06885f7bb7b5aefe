/* finetune_load.c: loading a pretrained backbone into a model with a new head, the non-strict
 * checkpoint load of docs/LIBRARY.md. A "pretrained" model (embed, fc1, head) is saved; a new model
 * names its layers "backbone.*" and has a classifier of another size, so the file's names are
 * mapped ("" -> "backbone.", the old head dropped) and the new head keeps its initial values.
 * sgt_tensor_print shows a loaded weight. Built against the installed library:
 *   cc finetune_load.c $(pkg-config --cflags --libs sgt) -o finetune_load && ./finetune_load
 * Exits 1 unless the backbone arrives bit for bit and the report lists the new head as missing. */
#include <sgt/sgt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    char path[64], err[512];
    snprintf(path, sizeof path, "/tmp/sgt_finetune_%d.safetensors", (int)getpid());
    nn_params *old = nn_params_create(1, SGT_F32, SGT_CPU);
    nn_linear fc1, head;
    nn_embedding emb;
    nn_embedding_init(&emb, old, "embed", 10, 4, 0.5);
    nn_linear_init(&fc1, old, "fc1", 4, 8, true, 0.5);
    nn_linear_init(&head, old, "head", 8, 10, false, 0.5);
    if (nn_save_params(old, path, NULL, err, sizeof err)) goto fail;

    nn_params *P = nn_params_create(2, SGT_F32, SGT_CPU);
    nn_linear nfc1, cls;
    nn_embedding nemb;
    nn_embedding_init(&nemb, P, "backbone.embed", 10, 4, 0.5);
    nn_linear_init(&nfc1, P, "backbone.fc1", 4, 8, true, 0.5);
    nn_linear_init(&cls, P, "classifier", 8, 3, true, 0.5); /* the new task's head */
    nn_load_opts o = {.strict = false, .n_prefix = 2,
                      .prefix = (nn_prefix_map[]){{"head.", NULL}, {"", "backbone."}}};
    nn_load_report rep;
    if (nn_load_params_opts(P, path, &o, &rep, err, sizeof err)) goto fail;
    remove(path);
    printf("finetune_load: %d loaded, %d missing (", rep.n_loaded, rep.n_missing);
    for (int i = 0; i < rep.n_missing; i++) printf("%s%s", i ? ", " : "", rep.missing[i]);
    printf("), %d unexpected\n", rep.n_unexpected);
    bool ok = rep.n_loaded == 3 && rep.n_missing == 2 && rep.n_unexpected == 0;
    nn_load_report_free(&rep);
    ok = ok && !memcmp(sgt_ptr(nfc1.w), sgt_ptr(fc1.w), sizeof(float) * 4 * 8) &&
         !memcmp(sgt_ptr(nemb.w), sgt_ptr(emb.w), sizeof(float) * 10 * 4);
    sgt_tensor_print(stdout, nfc1.w, "backbone.fc1.weight");
    nn_params_destroy(old);
    nn_params_destroy(P);
    if (!ok) {
        fprintf(stderr, "finetune_load: the backbone did not load as expected\n");
        return 1;
    }
    return 0;
fail:
    fprintf(stderr, "finetune_load: %s\n", err);
    remove(path);
    return 1;
}
