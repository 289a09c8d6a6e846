"""NumPy reference kernels: the specification every fast backend is checked against.

Read this file first. Each function here exists under the same name and signature in
``fastmlp.backends.numba`` and ``fastmlp.backends.c``; ``tests/test_conformance.py`` checks
them against these, and ``tests/test_gradients.py`` / ``tests/test_vs_torch.py`` check these
against finite differences and PyTorch.

Conventions (after llm.c): outputs first, gradients prefixed ``d``, inputs next, options last.
Output arrays are written in place; nothing is allocated that the caller could not see.
Shapes are given in a comment on each buffer.  ``act`` / ``loss`` are integer codes from
``fastmlp.codes``.  All float arrays of one call share one dtype (float32 or float64;
learning rates and batch losses float64) and are C-contiguous, and results are computed in
that dtype: another dtype or layout is refused, never converted (``_contract``: "Dtypes and
layout"), by every backend alike.

Flat parameter layout of an MLP with ``sizes = [n0, n1, ..., nL]``: for each layer ``l`` in
order, the weight ``W_l`` of shape ``(n_l, n_{l+1})`` row-major, then the bias ``b_l`` of shape
``(n_{l+1},)``.  A layer computes ``z = x @ W + b`` and ``a = f(z)``.  The last layer's
activation is ``identity``: the network returns logits, and the loss applies the link.
"""

import math

import numpy as np

from ..codes import (ELU_ALPHA, LEAKY_RELU_SLOPE, OPTIMIZERS, PERM_BUCKET_ROWS,
                     PERM_MAX_BUCKET_BITS, PERM_PHI, hyper_dict)
from . import _contract, _threads

NAME = "numpy"
AVAILABLE = True
UNAVAILABLE_REASON = ""

_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715


def set_num_threads(n):
    """The default count of the fast backends (fastmlp.backends.set_num_threads), checked
    like everywhere else; the reference itself is single-threaded NumPy."""
    _threads.set_default(n)


# ---------------------------------------------------------------------------------------
# Activations. z is the pre-activation; the derivative is always taken at z.
# ---------------------------------------------------------------------------------------

def _sigmoid(z):
    # Stable for any |z|: exp() only ever sees a non-positive argument.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def activation_forward(out, z, act):
    """out = f(z), elementwise.  # out, z: same shape"""
    act = _contract.activation(out, z, act)
    if act == 0:    # identity
        out[...] = z
    elif act == 1:  # relu
        np.maximum(z, 0, out=out)
    elif act == 2:  # leaky_relu: z if z > 0 else slope * z
        out[...] = np.where(z > 0, z, z * z.dtype.type(LEAKY_RELU_SLOPE))
    elif act == 3:  # elu: z if z > 0 else alpha * (exp(z) - 1)
        out[...] = np.where(z > 0, z, z.dtype.type(ELU_ALPHA) * np.expm1(np.minimum(z, 0)))
    elif act == 4:  # tanh
        np.tanh(z, out=out)
    elif act == 5:  # sigmoid
        out[...] = _sigmoid(z)
    elif act == 6:  # softplus: log(1 + exp(z)) = max(z, 0) + log1p(exp(-|z|))
        out[...] = np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))
    elif act == 7:  # gelu, tanh form: 0.5 z (1 + tanh(c (z + k z^3)))
        t = np.tanh(z.dtype.type(_GELU_C) * (z + z.dtype.type(_GELU_K) * z * z * z))
        out[...] = 0.5 * z * (1 + t)
    else:
        raise ValueError(f"unknown activation code {act}")


def sigmoid_pair(out, z):
    """out (n, 2) = [sigmoid(-z), sigmoid(z)] for z (n,), each column computed directly:
    1/(1+e) or e/(1+e) with e = exp(-|z|), z >= 0 choosing which, so that a small
    probability keeps its relative precision (no 1 - p); NaN gives NaN in both columns.
    The numerators are chosen without np.where (its generic loop took half of this
    function): with pos = 1.0 where z >= 0 else 0.0, max(e, pos) is 1 or e, as e <= 1 (NaN
    stays NaN)."""
    _contract.sigmoid_pair(out, z)
    e = np.abs(z)
    np.negative(e, out=e)
    np.exp(e, out=e)                          # exp(-|z|) in (0, 1], NaN for NaN
    den = e + 1
    pos = np.greater_equal(z, 0).view(np.uint8).astype(z.dtype)
    num = np.maximum(e, pos)
    np.divide(num, den, out=out[:, 1])
    np.subtract(1, pos, out=pos)
    np.maximum(e, pos, out=num)
    np.divide(num, den, out=out[:, 0])


