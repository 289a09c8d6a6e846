"""Numba kernels for K models of one architecture trained in one pass (compiled code only;
the wrappers that check arguments live in ``batched_numba.py``, the contract in
``batched_reference.py``).

Design: model k of a batch runs EXACTLY the arithmetic of the single-model fused epoch
(``_nb_kernels.train_epoch``) - the same row slices (``nslices`` = the thread count the single
model would use), the same tiles, the same BLAS calls, the same fixed-order reduction and
the same fused optimizer loop - so it ends bit for bit where it would end alone, whatever
the thread count of the batched call.

Work: the batches are taken in chunks of ``chunk`` batches.  The tasks (model, chunk) are
taken chunk by chunk, model by model; a parallel region runs the next K - K mod nth of them
(K when K < nth), whole models per thread, so that every thread trains as many model-chunks
as the others (5 models on 2 threads: 2.5 models' time per chunk, not 3) and a region never
holds two chunks of one model.  A model's batches run each batch's slices in turn into the
thread's slice gradient buffers (the same arithmetic as the single kernel, only serial).  What the batch gains over K separate runs: a parallel region per
chunk instead of one per mini-batch and model (with few threads on a loaded machine each
region costs tens of microseconds, as much as a tiny net's batch), whole models per thread
(their weights, gradient and optimizer state stay in that core's cache for the chunk), and
the chunk's rows of x, y read from memory once for every model (a chunk is sized to stay
in cache).  Who trains a model changes only where, never what: deterministic.

Entry points take the thread count ``nth`` as an argument (numba.get_num_threads() inside
a cached function breaks the cache) and compile once per dtype.  Numba's cache does not
notice edits of the ``_nb_kernels`` functions these call: after changing one, delete
``__pycache__/_nb_batched*.nb*`` (or touch this file) so the batch recompiles with it.
"""

import numpy as np
from numba import njit, prange

from ._nb_kernels import (_cast, _flush_begin, _mode_restore, _opt_range, _reduce_range,
                          _slice_loss_grad, _tile_forward, _ws_init, _ws_layout, _poffsets)


@njit(cache=True, error_model="numpy")
def _tmp_len(sizes):
    m = 1
    for l in range(sizes.shape[0] - 1):
        m = max(m, (sizes[l] + 1) * sizes[l + 1])
    return m


@njit(cache=True, error_model="numpy")
def _model_batches(k, b0, b1, params, grads, states, batch_losses, done, x, y, sw, perm,
                   n_rows, batch_size, lrs, step0, opts, hbuf, sizes, acts, loss, nslices,
                   tiles, ws, tmpw, gbuf, lossp, offa, offz, offd0, offd1, wo):
    """Batches b0..b1-1 of model k on one thread, each exactly as the single fused epoch
    runs it: its nslices row slices (in turn, each into its own gradient buffer), the
    reduction in slice order, the finiteness check, the optimizer update."""
    n_params = params.shape[1]
    xk = x[0] if x.shape[0] == 1 else x[k]
    pk = perm[0] if perm.shape[0] == 1 else perm[k]
    swk = sw[0] if sw.shape[0] == 1 else sw[k]
    bs = batch_size[k]
    nb = (n_rows[k] + bs - 1) // bs
    pv = params[k]
    gk = grads[k]
    st = states[k]
    h = hbuf[k]
    for bi in range(b0, min(b1, nb)):
        if done[k] != bi:          # stopped at a non-finite batch earlier
            return
        r0 = bi * bs
        r1 = min(r0 + bs, n_rows[k])
        wsum = _cast(0.0, swk)
        for r in range(r0, r1):
            wsum += swk[pk[r]]
        per = (r1 - r0 + nslices - 1) // nslices
        for s in range(nslices):
            lo = r0 + s * per
            hi = min(lo + per, r1)
            gt = gbuf[s]
            if lo >= hi:
                for i in range(n_params):
                    gt[i] = 0
            lossp[s] = _slice_loss_grad(gt, ws, tmpw, pv, xk, y, swk, pk, lo, hi, wsum, sizes,
                                        acts, loss, tiles[k], offa, offz, offd0, offd1, wo,
                                        bs)
        finite = _reduce_range(gk, gbuf, nslices, 0, n_params)
        tot = 0.0
        for s in range(nslices):
            tot += lossp[s]
        value = tot / np.float64(wsum)
        batch_losses[k, bi] = value
        if not (value - value == 0 and finite):
            return
        h[0] = lrs[k, bi]
        _opt_range(opts[k], pv, gk, st[0], st[1], st[2], 0, n_params, step0[k] + bi + 1, h)
        done[k] = bi + 1


