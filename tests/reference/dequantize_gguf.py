"""Write an F32 or F16 copy of a GGUF file, every tensor dequantized by the `gguf` package.

F32: llama.cpp quantizes matmul activations to the weight's dot-product type (Q8_0 / Q8_K for
quantized weights, F16 for F16 weights), so an exact comparison with subzero's float32 engine
needs float32 weights.
F16: the file the speed benchmark runs both engines on. As llama.cpp's converter does, 1-D
tensors (norms) stay F32 and matrices become F16.
Metadata is copied unchanged except general.file_type (0 = ALL_F32, 1 = MOSTLY_F16).

Usage: dequantize_gguf.py SRC DST [--f16]   (DST is written to DST.tmp, then renamed)
"""
import os
import sys

import numpy as np
import gguf


def copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter, file_type: int) -> None:
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue  # written by the writer itself
        value_type = field.types[0]
        value = field.contents()
        if key == "general.file_type":
            value = file_type
        if value_type == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(key, value, value_type, sub_type=field.types[-1])
        else:
            writer.add_key_value(key, value, value_type)


def main() -> None:
    source, destination = sys.argv[1], sys.argv[2]
    to_f16 = "--f16" in sys.argv[3:]
    reader = gguf.GGUFReader(source)
    arch = reader.fields["general.architecture"].contents()
    temporary = destination + ".tmp"
    writer = gguf.GGUFWriter(temporary, arch)
    copy_metadata(reader, writer, 1 if to_f16 else 0)
    for tensor in reader.tensors:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        # gguf reports shapes in ggml order (ne); numpy wants them reversed.
        values = values.reshape(tuple(int(n) for n in reversed(tensor.shape)))
        if to_f16 and values.ndim >= 2:
            values = values.astype(np.float16)
        writer.add_tensor(tensor.name, values)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(temporary, destination)


if __name__ == "__main__":
    main()
