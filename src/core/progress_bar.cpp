#include "core/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace sz {

std::string format_duration(double seconds) {
    const int64_t s = std::max<int64_t>(0, std::llround(seconds));
    if (s < 60) {
        return fmt::format("{}s", s);
    }
    if (s < 3600) {
        return fmt::format("{}m{:02}s", s / 60, s % 60);
    }
    return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

std::string format_progress(const std::string& label, int64_t done, int64_t total, double elapsed_seconds,
                            const std::string& postfix, int bar_width) {
    std::string line = label;
    if (total > 0 && bar_width > 0) {
        const double fraction = std::clamp(static_cast<double>(done) / static_cast<double>(total), 0.0, 1.0);
        const int filled = static_cast<int>(std::floor(fraction * bar_width));
        line += fmt::format(" [{}{}]", std::string(static_cast<size_t>(filled), '#'),
                            std::string(static_cast<size_t>(bar_width - filled), '.'));
    }
    if (total > 0) {
        const double percent = 100.0 * static_cast<double>(done) / static_cast<double>(total);
        line += fmt::format(" {}/{} {:.0f}%", done, total, percent);
    } else {
        line += fmt::format(" {}", done);
    }
    if (done > 0 && elapsed_seconds > 0.0) {
        const double rate = static_cast<double>(done) / elapsed_seconds;
        // Slow loops (seconds per item) read better as s/it than as 0.05 it/s.
        line += rate >= 1.0 ? fmt::format(" {:.2f} it/s", rate) : fmt::format(" {:.2f} s/it", 1.0 / rate);
        if (total > 0) {
            const double remaining = static_cast<double>(std::max<int64_t>(0, total - done)) / rate;
            line += fmt::format(" ETA {}", format_duration(remaining));
        }
    }
    line += fmt::format(" elapsed {}", format_duration(elapsed_seconds));
    if (!postfix.empty()) {
        line += " " + postfix;
    }
    return line;
}

ProgressBar::ProgressBar(std::string label, int64_t total, ProgressBarOptions options)
    : label_(std::move(label)), total_(total), options_(options) {
    using Mode = ProgressBarOptions::Mode;
    if (options_.mode == Mode::Detect) {
        const bool tty = options_.stream != nullptr && isatty(fileno(options_.stream)) == 1;
        options_.mode = tty ? Mode::Terminal : Mode::Lines;
    }
    terminal_ = options_.mode == Mode::Terminal;
    start_ = std::chrono::steady_clock::now();
    last_draw_ = start_;
    if (terminal_) {
        draw(false);
    }
}

ProgressBar::~ProgressBar() { finish(); }

double ProgressBar::elapsed_seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::advance(int64_t steps) {
    done_ += steps;
    const auto now = std::chrono::steady_clock::now();
    const double since_draw = std::chrono::duration<double>(now - last_draw_).count();
    const double interval = terminal_ ? options_.redraw_seconds : options_.line_seconds;
    if (since_draw >= interval) {
        draw(false);
    }
}

void ProgressBar::set_postfix(std::string postfix) { postfix_ = std::move(postfix); }

void ProgressBar::finish() {
    if (finished_) {
        return;
    }
    finished_ = true;
    draw(true);
}

void ProgressBar::draw(bool final) {
    if (options_.mode == ProgressBarOptions::Mode::Silent || options_.stream == nullptr) {
        return;
    }
    if (final && !terminal_ && drawn_done_ == done_) {
        return;
    }
    drawn_done_ = done_;
    last_draw_ = std::chrono::steady_clock::now();
    const std::string line =
        format_progress(label_, done_, total_, elapsed_seconds(), postfix_, terminal_ ? options_.width : 0);
    if (terminal_) {
        // Pad with blanks so a shorter line fully covers the previous one.
        const size_t pad = last_length_ > line.size() ? last_length_ - line.size() : 0;
        std::fprintf(options_.stream, "\r%s%s%s", line.c_str(), std::string(pad, ' ').c_str(), final ? "\n" : "");
        last_length_ = line.size();
    } else {
        std::fprintf(options_.stream, "%s\n", line.c_str());
    }
    std::fflush(options_.stream);
}

}  // namespace sz
