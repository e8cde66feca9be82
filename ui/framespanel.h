#pragma once
// The Frames stage's display panel: which frame is shown (slider, stepping), the max-over-frames
// view, intensity scaling, colormap, levels (auto P2-P98 or manual, with the histogram) and the
// dark frame. Owns the loading: frames are read, dark-subtracted, measured and rendered to a
// QImage in a Job (never on the GUI thread); requests made while a frame loads are coalesced to
// the latest. Level/colormap changes re-render the image once on the GUI thread (multi-threaded).
#include <memory>
#include <vector>

#include <QString>
#include <QWidget>

#include "core/io/frame.h"
#include "ui/colormap.h"
#include "ui/levelshistogram.h"

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QPushButton;
class QSlider;
class QSpinBox;
class QTimer;
class QToolButton;

namespace braggnac::ui {

class FrameView;
class Job;
class StudioContext;

class FramesPanel : public QWidget {
    Q_OBJECT
public:
    FramesPanel(StudioContext *context, FrameView *view, QWidget *parent = nullptr);
    ~FramesPanel() override;

    int frameCount() const;
    /// Index of the current frame (the last one loaded), -1 when none.
    int currentIndex() const { return m_index; }
    /// The current frame as loaded (dark subtracted when that is on); null when none.
    std::shared_ptr<const core::Frame> currentFrame() const { return m_frame; }
    std::shared_ptr<const core::Frame> maxFrame() const { return m_max; }
    /// The dark frame (mean over the dark file's frames); null when none.
    std::shared_ptr<const core::Frame> darkFrame() const { return m_dark; }
    QString darkPath() const { return m_darkPath; }
    /// True when a dark frame is loaded and subtraction is on.
    bool subtractingDark() const;
    bool maxView() const { return m_maxView; }
    bool isBusy() const;
    /// Statistics of what the view shows (current frame or max image).
    const FrameStats &stats() const { return m_maxView ? m_maxStats : m_frameStats; }
    double lowLevel() const { return m_low; }
    double highLevel() const { return m_high; }
    bool autoLevels() const;
    Scaling scaling() const { return m_scaling; }
    const Colormap &colormap() const { return m_colormap; }
    Job *loadJob() const { return m_loadJob; }

public Q_SLOTS:
    void showFrame(int index);
    void step(int delta);
    void showFirst();
    void showLast();
    /// Shows the element-wise maximum over all frames (computed once per file/dark, in a Job).
    void setMaxView(bool on);
    /// Loads a dark file (any frame format; the mean of its frames) and turns subtraction on.
    void loadDark(const QString &path);
    void clearDark();
    void setSubtractDark(bool on);
    void setScaling(braggnac::ui::Scaling scaling);
    void setColormap(braggnac::ui::Colormap::Name name);
    void setAutoLevels(bool on);
    /// Manual levels (turns auto-levels off).
    void setLevels(double low, double high);

Q_SIGNALS:
    /// The view now shows frame `index`.
    void frameShown(int index);
    /// The view now shows the max-over-frames image.
    void maxShown();
    /// The view's values changed (a frame or the max image).
    void imageChanged();
    void colormapChanged();
    void darkChanged();
    void jobStarted(braggnac::ui::Job *job);
    void errorOccurred(const QString &message);

private:
    struct Loaded;
    using Pyramid = std::shared_ptr<const std::vector<core::Frame>>;
    /// Renderings of a frame and of its max-pooled levels with the current display settings.
    std::vector<QImage> renderLevels(const core::Frame &frame, const Pyramid &pyramid) const;
    void buildUi();
    void onFramesChanged();
    void startLoad(int index);
    void onLoadFinished();
    void startMax();
    void applyLevels(const FrameStats &stats);
    void scheduleRender();
    void render();
    void updateControls();
    void saveSettings() const;

    StudioContext *m_context;
    FrameView *m_view;
    Job *m_loadJob;
    Job *m_maxJob;
    Job *m_darkJob;
    std::shared_ptr<Loaded> m_loading;
    std::shared_ptr<Loaded> m_maxLoading;
    int m_generation = 0;
    int m_pending = -1;

    int m_index = -1;
    std::shared_ptr<const core::Frame> m_frame;
    Pyramid m_framePyramid;
    FrameStats m_frameStats;
    std::shared_ptr<const core::Frame> m_max;
    Pyramid m_maxPyramid;
    FrameStats m_maxStats;
    bool m_maxView = false;
    std::shared_ptr<const core::Frame> m_dark;
    QString m_darkPath;
    std::shared_ptr<std::shared_ptr<const core::Frame>> m_darkResult;
    QString m_darkLoadingPath;
    bool m_subtract = true;

    Scaling m_scaling = Scaling::Linear;
    Colormap m_colormap;
    double m_low = 0, m_high = 1;
    QTimer *m_renderTimer;

    QLabel *m_fileLabel = nullptr;
    QSlider *m_slider = nullptr;
    QSpinBox *m_frameSpin = nullptr;
    QLabel *m_countLabel = nullptr;
    QToolButton *m_firstButton = nullptr, *m_prevButton = nullptr, *m_nextButton = nullptr, *m_lastButton = nullptr;
    QCheckBox *m_maxCheck = nullptr;
    QComboBox *m_scalingCombo = nullptr;
    QComboBox *m_colormapCombo = nullptr;
    QCheckBox *m_autoCheck = nullptr;
    QDoubleSpinBox *m_lowSpin = nullptr;
    QDoubleSpinBox *m_highSpin = nullptr;
    LevelsHistogram *m_histogram = nullptr;
    QLabel *m_darkLabel = nullptr;
    QPushButton *m_darkLoad = nullptr;
    QPushButton *m_darkClear = nullptr;
    QCheckBox *m_darkCheck = nullptr;
};

} // namespace braggnac::ui
