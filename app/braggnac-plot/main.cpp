// braggnac-plot: renders the project's benchmark charts to PNG with Qt Charts, offscreen (no
// display needed: QT_QPA_PLATFORM=offscreen is set when the variable is unset). Independent of
// ui/ (the studio): it reads study files through core/search only.
//
//   braggnac-plot compress --study S.db --out P.png [--metric test|validation]
//       [--ref LABEL=MODEL]... [--goal-bops B] [--goal-distance D] [--title T] [--ymax Y]
//       [--y-scale log|linear] [--width W] [--height H]
//   braggnac-plot front --study S.db --out P.png [--ref LABEL=MODEL]... [same chart options]
//
// compress: every compress record stored in the study (braggnac compress --study), standard BOPs
// (log axis) against mean distance, one curve per bit width (and calibration margin) in round
// order (a later run's record replaces an earlier one with the same bits and round), the non-dominated records
// joined, reference points (--ref: a float model folder, its metrics.json test / validation
// mean and float32 cost), and the goal as dashed lines. front: a search study's trials
// (validation distance = objective "distance", BOPs = objective "bops"), the study's Pareto
// front (core::studyFrontIndices) joined, and the reference points.
//
// On success one JSON line on stdout says what was drawn: {"out", "width", "height", "x_range",
// "y_range", "series": [{"name", "points"}]} (the goal lines included).
// Exit codes as the CLI: 0 written, 1 failed, 2 bad usage or bad input (one line on stderr).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <QApplication>
#include <QBrush>
#include <QColor>
#include <QFont>
#include <QPainter>
#include <QPen>
#include <QPixmap>
#include <QtCharts/QChart>
#include <QtCharts/QChartView>
#include <QtCharts/QLegend>
#include <QtCharts/QLegendMarker>
#include <QtCharts/QLineSeries>
#include <QtCharts/QLogValueAxis>
#include <QtCharts/QScatterSeries>
#include <QtCharts/QValueAxis>

#include <nlohmann/json.hpp>

#include "core/arch/archspec.h"
#include "core/common/error.h"
#include "core/cost/cost.h"
#include "core/search/driver.h"
#include "core/search/studystore.h"

namespace {

using namespace braggnac;

struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct Point {
    double bops = 0, distance = 0;
};

struct Reference {
    std::string label;
    Point p;
};

struct Options {
    std::string mode, study, out, metric = "test", title;
    std::vector<std::string> refs;
    double goalBops = 0, goalDistance = 0, ymax = 0;
    bool logY = false;
    int width = 1200, height = 800;
};

double number(const std::string &flag, const std::string &v)
{
    char *end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !std::isfinite(d) || d < 0)
        throw UsageError(flag + ": expected a number >= 0 (got '" + v + "')");
    return d;
}

Options parseArgs(int argc, char **argv)
{
    Options o;
    if (argc < 2)
        throw UsageError("expected a chart: compress or front");
    o.mode = argv[1];
    if (o.mode != "compress" && o.mode != "front")
        throw UsageError("unknown chart '" + o.mode + "' (expected compress or front)");
    for (int i = 2; i < argc; ++i) {
        const std::string k = argv[i];
        if (i + 1 >= argc)
            throw UsageError(k + ": expected a value");
        const std::string v = argv[++i];
        if (k == "--study")
            o.study = v;
        else if (k == "--out")
            o.out = v;
        else if (k == "--metric") {
            if (v != "test" && v != "validation")
                throw UsageError("--metric: expected test or validation (got '" + v + "')");
            o.metric = v;
        } else if (k == "--ref")
            o.refs.push_back(v);
        else if (k == "--goal-bops")
            o.goalBops = number(k, v);
        else if (k == "--goal-distance")
            o.goalDistance = number(k, v);
        else if (k == "--ymax")
            o.ymax = number(k, v);
        else if (k == "--y-scale") {
            if (v != "log" && v != "linear")
                throw UsageError("--y-scale: expected log or linear (got '" + v + "')");
            o.logY = v == "log";
        } else if (k == "--title")
            o.title = v;
        else if (k == "--width")
            o.width = std::clamp(int(number(k, v)), 200, 8000);
        else if (k == "--height")
            o.height = std::clamp(int(number(k, v)), 200, 8000);
        else
            throw UsageError("unknown option " + k);
    }
    if (o.study.empty())
        throw UsageError("--study S.db is required");
    if (o.out.empty())
        throw UsageError("--out P.png is required");
    return o;
}

