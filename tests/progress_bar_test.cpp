// Tests of the progress bar: the formatted line against hand-computed rate and ETA, and the
// plain-line mode used when stderr is not a terminal.
#include <algorithm>
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "core/progress_bar.h"

namespace sz {
namespace {

TEST(ProgressFormat, RateAndEtaFromElapsedTime) {
    // 3 of 12 done in 6 s is 0.5 it/s, shown as 2.00 s/it, and 9 left at 0.5 it/s take 18 s.
    // A quarter of 4 cells is one '#'.
    EXPECT_EQ(format_progress("gate", 3, 12, 6.0, "", 4), "gate [#...] 3/12 25% 2.00 s/it ETA 18s elapsed 6s");
    // 50 of 200 in 10 s: 5 it/s, 150 left take 30 s.
    EXPECT_EQ(format_progress("train", 50, 200, 10.0, "loss 3.21", 0),
              "train 50/200 25% 5.00 it/s ETA 30s elapsed 10s loss 3.21");
}

TEST(ProgressFormat, NoRateBeforeFirstItemOrWithoutTotal) {
    EXPECT_EQ(format_progress("x", 0, 10, 1.0, "", 0), "x 0/10 0% elapsed 1s");
    EXPECT_EQ(format_progress("x", 4, 0, 2.0, "", 8), "x 4 2.00 it/s elapsed 2s");
}

TEST(ProgressFormat, DurationUnits) {
    EXPECT_EQ(format_duration(42.4), "42s");
    EXPECT_EQ(format_duration(221.0), "3m41s");
    EXPECT_EQ(format_duration(3720.0), "1h02m");
    EXPECT_EQ(format_duration(-5.0), "0s");
}

std::string read_all(std::FILE* file) {
    std::rewind(file);
    std::string text;
    char buffer[4096];
    size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
        text.append(buffer, n);
    }
    return text;
}

TEST(ProgressBarTest, LinesModePrintsPerInterval) {
    std::FILE* file = std::tmpfile();
    ASSERT_NE(file, nullptr);
    ProgressBarOptions options;
    options.stream = file;
    options.mode = ProgressBarOptions::Mode::Lines;
    options.line_seconds = 0.0;   // every advance prints
    {
        ProgressBar bar("stage", 3, options);
        bar.advance();
        bar.set_postfix("loss 1.50");
        bar.advance(2);
        EXPECT_EQ(bar.done(), 3);
    }   // the destructor prints nothing: the last line already shows 3/3
    const std::string text = read_all(file);
    std::fclose(file);
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;
    EXPECT_EQ(text.find('\r'), std::string::npos) << text;
    EXPECT_NE(text.find("stage 1/3 33%"), std::string::npos) << text;
    EXPECT_NE(text.find("stage 3/3 100%"), std::string::npos) << text;
    EXPECT_NE(text.find("loss 1.50"), std::string::npos) << text;
}

TEST(ProgressBarTest, LinesModeFinishPrintsUnshownState) {
    std::FILE* file = std::tmpfile();
    ASSERT_NE(file, nullptr);
    ProgressBarOptions options;
    options.stream = file;
    options.mode = ProgressBarOptions::Mode::Lines;
    options.line_seconds = 3600.0;   // no line before finish()
    ProgressBar bar("stage", 4, options);
    bar.advance(4);
    bar.finish();
    const std::string text = read_all(file);
    std::fclose(file);
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
    EXPECT_NE(text.find("stage 4/4 100%"), std::string::npos) << text;
}

TEST(ProgressBarTest, TerminalModeRedrawsInPlace) {
    std::FILE* file = std::tmpfile();
    ASSERT_NE(file, nullptr);
    ProgressBarOptions options;
    options.stream = file;
    options.mode = ProgressBarOptions::Mode::Terminal;
    options.redraw_seconds = 0.0;
    ProgressBar bar("x", 2, options);
    bar.advance();
    bar.advance();
    bar.finish();
    bar.finish();   // a second call prints nothing
    const std::string text = read_all(file);
    std::fclose(file);
    // Drawn at start, after each advance and at finish. Only the final draw ends the line.
    EXPECT_EQ(std::count(text.begin(), text.end(), '\r'), 4) << text;
    EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
    EXPECT_EQ(text.back(), '\n');
}

}  // namespace
}  // namespace sz