def activation_backward(dz, da, z, act):
    """dz = da * f'(z), elementwise.  # dz, da, z: same shape"""
    act = _contract.activation_backward(dz, da, z, act)
    t = z.dtype.type
    if act == 0:
        d = np.ones_like(z)
    elif act == 1:
        d = (z > 0).astype(z.dtype)
    elif act == 2:
        d = np.where(z > 0, t(1), t(LEAKY_RELU_SLOPE))
    elif act == 3:
        d = np.where(z > 0, t(1), t(ELU_ALPHA) * np.exp(np.minimum(z, 0)))
    elif act == 4:
        th = np.tanh(z)
        d = 1 - th * th
    elif act == 5:
        s = _sigmoid(z)
        d = s * (1 - s)
    elif act == 6:  # softplus' = sigmoid
        d = _sigmoid(z)
    elif act == 7:
        u = t(_GELU_C) * (z + t(_GELU_K) * z * z * z)
        th = np.tanh(u)
        du = t(_GELU_C) * (1 + t(3 * _GELU_K) * z * z)
        d = 0.5 * (1 + th) + 0.5 * z * (1 - th * th) * du
    else:
        raise ValueError(f"unknown activation code {act}")
    dz[...] = da * d


# ---------------------------------------------------------------------------------------
# Dense layer: z = x @ w + b, a = f(z).
# ---------------------------------------------------------------------------------------

def dense_forward(out, z, x, w, b, act):
    """Forward pass of one layer.

    out, z: (B, n_out)  activation and pre-activation (z is kept for the backward pass)
    x: (B, n_in), w: (n_in, n_out), b: (n_out,)
    """
    act = _contract.dense_forward(out, z, x, w, b, act)
    np.matmul(x, w, out=z)
    z += b
    activation_forward(out, z, act)


def dense_backward(dx, dw, db, dout, x, w, z, act):
    """Backward pass of one layer, given dout = dL/d(out).

    dx: (B, n_in) or None (not needed for the first layer)
    dw: (n_in, n_out), db: (n_out,)      overwritten, not accumulated
    dout: (B, n_out), x: (B, n_in), w: (n_in, n_out), z: (B, n_out)
    dz = dout * f'(z);  dw = x^T dz;  db = sum_rows dz;  dx = dz w^T
    """
    act = _contract.dense_backward(dx, dw, db, dout, x, w, z, act)
    dz = np.empty_like(dout)
    activation_backward(dz, dout, z, act)
    np.matmul(x.T, dz, out=dw)
    db[...] = dz.sum(axis=0)
    if dx is not None:
        np.matmul(dz, w.T, out=dx)


# ---------------------------------------------------------------------------------------
# Losses on the network output, with their gradients fused.  Every loss is the weighted mean
# L = sum_i sw_i l_i / sum_i sw_i, and the gradient row i is sw_i dl_i/dz_i / sum_i sw_i.
# Targets are always a 2-D float array y: (B, k) of the model dtype: for cross_entropy
# k = 1 (the class index), for bce and mse k = the number of outputs (bce: 0/1 each).
# ---------------------------------------------------------------------------------------

def _flush(s):
    """s[|s| < smallest normal] = 0, in place; returns s.  Used on the loss gradient (below)
    and on every optimizer state (the optimizer section says why)."""
    s[np.abs(s) < np.finfo(s.dtype).tiny] = 0
    return s


# The gradient of every loss is stored with its subnormal values flushed to 0 (``_flush``).
# A confidently right logit (|z| beyond ~87 in float32) has sigmoid(z) - y below the
# smallest normal number; divided by the batch's weight sum it lands in the subnormal
# range, and every backward product it enters is then subnormal too.  On Intel CPUs each
# vector holding one takes a microcode assist: on a separable problem 5-32-32-1 trained
# 3x slower per epoch (C) as the logits grew.  A flushed gradient is below 1.2e-38 in
# float32: it moves no parameter by a representable amount.  (torch keeps the subnormal.)
# Beyond these stored values, the compiled backends run all their arithmetic with
# subnormals flushed to zero (FTZ and DAZ on x86: csrc/internal.h, FM_FLUSH_BEGIN), which
# this reference does not: products of small deltas and weights still went subnormal once
# a 5-512-512-1 net separated its data.  The two differ by less than the smallest normal
# number in any one operation, far inside the conformance tolerances.