nlohmann::json readJsonFile(const std::string &path)
{
    std::ifstream in(path);
    if (!in)
        throw core::InputError(core::fileMessage(path, "cannot be read"));
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded())
        throw core::InputError(core::fileMessage(path, "is not JSON"));
    return j;
}

// LABEL=MODEL: a float model folder's distance (metrics.json <metric>.mean) and float32
// standard BOPs (metrics.json cost.bops, else computed from spec.json).
Reference readReference(const std::string &arg, const std::string &metric)
{
    const auto eq = arg.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size())
        throw UsageError("--ref: expected LABEL=MODEL_FOLDER (got '" + arg + "')");
    Reference r;
    r.label = arg.substr(0, eq);
    const std::string folder = arg.substr(eq + 1);
    const std::string metricsPath = (std::filesystem::path(folder) / "metrics.json").string();
    const nlohmann::json m = readJsonFile(metricsPath);
    if (!m.contains(metric) || !m[metric].is_object() || !m[metric].contains("mean") || !m[metric]["mean"].is_number())
        throw core::InputError(core::fileMessage(metricsPath, metric + ".mean: missing or not a number"));
    r.p.distance = m[metric]["mean"].get<double>();
    if (m.contains("cost") && m["cost"].is_object() && m["cost"].value("weight_bits", 0) == 32
        && m["cost"].contains("bops") && m["cost"]["bops"].is_number()) {
        r.p.bops = m["cost"]["bops"].get<double>();
    } else {
        const std::string specPath = (std::filesystem::path(folder) / "spec.json").string();
        r.p.bops = core::computeCost(core::ArchSpec::fromJson(readJsonFile(specPath), specPath)).bops;
    }
    return r;
}

// The non-dominated points (both minimised) in order of increasing BOPs.
std::vector<Point> paretoFront(std::vector<Point> pts)
{
    std::sort(pts.begin(), pts.end(), [](const Point &a, const Point &b) {
        return a.bops < b.bops || (a.bops == b.bops && a.distance < b.distance);
    });
    std::vector<Point> front;
    double best = std::numeric_limits<double>::infinity();
    for (const Point &p : pts)
        if (p.distance < best) {
            front.push_back(p);
            best = p.distance;
        }
    return front;
}

const QColor kPalette[] = {QColor(31, 119, 180), QColor(255, 127, 14), QColor(44, 160, 44), QColor(214, 39, 40),
                           QColor(148, 103, 189), QColor(140, 86, 75), QColor(227, 119, 194), QColor(127, 127, 127),
                           QColor(188, 189, 34), QColor(23, 190, 207)};

class Chart {
public:
    explicit Chart(const Options &o) : m_options(o)
    {
        m_chart = new QChart;
        m_chart->setAnimationOptions(QChart::NoAnimation);
        m_chart->legend()->setAlignment(Qt::AlignRight);
        QFont f = m_chart->titleFont();
        f.setPointSize(13);
        m_chart->setTitleFont(f);
        m_chart->setTitle(QString::fromStdString(o.title));
        m_x = new QLogValueAxis;
        m_x->setBase(10);
        m_x->setLabelFormat("%.0e");
        m_x->setTitleText("standard BOPs (log scale)");
        m_x->setMinorTickCount(8);
        if (o.logY) {
            auto *y = new QLogValueAxis;
            y->setBase(10);
            y->setMinorTickCount(8);
            y->setLabelFormat("%.3g");
            m_y = y;
        } else {
            auto *y = new QValueAxis;
            y->setTickCount(9);
            y->setLabelFormat("%.3g");
            m_y = y;
        }
        m_chart->addAxis(m_x, Qt::AlignBottom);
        m_chart->addAxis(m_y, Qt::AlignLeft);
    }

    void setYTitle(const std::string &t) { m_y->setTitleText(QString::fromStdString(t)); }

