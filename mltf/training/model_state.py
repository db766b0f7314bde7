"""What of a model and its callbacks a run's state records: every
variable ``save_weights`` keeps (the model's and all its optimizers') and the
counters of Keras callbacks that a resumed run continues."""

from typing import Dict, List

import keras
import numpy as np

from mltf.training.run_files import scalar

# Counters of Keras callbacks that a resumed run must continue, not restart.
CALLBACK_STATE = ("wait", "best", "cooldown_counter", "stopped_epoch", "best_epoch")


# --- callback counters ----------------------------------------------------------


def callback_states(callbacks) -> Dict:
    out = {}
    for i, cb in enumerate(callbacks):
        if hasattr(cb, "get_state"):
            state = cb.get_state()
        else:
            state = {}
            for key in CALLBACK_STATE:
                value = getattr(cb, key, "absent")
                if value is None or scalar(value) is not None:
                    state[key] = None if value is None else scalar(value)
        if state:
            out[f"{i}:{type(cb).__name__}"] = state
    return out


def set_callback_states(callbacks, states: Dict) -> None:
    for i, cb in enumerate(callbacks):
        state = states.get(f"{i}:{type(cb).__name__}")
        if not state:
            continue
        if hasattr(cb, "set_state"):
            cb.set_state(state)
            continue
        for key, value in state.items():
            current = getattr(cb, key, None)
            if isinstance(current, (int, np.integer)) and value is not None:
                value = int(value)
            setattr(cb, key, value)


# --- the model's state ------------------------------------------------------------


def optimizers_of(model) -> List:
    """The model's optimizers (``optimizer``, or WGAN-gp's two), each once."""
    found, seen = [], set()
    for value in list(vars(model).values()) + [getattr(model, "optimizer", None)]:
        if isinstance(value, keras.optimizers.Optimizer) and id(value) not in seen:
            seen.add(id(value))
            found.append(value)
    return found


def state_variables(model) -> List:
    """Every variable that ``save_weights`` keeps: the model's and its
    optimizers'."""
    variables = list(model.variables)
    for opt in optimizers_of(model):
        variables += list(opt.variables)
    seen, out = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def update_count(model) -> int:
    """The largest optimizer step count (for the one-line resume summary)."""
    counts = [int(keras.ops.convert_to_numpy(o.iterations)) for o in optimizers_of(model)]
    return max(counts) if counts else 0
