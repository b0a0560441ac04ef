// Safetensors reader and writer: round trips, hand-built files, sharded checkpoints, and
// malformed files, each of which must raise sz::Error naming the file and the problem.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "formats/safetensors.h"
#include "test_support.h"

namespace sz {
namespace {

namespace fs = std::filesystem;

// A safetensors file from a header JSON text and raw data bytes, with no padding, so the data
// of the hand-built files starts at an unaligned offset.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
    const uint64_t length = header.size();
    std::string bytes(reinterpret_cast<const char*>(&length), sizeof(length));
    return bytes + header + data;
}

std::string u16_bytes(std::initializer_list<uint16_t> values) {
    std::string bytes;
    for (uint16_t value : values) {
        bytes.append(reinterpret_cast<const char*>(&value), sizeof(value));
    }
    return bytes;
}

class Safetensors : public ::testing::Test {
protected:
    void SetUp() override { dir_ = test::make_temp_dir("sz-safetensors"); }
    void TearDown() override { fs::remove_all(dir_); }

    std::string write_bytes(const std::string& name, const std::string& bytes) {
        const std::string path = dir_ + "/" + name;
        fs::create_directories(fs::path(path).parent_path());
        std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
        return path;
    }

    // The sz::Error message of opening `path`, or "" when it opened.
    static std::string open_error(const std::string& path) {
        try {
            safetensors::Checkpoint::open(path);
        } catch (const Error& error) {
            return error.what();
        }
        return "";
    }

    // Expects opening a file with these contents to fail, naming the file and each of `parts`.
    void expect_error(const std::string& bytes, const std::vector<std::string>& parts) {
        const std::string path = write_bytes("case" + std::to_string(counter_++) + ".safetensors", bytes);
        const std::string message = open_error(path);
        ASSERT_FALSE(message.empty()) << "the file opened without error";
        EXPECT_NE(message.find(path), std::string::npos) << message;
        for (const std::string& part : parts) {
            EXPECT_NE(message.find(part), std::string::npos) << "missing '" << part << "' in: " << message;
        }
    }

    std::string dir_;
    int counter_ = 0;
};

TEST_F(Safetensors, RoundTrip) {
    torch::manual_seed(5);
    const std::map<std::string, torch::Tensor> tensors = {
        {"model.layers.0.self_attn.q_proj.weight", torch::randn({3, 4})},
        {"half", torch::randn({5}).to(torch::kHalf)},
        {"bfloat", torch::randn({2, 2, 2}).to(torch::kBFloat16)},
        {"scalar", torch::tensor(7.5f)},
        {"empty", torch::zeros({0, 3})},
    };
    const std::string path = dir_ + "/model.safetensors";
    safetensors::write(path, tensors, {{"format", "pt"}});
    auto checkpoint = safetensors::Checkpoint::open(path);

    EXPECT_EQ(checkpoint->metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
    ASSERT_EQ(checkpoint->tensors().size(), tensors.size());
    for (const auto& [name, tensor] : tensors) {
        SCOPED_TRACE(name);
        const safetensors::TensorInfo* info = checkpoint->find(name);
        ASSERT_NE(info, nullptr);
        EXPECT_EQ(info->shape, tensor.sizes().vec());
        EXPECT_EQ(info->file, path);
        torch::Tensor loaded = checkpoint->load_float(name);
        EXPECT_EQ(loaded.scalar_type(), torch::kFloat32);
        EXPECT_TRUE(torch::equal(loaded, tensor.to(torch::kFloat32)));
    }
    EXPECT_EQ(checkpoint->find("half")->dtype, "F16");
    EXPECT_EQ(checkpoint->find("bfloat")->dtype, "BF16");
    EXPECT_EQ(checkpoint->find("scalar")->dtype, "F32");

    // The header is padded so the data starts 8-byte aligned.
    uint64_t header_length = 0;
    std::ifstream(path, std::ios::binary).read(reinterpret_cast<char*>(&header_length), 8);
    EXPECT_EQ(header_length % 8, 0u);
}

TEST_F(Safetensors, HandWrittenFile) {
    const std::string header =
        R"({"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},)"
        R"("x":{"dtype":"F16","shape":[1,1],"data_offsets":[4,6]},)"
        R"("__metadata__":{"format":"pt"}})";
    // bf16 1.0 and -2.0, then fp16 0.5.
    const std::string path = write_bytes("hand.safetensors", safetensors_bytes(header, u16_bytes({0x3F80, 0xC000, 0x3800})));
    auto checkpoint = safetensors::Checkpoint::open(path);
    EXPECT_TRUE(torch::equal(checkpoint->load_float("w"), torch::tensor({1.0f, -2.0f})));
    EXPECT_TRUE(torch::equal(checkpoint->load_float("x"), torch::full({1, 1}, 0.5f)));
    EXPECT_EQ(checkpoint->metadata().at("format"), "pt");
}

