#include "ui/levelshistogram.h"

#include <algorithm>
#include <cmath>

#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>

#include "core/io/frame.h"

namespace braggnac::ui {

FrameStats computeFrameStats(const core::Frame &frame)
{
    FrameStats s;
    std::vector<float> values;
    values.reserve(frame.data.size());
    bool integral = true;
    for (float v : frame.data)
        if (std::isfinite(v)) {
            values.push_back(v);
            integral = integral && v == std::floor(v);
        }
    s.finite = values.size();
    if (values.empty()) {
        s.histogram.assign(FrameStats::kHistogramBins, 0.0);
        return s;
    }
    const auto [mn, mx] = std::minmax_element(values.begin(), values.end());
    s.min = *mn;
    s.max = *mx;
    int bins = FrameStats::kHistogramBins;
    s.histogramMin = s.min;
    s.histogramWidth = s.max > s.min ? (s.max - s.min) / bins : 1.0;
    if (integral && s.max - s.min + 1 <= FrameStats::kHistogramBins) {
        // One bin per integer value: no empty bins between the values the data can take.
        bins = int(s.max - s.min) + 1;
        s.histogramMin = s.min - 0.5;
        s.histogramWidth = 1.0;
    }
    s.histogram.assign(std::size_t(bins), 0.0);
    for (float v : values) {
        const int b = std::clamp(int((v - s.histogramMin) / s.histogramWidth), 0, bins - 1);
        s.histogram[std::size_t(b)] += 1;
    }
    const auto rank = [&](double q) { return std::size_t(std::floor(q * double(values.size() - 1))); };
    auto k2 = values.begin() + std::ptrdiff_t(rank(0.02));
    std::nth_element(values.begin(), k2, values.end());
    s.p2 = *k2;
    auto k98 = values.begin() + std::ptrdiff_t(rank(0.98));
    std::nth_element(k2, k98, values.end());
    s.p98 = *k98;
    return s;
}

LevelsHistogram::LevelsHistogram(QWidget *parent) : QWidget(parent)
{
    setObjectName(QStringLiteral("levelsHistogram"));
    setMouseTracking(true);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Preferred);
    setToolTip(tr("Drag the lines to set the low and high levels"));
}

void LevelsHistogram::setStats(const FrameStats &stats)
{
    m_stats = stats;
    update();
}

void LevelsHistogram::setLevels(double low, double high)
{
    m_low = low;
    m_high = high;
    update();
}

void LevelsHistogram::setScaling(Scaling scaling)
{
    m_scaling = scaling;
    update();
}

void LevelsHistogram::setColormap(const Colormap &map)
{
    m_colormap = map;
    update();
}

QRectF LevelsHistogram::plotRect() const
{
    return QRectF(6, 4, std::max(10, width() - 12), std::max(10, height() - 22));
}

// The x axis follows the display scaling over the frame's range, like the image does.
double LevelsHistogram::xOfValue(double value) const
{
    const QRectF r = plotRect();
    const double span = m_stats.max > m_stats.min ? m_stats.max - m_stats.min : 1.0;
    return r.left() + r.width() * applyScaling((value - m_stats.min) / span, m_scaling);
}

double LevelsHistogram::valueOfX(double x) const
{
    const QRectF r = plotRect();
    const double span = m_stats.max > m_stats.min ? m_stats.max - m_stats.min : 1.0;
    return m_stats.min + span * invertScaling((x - r.left()) / r.width(), m_scaling);
}

