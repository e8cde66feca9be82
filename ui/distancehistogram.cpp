#include "ui/distancehistogram.h"

#include <algorithm>
#include <cmath>

#include <QAreaSeries>
#include <QChart>
#include <QLineSeries>
#include <QValueAxis>

namespace braggnac::ui {

DistanceHistogram::DistanceHistogram(QWidget *parent) : ChartView(new QChart, parent)
{
    setObjectName(QStringLiteral("distanceHistogram"));
    QChart *c = chart();
    c->setTitle(tr("Distance to label"));
    c->legend()->hide();
    c->setMargins(QMargins(4, 4, 4, 4));

    m_upper = new QLineSeries(c);
    m_lower = new QLineSeries(c);
    m_area = new QAreaSeries(m_upper, m_lower);
    m_area->setName(tr("patches"));
    QColor fill(0x3b, 0x75, 0xaf);
    m_area->setBorderColor(fill.darker(130));
    fill.setAlpha(150);
    m_area->setBrush(fill);
    c->addSeries(m_area);

    m_xAxis = new QValueAxis(c);
    m_xAxis->setTitleText(tr("distance (px)"));
    m_xAxis->setLabelFormat(QStringLiteral("%.2f"));
    m_yAxis = new QValueAxis(c);
    m_yAxis->setTitleText(tr("patches"));
    m_yAxis->setLabelFormat(QStringLiteral("%d"));
    c->addAxis(m_xAxis, Qt::AlignBottom);
    c->addAxis(m_yAxis, Qt::AlignLeft);
    m_area->attachAxis(m_xAxis);
    m_area->attachAxis(m_yAxis);
    clear();
}

void DistanceHistogram::clear()
{
    m_counts.clear();
    m_binWidth = 0;
    m_total = 0;
    m_upper->clear();
    m_lower->clear();
    m_xAxis->setRange(0, 1);
    m_yAxis->setRange(0, 1);
}

void DistanceHistogram::setDistances(const std::vector<float> &distances, int bins)
{
    bins = std::max(1, bins);
    double maxValue = 0;
    int total = 0;
    for (float d : distances) {
        if (!std::isfinite(d))
            continue;
        maxValue = std::max(maxValue, double(d));
        ++total;
    }
    std::vector<int> counts(std::size_t(bins), 0);
    const double width = maxValue > 0 ? maxValue / bins : 1.0 / bins;
    for (float d : distances) {
        if (!std::isfinite(d))
            continue;
        int b = int(std::floor(double(d) / width));
        counts[std::size_t(std::clamp(b, 0, bins - 1))] += 1;
    }

    QList<QPointF> upper, lower;
    upper.reserve(2 * bins + 2);
    lower.reserve(2);
    upper.append(QPointF(0, 0));
    for (int b = 0; b < bins; ++b) {
        upper.append(QPointF(b * width, counts[std::size_t(b)]));
        upper.append(QPointF((b + 1) * width, counts[std::size_t(b)]));
    }
    upper.append(QPointF(bins * width, 0));
    lower.append(QPointF(0, 0));
    lower.append(QPointF(bins * width, 0));
    m_upper->replace(upper);
    m_lower->replace(lower);

    const int peak = counts.empty() ? 0 : *std::max_element(counts.begin(), counts.end());
    m_xAxis->setRange(0, bins * width);
    m_yAxis->setRange(0, std::max(1.0, peak * 1.08));
    m_yAxis->applyNiceNumbers();
    m_counts = std::move(counts);
    m_binWidth = width;
    m_total = total;
}

} // namespace braggnac::ui