TEST_F(Safetensors, OtherDtypeOpensButDoesNotLoad) {
    const std::string header = R"({"position_ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})";
    const std::string path = write_bytes("ids.safetensors", safetensors_bytes(header, std::string(16, '\0')));
    auto checkpoint = safetensors::Checkpoint::open(path);
    ASSERT_NE(checkpoint->find("position_ids"), nullptr);
    try {
        checkpoint->load_float("position_ids");
        FAIL() << "an I64 tensor was loaded as float";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("'position_ids'"), std::string::npos) << error.what();
        EXPECT_NE(std::string(error.what()).find("I64"), std::string::npos) << error.what();
    }
}

TEST_F(Safetensors, MissingTensor) {
    const std::string path = dir_ + "/one.safetensors";
    safetensors::write(path, {{"a", torch::ones({2})}});
    auto checkpoint = safetensors::Checkpoint::open(path);
    EXPECT_EQ(checkpoint->find("b"), nullptr);
    try {
        checkpoint->load_float("model.norm.weight");
        FAIL() << "a missing tensor was loaded";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("no tensor 'model.norm.weight'"), std::string::npos) << error.what();
    }
}

TEST_F(Safetensors, ShardedIndex) {
    const std::string folder = dir_ + "/checkpoint";
    fs::create_directories(folder);
    safetensors::write(folder + "/model-00001-of-00002.safetensors", {{"a", torch::ones({2})}, {"b", torch::zeros({3})}});
    safetensors::write(folder + "/model-00002-of-00002.safetensors", {{"c", torch::full({1}, 2.0f)}});
    write_bytes("checkpoint/model.safetensors.index.json",
                R"({"metadata":{"total_size":24},"weight_map":{"a":"model-00001-of-00002.safetensors",)"
                R"("b":"model-00001-of-00002.safetensors","c":"model-00002-of-00002.safetensors"}})");

    for (const std::string& path : {folder, folder + "/model.safetensors.index.json"}) {
        SCOPED_TRACE(path);
        auto checkpoint = safetensors::Checkpoint::open(path);
        ASSERT_EQ(checkpoint->tensors().size(), 3u);
        EXPECT_EQ(checkpoint->find("c")->file, folder + "/model-00002-of-00002.safetensors");
        EXPECT_TRUE(torch::equal(checkpoint->load_float("c"), torch::full({1}, 2.0f)));
        EXPECT_TRUE(torch::equal(checkpoint->load_float("a"), torch::ones({2})));
        EXPECT_EQ(checkpoint->metadata().at("total_size"), "24");
    }
}

TEST_F(Safetensors, FolderWithoutIndex) {
    const std::string folder = dir_ + "/single";
    fs::create_directories(folder);
    safetensors::write(folder + "/model.safetensors", {{"a", torch::ones({2})}});
    auto checkpoint = safetensors::Checkpoint::open(folder);
    EXPECT_EQ(checkpoint->tensors().size(), 1u);

    fs::create_directories(dir_ + "/empty");
    const std::string message = open_error(dir_ + "/empty");
    EXPECT_NE(message.find("neither"), std::string::npos) << message;
    EXPECT_NE(open_error(dir_ + "/absent.safetensors").find("not found"), std::string::npos);
}

TEST_F(Safetensors, DuplicateAcrossShards) {
    const std::string folder = dir_ + "/duplicate";
    fs::create_directories(folder);
    safetensors::write(folder + "/a.safetensors", {{"w", torch::ones({2})}});
    safetensors::write(folder + "/b.safetensors", {{"w", torch::ones({2})}});
    const std::string message = open_error(folder);
    EXPECT_NE(message.find("'w' appears in both"), std::string::npos) << message;
}

TEST_F(Safetensors, IndexErrors) {
    const std::string folder = dir_ + "/bad_index";
    fs::create_directories(folder);
    safetensors::write(folder + "/shard.safetensors", {{"a", torch::ones({2})}});

    const std::string no_map = write_bytes("bad_index/no_map.json", R"({"metadata":{}})");
    EXPECT_NE(open_error(no_map).find("weight_map"), std::string::npos);

    const std::string missing_shard = write_bytes("bad_index/missing.json", R"({"weight_map":{"a":"gone.safetensors"}})");
    EXPECT_NE(open_error(missing_shard).find("gone.safetensors', which is missing"), std::string::npos)
        << open_error(missing_shard);

    const std::string wrong_shard = write_bytes("bad_index/wrong.json", R"({"weight_map":{"z":"shard.safetensors"}})");
    EXPECT_NE(open_error(wrong_shard).find("tensor 'z'"), std::string::npos) << open_error(wrong_shard);

    const std::string escape = write_bytes("bad_index/escape.json", R"({"weight_map":{"a":"../shard.safetensors"}})");
    EXPECT_NE(open_error(escape).find("inside the index's folder"), std::string::npos) << open_error(escape);

    const std::string not_json = write_bytes("bad_index/not_json.json", "{weight_map");
    EXPECT_NE(open_error(not_json).find("not valid JSON"), std::string::npos) << open_error(not_json);
}

