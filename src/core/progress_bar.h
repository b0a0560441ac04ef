// Progress bar with rate and ETA for long loops (locate stages, training steps).
//
// On a terminal the line is redrawn in place with '\r' at most every `redraw_seconds`. When
// the stream is not a terminal (a log file, a pipe, CI) one plain line is printed at most
// every `line_seconds`, so logs stay short and grep-able. finish() (or the destructor) prints
// the final state once.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace sz {

struct ProgressBarOptions {
    std::FILE* stream = stderr;
    // Detected from `stream` by default; set to force one mode (tests, nested output).
    enum class Mode { Detect, Terminal, Lines, Silent } mode = Mode::Detect;
    double redraw_seconds = 0.2;   // minimum time between redraws on a terminal
    double line_seconds = 30.0;    // minimum time between plain lines otherwise
    int width = 24;                // bar cells on a terminal
};

// One line of progress, such as
// "gate [#####.......] 120/540 22% 1.90 it/s ETA 3m41s elapsed 1m03s loss 3.21".
// `elapsed_seconds` is the time since start. Rate and ETA are omitted until one item is done;
// `total` <= 0 means unknown, which drops the percentage, the bar and the ETA.
std::string format_progress(const std::string& label, int64_t done, int64_t total, double elapsed_seconds,
                            const std::string& postfix, int bar_width);

// "42s", "3m41s", "1h02m".
std::string format_duration(double seconds);

class ProgressBar {
public:
    ProgressBar(std::string label, int64_t total, ProgressBarOptions options = {});
    ~ProgressBar();
    ProgressBar(const ProgressBar&) = delete;
    ProgressBar& operator=(const ProgressBar&) = delete;

    // Adds `steps` finished items and redraws when the interval has passed.
    void advance(int64_t steps = 1);
    // Sets the text shown at the end of the line from the next redraw on ("loss 3.21 lr 2e-4").
    void set_postfix(std::string postfix);
    // Prints the final state and ends the line. Later calls do nothing.
    void finish();

    int64_t done() const { return done_; }
    double elapsed_seconds() const;

private:
    void draw(bool final);

    std::string label_;
    int64_t total_;
    ProgressBarOptions options_;
    bool terminal_ = false;
    bool finished_ = false;
    int64_t done_ = 0;
    std::string postfix_;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_draw_;
    size_t last_length_ = 0;   // characters of the previous terminal line, to blank its tail
    int64_t drawn_done_ = -1;  // done_ at the previous draw, so finish() does not repeat a plain line
};

}  // namespace sz
