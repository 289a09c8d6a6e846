"""Integer codes shared by every backend (NumPy reference, Numba, C).

Kernels take small integers rather than strings so that the same call works from Python,
from Numba-compiled code and from C (``csrc/fastmlp.h`` defines the same numbers).
The Python API takes the names; ``*_code(name)`` turns a name into its code with an error
that lists the valid names.
"""

ACTIVATIONS = ("identity", "relu", "leaky_relu", "elu", "tanh", "sigmoid", "softplus", "gelu")
LOSSES = ("bce", "cross_entropy", "mse")
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam", "adamw")

# Activation constants (also in csrc/fastmlp.h).
LEAKY_RELU_SLOPE = 0.01
ELU_ALPHA = 1.0

# Every optimizer's hyper-parameters travel to the fused kernels as one float64 vector of
# this length; position 0 is always the learning rate (a schedule rewrites it per step).
#   sgd:     [lr, momentum, dampening, weight_decay, nesterov, maximize]
#   adagrad: [lr, lr_decay, weight_decay, eps, maximize]
#   rmsprop: [lr, alpha, eps, weight_decay, momentum, centered, maximize]
#   adam(w): [lr, beta1, beta2, eps, weight_decay, amsgrad, maximize]
N_HYPER = 8
# Rows of the (N_STATE, n_params) optimizer state matrix, per optimizer:
#   sgd:     [momentum_buffer]
#   adagrad: [sum]
#   rmsprop: [square_avg, grad_avg, momentum_buffer]
#   adam(w): [exp_avg, exp_avg_sq, max_exp_avg_sq]
N_STATE = {"sgd": 1, "adagrad": 1, "rmsprop": 3, "adam": 3, "adamw": 3}


def _code(kind, names, name):
    if isinstance(name, str) and name in names:
        return names.index(name)
    raise ValueError(f"unknown {kind} {name!r}; expected one of: {', '.join(names)}")


def activation_code(name):
    return _code("activation", ACTIVATIONS, name)


def loss_code(name):
    return _code("loss", LOSSES, name)


def optimizer_code(name):
    return _code("optimizer", OPTIMIZERS, name)
