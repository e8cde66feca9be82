#pragma once
// The Compress stage: quantisation-aware fine-tuning and iterative pruning of a model
// (core::compressModel, the same run as `braggnac compress`) on context->dataset(), in a Job with
// progress and cancel. The model is the studio's (context->model(): trained or loaded in
// Train / Evaluate, or a Search trial's "Use this model") or a model folder chosen here
// (setModelFolder, also what the main window calls for Search's "Use this model"), or the trial
// selected in the Search stage's inspector ("Selected Search trial", setTrialSource).
// Records arrive one per (bits, round) from the worker through a locked queue drained every
// 40 ms into the table (CSV export) and the chart (standard BOPs on a log axis against the
// validation distance, one curve per bit width, the float start model and braggnn float32 as
// references). The core's choice (smallest BOPs within the target distance, else the best
// validation distance) is marked; any row (or a point clicked on the chart) can be chosen and
// saved as a model folder
// (Model::save). A row other than the core's choice is rebuilt by re-running compressModel
// for that bit width up to that round (its seeds are per (bits, round), so the run is
// reproduced) and saved only when the re-run reproduces the record exactly (else an error).
// An existing folder is replaced only after the user confirmed it. Errors are emitted as
// errorOccurred("<file>: <core's reason>") and shown in a non-modal box. GUI thread only.
#include <functional>
#include <memory>
#include <vector>

#include <QString>
#include <QTimer>
#include <QWidget>

#include "core/nn/compress.h"

class QCheckBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QLineSeries;
class QLogValueAxis;
class QProgressBar;
class QPushButton;
class QRadioButton;
class QScatterSeries;
class QSpinBox;
class QStandardItemModel;
class QTableView;
class QValueAxis;

namespace braggnac::ui {

class ChartView;
class Job;
class StudioContext;

class CompressPanel : public QWidget {
    Q_OBJECT
public:
    /// Table columns (EditRole holds full precision; DisplayRole the shown text).
    enum Column { ColBits, ColRound, ColSparsity, ColBops, ColReduction, ColParams, ColValidation, ColTest,
                  ColChosen, ColumnCount };

    explicit CompressPanel(StudioContext *context, QWidget *parent = nullptr);
    ~CompressPanel() override;

    /// Compress the studio's current model (the default).
    void useStudioModel();
    /// Compress the model folder `folder` (loaded in the compress job).
    void setModelFolder(const QString &folder);
    /// The folder to compress, or empty when the studio's model is used.
    QString modelFolder() const;
    /// Where "Selected Search trial" takes its model folder from (the main window passes the
    /// Search stage's inspector); returns "" when no trial with a model is selected.
    void setTrialSource(std::function<QString()> source);
    /// Compress the selected Search trial's model folder (false and errorOccurred when none).
    bool useSelectedTrial();

    /// The options as the form holds them; false with `error` naming the field when invalid.
    bool readOptions(core::CompressOptions &options, QString *error) const;
    void setOptions(const core::CompressOptions &options);

    /// Starts compressing (false and errorOccurred when no model / dataset, bad options, busy).
    bool startCompress();
    void cancel();
    bool isBusy() const;

    /// Selects a record (table row). -1 clears.
    void selectRecord(int index);
    int selectedRecord() const;
    /// The core's choice of the last run (-1 before a run finished).
    int chosenRecord() const;
    /// Saves the selected record as a model folder. An existing non-empty folder is replaced
    /// only with `confirmed`; without it a confirmation box opens (objectName
    /// "confirmOverwriteBox") and nothing is written unless the user accepts.
    bool saveSelected(const QString &folder, bool confirmed = false);

    Job *job() const { return m_job; }
    ChartView *chart() const { return m_chartView; }
    QStandardItemModel *recordModel() const { return m_records; }
    QTableView *recordTable() const { return m_table; }
    const std::vector<core::CompressRecord> &records() const { return m_shown; }
    /// Points drawn for bit width `bits` (tests).
    int curvePointCount(int bits) const;
    QString statusText() const;

public Q_SLOTS:
    void saveSelectedDialog();
    void exportTableDialog();

Q_SIGNALS:
    void errorOccurred(const QString &message);
    void compressFinished();
    void compressCancelled();
    /// A compressed model folder was written (the main window hands it to the Export stage).
    void modelSaved(const QString &folder);

private:
    enum class Action { None, Compress, Save };
    struct Feed;
    struct Outcome;

    void buildUi();
    void drainFeed();
    void appendRecord(const core::CompressRecord &record);
    void markChosen(int index);
    void onJobFinished();
    void onJobFailed(const QString &message);
    void onJobCancelled();
    void updateSource();
    void updateButtons();
    void showError(const QString &message);
    void saveSettings() const;
    void restoreSettings();
    void resetChart();
    void fitAxes();
    QString datasetName() const;

    StudioContext *m_context;
    Job *m_job = nullptr;
    Action m_action = Action::None;
    QString m_actionPath;
    QString m_folder;
    std::shared_ptr<Feed> m_feed;
    std::shared_ptr<Outcome> m_outcome;     // of the running job
    std::shared_ptr<Outcome> m_result;      // of the last finished compression
    QTimer m_feedTimer;
    std::vector<core::CompressRecord> m_shown;
    int m_chosen = -1;
    double m_braggnnBops = 0;

    QRadioButton *m_studioSource = nullptr;
    QRadioButton *m_folderSource = nullptr;
    QLineEdit *m_folderEdit = nullptr;
    QPushButton *m_folderBrowse = nullptr;
    QPushButton *m_trialButton = nullptr;
    std::function<QString()> m_trialSource;
    QLabel *m_modelInfo = nullptr;
    QLabel *m_datasetInfo = nullptr;
    QLineEdit *m_bitsGrid = nullptr;
    QSpinBox *m_rounds = nullptr;
    QDoubleSpinBox *m_fraction = nullptr;
    QCheckBox *m_structured = nullptr;
    QSpinBox *m_epochs = nullptr;
    QDoubleSpinBox *m_target = nullptr;
    QLineEdit *m_learningRate = nullptr;
    QSpinBox *m_batch = nullptr;
    QSpinBox *m_seed = nullptr;
    QSpinBox *m_threads = nullptr;

    QPushButton *m_runButton = nullptr;
    QPushButton *m_cancelButton = nullptr;
    QPushButton *m_saveButton = nullptr;
    QPushButton *m_csvButton = nullptr;
    QProgressBar *m_progress = nullptr;
    QLabel *m_status = nullptr;

    ChartView *m_chartView = nullptr;
    QLogValueAxis *m_xAxis = nullptr;
    QValueAxis *m_yAxis = nullptr;
    std::vector<std::pair<int, QLineSeries *>> m_curves; // bits -> curve (points joined by round)
    QScatterSeries *m_chosenPoint = nullptr;
    QScatterSeries *m_selectedPoint = nullptr;
    QScatterSeries *m_floatPoint = nullptr;
    QLineSeries *m_braggnnLine = nullptr;
    QStandardItemModel *m_records = nullptr;
    QTableView *m_table = nullptr;
};

} // namespace braggnac::ui
