/* wide.c -- instantiates wide.inc for float32 and float64. */
#include "internal.h"

#define FM_REAL_F32
#include "typedefs.h"
#include "wide.inc"

#define FM_REAL_F64
#include "typedefs.h"
#include "wide.inc"
