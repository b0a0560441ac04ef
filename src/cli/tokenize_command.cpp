// `subzero tokenize MODEL TEXT`: prints the token ids and pieces of a text, in the same
// "id -> 'piece'" layout as llama.cpp's llama-tokenize, or as JSON.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "core/model_path.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace sz::cli {

namespace {

struct TokenizeOptions {
    std::string model;
    std::string text;
    std::string file;
    bool text_given = false;  // TEXT may be given and empty
    bool json = false;
    bool no_bos = false;
    bool no_parse_special = false;
};

Tokenizer load_tokenizer(const std::string& model) {
    const std::string path = resolve_model_path(model);
    if (std::filesystem::is_directory(path)) {
        return Tokenizer::from_hf_dir(path);
    }
    std::shared_ptr<gguf::File> file = gguf::File::open(path);
    return Tokenizer::from_gguf(*file);
}

std::string read_input_file(const std::string& path) {
    std::ifstream stream(path, std::ios::binary);
    if (!stream) {
        fail("{}: cannot open the text file for reading", path);
    }
    std::ostringstream buffer;
    buffer << stream.rdbuf();
    return buffer.str();
}

void run_tokenize(const TokenizeOptions& options) {
    if (options.text_given == !options.file.empty()) {
        fail("tokenize needs exactly one input: either TEXT or --file PATH");
    }
    const std::string text = options.file.empty() ? options.text : read_input_file(options.file);

    const Tokenizer tokenizer = load_tokenizer(options.model);
    const std::vector<int32_t> ids = tokenizer.encode(text, !options.no_bos, !options.no_parse_special);

    if (options.json) {
        nlohmann::json output = {{"ids", ids}, {"pieces", nlohmann::json::array()}};
        for (int32_t id : ids) {
            output["pieces"].push_back(tokenizer.token_to_piece(id, true));
        }
        // Byte-fallback pieces can be partial UTF-8 sequences; they print as U+FFFD.
        std::printf("%s\n", output.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        return;
    }
    for (int32_t id : ids) {
        std::string piece = tokenizer.token_to_piece(id, true);
        std::printf("%6d -> '%s'\n", id, piece.c_str());
    }
}

}  // namespace

void add_tokenize_command(CLI::App& app) {
    auto options = std::make_shared<TokenizeOptions>();
    CLI::App* command = app.add_subcommand(
        "tokenize", "Print the token ids and pieces of a text, as llama.cpp's llama-tokenize does");
    command->add_option("MODEL", options->model,
                        "GGUF file, Hugging Face model folder, or installed model name (gemma3-270m)")
        ->required();
    CLI::Option* text = command->add_option("TEXT", options->text, "Text to tokenize (or use --file)");
    command->add_option("--file", options->file, "Read the text to tokenize from this file")->option_text("PATH");
    command->add_flag("--json", options->json, "Print {\"ids\": [...], \"pieces\": [...]} instead of one token per line");
    command->add_flag("--no-bos", options->no_bos, "Do not add the BOS token the vocabulary asks for");
    command->add_flag("--no-parse-special", options->no_parse_special,
                      "Treat control-token text such as <start_of_turn> as plain text");
    command->callback([options, text] {
        options->text_given = text->count() > 0;
        run_tokenize(*options);
    });
}

}  // namespace sz::cli