    void addLine(const std::string &name, const std::vector<Point> &pts, const QColor &c, bool markers,
                 Qt::PenStyle style = Qt::SolidLine, double width = 2)
    {
        if (pts.empty())
            return;
        auto *line = new QLineSeries;
        line->setName(QString::fromStdString(name));
        QPen pen(c);
        pen.setWidthF(width);
        pen.setStyle(style);
        line->setPen(pen);
        for (const Point &p : pts)
            line->append(p.bops, p.distance);
        attach(line);
        record(name, pts.size());
        if (markers) {
            auto *dots = new QScatterSeries;
            dots->setColor(c);
            dots->setBorderColor(c);
            dots->setMarkerSize(7);
            for (const Point &p : pts)
                dots->append(p.bops, p.distance);
            attach(dots);
            hideLegend(dots);
        }
        extend(pts);
    }

    void addScatter(const std::string &name, const std::vector<Point> &pts, const QColor &c, double size,
                    QScatterSeries::MarkerShape shape = QScatterSeries::MarkerShapeCircle)
    {
        if (pts.empty())
            return;
        auto *s = new QScatterSeries;
        s->setName(QString::fromStdString(name));
        s->setMarkerShape(shape);
        s->setMarkerSize(size);
        s->setColor(c);
        s->setBorderColor(c.darker(140));
        for (const Point &p : pts)
            s->append(p.bops, p.distance);
        attach(s);
        record(name, pts.size());
        extend(pts);
    }

    void addReferences(const std::vector<Reference> &refs)
    {
        for (std::size_t i = 0; i < refs.size(); ++i) {
            char label[160];
            std::snprintf(label, sizeof label, "%s (float32: %.3g BOPs, %.4f px)", refs[i].label.c_str(), refs[i].p.bops,
                          refs[i].p.distance);
            addScatter(label, {refs[i].p}, i == 0 ? QColor(0, 0, 0) : QColor(120, 120, 120), 15,
                       i == 0 ? QScatterSeries::MarkerShapeRectangle : QScatterSeries::MarkerShapeCircle);
        }
    }

    // Dashed goal lines drawn across the whole plotted range (added last, after the range is known).
    void addGoal(double goalBops, double goalDistance)
    {
        m_goalBops = goalBops;
        m_goalDistance = goalDistance;
    }

