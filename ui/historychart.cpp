#include "ui/historychart.h"

#include <algorithm>
#include <cmath>

#include <QChart>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QValueAxis>

namespace braggnac::ui {

HistoryChart::HistoryChart(QWidget *parent) : ChartView(new QChart, parent)
{
    setObjectName(QStringLiteral("historyChart"));
    QChart *c = chart();
    c->setTitle(tr("Training"));
    c->legend()->setAlignment(Qt::AlignBottom);
    c->setMargins(QMargins(4, 4, 4, 4));

    m_loss = new QLineSeries(c);
    m_loss->setName(tr("train loss (MSE)"));
    m_validation = new QLineSeries(c);
    m_validation->setName(tr("validation mean distance (px)"));
    c->addSeries(m_loss);
    c->addSeries(m_validation);

    m_epochAxis = new QValueAxis(c);
    m_epochAxis->setTitleText(tr("epoch"));
    m_epochAxis->setLabelFormat(QStringLiteral("%d"));
    m_lossAxis = new QLogValueAxis(c);
    m_lossAxis->setTitleText(tr("loss"));
    m_lossAxis->setLabelFormat(QStringLiteral("%.0e"));
    m_lossAxis->setBase(10);
    m_distanceAxis = new QValueAxis(c);
    m_distanceAxis->setTitleText(tr("distance (px)"));
    m_distanceAxis->setLabelFormat(QStringLiteral("%.2f"));

    c->addAxis(m_epochAxis, Qt::AlignBottom);
    c->addAxis(m_lossAxis, Qt::AlignLeft);
    c->addAxis(m_distanceAxis, Qt::AlignRight);
    m_loss->attachAxis(m_epochAxis);
    m_loss->attachAxis(m_lossAxis);
    m_validation->attachAxis(m_epochAxis);
    m_validation->attachAxis(m_distanceAxis);
    clear();
}

void HistoryChart::clear(int plannedEpochs)
{
    m_loss->clear();
    m_validation->clear();
    m_plannedEpochs = std::max(1, plannedEpochs);
    m_lastEpoch = 0;
    m_lossMin = m_lossMax = 0;
    m_distanceMax = 0;
    updateRanges();
}

void HistoryChart::append(int epoch, double trainLoss, double validationMean)
{
    m_lastEpoch = std::max(m_lastEpoch, epoch);
    if (std::isfinite(trainLoss) && trainLoss > 0) {
        if (m_loss->count() == 0) {
            m_lossMin = m_lossMax = trainLoss;
        } else {
            m_lossMin = std::min(m_lossMin, trainLoss);
            m_lossMax = std::max(m_lossMax, trainLoss);
        }
        m_loss->append(epoch, trainLoss);
    }
    if (std::isfinite(validationMean)) {
        m_distanceMax = std::max(m_distanceMax, validationMean);
        m_validation->append(epoch, validationMean);
    }
    updateRanges();
}

int HistoryChart::lossPointCount() const
{
    return m_loss->count();
}

int HistoryChart::validationPointCount() const
{
    return m_validation->count();
}

void HistoryChart::updateRanges()
{
    m_epochAxis->setRange(1, std::max({2, m_plannedEpochs, m_lastEpoch}));
    m_epochAxis->setTickCount(std::min(11, std::max({2, m_plannedEpochs, m_lastEpoch})));
    if (m_loss->count() > 0) {
        const double lo = std::pow(10.0, std::floor(std::log10(m_lossMin)));
        const double hi = std::pow(10.0, std::ceil(std::log10(m_lossMax * 1.0001)));
        m_lossAxis->setRange(lo, std::max(hi, lo * 10));
    } else {
        m_lossAxis->setRange(1e-4, 1);
    }
    m_distanceAxis->setRange(0, m_distanceMax > 0 ? m_distanceMax * 1.1 : 1.0);
}

} // namespace braggnac::ui
