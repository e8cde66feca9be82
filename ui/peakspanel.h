#pragma once
// The Peaks workflow: finder parameters, "find in the current frame" or in a frame range
// (core::findPeaks / findPeaksInSource, dark-subtracted like the display), the optional
// pseudo-Voigt fit (core::fitPatches) and the model's predictions (StudioContext::model()) on
// the peak patches; the results live in a PeakTableModel (+ filter proxy) and as markers on the
// frame view. Every computation runs in one Job at a time; settings persist in QSettings.
#include <functional>
#include <memory>
#include <vector>

#include <QWidget>

#include "core/peaks/finder.h"
#include "ui/patchinspector.h"
#include "ui/peaktablemodel.h"

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QPushButton;
class QSpinBox;

namespace braggnac::ui {

class FrameView;
class FramesPanel;
class Job;
class StudioContext;

class PeaksPanel : public QWidget {
    Q_OBJECT
public:
    PeaksPanel(StudioContext *context, FramesPanel *frames, FrameView *view, QWidget *parent = nullptr);
    ~PeaksPanel() override;

    PeakTableModel *peakModel() const { return m_model; }
    PeakFilterProxy *proxy() const { return m_proxy; }
    /// The find / fit / predict jobs (one runs at a time).
    QList<Job *> jobs() const { return {m_findJob, m_fitJob, m_predictJob}; }
    bool isBusy() const;

    core::FinderOptions options() const;
    void setOptions(const core::FinderOptions &options);
    bool autoFind() const;
    bool fitAfterFind() const;
    /// The selected peak's patch, fit and prediction for the inspector.
    PatchDetails details(int id) const;
    /// The peaks as a patch dataset: fitted peaks labelled with applyFitLabels (unfitted ones
    /// flagged unconverged), /flags/border and /flags/merged from the finder.
    core::PatchDataset toDataset() const;

public Q_SLOTS:
    /// Each returns false (and emits errorOccurred) when it cannot start.
    bool findInCurrentFrame();
    bool findInRange(int first, int last); // frames [first, last)
    bool fitPeaks();                       // fits every peak not fitted yet
    bool predict();                        // the context's model on every peak
    /// Fits what is not fitted yet, then publishes the labelled patches on the context.
    bool sendToDataset();
    void clearPeaks();
    void setAutoFind(bool on);
    void setFitAfterFind(bool on);
    void updateMarkers();

Q_SIGNALS:
    void resultsChanged();
    void jobStarted(braggnac::ui::Job *job);
    void errorOccurred(const QString &message);

private:
    void buildUi();
    void loadSettings();
    void saveSettings() const;
    bool startJob(Job *job, std::function<void(const core::Monitor &)> work, std::function<void()> onFinished);
    void onJobEnded();
    void publishResults(PeakResults results);
    void onFrameShown(int index);
    void updateControls();
    void applyOverlayOptions();
    bool modelMatches(QString *why = nullptr) const;

    StudioContext *m_context;
    FramesPanel *m_frames;
    FrameView *m_view;
    PeakTableModel *m_model;
    PeakFilterProxy *m_proxy;
    Job *m_findJob;
    Job *m_fitJob;
    Job *m_predictJob;
    std::function<void()> m_onFinished;
    int m_generation = 0;       // bumped whenever the results are replaced or cleared
    bool m_autoPending = false;
    bool m_predictPending = false;
    bool m_loadingSettings = false;

    QComboBox *m_thresholdMode = nullptr;
    QDoubleSpinBox *m_sigma = nullptr;
    QDoubleSpinBox *m_threshold = nullptr;
    QSpinBox *m_minPixels = nullptr;
    QSpinBox *m_maxPixels = nullptr;
    QSpinBox *m_patchSize = nullptr;
    QCheckBox *m_maskOthers = nullptr;
    QCheckBox *m_autoFind = nullptr;
    QCheckBox *m_fitAfter = nullptr;
    QPushButton *m_findCurrent = nullptr;
    QSpinBox *m_firstFrame = nullptr;
    QSpinBox *m_lastFrame = nullptr;
    QPushButton *m_findRange = nullptr;
    QPushButton *m_fit = nullptr;
    QPushButton *m_send = nullptr;
    QPushButton *m_clear = nullptr;
    QLabel *m_summary = nullptr;
    QLabel *m_modelLabel = nullptr;
    QCheckBox *m_showBoxes = nullptr;
    QCheckBox *m_showFit = nullptr;
    QCheckBox *m_showModel = nullptr;
    QCheckBox *m_showVectors = nullptr;
    QDoubleSpinBox *m_vectorScale = nullptr;
};

} // namespace braggnac::ui
