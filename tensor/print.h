/* print.h: a tensor as text, PyTorch-like, for debugging and notebooks of a C program.
 *
 *   x: shape [2,3], f32, cpu
 *   [[ 1.0000,  2.0000, -3.5000],
 *    [ 4.0000,  5.0000,  6.0000]]
 *
 * Floats (f32, f64, bf16) print with 4 decimals ("%.4f"), or as "%.4e" when the largest magnitude
 * is >= 1e5 or the smallest nonzero one < 1e-4; i32 prints as integers. Columns share one width.
 * A tensor of more than SGT_PRINT_THRESHOLD elements is summarised: every dim longer than
 * 2 * SGT_PRINT_EDGE shows its first and last SGT_PRINT_EDGE entries around "...". Any view on any
 * device prints: the shown elements are read through sgt_to_f64 / sgt_get (host staging). */
#ifndef SGT_TENSOR_PRINT_H
#define SGT_TENSOR_PRINT_H

#include <stddef.h>
#include <stdio.h>

#include "tensor.h"

#define SGT_PRINT_THRESHOLD 1000
#define SGT_PRINT_EDGE 3

/* Writes the header line (with "name: " when name is not NULL) and the values to f. */
void sgt_tensor_print(FILE *f, const sgt_tensor *x, const char *name);
/* The same text as a malloc'd NUL-terminated string (the caller frees it); NULL if out of memory. */
char *sgt_tensor_format(const sgt_tensor *x, const char *name);

#endif