def bce_loss_grad(dlogits, logits, y, sw):
    """Binary cross-entropy on logits, one per output.  Returns the loss (a Python float).

    dlogits, logits: (B, K); y: (B, K) in {0, 1}; sw: (B,) sample weights
    l = sum_k max(z_k, 0) - z_k y_k + log(1 + exp(-|z_k|))   (stable for any |z|)
    dl/dz_k = sigmoid(z_k) - y_k
    K = 1 is binary classification; K > 1 multilabel (scikit-learn's binary_log_loss sums
    over the labels too).
    """
    _contract.loss_grad(dlogits, logits, y, sw, 0)
    z, t = logits, y
    l = (np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).sum(axis=1)
    wsum = sw.sum()
    dlogits[...] = sw[:, None] * (_sigmoid(z) - t) / wsum
    _flush(dlogits)
    return float((sw * l).sum() / wsum)


def cross_entropy_loss_grad(dlogits, logits, y, sw):
    """Softmax cross-entropy.  Returns the loss.

    dlogits, logits: (B, C); y: (B, 1) class index stored as float; sw: (B,)
    l = logsumexp(z) - z_y   (max subtracted first);  dl/dz = softmax(z) - onehot(y)
    """
    _contract.loss_grad(dlogits, logits, y, sw, 1)
    m = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - m)
    s = e.sum(axis=1, keepdims=True)
    cls = y[:, 0].astype(np.int64)
    rows = np.arange(logits.shape[0])
    l = (m[:, 0] + np.log(s[:, 0])) - logits[rows, cls]
    p = e / s
    p[rows, cls] -= 1
    wsum = sw.sum()
    dlogits[...] = p * (sw / wsum)[:, None]
    _flush(dlogits)
    return float((sw * l).sum() / wsum)


def mse_loss_grad(dout, out, y, sw):
    """Mean squared error (torch.nn.MSELoss: mean over outputs).  Returns the loss.

    dout, out, y: (B, K); sw: (B,)
    l = mean_k (out_k - y_k)^2;  dl/dout = 2 (out - y) / K
    """
    _contract.loss_grad(dout, out, y, sw, 2)
    k = out.shape[1]
    r = out - y
    l = (r * r).sum(axis=1) / k
    wsum = sw.sum()
    dout[...] = r * (2 * sw / (k * wsum))[:, None]
    _flush(dout)
    return float((sw * l).sum() / wsum)


_LOSS_KERNELS = (bce_loss_grad, cross_entropy_loss_grad, mse_loss_grad)


def loss_grad(dout, out, y, sw, loss):
    """Dispatch on the loss code (0 bce, 1 cross_entropy, 2 mse)."""
    return _LOSS_KERNELS[_contract.loss_grad(dout, out, y, sw, loss)](dout, out, y, sw)


# ---------------------------------------------------------------------------------------
# Whole network.
# ---------------------------------------------------------------------------------------

def layer_offsets(sizes):
    """[(w_offset, b_offset), ...] into the flat parameter buffer, and the total length."""
    offs, o = [], 0
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        offs.append((o, o + n_in * n_out))
        o += n_in * n_out + n_out
    return offs, o


def _layers(params, sizes):
    offs, _ = layer_offsets(sizes)
    for (wo, bo), n_in, n_out in zip(offs, sizes[:-1], sizes[1:]):
        yield (params[wo:bo].reshape(int(n_in), int(n_out)), params[bo:bo + n_out],
               slice(wo, bo), slice(bo, bo + n_out))


def mlp_forward(out, params, x, sizes, acts):
    """Network output (logits) for a batch.

    out: (B, sizes[-1]); params: (n_params,); x: (B, sizes[0])
    sizes: int64 (L+1,); acts: int64 (L,) activation code per layer (last is identity)
    """
    sizes, acts = _contract.mlp_forward(out, params, x, sizes, acts)
    a = x
    layers = list(_layers(params, sizes))
    for l, (w, b, _, _) in enumerate(layers):
        z = np.empty((x.shape[0], w.shape[1]), dtype=params.dtype)
        nxt = out if l == len(layers) - 1 else np.empty_like(z)
        dense_forward(nxt, z, a, w, b, int(acts[l]))
        a = nxt


