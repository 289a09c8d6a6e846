/* batched.c -- instantiates batched.inc (K models in one pass) for float32 and float64. */
#include "internal.h"

#define FM_REAL_F32
#include "typedefs.h"
#include "batched.inc"

#define FM_REAL_F64
#include "typedefs.h"
#include "batched.inc"
