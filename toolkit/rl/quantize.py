"""The int8 copy of a DQN's Q-network, prepared so that TFLite's int8 file picks the Keras network's
actions as often as int8 allows.

What the file is: float32 observation in, Q-values out. The first Dense layer (observation ->
hidden units) and the Q-value head stay float32, kept so by the converter's selective quantization;
the hidden layers between them (the 256 x 256 kernel of a shipped agent: 96% of the weights and of
the multiply-adds) have int8 weights and int8 compute on activations quantized per tensor. Why
those two stay float: an int8 input rounds each observation feature on its own grid (even a
per-feature grid spanning exactly the states of real episodes keeps Keras itself to 97% of its
own actions on CartPole: its states sit within hundredths of its decision boundary), and an int8
output rounds the Q-values (or their differences) to steps as large as those differences. A
network with one hidden layer keeps only the first layer float; its int8 head outputs the
Q-values minus their mean over the actions (same argmax, the int8 scale then spans the
differences between actions, not Q-values of 50-100).

Two function-preserving steps before the conversion, computed on states from real episodes:

* cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight Equalization
  and Bias Correction"): a ReLU unit scaled by s > 0 and its outgoing weights by 1/s compute the
  same function, so each hidden unit is scaled to span the layer's whole int8 activation range;
* GPTQ rounding (Frantar et al. 2023): the int8 layers' kernels are rounded to their per-channel
  int8 grids one input row at a time, each rounding error spread over the rows still to be rounded
  so that the layer's outputs on the calibration states move least (least squares with the
  Hessian of the layer's inputs). The kernels handed to the converter already lie on the grid the
  converter uses (per output channel, symmetric, scale = max |w| / 127), so it keeps them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: epsilon-greedy exploration rates of the calibration episodes (0: greedy): a deployed policy sees
#: its own greedy states, and states a little off them after a disturbance
CALIBRATION_EPSILONS = (0.0, 0.1, 0.3)
CALIBRATION_EPISODES = 20  # per exploration rate
CALIBRATION_SEED = 700_000  # episode seeds far from those of the export's checks (+500_000)
FLOAT_LAYER = "float_input"  # the first Dense layer's name in the export copy: kept float32
EQUALIZATION_POWER = 0.5  # s = (max range / unit range) ** power: 0.5 beat 0 and 1 on validation states
#: the last hidden layer's, when a float32 head reads it (the head's float weights absorb any scale)
HEAD_EQUALIZATION_POWER = 1.0
GPTQ_DAMPING = 0.01  # added to the Hessian's diagonal, a share of its mean


def calibration_states(agent: Any, envs: list, seed: int) -> np.ndarray:
    """States of ``CALIBRATION_EPISODES`` episodes per exploration rate (greedy and epsilon-greedy)."""
    from .episodes import run_episodes

    rng = np.random.default_rng(seed)
    parts = []
    for k, epsilon in enumerate(CALIBRATION_EPSILONS):
        def act(obs, epsilon=epsilon):
            actions = agent._greedy(obs)
            explore = rng.random(len(obs)) < epsilon
            return np.where(explore, rng.integers(agent.n_actions_, size=len(obs)), actions)

        parts.append(run_episodes(act, envs, CALIBRATION_EPISODES, seed + k * 1_000, collect=True).states)
    return np.concatenate(parts).astype(np.float32)


def hidden_activations(weights: list[np.ndarray], states: np.ndarray) -> list[np.ndarray]:
    """The ReLU layers' outputs of a Dense stack ([kernel, bias] * layers, the last linear)."""
    out, h = [], np.asarray(states, np.float64)
    for i in range(len(weights) // 2 - 1):
        h = np.maximum(h @ weights[2 * i] + weights[2 * i + 1], 0.0)
        out.append(h)
    return out


def equalize(weights: list[np.ndarray], states: np.ndarray, power: float = EQUALIZATION_POWER,
             last_power: float | None = None) -> list[np.ndarray]:
    """The same function with each ReLU unit scaled towards the largest range of its layer
    (``last_power``: the power of the last hidden layer, default ``power``)."""
    w = [np.asarray(a, np.float64).copy() for a in weights]
    n = len(w) // 2 - 1
    for i in range(n):
        power = last_power if i == n - 1 and last_power is not None else power
        peak = hidden_activations(w, states)[i].max(axis=0)
        peak = np.where(peak > 0, peak, peak.max() if peak.max() > 0 else 1.0)  # dead units: any scale
        scale = (peak.max() / peak) ** power
        w[2 * i] *= scale[None]
        w[2 * i + 1] *= scale
        w[2 * i + 2] /= scale[:, None]
    return w


def gptq_kernel(kernel: np.ndarray, inputs: np.ndarray, damping: float = GPTQ_DAMPING) -> np.ndarray:
    """``kernel`` (in, out) rounded to its per-output-channel symmetric int8 grid by GPTQ on the
    layer's ``inputs`` (N, in); returned as float values on that grid (the max |w| of each
    channel stays at +-127 steps, so the converter derives the same scale)."""
    w = np.asarray(kernel, np.float64).T.copy()  # (out, in)
    scale = np.abs(w).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1.0)
    peak = np.abs(w).argmax(axis=1)  # each channel's largest weight keeps the grid's end
    peak_sign = np.sign(w[np.arange(len(w)), peak])
    x = np.asarray(inputs, np.float64)
    hessian = x.T @ x / len(x)
    dead = np.diag(hessian) == 0
    hessian[dead, dead] = 1.0
    hessian += damping * np.mean(np.diag(hessian)) * np.eye(len(hessian))
    upper = np.linalg.cholesky(np.linalg.inv(hessian)).T
    quantized = np.zeros_like(w)
    for j in range(w.shape[1]):
        steps = np.clip(np.round(w[:, j] / scale), -127, 127)
        at_peak = peak == j
        steps[at_peak] = 127 * peak_sign[at_peak]
        quantized[:, j] = steps * scale
        error = (w[:, j] - quantized[:, j]) / upper[j, j]
        w[:, j:] -= np.outer(error, upper[j, j:])
    return quantized.T


