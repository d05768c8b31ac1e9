"""Type stubs for the Rust extension module (rust/py.rs)."""

import numpy as np
import numpy.typing as npt
from typing_extensions import final

__all__ = [
    "MAX_DIM",
    "MAX_FEATURES",
    "MAX_LABELS",
    "NS_OUTPUT",
    "NS_TEXT",
    "SURROGATE_VERSION",
    "InvalidInputError",
    "NumericalError",
    "SurrogateCore",
    "TaskspaceError",
    "__version__",
    "build_profile",
    "cosine",
    "featurize",
    "hash64",
    "pairs_above",
    "scan_windows4",
    "simd_backend",
    "sketch_triangles",
    "solve_spd_batch",
    "tokens",
    "top_k",
]

__version__: str
SURROGATE_VERSION: int
MAX_FEATURES: int
MAX_DIM: int
MAX_LABELS: int
NS_TEXT: int
NS_OUTPUT: int
build_profile: str

class TaskspaceError(ValueError): ...
class InvalidInputError(TaskspaceError): ...
class NumericalError(TaskspaceError): ...

@final
class SurrogateCore:
    def __new__(
        cls, *, features: int, dim: int, seed: int, hash_bits: int, ridge: float, method: str
    ) -> SurrogateCore: ...
    def encode(
        self, texts: list[str], text_pairs: list[str] | None, namespace: int, n_threads: int
    ) -> npt.NDArray[np.float32]: ...
    def stats(
        self, features: npt.NDArray[np.float32], outputs: npt.NDArray[np.float32], n_threads: int
    ) -> tuple[
        int,
        tuple[
            npt.NDArray[np.float64],
            npt.NDArray[np.float64],
            npt.NDArray[np.float64],
            npt.NDArray[np.float64],
            npt.NDArray[np.float64],
        ],
    ]: ...
    def embed(
        self,
        n: int,
        sum_f: npt.NDArray[np.float64],
        sum_y: npt.NDArray[np.float64],
        ff: npt.NDArray[np.float64],
        fy: npt.NDArray[np.float64],
        yy: npt.NDArray[np.float64],
        mode: str,
    ) -> npt.NDArray[np.float32]: ...

def hash64(data: bytes) -> int: ...
def tokens(text: str) -> list[str]: ...
def simd_backend() -> str: ...
def scan_windows4(texts: list[str]) -> int: ...
def featurize(
    texts: list[str], text_pairs: list[str] | None, namespace: int, hash_bits: int, n_threads: int
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint32], npt.NDArray[np.float32]]: ...
def cosine(
    a: npt.NDArray[np.float32],
    b: npt.NDArray[np.float32] | None,
    out: npt.NDArray[np.float32],
    n_threads: int,
) -> None: ...
def top_k(
    a: npt.NDArray[np.float32], b: npt.NDArray[np.float32] | None, k: int, exclude_self: bool, n_threads: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
def pairs_above(
    a: npt.NDArray[np.float32],
    b: npt.NDArray[np.float32],
    threshold: float,
    row_offset: int,
    upper_only: bool,
    n_threads: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
def sketch_triangles(
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    pos: npt.NDArray[np.uint32],
    weight: npt.NDArray[np.float64],
    dim: int,
    n_threads: int,
) -> npt.NDArray[np.float64]: ...
def solve_spd_batch(
    a: npt.NDArray[np.float64],
    b: npt.NDArray[np.float64],
    n_threads: int,
) -> npt.NDArray[np.float64]: ...