check_l2 = _contract.l2   # the one l2 check, shared by every backend


def add_l2(grad, params, sw, sizes, l2):
    """The L2 penalty on the weights (never the biases), scaled by the batch's weight sum
    W = sum_i sw_i as scikit-learn's MLPs scale it (a sample of weight 3 then counts as the
    sample repeated 3 times, penalty included):

        loss += l2 / (2 W) * sum_l ||W_l||^2;   grad_W_l += (l2 / W) W_l

    Adds in place to grad's weight entries; returns the loss term (float).
    # grad, params: (n_params,); sw: (B,)"""
    if l2 == 0:
        return 0.0
    c = float(l2) / float(sw.sum())
    pen = 0.0
    for w, _, ws, _ in _layers(params, sizes):
        grad[ws] += params.dtype.type(c) * params[ws]
        pen += float(np.dot(params[ws].astype(np.float64), params[ws].astype(np.float64)))
    return 0.5 * c * pen


def mlp_loss_grad(grad, params, x, y, sw, sizes, acts, loss, l2=0.0):
    """Loss of a batch and its gradient with respect to every parameter.

    grad: (n_params,) overwritten; params: (n_params,); x: (B, sizes[0]); y: (B, k); sw: (B,)
    l2: the weights' L2 coefficient (see add_l2; 0 = none).
    Returns the weighted-mean loss (plus the L2 term).
    """
    sizes, acts, loss = _contract.mlp_loss_grad(grad, params, x, y, sw, sizes, acts, loss)
    l2 = check_l2(l2)
    layers = list(_layers(params, sizes))
    acts_in, zs, a = [], [], x
    for l, (w, b, _, _) in enumerate(layers):
        z = np.empty((x.shape[0], w.shape[1]), dtype=params.dtype)
        nxt = np.empty_like(z)
        dense_forward(nxt, z, a, w, b, int(acts[l]))
        acts_in.append(a)
        zs.append(z)
        a = nxt
    dout = np.empty_like(a)
    value = loss_grad(dout, a, y, sw, int(loss))
    for l in range(len(layers) - 1, -1, -1):
        w, _, ws, bs = layers[l]
        dx = np.empty_like(acts_in[l]) if l > 0 else None
        dense_backward(dx, grad[ws].reshape(w.shape), grad[bs], dout, acts_in[l], w, zs[l],
                       int(acts[l]))
        dout = dx
    return value + add_l2(grad, params, sw, sizes, l2)


# ---------------------------------------------------------------------------------------
# Optimizer updates: one pass over flat buffers, in place, exactly torch.optim's
# single-tensor algorithms.  ``step`` is the 1-based number of this update (torch
# increments its step counter before using it).  g is read, never written.
#
# One departure from torch: a state value whose magnitude falls below the dtype's smallest
# normal number is stored as 0 (``_flush``), and the update uses the stored value.  The
# exp_avg (and momentum buffer) of a unit whose gradient is zero decays geometrically
# through the subnormal range, and on Intel CPUs each vector holding a subnormal number
# takes a microcode assist: after ~1,000 Adam steps of 5-512-512-1 a quarter of a million
# parameters held ~25,000 subnormal exp_avg values, the compiled update ran 3x (C) to 30x
# (Numba) slower and training lost a third of its speed.  A flushed value is below
# 1.2e-38 in float32: it moves no parameter by a representable amount.
# ---------------------------------------------------------------------------------------

def sgd_update(p, g, buf, step, lr, momentum, dampening, weight_decay, nesterov, maximize):
    """torch.optim.SGD.

    g <- -g if maximize;  g <- g + weight_decay p
    if momentum: buf <- g (first step) else momentum buf + (1 - dampening) g
                 g <- g + momentum buf if nesterov else buf
    p <- p - lr g
    # p, g, buf: (n,)  (buf is untouched when momentum == 0)
    """
    step = _contract.update("sgd", p, g, [("buf", buf, momentum != 0)], step, dict(
        lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
        nesterov=nesterov, maximize=maximize))
    t = p.dtype.type
    d = -g if maximize else g.copy()
    if weight_decay != 0:
        d += t(weight_decay) * p
    if momentum != 0:
        if step == 1:
            buf[...] = d
        else:
            buf *= t(momentum)
            buf += t(1 - dampening) * d
        _flush(buf)
        if nesterov:
            d += t(momentum) * buf
        else:
            d = buf
    p -= t(lr) * d


