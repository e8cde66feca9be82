#pragma once
// The studio's Train tab: trains a built-in architecture ("braggnn", "nac") or a spec file on
// context->dataset() with the trainer's options, in a Job. Per-epoch statistics arrive from the
// training thread through a locked queue that the GUI drains every 40 ms (coalesced) into the
// live chart and the history table; the GUI thread never waits on the training thread.
// On success: the test-split evaluation, Save Model (folder) and "Use this model"
// (context->setModel). Load Model opens a model folder (also in a Job) and uses it.
// Errors are emitted as errorOccurred("<file>: <core's reason>") and shown in a non-modal box.
#include <cstdint>
#include <memory>
#include <optional>

#include <QString>
#include <QTimer>
#include <QWidget>

class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;
class QTableWidget;

namespace braggnac::core {
class Model;
struct ArchSpec;
struct TrainOptions;
} // namespace braggnac::core

namespace braggnac::ui {

class HistoryChart;
class Job;
class StudioContext;

class TrainPanel : public QWidget {
    Q_OBJECT
public:
    explicit TrainPanel(StudioContext *context, QWidget *parent = nullptr);
    ~TrainPanel() override;

    /// "braggnn", "nac" or a spec file path. Loads and validates the spec (small JSON) and shows
    /// its parameter count; false (and errorOccurred) when the spec is bad.
    bool setArchitecture(const QString &nameOrPath);
    QString architecture() const;
    /// Parameter count of the selected architecture (-1 when none is valid).
    std::int64_t parameterCount() const { return m_parameterCount; }

    /// The options as the form holds them; false with `error` naming the field when invalid.
    bool readOptions(core::TrainOptions &options, QString *error) const;
    void setOptions(const core::TrainOptions &options);

    /// Starts training (false and errorOccurred when no dataset / bad options / busy).
    bool startTraining();
    void cancel();
    bool isBusy() const;
    bool isTraining() const;

    /// Saves the trained (or loaded) model to a folder, atomically (Model::save), in a Job.
    bool saveModel(const QString &folder);
    /// Loads a model folder in a Job and, on success, sets it on the context.
    bool loadModel(const QString &folder);
    /// context->setModel(the trained model).
    bool useTrainedModel();

    Job *job() const { return m_job; }
    HistoryChart *chart() const { return m_chart; }
    QTableWidget *historyTable() const { return m_table; }
    std::shared_ptr<const core::Model> trainedModel() const { return m_model; }
    QString statusText() const;
    QString testEvaluationText() const;
    /// Epochs received from the training thread so far (in the table).
    int epochsShown() const;

Q_SIGNALS:
    void errorOccurred(const QString &message);
    void trainingFinished();
    void trainingCancelled();
    void modelSaved(const QString &folder);
    void modelLoaded(const QString &folder);

private:
    enum class Action { None, Train, Save, Load };
    struct Feed;
    struct Outcome;

    void buildUi();
    void drainFeed();
    void showStoredHistory(const core::Model &model);
    void onJobFinished();
    void onJobFailed(const QString &message);
    void onJobCancelled();
    void onDatasetChanged();
    void onArchChoice(int index);
    void updateButtons();
    void showError(const QString &message);
    void browseSpec();
    void browseSave();
    void browseLoad();

    StudioContext *m_context;
    Job *m_job = nullptr;
    Action m_action = Action::None;
    QString m_actionPath;
    std::shared_ptr<Feed> m_feed;
    std::shared_ptr<Outcome> m_outcome;
    QTimer m_feedTimer;
    std::shared_ptr<const core::Model> m_model;
    std::unique_ptr<core::ArchSpec> m_spec;
    QString m_specSource;
    std::int64_t m_parameterCount = -1;
    int m_plannedEpochs = 0;

    QComboBox *m_archCombo = nullptr;
    QLineEdit *m_specPath = nullptr;
    QPushButton *m_specBrowse = nullptr;
    QLabel *m_archInfo = nullptr;
    QLabel *m_datasetInfo = nullptr;
    QComboBox *m_optimizer = nullptr;
    QLineEdit *m_learningRate = nullptr;
    QLineEdit *m_weightDecay = nullptr;
    QDoubleSpinBox *m_momentum = nullptr;
    QComboBox *m_schedule = nullptr;
    QSpinBox *m_stepSize = nullptr;
    QDoubleSpinBox *m_gamma = nullptr;
    QSpinBox *m_batchSize = nullptr;
    QSpinBox *m_epochs = nullptr;
    QSpinBox *m_patience = nullptr;
    QSpinBox *m_shift = nullptr;
    QSpinBox *m_seed = nullptr;
    QSpinBox *m_threads = nullptr;
    QComboBox *m_device = nullptr;

    QPushButton *m_trainButton = nullptr;
    QPushButton *m_cancelButton = nullptr;
    QPushButton *m_saveButton = nullptr;
    QPushButton *m_useButton = nullptr;
    QPushButton *m_loadButton = nullptr;
    QProgressBar *m_progress = nullptr;
    QLabel *m_status = nullptr;
    HistoryChart *m_chart = nullptr;
    QTableWidget *m_table = nullptr;
    QLabel *m_testEvaluation = nullptr;
};

} // namespace braggnac::ui