    /// Renders to path (PNG, atomically) and returns the summary printed on stdout.
    nlohmann::json save(const std::string &path)
    {
        if (!(m_xmin < m_xmax))
            throw core::InputError(core::fileMessage(m_options.study, "nothing to plot (no points)"));
        double xmin = m_xmin, xmax = m_xmax;
        if (m_goalBops > 0) {
            xmin = std::min(xmin, m_goalBops);
            xmax = std::max(xmax, m_goalBops);
        }
        xmin = std::pow(10.0, std::floor(std::log10(xmin)));
        xmax = std::pow(10.0, std::ceil(std::log10(xmax)));
        double ymax = m_options.ymax > 0 ? m_options.ymax : m_ymax * 1.05;
        if (m_goalDistance > 0 && m_options.ymax <= 0)
            ymax = std::max(ymax, m_goalDistance * 1.1);
        double ymin = 0;
        if (m_options.logY) {
            const double lo = std::min(m_ymin, m_goalDistance > 0 ? m_goalDistance : m_ymin);
            ymin = std::pow(10.0, std::floor(std::log10(lo)));
            if (m_options.ymax <= 0)
                ymax = std::pow(10.0, std::ceil(std::log10(m_ymax)));
        }
        if (m_goalBops > 0) {
            std::vector<Point> v{{m_goalBops, ymin}, {m_goalBops, ymax}};
            addGoalLine("goal: 1/1000 of the first reference's BOPs", v);
        }
        if (m_goalDistance > 0) {
            std::vector<Point> h{{xmin, m_goalDistance}, {xmax, m_goalDistance}};
            addGoalLine("goal: 1.05x the first reference's distance", h);
        }
        m_x->setRange(xmin, xmax);
        m_y->setRange(ymin, ymax);

        QChartView view(m_chart);
        view.setRenderHint(QPainter::Antialiasing);
        view.resize(m_options.width, m_options.height);
        const QPixmap pixmap = view.grab();
        const std::filesystem::path target(path), temp(path + ".part.png");
        if (!pixmap.save(QString::fromStdString(temp.string()), "PNG"))
            throw core::Error(core::fileMessage(path, "cannot write the PNG"));
        std::error_code ec;
        std::filesystem::rename(temp, target, ec);
        if (ec)
            throw core::Error(core::fileMessage(path, "cannot write the PNG: " + ec.message()));
        return {{"out", path}, {"width", pixmap.width()}, {"height", pixmap.height()}, {"x_range", {xmin, xmax}},
                {"y_range", {ymin, ymax}}, {"series", m_summary}};
    }

private:
    void attach(QAbstractSeries *s)
    {
        m_chart->addSeries(s);
        s->attachAxis(m_x);
        s->attachAxis(m_y);
    }
    void record(const std::string &name, std::size_t points)
    {
        m_summary.push_back({{"name", name}, {"points", points}});
    }
    void hideLegend(QAbstractSeries *s)
    {
        for (QLegendMarker *m : m_chart->legend()->markers(s))
            m->setVisible(false);
    }
    void extend(const std::vector<Point> &pts)
    {
        for (const Point &p : pts) {
            if (!(p.bops > 0) || !std::isfinite(p.distance))
                continue;
            m_xmin = std::min(m_xmin, p.bops);
            m_xmax = std::max(m_xmax, p.bops);
            if (m_options.ymax <= 0 || p.distance <= m_options.ymax)
                m_ymax = std::max(m_ymax, p.distance);
            if (p.distance > 0)
                m_ymin = std::min(m_ymin, p.distance);
        }
    }
    void addGoalLine(const std::string &name, const std::vector<Point> &pts)
    {
        auto *line = new QLineSeries;
        line->setName(QString::fromStdString(name));
        QPen pen(QColor(200, 0, 0));
        pen.setStyle(Qt::DashLine);
        pen.setWidthF(1.5);
        line->setPen(pen);
        for (const Point &p : pts)
            line->append(p.bops, p.distance);
        attach(line);
        record(name, pts.size());
    }

    const Options &m_options;
    nlohmann::json m_summary = nlohmann::json::array();
    QChart *m_chart = nullptr; // owned by the view in save() (or leaked at exit when save is not reached)
    QLogValueAxis *m_x = nullptr;
    QAbstractAxis *m_y = nullptr; // QValueAxis, or QLogValueAxis with --y-scale log
    double m_xmin = std::numeric_limits<double>::infinity(), m_xmax = 0, m_ymax = 0;
    double m_ymin = std::numeric_limits<double>::infinity();
    double m_goalBops = 0, m_goalDistance = 0;
};

void plotCompress(const Options &o, const core::StudyStore &store, const std::vector<Reference> &refs)
{
    // (bits, calibration margin) -> round -> point; later runs replace earlier ones. A series is
    // one bit width at one margin (the run's options; 1 when absent, compress's default).
    std::map<std::pair<int, int>, std::map<int, Point>> byBits;
    for (const core::CompressRun &run : store.compressRuns()) {
        const nlohmann::json &opt = run.info.options;
        const int margin = opt.is_object() && opt.contains("margin") && opt["margin"].is_number_integer()
            ? opt["margin"].get<int>()
            : 1;
        for (const core::CompressRecordRow &r : run.records) {
            const double d = o.metric == "test" ? r.test : r.validation;
            if (std::isfinite(d) && r.bops > 0)
                byBits[{r.bits, margin}][r.round] = {r.bops, d};
        }
    }
    if (byBits.empty())
        throw core::InputError(core::fileMessage(o.study, "no compress records with a " + o.metric
                                                              + " distance (run braggnac compress --study " + o.study + ")"));
    Chart chart(o);
    chart.setYTitle(o.metric + " mean distance (px, integer reference)");
    std::vector<Point> all;
    std::size_t k = 0;
    for (const auto &[key, rounds] : byBits) {
        std::vector<Point> pts;
        for (const auto &[round, p] : rounds)
            pts.push_back(p);
        all.insert(all.end(), pts.begin(), pts.end());
        const std::string margin = key.second == 1 ? std::string() : ", margin " + std::to_string(key.second);
        chart.addLine(std::to_string(key.first) + " bits" + margin + " (rounds 0-" + std::to_string(rounds.rbegin()->first)
                          + ")",
                      pts, kPalette[k++ % 10], true);
    }
    chart.addLine("front of all records", paretoFront(all), QColor(0, 0, 0), false, Qt::DotLine, 2.5);
    chart.addReferences(refs);
    chart.addGoal(o.goalBops, o.goalDistance);
    std::printf("%s\n", chart.save(o.out).dump().c_str());
}

