/* kernel_list.h: the kernel families, one kernel per family and backend (sgt_cpu_<family> in
 * cpu/, sgt_cuda_<family> in cuda/), as named in op_list.h's family column. */
#ifndef SGT_KERNEL_LIST_H
#define SGT_KERNEL_LIST_H

#define SGT_KERNEL_FAMILIES(X) \
    X(copy) X(cast) X(fill) X(rng_uniform) X(rng_normal) X(dropout) X(binary) X(unary) X(unary_bwd) X(cmp) \
    X(where) X(masked_fill) X(reduce) X(argmax) X(softmax) X(softmax_bwd) X(matmul) X(embedding) X(index_add_rows) \
    X(index_copy_rows) X(cross_entropy) X(cross_entropy_bwd) X(rmsnorm) X(rmsnorm_bwd) X(layernorm) \
    X(layernorm_bwd) X(topk) X(gather_last) X(scatter_add_last) X(concat) X(adamw) X(bsparse_swiglu) \
    X(bsparse_swiglu_bwd) X(attention) X(attention_bwd) X(swiglu) X(swiglu_bwd) \
    X(linear_bf16) X(bsparse_swiglu_bf16) X(custom)

#endif