def adagrad_update(p, g, state_sum, step, lr, lr_decay, weight_decay, eps, maximize):
    """torch.optim.Adagrad.

    g <- -g if maximize;  g <- g + weight_decay p
    clr = lr / (1 + (step - 1) lr_decay)
    sum <- sum + g^2;  p <- p - clr g / (sqrt(sum) + eps)
    # p, g, state_sum: (n,)
    """
    step = _contract.update("adagrad", p, g, [("state_sum", state_sum, True)], step, dict(
        lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps, maximize=maximize))
    t = p.dtype.type
    d = -g if maximize else g.copy()
    if weight_decay != 0:
        d += t(weight_decay) * p
    clr = lr / (1 + (step - 1) * lr_decay)
    state_sum += d * d
    _flush(state_sum)
    p -= t(clr) * d / (np.sqrt(state_sum) + t(eps))


def rmsprop_update(p, g, square_avg, grad_avg, momentum_buffer, step, lr, alpha, eps,
                   weight_decay, momentum, centered, maximize):
    """torch.optim.RMSprop.

    g <- -g if maximize;  g <- g + weight_decay p
    v <- alpha v + (1 - alpha) g^2
    if centered: gbar <- gbar + (1 - alpha) (g - gbar);  den = sqrt(v - gbar^2) + eps
    else:        den = sqrt(v) + eps
    if momentum: buf <- momentum buf + g / den;  p <- p - lr buf
    else:        p <- p - lr g / den
    # p, g, square_avg, grad_avg, momentum_buffer: (n,)
    """
    step = _contract.update("rmsprop", p, g, [
        ("square_avg", square_avg, True), ("grad_avg", grad_avg, bool(centered)),
        ("momentum_buffer", momentum_buffer, momentum > 0)], step, dict(
        lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
        centered=centered, maximize=maximize))
    t = p.dtype.type
    d = -g if maximize else g.copy()
    if weight_decay != 0:
        d += t(weight_decay) * p
    square_avg *= t(alpha)
    square_avg += t(1 - alpha) * d * d
    _flush(square_avg)
    if centered:
        grad_avg += t(1 - alpha) * (d - grad_avg)
        _flush(grad_avg)
        den = np.sqrt(square_avg - grad_avg * grad_avg) + t(eps)
    else:
        den = np.sqrt(square_avg) + t(eps)
    if momentum > 0:
        momentum_buffer *= t(momentum)
        momentum_buffer += d / den
        _flush(momentum_buffer)
        p -= t(lr) * momentum_buffer
    else:
        p -= t(lr) * d / den


def adam_update(p, g, m, v, vmax, step, lr, beta1, beta2, eps, weight_decay, amsgrad,
                maximize, decoupled):
    """torch.optim.Adam (decoupled=False) and torch.optim.AdamW (decoupled=True).

    g <- -g if maximize
    AdamW: p <- p (1 - lr weight_decay);   Adam: g <- g + weight_decay p
    m <- m + (1 - beta1) (g - m);   v <- beta2 v + (1 - beta2) g^2
    vhat = max(vmax, v) -> vmax if amsgrad else v
    p <- p - (lr / (1 - beta1^step)) m / (sqrt(vhat) / sqrt(1 - beta2^step) + eps)
    # p, g, m, v, vmax: (n,)  (vmax is untouched unless amsgrad)
    """
    step = _contract.update("adamw" if decoupled else "adam", p, g, [
        ("m", m, True), ("v", v, True), ("vmax", vmax, bool(amsgrad))], step, dict(
        lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
        maximize=maximize))
    t = p.dtype.type
    d = -g if maximize else g.copy()
    if weight_decay != 0:
        if decoupled:
            p *= t(1 - lr * weight_decay)
        else:
            d += t(weight_decay) * p
    m += t(1 - beta1) * (d - m)
    v *= t(beta2)
    v += t(1 - beta2) * d * d
    _flush(m)
    _flush(v)
    step_size = lr / (1 - beta1 ** step)
    bc2_sqrt = math.sqrt(1 - beta2 ** step)
    if amsgrad:
        np.maximum(vmax, v, out=vmax)
        den = np.sqrt(vmax) / t(bc2_sqrt) + t(eps)
    else:
        den = np.sqrt(v) / t(bc2_sqrt) + t(eps)
    p -= t(step_size) * m / den