void plotFront(const Options &o, const core::StudyStore &store, const std::vector<Reference> &refs)
{
    const core::StudyInfo info = store.info();
    int di = -1, bi = -1;
    for (std::size_t i = 0; i < info.objectives.size(); ++i) {
        if (info.objectives[i].name == "distance")
            di = int(i);
        if (info.objectives[i].name == "bops")
            bi = int(i);
    }
    if (di < 0 || bi < 0)
        throw core::InputError(core::fileMessage(o.study, "the study's objectives are not distance and bops: no front to plot"));
    const std::vector<core::TrialPoint> points = store.points(std::nullopt);
    std::vector<Point> trials, pruned, front;
    for (const core::TrialPoint &t : points) {
        if (t.values.size() != info.objectives.size())
            continue;
        const Point p{t.values[std::size_t(bi)], t.values[std::size_t(di)]};
        if (t.state == core::TrialState::Complete)
            trials.push_back(p);
        else if (t.state == core::TrialState::Pruned)
            pruned.push_back(p);
    }
    for (std::size_t i : core::studyFrontIndices(points))
        front.push_back({points[i].values[std::size_t(bi)], points[i].values[std::size_t(di)]});
    std::sort(front.begin(), front.end(), [](const Point &a, const Point &b) { return a.bops < b.bops; });
    if (trials.empty() && pruned.empty())
        throw core::InputError(core::fileMessage(o.study, "no finished trial with values yet"));
    Chart chart(o);
    chart.setYTitle("validation mean distance (px)");
    chart.addScatter("pruned trials (" + std::to_string(pruned.size()) + ")", pruned, QColor(200, 200, 200), 6);
    chart.addScatter("complete trials (" + std::to_string(trials.size()) + ")", trials, QColor(100, 150, 220), 7);
    chart.addLine("Pareto front (" + std::to_string(front.size()) + ")", front, QColor(214, 39, 40), true);
    chart.addReferences(refs);
    chart.addGoal(o.goalBops, o.goalDistance);
    std::printf("%s\n", chart.save(o.out).dump().c_str());
}

} // namespace

int main(int argc, char **argv)
{
    if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM"))
        qputenv("QT_QPA_PLATFORM", "offscreen");
    try {
        const Options o = parseArgs(argc, argv);
        QApplication app(argc, argv);
        std::vector<Reference> refs;
        for (const std::string &r : o.refs)
            refs.push_back(readReference(r, o.mode == "front" ? "validation" : o.metric));
        const core::StudyStore store = core::StudyStore::open(o.study, core::StudyStore::Mode::ReadOnly);
        if (o.mode == "compress")
            plotCompress(o, store, refs);
        else
            plotFront(o, store, refs);
        return 0;
    } catch (const UsageError &e) {
        std::fprintf(stderr, "braggnac-plot: %s\nusage: braggnac-plot compress|front --study S.db --out P.png "
                             "[--metric test|validation] [--ref LABEL=MODEL]... [--goal-bops B] [--goal-distance D] "
                             "[--title T] [--ymax Y] [--y-scale log|linear] [--width W] [--height H]\n",
                     e.what());
        return 2;
    } catch (const braggnac::core::InputError &e) {
        std::fprintf(stderr, "braggnac-plot: %s\n", e.what());
        return 2;
    } catch (const std::exception &e) {
        std::fprintf(stderr, "braggnac-plot: %s\n", e.what());
        return 1;
    }
}