void LevelsHistogram::paintEvent(QPaintEvent *)
{
    QPainter p(this);
    p.fillRect(rect(), palette().base());
    const QRectF r = plotRect();
    if (m_stats.finite > 0 && !m_stats.histogram.empty()) {
        // Re-bin into one column per pixel of the scaled axis; a bin wider than a column is
        // spread over the columns it covers (a density), so the scaled axis shows no comb.
        const int columns = std::max(1, int(r.width()));
        std::vector<double> col(std::size_t(columns), 0.0);
        const int bins = int(m_stats.histogram.size());
        for (int b = 0; b < bins; ++b) {
            const double count = m_stats.histogram[std::size_t(b)];
            if (count <= 0)
                continue;
            const double v0 = std::max(m_stats.min, m_stats.histogramMin + b * m_stats.histogramWidth);
            const double v1 = std::min(m_stats.max, m_stats.histogramMin + (b + 1) * m_stats.histogramWidth);
            const int x0 = std::clamp(int(xOfValue(v0) - r.left()), 0, columns - 1);
            const int x1 = std::clamp(int(std::ceil(xOfValue(v1) - r.left())) - 1, x0, columns - 1);
            for (int x = x0; x <= x1; ++x)
                col[std::size_t(x)] += count / (x1 - x0 + 1);
        }
        double top = 0;
        for (double &c : col) {
            c = std::log10(1.0 + c);
            top = std::max(top, c);
        }
        QPainterPath path(QPointF(r.left(), r.bottom()));
        for (int x = 0; x < columns; ++x) {
            const double h = top > 0 ? col[std::size_t(x)] / top * r.height() : 0;
            path.lineTo(r.left() + x, r.bottom() - h);
            path.lineTo(r.left() + x + 1, r.bottom() - h);
        }
        path.lineTo(r.right(), r.bottom());
        path.closeSubpath();
        p.setPen(Qt::NoPen);
        p.setBrush(palette().color(QPalette::Mid));
        p.drawPath(path);
    } else {
        p.setPen(palette().color(QPalette::PlaceholderText));
        p.drawText(r, Qt::AlignCenter, tr("no image"));
    }
    // Colour bar: the colormap between the levels, clamped outside.
    const QRectF bar(r.left(), r.bottom() + 4, r.width(), 10);
    const double xl = xOfValue(m_low), xh = xOfValue(m_high);
    for (int x = 0; x < int(bar.width()); ++x) {
        const double px = bar.left() + x;
        double t = xh > xl ? (valueOfX(px) - m_low) / (m_high - m_low) : (px >= xh ? 1 : 0);
        p.setPen(QColor(m_colormap.color(applyScaling(std::clamp(t, 0.0, 1.0), m_scaling))));
        p.drawLine(QPointF(px, bar.top()), QPointF(px, bar.bottom()));
    }
    p.setPen(palette().color(QPalette::Dark));
    p.setBrush(Qt::NoBrush);
    p.drawRect(r);
    if (m_stats.finite > 0) {
        p.setPen(QPen(QColor(220, 60, 40), 2));
        p.drawLine(QPointF(xl, r.top()), QPointF(xl, r.bottom()));
        p.setPen(QPen(QColor(40, 120, 220), 2));
        p.drawLine(QPointF(xh, r.top()), QPointF(xh, r.bottom()));
    }
}

void LevelsHistogram::mousePressEvent(QMouseEvent *event)
{
    if (m_stats.finite == 0 || event->button() != Qt::LeftButton)
        return;
    const double x = event->position().x();
    m_drag = std::abs(x - xOfValue(m_low)) <= std::abs(x - xOfValue(m_high)) ? Drag::Low : Drag::High;
    mouseMoveEvent(event);
}

void LevelsHistogram::mouseMoveEvent(QMouseEvent *event)
{
    if (m_drag == Drag::None) {
        const double x = event->position().x();
        const bool near = std::min(std::abs(x - xOfValue(m_low)), std::abs(x - xOfValue(m_high))) < 6;
        setCursor(near ? Qt::SizeHorCursor : Qt::ArrowCursor);
        return;
    }
    const QRectF r = plotRect();
    const double v = valueOfX(std::clamp(event->position().x(), r.left(), r.right()));
    const double eps = std::max(1e-6, (m_stats.max - m_stats.min) * 1e-4);
    if (m_drag == Drag::Low)
        m_low = std::min(v, m_high - eps);
    else
        m_high = std::max(v, m_low + eps);
    update();
    Q_EMIT levelsEdited(m_low, m_high);
}

void LevelsHistogram::mouseReleaseEvent(QMouseEvent *)
{
    m_drag = Drag::None;
}

} // namespace braggnac::ui
