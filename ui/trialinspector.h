#pragma once
// One trial of a study in detail: its architecture as a diagram (ArchDiagram, from the spec's
// shapes), the per-layer cost table (core computeCost: parameters, MACs, standard BOPs at 32
// bits), the training curves from its stored history, its metrics by subset (validation, test),
// and "Use this model" (emits useModelRequested with the trial's model folder, resolved against
// the store's folder; disabled when the trial kept no model or the folder is missing).
// The record must carry its blobs (StudyStore::trial()). GUI thread only.
#include <QDir>
#include <QWidget>

#include "core/search/studystore.h"

class QLabel;
class QPushButton;
class QTableWidget;

namespace braggnac::ui {

class ArchDiagram;
class HistoryChart;

class TrialInspector : public QWidget {
    Q_OBJECT
public:
    explicit TrialInspector(QWidget *parent = nullptr);
    void setTrial(const core::TrialRecord &trial, const QString &storeFolder);
    void clear();

    std::int64_t trialId() const { return m_id; }
    QString modelFolder() const { return m_modelFolder; }
    ArchDiagram *diagram() const { return m_diagram; }
    QTableWidget *layerTable() const { return m_layers; }
    QTableWidget *metricsTable() const { return m_metrics; }
    HistoryChart *historyChart() const { return m_history; }
    QPushButton *useModelButton() const { return m_useModel; }

Q_SIGNALS:
    void useModelRequested(const QString &folder);
    void errorOccurred(const QString &message);

private:
    QLabel *m_title = nullptr;
    ArchDiagram *m_diagram = nullptr;
    QTableWidget *m_layers = nullptr;
    QTableWidget *m_metrics = nullptr;
    HistoryChart *m_history = nullptr;
    QPushButton *m_useModel = nullptr;
    QPushButton *m_exportLayers = nullptr;
    std::int64_t m_id = 0;
    QString m_modelFolder;
};

} // namespace braggnac::ui
