"""Model execution: which code answers a served version's calls, and how many threads it may use.

:mod:`service.engines.trees` answers scikit-learn's tree ensembles and
:mod:`service.engines.linear` its linear models exactly and faster than scikit-learn itself;
:mod:`service.engines.threads` caps each worker's BLAS/OpenMP pools.
"""

from service.engines.linear import LinearEngine
from service.engines.threads import fit_thread_pools
from service.engines.trees import ENGINE_LINEAR
from service.engines.trees import ENGINE_SKLEARN
from service.engines.trees import ENGINE_TREES
from service.engines.trees import Engine
from service.engines.trees import TreeEngine
from service.engines.trees import select_engine
from service.engines.trees import tree_predictor

__all__ = [
    "ENGINE_LINEAR",
    "ENGINE_SKLEARN",
    "ENGINE_TREES",
    "Engine",
    "LinearEngine",
    "TreeEngine",
    "fit_thread_pools",
    "select_engine",
    "tree_predictor",
]
