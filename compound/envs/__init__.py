"""Environment suites behind one small contract (``Env``) and a registry by id."""

from compound.envs.base import SPLITS, Env, EnvError
from compound.envs.registry import EnvSpec, load_plugins, make, register, specs

__all__ = ["SPLITS", "Env", "EnvError", "EnvSpec", "load_plugins", "make", "register", "specs"]
