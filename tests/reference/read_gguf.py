"""Read a GGUF file with the `gguf` package and print its metadata and tensors as JSON, as the
reference for tests/gguf_writer_test.cpp.

Usage: read_gguf.py FILE.gguf

Output: {"alignment", "data_offset", "metadata": [{"key", "types", "value"}] in file order
(the GGUF.* header pseudo-fields excluded; nested arrays come back flattened, as the package
returns them), "tensors": [{"name", "type", "ne", "offset", "values"}] with values
dequantized to float32 by gguf.quants.dequantize, and "quantize_matches": {name: bool}}.
A tensor "X" with a float32 companion "X.source" is checked against
gguf.quants.quantize(source, type of X), byte for byte.
"""
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize, quantize


def main() -> None:
    reader = GGUFReader(sys.argv[1])
    metadata = []
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        metadata.append({
            "key": key,
            "types": [t.name for t in field.types],
            "value": field.contents(),
        })

    tensors = []
    by_name = {t.name: t for t in reader.tensors}
    quantize_matches = {}
    for tensor in reader.tensors:
        values = dequantize(tensor.data, tensor.tensor_type).astype(np.float32).reshape(-1)
        tensors.append({
            "name": tensor.name,
            "type": tensor.tensor_type.name,
            "ne": [int(n) for n in tensor.shape],
            "offset": int(tensor.data_offset),
            "values": [float(v) for v in values],
        })
        source = by_name.get(tensor.name + ".source")
        if source is not None:
            expected = quantize(np.asarray(source.data, dtype=np.float32), tensor.tensor_type)
            quantize_matches[tensor.name] = expected.tobytes() == tensor.data.tobytes()

    json.dump({
        "alignment": int(reader.alignment),
        "data_offset": int(reader.data_offset),
        "metadata": metadata,
        "tensors": tensors,
        "quantize_matches": quantize_matches,
    }, sys.stdout)


if __name__ == "__main__":
    main()
