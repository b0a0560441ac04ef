"""Dequantize every tensor of a GGUF file with the `gguf` package, as the reference for
tests/dequantize_test.cpp.

Usage: dequantize_real_model.py MODEL.gguf OUT_DIR

Prints a JSON list with one entry per tensor: name, ggml type name, ne (ggml order),
checksum and the indices of sampled rows. The checksum covers every element: it is
sum(bits[i] * (2*i + 1)) mod 2**64, where bits[i] is the float32 bit pattern of flat element
i. Sampled rows are all rows of small tensors, and the first, second, last and 29 random rows
of the others. They are written in order as raw little-endian float32 to OUT_DIR/rows.f32, so
the C++ test can report the element-wise difference and not only a checksum mismatch.
"""
import json
import sys
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

ALL_ROWS_UP_TO = 64
RANDOM_ROWS = 29
CHUNK_ELEMENTS = 1 << 22


def checksum(values: np.ndarray, first_index: int) -> int:
    bits = values.reshape(-1).view(np.uint32).astype(np.uint64)
    weights = np.arange(first_index, first_index + bits.size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    with np.errstate(over="ignore"):
        return int(np.sum(bits * weights, dtype=np.uint64))


def sampled_rows(n_rows: int, seed: int) -> list[int]:
    if n_rows <= ALL_ROWS_UP_TO:
        return list(range(n_rows))
    rng = np.random.default_rng(seed)
    picked = set(int(r) for r in rng.choice(n_rows, RANDOM_ROWS, replace=False))
    picked.update({0, 1, n_rows - 1})
    return sorted(picked)


def main() -> None:
    model_path, out_dir = sys.argv[1], Path(sys.argv[2])
    reader = GGUFReader(model_path)
    entries = []
    with open(out_dir / "rows.f32", "wb") as rows_file:
        for index, tensor in enumerate(reader.tensors):
            ne = [int(n) for n in tensor.shape]
            row_length = ne[0]
            raw_rows = tensor.data.reshape(-1, tensor.data.shape[-1])
            n_rows = raw_rows.shape[0]
            rows_per_chunk = max(1, CHUNK_ELEMENTS // row_length)

            total = 0
            for start in range(0, n_rows, rows_per_chunk):
                values = dequantize(raw_rows[start:start + rows_per_chunk], tensor.tensor_type)
                total = (total + checksum(values, start * row_length)) % (1 << 64)

            rows = sampled_rows(n_rows, seed=index)
            sample = dequantize(raw_rows[rows], tensor.tensor_type).astype("<f4", copy=False)
            rows_file.write(sample.tobytes())
            entries.append({
                "name": tensor.name,
                "type": tensor.tensor_type.name,
                "ne": ne,
                "checksum": str(total),
                "rows": rows,
            })
    json.dump(entries, sys.stdout)


if __name__ == "__main__":
    main()