def int8_ready(weights: list[np.ndarray], states: np.ndarray, float_head: bool, power: float = EQUALIZATION_POWER,
               last_power: float | None = None, damping: float = GPTQ_DAMPING) -> list[np.ndarray]:
    """Equalized weights whose int8 layers' kernels (all but the first, and but the head when
    ``float_head``) lie on their int8 grids."""
    w = equalize(weights, states, power, last_power)
    for i in range(1, len(w) // 2 - int(float_head)):
        w[2 * i] = gptq_kernel(w[2 * i], hidden_activations(w, states)[i - 1], damping)
    return [a.astype(np.float32) for a in w]


def head_is_float(weights: list[np.ndarray]) -> bool:
    """Whether the Q-value head stays float32: when int8 hidden layers lie between it and the first layer."""
    return len(weights) // 2 >= 3


def centred_head(weights: list[np.ndarray]) -> list[np.ndarray]:
    """The same network with the last layer giving Q(s, a) - mean_a Q(s, a)."""
    w = [np.asarray(a, np.float64) for a in weights]
    w[-2] = w[-2] - w[-2].mean(axis=1, keepdims=True)
    w[-1] = w[-1] - w[-1].mean()
    return w


def int8_network(weights: list[np.ndarray], states: np.ndarray) -> dict:
    """A Q-network's weights prepared on calibration ``states``: {model: the Keras copy to convert,
    float_nodes: the converter's test on tensor names, float_head: whether the head is float32,
    layers: {layer name: "float32" or "int8"}, representative: the converter's calibration states}."""
    float_head = head_is_float(weights)
    weights = int8_ready(weights if float_head else centred_head(weights), states, float_head,
                         last_power=HEAD_EQUALIZATION_POWER if float_head else None)
    model = dense_copy(weights)
    names = [layer.name for layer in model.layers[1:]]
    layers = {name: "float32" if i == 0 or (float_head and i == len(names) - 1) else "int8"
              for i, name in enumerate(names)}
    return {"model": model, "float_nodes": float_nodes_with_head if float_head else float_nodes,
            "float_head": float_head, "layers": layers, "representative": representative_states(weights, states)}


def dense_copy(weights: list[np.ndarray], name: str = "q_network_int8"):
    """A Keras Dense stack with these weights: ``FLOAT_LAYER`` first, ReLU hidden layers, linear out."""
    import keras

    n = len(weights) // 2
    inputs = keras.Input((weights[0].shape[0],), name="observation")
    x = inputs
    for i in range(n):
        last = i == n - 1
        layer_name = FLOAT_LAYER if i == 0 else ("q_values" if last else f"int8_hidden_{i}")
        x = keras.layers.Dense(weights[2 * i].shape[1], activation=None if last else "relu", name=layer_name)(x)
    model = keras.Model(inputs, x, name=name)
    model.set_weights(weights)
    return model


def float_nodes(tensor_name: str) -> bool:
    """The tensors (ops) an int8 policy file keeps in float32: the first Dense layer's."""
    return FLOAT_LAYER in tensor_name


def float_nodes_with_head(tensor_name: str) -> bool:
    """The first Dense layer's tensors and the head's (the converter names the head's output after
    the serving signature's call, ``StatefulPartitionedCall``)."""
    return FLOAT_LAYER in tensor_name or tensor_name.startswith("StatefulPartitionedCall")


def representative_states(weights: list[np.ndarray], states: np.ndarray, n: int = 500, seed: int = 0) -> np.ndarray:
    """``n`` of ``states`` for the converter's min/max calibration (which takes at most 500): those
    holding each hidden unit's largest activation first, so the int8 ranges are the ranges over all
    ``states``, then random ones."""
    chosen = np.unique(np.concatenate([a.argmax(axis=0) for a in hidden_activations(weights, states)]))
    rng = np.random.default_rng(seed)
    rest = np.setdiff1d(np.arange(len(states)), chosen)
    chosen = np.concatenate([chosen, rng.choice(rest, max(0, min(len(rest), n - len(chosen))), replace=False)])
    return np.asarray(states, np.float32)[np.sort(chosen[:n])]
