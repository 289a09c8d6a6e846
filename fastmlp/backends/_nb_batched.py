"""Numba kernels for K models of one architecture trained in one pass (compiled code only;
the wrappers that check arguments live in ``batched_numba.py``, the contract in
``batched_reference.py``).

Design: model k of a batch runs EXACTLY the arithmetic of the single-model fused epoch
(``_nb_kernels.train_epoch``) - the same row slices (``nslices`` = the thread count the single
model would use), the same tiles, the same BLAS calls, the same fixed-order reduction and
the same fused optimizer loop - so it ends bit for bit where it would end alone, whatever
the thread count of the batched call.  What the batch gains: one compiled call and one
parallel region per mini-batch for all K models instead of K of each, the K x nslices
slice tasks spread over every thread (a 32-wide net alone cannot keep two cores busy), the
per-model optimizer updates in parallel, and the shared rows x, y read by every model
while they are in cache.

Work per mini-batch: (1) every active model's weight sum of its batch rows (serial, the
single kernel's order); (2) a parallel region over threads, thread t running the slice
tasks t, t + nth, ... of the (model, slice) list, each into its own gradient buffer
gbuf[k, s] with the thread's workspace; (3) a parallel region over models: reduce the
slice buffers in slice order, check finiteness, apply the model's optimizer.  The task to
thread assignment changes only who computes a buffer, never its value: deterministic.

Entry points take the thread count ``nth`` as an argument (numba.get_num_threads() inside
a cached function breaks the cache) and compile once per dtype.
"""

import numpy as np
from numba import njit, prange

from ._nb_kernels import (_cast, _opt_range, _reduce_range, _slice_loss_grad, _tile_forward,
                          _ws_init, _ws_layout, _poffsets)


@njit(cache=True, error_model="numpy")
def _tmp_len(sizes):
    m = 1
    for l in range(sizes.shape[0] - 1):
        m = max(m, (sizes[l] + 1) * sizes[l + 1])
    return m


@njit(cache=True, error_model="numpy", parallel=True)
def batched_train_epoch(params, grads, states, batch_losses, done, x, y, sw, perm, n_rows,
                        batch_size, lrs, step0, opts, hypers, sizes, acts, loss, nslices,
                        tiles, tile_max, nth):
    """See batched_reference.batched_train_epoch; tiles: int64 (K,) the tile height of each
    model (the single kernel's choice for its batch size), tile_max >= every tile."""
    K = params.shape[0]
    n_params = params.shape[1]
    offa, offz, offd0, offd1, wsn = _ws_layout(sizes, tile_max)
    wo = _poffsets(sizes)
    ws = np.empty((nth, wsn), dtype=params.dtype)
    tmpw = np.empty((nth, _tmp_len(sizes)), dtype=params.dtype)
    gbuf = np.zeros((K, nslices, n_params), dtype=params.dtype)
    lossp = np.zeros((K, nslices), dtype=np.float64)
    wsums = np.zeros(K, dtype=params.dtype)
    hbuf = hypers.copy()
    for t in range(nth):
        _ws_init(ws[t], sizes, offa, tile_max)
    nb = np.empty(K, dtype=np.int64)
    nb_max = 0
    for k in range(K):
        nb[k] = (n_rows[k] + batch_size[k] - 1) // batch_size[k]
        nb_max = max(nb_max, nb[k])
        done[k] = 0
    shared_perm = perm.shape[0] == 1
    shared_sw = sw.shape[0] == 1
    active = np.zeros(K, dtype=np.bool_)
    for bi in range(nb_max):
        n_act = 0
        for k in range(K):
            # a model runs batch bi if it has one and did not stop at an earlier one
            active[k] = bi < nb[k] and done[k] == bi
            if active[k]:
                n_act += 1
                pk = perm[0] if shared_perm else perm[k]
                swk = sw[0] if shared_sw else sw[k]
                r0 = bi * batch_size[k]
                r1 = min(r0 + batch_size[k], n_rows[k])
                wsum = _cast(0.0, swk)
                for r in range(r0, r1):
                    wsum += swk[pk[r]]
                wsums[k] = wsum
        if n_act == 0:
            break
        n_tasks = K * nslices
        for t in prange(nth):
            for task in range(t, n_tasks, nth):
                k = task // nslices
                s = task - k * nslices
                if not active[k]:
                    continue
                pk = perm[0] if shared_perm else perm[k]
                swk = sw[0] if shared_sw else sw[k]
                r0 = bi * batch_size[k]
                r1 = min(r0 + batch_size[k], n_rows[k])
                per = (r1 - r0 + nslices - 1) // nslices
                lo = r0 + s * per
                hi = min(lo + per, r1)
                gt = gbuf[k, s]
                if lo >= hi:
                    for i in range(n_params):
                        gt[i] = 0
                lossp[k, s] = _slice_loss_grad(gt, ws[t], tmpw[t], params[k], x, y, swk, pk,
                                               lo, hi, wsums[k], sizes, acts, loss, tiles[k],
                                               offa, offz, offd0, offd1, wo, batch_size[k])
        for k in prange(K):
            if not active[k]:
                continue
            finite = _reduce_range(grads[k], gbuf[k], nslices, 0, n_params)
            tot = 0.0
            for s in range(nslices):
                tot += lossp[k, s]
            value = tot / np.float64(wsums[k])
            batch_losses[k, bi] = value
            if value - value == 0 and finite:
                h = hbuf[k]
                h[0] = lrs[k, bi]
                st = states[k]
                _opt_range(opts[k], params[k], grads[k], st[0], st[1], st[2], 0, n_params,
                           step0[k] + bi + 1, h)
                done[k] = bi + 1


@njit(cache=True, error_model="numpy", parallel=True)
def batched_forward(out, params, x, sizes, acts, tile, nth):
    """out: (K, B, n_L) logits of every model on the rows x: (B, n_0); tasks (model, tile
    of rows) spread over the threads."""
    K = params.shape[0]
    n = x.shape[0]
    L = sizes.shape[0] - 1
    n0 = sizes[0]
    nl = sizes[L]
    offa, offz, offd0, offd1, wsn = _ws_layout(sizes, tile)
    wo = _poffsets(sizes)
    ws = np.empty((nth, wsn), dtype=params.dtype)
    for t in range(nth):
        _ws_init(ws[t], sizes, offa, tile)
    n_tiles = (n + tile - 1) // tile
    n_tasks = K * n_tiles
    for t in prange(nth):
        wst = ws[t]
        for task in range(t, n_tasks, nth):
            k = task // n_tiles
            r = (task - k * n_tiles) * tile
            nt = min(tile, n - r)
            a0 = wst[offa[0]:offa[0] + nt * (n0 + 1)].reshape((nt, n0 + 1))
            for s in range(nt):
                xr = x[r + s]
                ar = a0[s]
                for c in range(n0):
                    ar[c] = xr[c]
            _tile_forward(wst, params[k], sizes, acts, offa, offz, wo, nt)
            outa = wst[offa[L]:offa[L] + nt * (nl + 1)].reshape((nt, nl + 1))
            ok = out[k]
            for s in range(nt):
                orow = ok[r + s]
                src = outa[s]
                for c in range(nl):
                    orow[c] = src[c]
