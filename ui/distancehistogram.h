#pragma once
// Histogram of prediction distances (px) as a filled step plot: `bins` equal bins from 0 to the
// largest distance. GUI thread only; the counting is O(n) and meant for evaluation-sized
// inputs (up to a few million distances).
#include <vector>

#include "ui/chartview.h"

class QAreaSeries;
class QLineSeries;
class QValueAxis;

namespace braggnac::ui {

class DistanceHistogram : public ChartView {
    Q_OBJECT
public:
    explicit DistanceHistogram(QWidget *parent = nullptr);

    /// Replaces the data; non-finite distances are ignored. bins >= 1.
    void setDistances(const std::vector<float> &distances, int bins = 40);
    void clear();

    const std::vector<int> &counts() const { return m_counts; }
    double binWidth() const { return m_binWidth; }
    /// Number of distances counted (finite ones).
    int total() const { return m_total; }
    QLineSeries *stepSeries() const { return m_upper; }

private:
    QLineSeries *m_upper = nullptr;
    QLineSeries *m_lower = nullptr;
    QAreaSeries *m_area = nullptr;
    QValueAxis *m_xAxis = nullptr;
    QValueAxis *m_yAxis = nullptr;
    std::vector<int> m_counts;
    double m_binWidth = 0;
    int m_total = 0;
};

} // namespace braggnac::ui
