from typing import Any
from typing import TypeAlias

import numpy as np
from typing_extensions import Buffer

# numpy declares ndarray.__buffer__ only for Python 3.12+, where the check target is 3.11.
_Array: TypeAlias = Buffer | np.ndarray[Any, Any]

def check_nodes(nodes: _Array, roots: _Array, n_features: int, /) -> None: ...
def sum_leaves(
    nodes: _Array,
    roots: _Array,
    X: _Array,
    values: _Array,
    out: _Array,
    n_features: int,
    n_columns: int,
    assign_first: bool,
    /,
) -> None: ...
