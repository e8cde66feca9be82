#pragma once
// Intensity statistics of a frame and the levels widget drawn over them: a histogram (counts on
// a log axis, x axis in the display scaling) with two draggable level lines and the colour bar.
#include <vector>

#include <QWidget>

#include "ui/colormap.h"

namespace braggnac::core {
struct Frame;
}

namespace braggnac::ui {

/// Statistics of the finite pixels of an image.
struct FrameStats {
    double min = 0, max = 0;
    double p2 = 0, p98 = 0;          // percentiles: sorted[floor(q * (n - 1))]
    std::size_t finite = 0;          // number of finite pixels
    /// Equal bins from histogramMin, histogramWidth wide: kHistogramBins over [min, max], or
    /// one bin per value for integer data spanning fewer values than that.
    std::vector<double> histogram;
    double histogramMin = 0, histogramWidth = 1;
    static constexpr int kHistogramBins = 4096;
};
/// Exact percentiles (nth_element on a copy) and the fine histogram. Safe off the GUI thread.
FrameStats computeFrameStats(const core::Frame &frame);

class LevelsHistogram : public QWidget {
    Q_OBJECT
public:
    explicit LevelsHistogram(QWidget *parent = nullptr);

    void setStats(const FrameStats &stats);
    void setLevels(double low, double high);
    void setScaling(Scaling scaling);
    void setColormap(const Colormap &map);
    double low() const { return m_low; }
    double high() const { return m_high; }

    QSize sizeHint() const override { return {260, 120}; }
    QSize minimumSizeHint() const override { return {120, 80}; }

Q_SIGNALS:
    /// The user dragged a level line.
    void levelsEdited(double low, double high);

protected:
    void paintEvent(QPaintEvent *event) override;
    void mousePressEvent(QMouseEvent *event) override;
    void mouseMoveEvent(QMouseEvent *event) override;
    void mouseReleaseEvent(QMouseEvent *event) override;

private:
    QRectF plotRect() const;
    double xOfValue(double value) const;
    double valueOfX(double x) const;

    FrameStats m_stats;
    double m_low = 0, m_high = 1;
    Scaling m_scaling = Scaling::Linear;
    Colormap m_colormap;
    enum class Drag { None, Low, High } m_drag = Drag::None;
};

} // namespace braggnac::ui
