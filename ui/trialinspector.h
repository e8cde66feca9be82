#pragma once
// One trial of a study in detail: its architecture as a diagram (ArchDiagram, from the spec's
// shapes), the per-layer cost table (core computeCost: parameters, MACs, standard BOPs at 32
// bits), the training curves from its stored history, its metrics by subset (validation, test),
// and "Use this model" (emits useModelRequested with the trial's model folder, resolved against
// the store's folder; disabled when the trial kept no model or the folder is missing).
// The action row: "Retrain with full recipe" (epochs box) and "Tune hyper-parameters" (trials
// box) emit retrainRequested / tuneRequested (the Search panel runs them with TrialActions, off
// the GUI thread), a progress bar with Cancel while one runs, the result as text, and "Use
// result" (useModelRequested with the retrained or best tuned model folder). The action row is
// not reset by setTrial/clear (an action may outlive the selection).
// The record must carry its blobs (StudyStore::trial()). GUI thread only.
#include <QDir>
#include <QWidget>

#include "core/search/studystore.h"

class QLabel;
class QProgressBar;
class QPushButton;
class QSpinBox;
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
    const core::TrialRecord *trial() const { return m_id ? &m_trial : nullptr; }

    // The action row.
    QPushButton *retrainButton() const { return m_retrain; }
    QPushButton *tuneButton() const { return m_tune; }
    QPushButton *cancelActionButton() const { return m_cancelAction; }
    QPushButton *useResultButton() const { return m_useResult; }
    QSpinBox *retrainEpochsBox() const { return m_retrainEpochs; }
    QSpinBox *tuneTrialsBox() const { return m_tuneTrials; }
    QProgressBar *actionProgress() const { return m_actionProgress; }
    QLabel *actionLabel() const { return m_actionLabel; }
    /// Shows a running action (buttons disabled, progress and Cancel shown).
    void setActionRunning(const QString &title);
    void setActionProgress(double fraction, const QString &message);
    /// Ends the running display with `html`; modelFolder non-empty enables "Use result".
    void setActionDone(const QString &html, const QString &modelFolder = {});
    bool actionRunning() const { return m_actionBusy; }

Q_SIGNALS:
    void useModelRequested(const QString &folder);
    void retrainRequested();
    void tuneRequested();
    void cancelActionRequested();
    void errorOccurred(const QString &message);

private:
    QLabel *m_title = nullptr;
    ArchDiagram *m_diagram = nullptr;
    QTableWidget *m_layers = nullptr;
    QTableWidget *m_metrics = nullptr;
    HistoryChart *m_history = nullptr;
    QPushButton *m_useModel = nullptr;
    QPushButton *m_exportLayers = nullptr;
    QPushButton *m_retrain = nullptr;
    QPushButton *m_tune = nullptr;
    QPushButton *m_cancelAction = nullptr;
    QPushButton *m_useResult = nullptr;
    QSpinBox *m_retrainEpochs = nullptr;
    QSpinBox *m_tuneTrials = nullptr;
    QProgressBar *m_actionProgress = nullptr;
    QLabel *m_actionLabel = nullptr;
    bool m_actionBusy = false;
    QString m_resultFolder;
    void updateActionButtons();
    std::int64_t m_id = 0;
    core::TrialRecord m_trial;
    QString m_modelFolder;
};

} // namespace braggnac::ui