TEST_F(Safetensors, WriterRejectsInvalidInput) {
    EXPECT_THROW(safetensors::write(dir_ + "/x.safetensors", {{"ids", torch::ones({2}, torch::kLong)}}), Error);
    EXPECT_THROW(safetensors::write(dir_ + "/x.safetensors", {{"__metadata__", torch::ones({2})}}), Error);
    EXPECT_FALSE(fs::exists(dir_ + "/x.safetensors"));
}

// ---------------------------------------------------------------------------------------------
// Malformed files

TEST_F(Safetensors, TooShort) { expect_error("abc", {"too short"}); }

TEST_F(Safetensors, HeaderLengthPastEnd) {
    std::string bytes = safetensors_bytes("{}", "");
    const uint64_t short_by_one = 3;
    std::memcpy(bytes.data(), &short_by_one, 8);
    expect_error(bytes, {"header length is 3 bytes, but only 2 bytes follow"});
    const uint64_t huge = uint64_t{1} << 60;
    std::memcpy(bytes.data(), &huge, 8);
    expect_error(bytes, {"header length is 1152921504606846976"});
}

TEST_F(Safetensors, HeaderNotJson) { expect_error(safetensors_bytes("{\"a\":", ""), {"not valid JSON"}); }

TEST_F(Safetensors, HeaderNotObject) { expect_error(safetensors_bytes("[1,2]", ""), {"expected a JSON object"}); }

TEST_F(Safetensors, MissingField) {
    expect_error(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[1]}})", "abcd"), {"'w'", "data_offsets"});
}

TEST_F(Safetensors, UnknownDtype) {
    expect_error(safetensors_bytes(R"({"w":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}})", "abcd"),
                 {"'w'", "unknown dtype \"F17\""});
}

TEST_F(Safetensors, NegativeShape) {
    expect_error(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", "abcd"),
                 {"'w'", "-1"});
}

TEST_F(Safetensors, OffsetsPastEnd) {
    expect_error(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "abcd"),
                 {"'w'", "[0, 8]", "4 bytes of data"});
}

TEST_F(Safetensors, OffsetsReversed) {
    expect_error(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}})", "abcd"),
                 {"'w'", "[4, 0]"});
}

TEST_F(Safetensors, ShapeSizeMismatch) {
    expect_error(safetensors_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", "abcdefgh"),
                 {"'w'", "F32 of shape [3]", "span 8 bytes"});
}

TEST_F(Safetensors, OverlappingTensors) {
    expect_error(safetensors_bytes(R"({"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},)"
                                   R"("b":{"dtype":"F16","shape":[2],"data_offsets":[2,6]}})",
                                   "abcdef"),
                 {"'a'", "'b'", "overlap"});
}

TEST_F(Safetensors, RepeatedTensorName) {
    expect_error(safetensors_bytes(R"({"w":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},)"
                                   R"("w":{"dtype":"F16","shape":[1],"data_offsets":[2,4]}})",
                                   "abcd"),
                 {"'w'", "more than once"});
}

TEST_F(Safetensors, MetadataNotString) {
    expect_error(safetensors_bytes(R"({"__metadata__":{"format":1}})", ""), {"'format'", "expected a string"});
}

// Every proper prefix of a valid file must be rejected with an error naming the file.
TEST_F(Safetensors, TruncatedAtEveryLength) {
    const std::string path = dir_ + "/full.safetensors";
    safetensors::write(path, {{"a", torch::ones({3})}, {"b", torch::ones({2, 2}).to(torch::kBFloat16)}});
    std::ifstream in(path, std::ios::binary);
    const std::string full((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    ASSERT_EQ(open_error(path), "");

    for (size_t length = 0; length < full.size(); ++length) {
        const std::string prefix_path = write_bytes("prefix.safetensors", full.substr(0, length));
        const std::string message = open_error(prefix_path);
        ASSERT_FALSE(message.empty()) << "prefix of " << length << " bytes opened without error";
        ASSERT_NE(message.find(prefix_path), std::string::npos) << message;
    }
}

}  // namespace
}  // namespace sz
