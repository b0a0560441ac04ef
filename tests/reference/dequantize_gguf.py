"""Write an F32 copy of a GGUF file: every tensor dequantized by the `gguf` package.

llama.cpp quantizes matmul activations to the weight's dot-product type (Q8_0 / Q8_K for
quantized weights, F16 for F16 weights), so an exact comparison with subzero's float32 engine
needs float32 weights. Metadata is copied unchanged except general.file_type (0 = ALL_F32).

Usage: make_f32_gguf.py SRC DST   (DST is written to DST.tmp and renamed when complete)
"""
import os
import sys

import numpy as np
import gguf


def copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter) -> None:
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue  # written by the writer itself
        value_type = field.types[0]
        value = field.contents()
        if key == "general.file_type":
            value = 0
        if value_type == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(key, value, value_type, sub_type=field.types[-1])
        else:
            writer.add_key_value(key, value, value_type)


def main() -> None:
    source, destination = sys.argv[1], sys.argv[2]
    reader = gguf.GGUFReader(source)
    arch = reader.fields["general.architecture"].contents()
    temporary = destination + ".tmp"
    writer = gguf.GGUFWriter(temporary, arch)
    copy_metadata(reader, writer)
    for tensor in reader.tensors:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        # gguf reports shapes in ggml order (ne); numpy wants them reversed.
        values = values.reshape(tuple(int(n) for n in reversed(tensor.shape)))
        writer.add_tensor(tensor.name, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(temporary, destination)


if __name__ == "__main__":
    main()
