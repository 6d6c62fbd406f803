"""Operators suite: implement ML-library operators in NumPy, verified in a sandbox.

Id ``operators/numpy``: 37 operators in nine families (activation,
normalization, attention, linear, convolution, embedding, loss, routing,
scan). Importing this only registers the id.
"""

from compound.envs.registry import register

register(
    "operators/numpy",
    "compound.envs.operators.env:OperatorsEnv",
    description="ML-library operators (softmax, attention, GEMM, MoE routing ...) in NumPy, checked on random shapes",
)
