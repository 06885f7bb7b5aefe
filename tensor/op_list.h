/* op_list.h: THE op table. One line per op: enum suffix, printable name, whether it is a view
 * (metadata only, no kernel), and its kernel family: the op runs sgt_cpu_<family> on the CPU and
 * sgt_cuda_<family> on CUDA (cpu/cpu_backend.c and cuda/backend.cu bind them from this column;
 * kernel_list.h lists the families; `view` binds no kernel). Backward rules are in
 * autograd/rules.c; the tables are indexed by this enum and checked for completeness by the tests.
 * Parameters travel in sgt_opcall.ip (integers) and .fp (doubles); each line says which. */
/*      ENUM               name                 view, family                           params / sources -> destinations */
SGT_OP(RESHAPE,          "reshape",           1, view)                 /* x -> view with new shape */
SGT_OP(PERMUTE,          "permute",           1, view)                 /* x -> view; ip[0..n) = permutation */
SGT_OP(NARROW,           "narrow",            1, view)                 /* x -> view; ip = dim, start, len */
SGT_OP(EXPAND,           "expand",            1, view)                 /* x -> broadcast view (stride 0) */
SGT_OP(COPY,             "copy",              0, copy)                 /* x -> dst (any strides, same shape) */
SGT_OP(CAST,             "cast",              0, cast)                 /* x -> dst of another dtype */
SGT_OP(FILL,             "fill",              0, fill)                 /* -> dst = fp[0] */
SGT_OP(RNG_UNIFORM,      "rng_uniform",       0, rng_uniform)          /* -> dst ~ U[fp0, fp1); ip = seed, stream */
SGT_OP(RNG_NORMAL,       "rng_normal",        0, rng_normal)           /* -> dst ~ N(fp0, fp1^2); ip = seed, stream */
SGT_OP(DROPOUT,          "dropout",           0, dropout)              /* x -> x / (1-p) where kept (rng.h), else 0; ip = seed, stream, threshold; fp = 1/(1-p), p */
SGT_OP(ADD,              "add",               0, binary)               /* a, b (broadcast) -> a+b */
SGT_OP(SUB,              "sub",               0, binary)
SGT_OP(MUL,              "mul",               0, binary)
SGT_OP(DIV,              "div",               0, binary)
SGT_OP(ADD_SCALAR,       "add_scalar",        0, unary)                /* x -> x + fp[0] */
SGT_OP(MUL_SCALAR,       "mul_scalar",        0, unary)                /* x -> x * fp[0] */
SGT_OP(POW_SCALAR,       "pow_scalar",        0, unary)                /* x -> x ^ fp[0] */
SGT_OP(NEG,              "neg",               0, unary)
SGT_OP(EXP,              "exp",               0, unary)
SGT_OP(LOG,              "log",               0, unary)
SGT_OP(SQRT,             "sqrt",              0, unary)
SGT_OP(RSQRT,            "rsqrt",             0, unary)
SGT_OP(TANH,             "tanh",              0, unary)
SGT_OP(SIGMOID,          "sigmoid",           0, unary)
SGT_OP(SILU,             "silu",              0, unary)
SGT_OP(GELU,             "gelu",              0, unary)                /* tanh approximation */
SGT_OP(GELU_ERF,         "gelu_erf",          0, unary)                /* exact: 0.5 x (1 + erf(x / sqrt 2)) */
SGT_OP(SIN,              "sin",               0, unary)
SGT_OP(COS,              "cos",               0, unary)
SGT_OP(RELU,             "relu",              0, unary)
SGT_OP(UNARY_BWD,        "unary_bwd",         0, unary_bwd)            /* x, y, dy -> dx; ip[0] = forward op, fp[0] its scalar */
SGT_OP(SUM,              "sum",               0, reduce)               /* x -> reduced; ip = dims bitmask, keepdim */
SGT_OP(MEAN,             "mean",              0, reduce)
SGT_OP(MAX,              "max",               0, reduce)
SGT_OP(ARGMAX,           "argmax",            0, argmax)               /* x -> i32; ip = dim, keepdim */
SGT_OP(SOFTMAX,          "softmax",           0, softmax)              /* x -> softmax over last dim; ip[0] = causal */
SGT_OP(LOG_SOFTMAX,      "log_softmax",       0, softmax)
SGT_OP(SOFTMAX_BWD,      "softmax_bwd",       0, softmax_bwd)          /* y, dy -> dx; ip[0] = 1 if y is log_softmax */
SGT_OP(MATMUL,           "matmul",            0, matmul)               /* a, b -> a@b; ip = transpose a, transpose b */
SGT_OP(EMBEDDING,        "embedding",         0, embedding)            /* table [V,C], idx i32 [...] -> [..., C] */
SGT_OP(INDEX_ADD_ROWS,   "index_add_rows",    0, index_add_rows)       /* dst [V,C] += rows [..., C] at idx [...] */
SGT_OP(INDEX_COPY_ROWS,  "index_copy_rows",   0, index_copy_rows)      /* in place: dst [V,C] rows idx [n] <- rows [n, C] */
SGT_OP(CROSS_ENTROPY,    "cross_entropy",     0, cross_entropy)        /* logits [N,V], tgt i32 [N] -> loss [], lse [N]; ip = ignore, valid columns */
SGT_OP(CROSS_ENTROPY_BWD,"cross_entropy_bwd", 0, cross_entropy_bwd)    /* logits, tgt, lse, dloss -> dlogits; ip = ignore, valid columns */
SGT_OP(RMSNORM,          "rmsnorm",           0, rmsnorm)              /* x [...,C], w [C] -> y (x's dtype, or f32<->bf16), rstd [...]; fp[0] = eps */
SGT_OP(RMSNORM_BWD,      "rmsnorm_bwd",       0, rmsnorm_bwd)          /* x, w, rstd, dy -> dx, dw */
SGT_OP(LAYERNORM,        "layernorm",         0, layernorm)            /* x, w, b -> y, mean, rstd; fp[0] = eps */
SGT_OP(LAYERNORM_BWD,    "layernorm_bwd",     0, layernorm_bwd)        /* x, w, mean, rstd, dy -> dx, dw, db */
SGT_OP(TOPK,             "topk",              0, topk)                 /* x [...,N] -> values [...,k], idx i32; ip[0] = k */
SGT_OP(GATHER_LAST,      "gather_last",       0, gather_last)          /* x [...,N], idx [...,k] -> [...,k] */
SGT_OP(SCATTER_ADD_LAST, "scatter_add_last",  0, scatter_add_last)     /* v [...,k], idx [...,k] -> zeros [...,N] + v at idx; ip[0] = N */
SGT_OP(CMP,              "cmp",               0, cmp)                  /* a, b (broadcast) -> 0/1 in a's dtype; ip[0] = sgt_cmp_kind */
SGT_OP(WHERE,            "where",             0, where)                /* cond, a, b (broadcast) -> cond != 0 ? a : b */
SGT_OP(MASKED_FILL,      "masked_fill",       0, masked_fill)          /* x, mask (broadcast) -> mask != 0 ? fp[0] : x */
SGT_OP(CONCAT,           "concat",            0, concat)               /* x0..xn -> concat along ip[0] */
SGT_OP(BSPARSE_SWIGLU,   "bsparse_swiglu",    0, bsparse_swiglu)       /* x, wg, wu, wd, idx, m [, wd_t] -> y, G, U; ip[0] = block size */
SGT_OP(BSPARSE_SWIGLU_BWD,"bsparse_swiglu_bwd",0, bsparse_swiglu_bwd)  /* x, wg, wu, wd, idx, m, G, U, dy -> dx, dwg, dwu, dwd, dm */
SGT_OP(ATTENTION,        "attention",         0, attention)            /* q [B,H,Tq,D], k, v [B,H,Tk,D] [, len i32 [1]] -> y [B,H,Tq,D], lse [B,H,Tq]; fp[0] = scale; ip[0] = 1: not causal */
SGT_OP(ATTENTION_BWD,    "attention_bwd",     0, attention_bwd)        /* q, k, v, y, lse, dy -> dq, dk, dv; fp[0] = scale; ip[0] = 1: not causal */
SGT_OP(SWIGLU,           "swiglu",            0, swiglu)               /* g, u [N, I] [, m [N, I/bs]] -> silu(g) * u (* m per block); ip[0] = bs or 0 */
SGT_OP(SWIGLU_BWD,       "swiglu_bwd",        0, swiglu_bwd)           /* g, u [, m], dh -> dg, du [, dm]; ip[0] = bs or 0 */
SGT_OP(LINEAR_BF16,      "linear_bf16",       0, linear_bf16)          /* x f32 [..., K], w bf16 [O, K] -> x w^T f32 [..., O] (inference) */
SGT_OP(BSPARSE_SWIGLU_BF16,"bsparse_swiglu_bf16",0, bsparse_swiglu_bf16) /* x f32 [N,C], wb bf16 [nb,3,bs,C], idx [N,k] [, m f32 [N,k]] -> y, partials [N,k,C] (inference) */
SGT_OP(ADAMW,            "adamw",             0, adamw)                /* in place: param, grad, m, v; fp = lr, b1, b2, eps, wd, bc1, bc2 */
SGT_OP(CUSTOM,           "custom",            0, custom)               /* in0..inN -> out0..outM: the user's kernel (custom.h); .custom, .custom_user */
