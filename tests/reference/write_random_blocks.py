"""Write a GGUF with gguf.GGUFWriter that holds random blocks of every ggml type subzero
dequantizes, each next to the `gguf` package's dequantization of it, plus metadata of every
value type. Reference for tests/dequantize_test.cpp and tests/gguf_reader_test.cpp.

Usage: write_random_blocks.py OUT.gguf

For each type T the file has "T.raw" (random data, 8 rows of 16 blocks; 8 x 512 values for
F16 and BF16) and
"T.expected" (float32, same shape). Block bytes are random except the fp16 scale fields,
which are random finite fp16 values (subnormals included), so every expected value is finite.
F16 data is random finite fp16; BF16 data is random 16-bit patterns, NaNs included, because
its dequantization is a pure bit shift. Q8_K has no dequantizer in the `gguf` package, so its
expectation is computed here as float32(d) * int8(q), the formula of ggml's
dequantize_row_q8_K.
"""
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFWriter, GGUFValueType
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

ROWS = 8
BLOCKS_PER_ROW = 16

# Byte offsets of the fp16 scale fields inside one block (ggml-common.h block structs).
FP16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
    T.IQ4_NL: [0],
}


def random_finite_fp16(rng: np.random.Generator, count: int) -> np.ndarray:
    bits = rng.integers(0, 1 << 16, size=count, dtype=np.uint16)
    exponent_all_ones = (bits & 0x7C00) == 0x7C00
    bits[exponent_all_ones] &= np.uint16(0xBFFF)  # clear the top exponent bit: finite
    return bits


def add_metadata(writer: GGUFWriter) -> None:
    writer.add_uint8("test.u8", 200)
    writer.add_int8("test.i8", -100)
    writer.add_uint16("test.u16", 60000)
    writer.add_int16("test.i16", -30000)
    writer.add_uint32("test.u32", 4000000000)
    writer.add_int32("test.i32", -2000000000)
    writer.add_uint64("test.u64", 18000000000000000000)
    writer.add_int64("test.i64", -9000000000000000000)
    writer.add_float32("test.f32", 0.1)
    writer.add_float64("test.f64", 0.1)
    writer.add_bool("test.bool", True)
    writer.add_string("test.string", "h\u00e9llo \u2581world")
    writer.add_array("test.strings", ["a", "", "\u00fcber"])
    writer.add_key_value("test.f32s", [1.5, -2.25], GGUFValueType.ARRAY, GGUFValueType.FLOAT32)
    writer.add_key_value("test.i32s", [1, -2, 3], GGUFValueType.ARRAY, GGUFValueType.INT32)
    writer.add_array("test.nested", [[1, 2], [3, 4, 5]])


def main() -> None:
    out_path = sys.argv[1]
    rng = np.random.default_rng(1234)
    writer = GGUFWriter(out_path, arch="test")
    add_metadata(writer)

    for qtype in [T.F16, T.BF16, *FP16_FIELDS.keys(), T.Q8_K]:
        _, type_size = GGML_QUANT_SIZES[qtype]
        n_blocks = ROWS * BLOCKS_PER_ROW
        if qtype == T.F16:
            raw = random_finite_fp16(rng, ROWS * 512).view(np.uint8)
        elif qtype == T.BF16:
            raw = rng.integers(0, 1 << 16, size=ROWS * 512, dtype=np.uint16).view(np.uint8)
        else:
            raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
            for offset in FP16_FIELDS.get(qtype, []):
                raw[:, offset:offset + 2] = random_finite_fp16(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
            if qtype == T.Q8_K:
                d = rng.standard_normal(n_blocks).astype(np.float32)
                raw[:, 0:4] = d.view(np.uint8).reshape(n_blocks, 4)

        raw = raw.reshape(ROWS, -1)
        if qtype == T.Q8_K:
            d = raw.reshape(n_blocks, type_size)[:, 0:4].copy().view(np.float32)
            q = raw.reshape(n_blocks, type_size)[:, 4:4 + 256].view(np.int8).astype(np.float32)
            expected = (d * q).reshape(ROWS, -1)
        else:
            expected = dequantize(raw, qtype).reshape(ROWS, -1).astype(np.float32)

        writer.add_tensor(f"{qtype.name}.raw", raw, raw_shape=raw.shape, raw_dtype=qtype)
        writer.add_tensor(f"{qtype.name}.expected", expected)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