def optimizer_update(opt, p, g, state, step, hyper):
    """Dispatch an update by optimizer code (fastmlp.codes.OPTIMIZERS).

    state: (N_STATE, n) rows as listed in fastmlp.codes; hyper: float64 (N_HYPER,) laid out
    as fastmlp.codes.HYPER_NAMES (read back by name here)
    """
    opt, step = _contract.optimizer_update(opt, p, g, state, step, hyper)
    named = hyper_dict(opt, hyper)
    name = OPTIMIZERS[opt]
    if name == "sgd":
        sgd_update(p, g, state[0], step, **named)
    elif name == "adagrad":
        adagrad_update(p, g, state[0], step, **named)
    elif name == "rmsprop":
        rmsprop_update(p, g, state[0], state[1], state[2], step, **named)
    else:  # adam, adamw: one layout, adamw's weight decay decoupled
        adam_update(p, g, state[0], state[1], state[2], step, decoupled=name == "adamw",
                    **named)


def bound_update(opt, p, state):
    """``update(g, step, hyper)`` = optimizer_update(opt, p, g, state, step, hyper) on
    these p and state, which are checked now (as the other backends check them once).
    The specification of the compiled backends' bound_update: every step fully checked."""
    _contract.BoundUpdate(opt, p, state)
    return lambda g, step, hyper: optimizer_update(opt, p, g, state, step, hyper)


# ---------------------------------------------------------------------------------------
# One epoch of mini-batch training: the reference for the fused epoch drivers.
# ---------------------------------------------------------------------------------------

def train_epoch(params, grad, state, batch_losses, x, y, sw, perm, batch_size, lrs, step0,
                opt, hyper, sizes, acts, loss, l2=0.0):
    """Run every mini-batch of one epoch: gather, loss and gradient, optimizer update.

    params, grad: (n_params,); state: (N_STATE, n_params); batch_losses: float64 (n_batches,)
    x: (N, sizes[0]); y: (N, k); sw: (N,), or None: every row weighs 1 (the same results as
    an array of ones; the C kernel then reads no weights); perm: int64 (N,) sample order
    batch_size: rows per batch (the last batch may be smaller); lrs: float64 (n_batches,)
    the learning rate of each batch; step0: optimizer steps taken before this epoch.
    l2: the weights' L2 coefficient, applied per batch (see add_l2).
    Before each update the batch loss and gradient are checked: if either is not finite the
    epoch stops there, that update is not applied, and the number of completed batches is
    returned (so params stay at their last finite value).  Returns n_batches on success.
    sw's values are checked once (finite, >= 0, a finite total); a batch whose weights sum
    to 0 has no weighted mean: its loss and gradient are NaN and the epoch stops there.
    """
    sizes, acts, loss, opt, batch_size, step0, perm, n_batches = _contract.train_epoch(
        params, grad, state, batch_losses, x, y, sw, perm, batch_size, lrs, step0, opt, hyper,
        sizes, acts, loss)
    h = np.array(hyper, dtype=np.float64)
    l2 = check_l2(l2)
    if sw is None:
        sw = np.ones(x.shape[0], dtype=params.dtype)
    for bi in range(n_batches):
        idx = perm[bi * batch_size:(bi + 1) * batch_size]
        if not sw[idx].sum() > 0:
            # weights summing to 0: the weighted mean is 0 / 0, a NaN loss and gradient as
            # the compiled epochs compute them, so the epoch stops here like theirs
            batch_losses[bi] = np.nan
            grad[...] = np.nan
            return bi
        with np.errstate(all="ignore"):  # non-finite values are detected just below
            value = mlp_loss_grad(grad, params, x[idx], y[idx], sw[idx], sizes, acts, loss,
                                  l2)
        batch_losses[bi] = value
        if not (math.isfinite(value) and np.isfinite(grad).all()):
            return bi
        h[0] = lrs[bi]
        optimizer_update(opt, params, grad, state, step0 + bi + 1, h)
    return n_batches


# ---------------------------------------------------------------------------------------
# The epoch's row order.
# ---------------------------------------------------------------------------------------

