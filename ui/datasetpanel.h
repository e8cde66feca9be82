#pragma once
// The studio's Dataset tab: builds a labelled patch dataset from the open frames (find peaks ->
// pseudo-Voigt fit, optionally saved), opens a patch file, or simulates labelled patches; shows a
// summary and a gallery, and publishes the result with StudioContext::setDataset. Every file
// and compute operation runs in a Job (never on the GUI thread); one at a time.
// Errors are emitted as errorOccurred("<file>: <core's reason>") and shown in a non-modal box.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include <QString>
#include <QWidget>

class QCheckBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QSpinBox;

namespace braggnac::core {
struct Monitor;
struct PatchDataset;
}

namespace braggnac::ui {

class Job;
class PatchGallery;
class StudioContext;

class DatasetPanel : public QWidget {
    Q_OBJECT
public:
    explicit DatasetPanel(StudioContext *context, QWidget *parent = nullptr);
    ~DatasetPanel() override;

    /// What the summary shows (computed off the GUI thread for the panel's own jobs).
    struct Summary {
        std::size_t n = 0;
        int patchSize = 0;
        QString labelSource;     // "" = unlabelled
        bool storedSplit = false; // /split present (else effectiveSplit's default)
        std::size_t train = 0, validation = 0, test = 0;
        std::size_t fitted = 0;   // rows with /fit/converged (0 = no fit)
        std::size_t converged = 0;
        std::size_t found = 0;    // peaks found by the last build (0 otherwise)
    };

    // Actions (the buttons call these after their dialogs). Each returns false and emits
    // errorOccurred when it cannot start (busy, no frames, bad option).
    bool openFile(const QString &path);
    bool simulate(int n, quint64 seed, int patchSize = 11);
    /// Finds and fits peaks in frames [first, last) of context->frames() with the panel's
    /// options; writes the labelled dataset atomically to `outputPath` unless it is empty.
    bool buildFromFrames(const QString &outputPath = {});
    bool saveAs(const QString &path);
    void cancel();

    bool isBusy() const;
    Job *job() const { return m_job; }
    const Summary &summary() const { return m_summary; }
    PatchGallery *gallery() const { return m_gallery; }
    QString summaryText() const;
    QString statusText() const;
    void setFrameRange(int first, int last);

Q_SIGNALS:
    /// "<file>: <reason>" for anything that failed, before the message box opens.
    void errorOccurred(const QString &message);
    /// The panel published a dataset on the context.
    void datasetReady();
    void saved(const QString &path);

private:
    enum class Action { None, Open, Simulate, Build, Save };
    struct Outcome;

    void buildUi();
    bool startJob(Action action, const QString &path, const QString &title, std::shared_ptr<Outcome> outcome,
                  std::function<void(const core::Monitor &)> work);
    void onJobFinished();
    void onJobFailed(const QString &message);
    void onJobCancelled();
    void onFramesChanged();
    void onDatasetChanged();
    void showSummary(const Summary &summary, const core::PatchDataset *data, const QString &path);
    void setBusy(bool busy);
    void showError(const QString &message);
    void browseOpen();
    void browseSave();
    void browseBuild();
    void browseDark();

    StudioContext *m_context;
    Job *m_job = nullptr;
    Action m_action = Action::None;
    QString m_actionPath;
    std::shared_ptr<Outcome> m_outcome;
    const core::PatchDataset *m_shownData = nullptr;
    Summary m_summary;

    // frames -> dataset
    QSpinBox *m_firstFrame = nullptr;
    QSpinBox *m_lastFrame = nullptr;
    QDoubleSpinBox *m_threshold = nullptr;
    QDoubleSpinBox *m_autoSigma = nullptr;
    QSpinBox *m_minPixels = nullptr;
    QSpinBox *m_maxPixels = nullptr;
    QSpinBox *m_patchSize = nullptr;
    QCheckBox *m_maskOthers = nullptr;
    QSpinBox *m_maxIterations = nullptr;
    QDoubleSpinBox *m_toleranceExp = nullptr;
    QSpinBox *m_threads = nullptr;
    QLineEdit *m_darkPath = nullptr;
    QPushButton *m_buildButton = nullptr;
    QLabel *m_framesLabel = nullptr;
    // simulate
    QSpinBox *m_simCount = nullptr;
    QSpinBox *m_simSeed = nullptr;
    QSpinBox *m_simPatchSize = nullptr;
    QPushButton *m_simulateButton = nullptr;
    // file
    QPushButton *m_openButton = nullptr;
    QPushButton *m_saveButton = nullptr;
    // progress
    QProgressBar *m_progress = nullptr;
    QPushButton *m_cancelButton = nullptr;
    QLabel *m_status = nullptr;
    // summary
    QLabel *m_summaryLabel = nullptr;
    PatchGallery *m_gallery = nullptr;
};

} // namespace braggnac::ui
