/* train.c -- instantiates train.inc for float32 and float64. */
#include "internal.h"

/* Multiply-adds of one sample's forward pass: sum of n_in x n_out over the layers. */
int64_t fm_net_macs(const int64_t *sizes, int64_t n_layers)
{
    int64_t l, macs = 0;
    for (l = 0; l < n_layers; l++) macs += sizes[l] * sizes[l + 1];
    return macs;
}

/* The parts a batch is cut into (one per thread): about 3 x macs multiply-adds per sample;
   keep >= ~8k multiply-adds of a batch per part and at least 4 samples per part (in double:
   macs * bs may pass 2^63).  From the calling thread's thread setting. */
int fm_epoch_parts(const int64_t *sizes, int64_t n_layers, int64_t bs)
{
    int nt = fm_threads();
    double useful = 3.0 * (double)fm_net_macs(sizes, n_layers) * (double)bs / 8192.0;
    if (useful < nt) nt = useful < 1 ? 1 : (int)useful;
    if (bs / 4 < nt) nt = bs / 4 < 1 ? 1 : (int)(bs / 4);
    return nt;
}

#define FM_REAL_F32
#include "typedefs.h"
#include "train.inc"

#define FM_REAL_F64
#include "typedefs.h"
#include "train.inc"
