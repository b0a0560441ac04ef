// The output folder of a command: created before the work starts, so that an unwritable path
// fails early, and removed again when the command fails before writing into it, so that a
// rejected input leaves no empty folder behind.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace sz {

class OutputFolder {
public:
    // Creates `dir` and its missing parents and checks that a file can be written there.
    // Throws sz::Error naming `dir` and `flag` (the option that set it, such as "--out").
    OutputFolder(const std::string& dir, const std::string& flag);
    // Removes the folders this object created that are still empty, deepest first.
    ~OutputFolder();

    OutputFolder(const OutputFolder&) = delete;
    OutputFolder& operator=(const OutputFolder&) = delete;

private:
    void remove_empty_created();

    std::vector<std::filesystem::path> created_;  // outermost first
};

}  // namespace sz
