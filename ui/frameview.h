#pragma once
// The frame viewer: a detector image (converted to a QImage once per frame / levels change by the
// caller) drawn with only its visible part scaled (no smoothing), zoom about the cursor on the
// wheel, pan by dragging, pixel readout, and peak overlays drawn in view coordinates: patch boxes,
// pseudo-Voigt centres (+), model centres (x) and the error vectors between them. Clicking a
// marker selects it. Coordinates are frame (row, col), (0,0) the centre of the top-left pixel.
#include <memory>
#include <vector>

#include <QImage>
#include <QWidget>

#include "core/io/frame.h"

namespace braggnac::ui {

struct PeakMarker {
    int id = -1;                  // caller's peak id (row of the peak table's source model)
    int originRow = 0, originCol = 0, size = 11; // patch box (top-left pixel, side)
    double peakRow = 0, peakCol = 0;             // maximum pixel
    bool hasFit = false, fitConverged = false;
    double fitRow = 0, fitCol = 0;               // pseudo-Voigt centre
    bool hasPrediction = false;
    double nnRow = 0, nnCol = 0;                 // model's centre
};

class FrameView : public QWidget {
    Q_OBJECT
public:
    explicit FrameView(QWidget *parent = nullptr);

    /// Max-pooled reductions of `frame`, so that a zoomed-out view loses no small peak: level k
    /// (k = 1, 2, ...) is ceil(rows / 2^k) x ceil(cols / 2^k), each pixel the maximum of the
    /// finite pixels it covers (NaN when none), until the longer side is at most `minSide`.
    static std::vector<core::Frame> maxPyramid(const core::Frame &frame, int minSide = 64);

    /// New image: `values` holds the displayed intensities (for the readout), `images` their
    /// rendering: images[0] at full size, images[k] of maxPyramid level k (optional). Keeps
    /// zoom and pan when the size is unchanged, else fits.
    void setFrame(std::shared_ptr<const core::Frame> values, std::vector<QImage> images);
    void setFrame(std::shared_ptr<const core::Frame> values, const QImage &image);
    /// New rendering of the same values (levels, scaling or colormap changed).
    void setImage(std::vector<QImage> images);
    void setImage(const QImage &image);
    void clear();
    bool hasImage() const { return !m_image.isNull(); }
    const QImage &image() const { return m_image; }
    int imageLevels() const { return int(m_levels.size()); }
    /// The pyramid level drawn at `scale`: the finest one with at most one level pixel per
    /// screen pixel (0 at scale >= 1).
    int levelForScale(double scale) const;
    std::shared_ptr<const core::Frame> values() const { return m_values; }

    void setMarkers(std::vector<PeakMarker> markers);
    const std::vector<PeakMarker> &markers() const { return m_markers; }
    int peakMarkerCount() const { return int(m_markers.size()); }
    int fitMarkerCount() const;
    int predictionMarkerCount() const;
    /// Selected peak id, -1 when none.
    int selectedPeak() const { return m_selected; }
    /// Selects the marker with this id (-1 clears); centres the view on it when `centre`.
    /// Emits nothing (callers link selections themselves).
    void setSelectedPeak(int id, bool centre = false);

    // Overlay options.
    void setShowBoxes(bool on);
    void setShowFit(bool on);
    void setShowPredictions(bool on);
    void setShowVectors(bool on);
    /// Error vectors are drawn `scale` times their length (sub-pixel errors become visible).
    void setVectorScale(double scale);
    double vectorScale() const { return m_vectorScale; }

    // View transform.
    double scale() const { return m_scale; }  // screen pixels per image pixel
    void setScale(double scale, const QPointF &anchor); // keeps the image point under anchor
    void zoomBy(double factor);                  // about the widget centre
    void fitToWindow();
    void centreOn(double row, double col);
    /// Widget position of frame coordinates and back.
    QPointF mapFromFrame(double row, double col) const;
    QPointF mapToFrame(const QPointF &widgetPos) const; // (x = col, y = row)

    /// Saves what the view shows (image and overlays) as PNG or SVG (by suffix), atomically.
    /// Throws core::Error naming the file on failure.
    void exportImage(const QString &path) const;
    /// Paints the view into `painter` over `target` (paintEvent, export, tests).
    void render(QPainter &painter, const QRect &target) const;

    QSize sizeHint() const override { return {800, 700}; }

Q_SIGNALS:
    /// Cursor over pixel (row, col) with `value`; inside == false when off the image.
    void pixelHovered(int row, int col, double value, bool inside);
    void markerClicked(int id);
    void scaleChanged(double scale);
    /// Keyboard stepping while the view has focus: Left/Right = -1/+1, Home/End.
    void stepRequested(int delta);
    void firstRequested();
    void lastRequested();

protected:
    void paintEvent(QPaintEvent *event) override;
    void resizeEvent(QResizeEvent *event) override;
    void wheelEvent(QWheelEvent *event) override;
    void mousePressEvent(QMouseEvent *event) override;
    void mouseMoveEvent(QMouseEvent *event) override;
    void mouseReleaseEvent(QMouseEvent *event) override;
    void mouseDoubleClickEvent(QMouseEvent *event) override;
    void keyPressEvent(QKeyEvent *event) override;
    void leaveEvent(QEvent *event) override;

private:
    int markerAt(const QPointF &pos) const;
    QRectF markerBox(const PeakMarker &m) const;
    void clampOffset();

    std::shared_ptr<const core::Frame> m_values;
    QImage m_image;                // == m_levels[0]
    std::vector<QImage> m_levels;
    std::vector<PeakMarker> m_markers;
    int m_selected = -1;
    bool m_showBoxes = true, m_showFit = true, m_showPredictions = true, m_showVectors = true;
    double m_vectorScale = 1.0;

    double m_scale = 1.0;
    QPointF m_offset;   // widget position of the image's top-left corner (pixel edge)
    bool m_fitted = true; // follow resizes while the user has not zoomed/panned
    QPoint m_pressPos;
    QPointF m_pressOffset;
    bool m_pressed = false, m_panning = false;
};

} // namespace braggnac::ui