def shuffle_indices(out, u):
    """out = a uniform random permutation of 0..n-1 from n uniforms u in [0, 1): the
    inside-out Fisher-Yates shuffle with j_i = min(floor(u_i (i + 1)), i) in [0, i],

        for i = 0 .. n-1:   out[i] = out[j_i];  out[j_i] = i

    (for j_i = i the first assignment is overwritten by the second).  fit draws u =
    rng.random(n) for every epoch; the products u_i (i + 1) are exact float64 products and
    the rest is integer work, so every backend returns the same permutation bit for bit.
    The min() is a guard only: in round-to-nearest u_i (i + 1) with u_i <= 1 - 2^-53 stays
    below i + 1 (its distance below is at least half an ulp).
    # out: int64 (n,), u: float64 (n,)"""
    _contract.shuffle_indices(out, u)
    n = u.shape[0]
    j = np.minimum((u * np.arange(1, n + 1)).astype(np.int64), np.arange(n)).tolist()
    o = [0] * n
    for i in range(n):  # sequential by nature: the Python loop is the spec, not a fast path
        o[i] = o[j[i]]
        o[j[i]] = i
    out[...] = o


# splitmix64's output function (Steele, Lea & Flood 2014): a bijection of 64-bit words.  Over
# the Weyl sequence key + (i + 1) PERM_PHI it is the SplitMix64 generator, which passes
# BigCrush.  Every backend computes it in unsigned 64-bit arithmetic modulo 2^64 (the
# constants: codes.PERM_*).
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def permutation_bucket_bits(n):
    """k: epoch_permutation sorts n rows into 2^k buckets, the smallest k with
    n >> k <= PERM_BUCKET_ROWS (at most PERM_MAX_BUCKET_BITS)."""
    k = 0
    while k < PERM_MAX_BUCKET_BITS and (n >> k) > PERM_BUCKET_ROWS:
        k += 1
    return k


def _mix64(z):
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def epoch_permutation(out, key):
    """out = a uniform random permutation of 0..n-1 drawn from the 64-bit ``key``: one
    epoch's row order (fit draws one key per epoch from its Generator).  A one-pass
    Rao-Sandelius shuffle, so that the work stays in the cache:

        x_i = mix64(key + (i + 1) PHI)  (mod 2^64)          i = 0 .. n-1
        bucket_i = the top k bits of x_i                     k = permutation_bucket_bits(n)
        rows go to their buckets, bucket 0 first, each bucket's rows in increasing order;
        then inside each bucket (its rows a[0..m-1]), for p = 1 .. m-1:
            v = (x_{a[p]} << k) >> 11  (53 bits below the bucket's),  j = floor(v 2^-53 (p + 1))
            swap a[p], a[j]                                    (Fisher-Yates, inside out)

    Uniform: buckets are i.i.d. uniform, and any arrangement of bucket sizes followed by a
    uniform order within each bucket gives every permutation the same probability.  The
    float64 product v 2^-53 (p + 1) is one correctly rounded multiply of exact operands, so
    every backend returns the same permutation bit for bit, whatever its thread count.  A
    bucket holds ~16k rows (128 KB) and the buckets are independent, so the C kernel runs
    them in parallel from the cache: ~4 ms for 2M rows on 2 threads, where NumPy's
    rng.random(n) alone took 4 ms and the Fisher-Yates shuffle of those uniforms over the
    whole array 12-14 ms inside fit (a cache miss per row).
    # out: int64 (n,) or int32 (n <= 2^31), key: int in [0, 2^64)"""
    key = _contract.epoch_permutation(out, key)
    n = out.shape[0]
    if n == 0:
        return
    k = permutation_bucket_bits(n)
    with np.errstate(over="ignore"):
        x = _mix64(np.uint64(key) + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(PERM_PHI))
    bucket = (x >> np.uint64(64 - k)).astype(np.int64) if k else np.zeros(n, np.int64)
    rows = np.argsort(bucket, kind="stable")          # bucket by bucket, rows increasing
    start = np.searchsorted(bucket[rows], bucket[rows], side="left")
    p = np.arange(n) - start                          # position inside the bucket
    v = (x[rows] << np.uint64(k)) >> np.uint64(11)
    j = np.minimum((v.astype(np.float64) * 2.0 ** -53 * (p + 1)).astype(np.int64), p)
    a, j, start = rows.tolist(), (start + j).tolist(), start.tolist()
    for q in range(n):  # sequential by nature: the Python loop is the spec, not a fast path
        if q != start[q]:
            a[q], a[j[q]] = a[j[q]], a[q]
    out[...] = a