@njit(cache=True, error_model="numpy", parallel=True)
def batched_train_epoch(params, grads, states, batch_losses, done, x, y, sw, perm, n_rows,
                        batch_size, lrs, step0, opts, hypers, sizes, acts, loss, nslices,
                        tiles, tile_max, chunk, nth):
    """See batched_reference.batched_train_epoch (x here always (1 or K, N, n_0)).  tiles: int64 (K,) each model's tile
    height (the single kernel's choice for its batch size), tile_max >= every tile; chunk:
    batches per model per parallel region."""
    K = params.shape[0]
    n_params = params.shape[1]
    offa, offz, offd0, offd1, wsn = _ws_layout(sizes, tile_max)
    wo = _poffsets(sizes)
    ws = np.empty((nth, wsn), dtype=params.dtype)
    tmpw = np.empty((nth, _tmp_len(sizes)), dtype=params.dtype)
    gbuf = np.zeros((nth, nslices, n_params), dtype=params.dtype)
    lossp = np.zeros((nth, nslices), dtype=np.float64)
    hbuf = hypers.copy()
    for t in range(nth):
        _ws_init(ws[t], sizes, offa, tile_max)
    nb_max = 0
    for k in range(K):
        nb_max = max(nb_max, (n_rows[k] + batch_size[k] - 1) // batch_size[k])
        done[k] = 0
    # tasks (model k, chunk c) in the order c * K + k; a parallel region runs `per` of them,
    # thread t the tasks t, t + nth, ...: per <= K, so a region never holds two chunks of one
    # model and a model's next chunk always comes in a later region; per is a multiple of
    # nth, so the threads get equal work in every region but the last (5 models on 2
    # threads: 2.5, not 3, models' time per chunk)
    per = K if K < nth else K - K % nth
    n_tasks = ((nb_max + chunk - 1) // chunk) * K
    for r0 in range(0, n_tasks, per):
        for t in prange(nth):
            csr = _flush_begin()
            for task in range(r0 + t, min(r0 + per, n_tasks), nth):
                k = task % K
                b0 = (task // K) * chunk
                _model_batches(k, b0, b0 + chunk, params, grads, states, batch_losses, done,
                               x, y, sw, perm, n_rows, batch_size, lrs, step0, opts, hbuf,
                               sizes, acts, loss, nslices, tiles, ws[t], tmpw[t], gbuf[t],
                               lossp[t], offa, offz, offd0, offd1, wo)
            _mode_restore(csr)


@njit(cache=True, error_model="numpy", parallel=True)
def batched_forward(out, params, x, sizes, acts, tile, nth):
    """out: (K, B, n_L) logits of every model on the rows x: (B, n_0); tasks (model, tile
    of rows) spread over the threads."""
    K = params.shape[0]
    n = x.shape[0]
    L = sizes.shape[0] - 1
    n0 = sizes[0]
    nl = sizes[L]
    offa, offz, _, _, wsn = _ws_layout(sizes, tile)
    wo = _poffsets(sizes)
    ws = np.empty((nth, wsn), dtype=params.dtype)
    for t in range(nth):
        _ws_init(ws[t], sizes, offa, tile)
    n_tiles = (n + tile - 1) // tile
    n_tasks = K * n_tiles
    for t in prange(nth):
        csr = _flush_begin()
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
        _mode_restore(csr)
