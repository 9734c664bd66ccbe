#include "ksurf/aggregate_report.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>

#include "ksurf/error.h"
#include "ksurf/format.h"
#include "ksurf/kallsyms.h"
#include "ksurf/output_file.h"

namespace ksurf {

AggregateReport::AggregateReport(Read read, AggregateOptions opt, bool json, std::FILE* out, std::string unit)
    : read_(std::move(read)), opt_(std::move(opt)), json_(json), out_(out), unit_(std::move(unit)),
      next_(std::chrono::steady_clock::now() + interval()) {
    // Before privileges are dropped: /proc/kallsyms shows addresses to CAP_SYSLOG only.
    if (opt_.stack_key()) kallsyms_ = std::make_unique<Kallsyms>(Kallsyms::load());
}

AggregateReport::~AggregateReport() = default;

std::chrono::steady_clock::duration AggregateReport::interval() const {
    return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(opt_.interval_s));
}

bool AggregateReport::tick() {
    if (opt_.interval_s <= 0 || std::chrono::steady_clock::now() < next_) return true;
    // From the schedule, not from now: prints stay on their period however long one takes.
    while (next_ <= std::chrono::steady_clock::now()) next_ += interval();
    return print();
}

bool AggregateReport::print() {
    AggTable t = read_(kallsyms_.get());
    t.unit = unit_;
    // Every key for the metrics; --top is for the reader of the table.
    if (!opt_.metrics_file.empty()) replace_output_file(opt_.metrics_file, format_openmetrics(t));
    rank(t, opt_.top);
    const std::string text = json_ ? format_aggregate_json(t) : format_aggregate(t) + (opt_.interval_s > 0 ? "\n" : "");
    if (std::fwrite(text.data(), 1, text.size(), out_) != text.size() || std::fflush(out_) != 0) {
        if (errno == EPIPE) return false;
        fail("cannot write the aggregation: {}", errno_text(errno));
    }
    return true;
}

}  // namespace ksurf
