#pragma once
// Live training curves: training loss (left, logarithmic axis) and validation mean distance in
// pixels (right, linear axis) against the epoch. The owner appends whole batches of epochs
// (coalesced updates); axes follow the data. GUI thread only.
#include "ui/chartview.h"

class QLineSeries;
class QLogValueAxis;
class QValueAxis;

namespace braggnac::ui {

class HistoryChart : public ChartView {
    Q_OBJECT
public:
    explicit HistoryChart(QWidget *parent = nullptr);

    /// Removes every point; `plannedEpochs` sets the initial x range.
    void clear(int plannedEpochs = 10);
    /// Appends one epoch. Non-finite or non-positive losses are not plotted on the log axis;
    /// non-finite validation distances are skipped.
    void append(int epoch, double trainLoss, double validationMean);

    int lossPointCount() const;
    int validationPointCount() const;
    QLineSeries *lossSeries() const { return m_loss; }
    QLineSeries *validationSeries() const { return m_validation; }

private:
    void updateRanges();

    QLineSeries *m_loss = nullptr;
    QLineSeries *m_validation = nullptr;
    QValueAxis *m_epochAxis = nullptr;
    QLogValueAxis *m_lossAxis = nullptr;
    QValueAxis *m_distanceAxis = nullptr;
    int m_plannedEpochs = 10;
    int m_lastEpoch = 0;
    double m_lossMin = 0, m_lossMax = 0;
    double m_distanceMax = 0;
};

} // namespace braggnac::ui
