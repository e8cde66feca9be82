#include "ui/frameview.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <QApplication>
#include <QBuffer>
#include <QFileInfo>
#include <QKeyEvent>
#include <QMouseEvent>
#include <QPainter>
#include <QSaveFile>
#include <QSvgGenerator>
#include <QWheelEvent>

#include "core/common/error.h"

namespace braggnac::ui {

namespace {
constexpr double kMinScale = 0.02;
constexpr double kMaxScale = 64.0;
const QColor kBoxColour(70, 230, 70, 210);
const QColor kSelectedColour(255, 220, 0);
const QColor kFitColour(0, 225, 255);
const QColor kFitFailedColour(160, 160, 160);
const QColor kNNColour(255, 90, 200);
const QColor kVectorColour(255, 200, 40);

void drawPlus(QPainter &p, const QPointF &c, double arm)
{
    p.drawLine(QPointF(c.x() - arm, c.y()), QPointF(c.x() + arm, c.y()));
    p.drawLine(QPointF(c.x(), c.y() - arm), QPointF(c.x(), c.y() + arm));
}

void drawCross(QPainter &p, const QPointF &c, double arm)
{
    p.drawLine(QPointF(c.x() - arm, c.y() - arm), QPointF(c.x() + arm, c.y() + arm));
    p.drawLine(QPointF(c.x() - arm, c.y() + arm), QPointF(c.x() + arm, c.y() - arm));
}
} // namespace

FrameView::FrameView(QWidget *parent) : QWidget(parent)
{
    setObjectName(QStringLiteral("frameView"));
    setMouseTracking(true);
    setFocusPolicy(Qt::StrongFocus);
    setAttribute(Qt::WA_OpaquePaintEvent);
    setMinimumSize(200, 200);
}

std::vector<core::Frame> FrameView::maxPyramid(const core::Frame &frame, int minSide)
{
    std::vector<core::Frame> levels;
    const core::Frame *from = &frame;
    while (std::max(from->rows, from->cols) > std::max(1, minSide)) {
        core::Frame next((from->rows + 1) / 2, (from->cols + 1) / 2, std::numeric_limits<float>::quiet_NaN());
        for (int r = 0; r < from->rows; ++r) {
            const float *in = from->row(r);
            float *out = next.data.data() + std::size_t(r / 2) * next.cols;
            for (int c = 0; c < from->cols; ++c) {
                const float v = in[c];
                float &o = out[c / 2];
                if (std::isfinite(v) && !(o >= v))
                    o = v;
            }
        }
        levels.push_back(std::move(next));
        from = &levels.back();
    }
    return levels;
}

void FrameView::setFrame(std::shared_ptr<const core::Frame> values, std::vector<QImage> images)
{
    m_values = std::move(values);
    setImage(std::move(images));
}

void FrameView::setFrame(std::shared_ptr<const core::Frame> values, const QImage &image)
{
    setFrame(std::move(values), std::vector<QImage>{image});
}

void FrameView::setImage(const QImage &image)
{
    setImage(std::vector<QImage>{image});
}

void FrameView::setImage(std::vector<QImage> images)
{
    const QImage full = images.empty() ? QImage() : images.front();
    const bool sameSize = !m_image.isNull() && full.size() == m_image.size();
    m_levels = std::move(images);
    m_image = full;
    if (!sameSize)
        fitToWindow();
    update();
}

int FrameView::levelForScale(double scale) const
{
    if (m_levels.size() <= 1 || scale >= 1.0)
        return 0;
    const int k = int(std::ceil(std::log2(1.0 / scale) - 0.05));
    return std::clamp(k, 0, int(m_levels.size()) - 1);
}

void FrameView::clear()
{
    m_values.reset();
    m_image = QImage();
    m_levels.clear();
    m_markers.clear();
    m_selected = -1;
    update();
}

void FrameView::setMarkers(std::vector<PeakMarker> markers)
{
    m_markers = std::move(markers);
    if (std::none_of(m_markers.begin(), m_markers.end(), [&](const PeakMarker &m) { return m.id == m_selected; }))
        m_selected = -1;
    update();
}

int FrameView::fitMarkerCount() const
{
    return int(std::count_if(m_markers.begin(), m_markers.end(), [](const PeakMarker &m) { return m.hasFit; }));
}

int FrameView::predictionMarkerCount() const
{
    return int(std::count_if(m_markers.begin(), m_markers.end(),
                             [](const PeakMarker &m) { return m.hasPrediction; }));
}

void FrameView::setSelectedPeak(int id, bool centre)
{
    m_selected = -1;
    for (const PeakMarker &m : m_markers) {
        if (m.id != id)
            continue;
        m_selected = id;
        if (centre) {
            const QPointF p = mapFromFrame(m.peakRow, m.peakCol);
            if (!rect().adjusted(40, 40, -40, -40).contains(p.toPoint()))
                centreOn(m.peakRow, m.peakCol);
        }
        break;
    }
    update();
}

void FrameView::setShowBoxes(bool on) { m_showBoxes = on; update(); }
void FrameView::setShowFit(bool on) { m_showFit = on; update(); }
void FrameView::setShowPredictions(bool on) { m_showPredictions = on; update(); }
void FrameView::setShowVectors(bool on) { m_showVectors = on; update(); }
void FrameView::setVectorScale(double scale) { m_vectorScale = std::max(0.1, scale); update(); }

void FrameView::setScale(double scale, const QPointF &anchor)
{
    scale = std::clamp(scale, kMinScale, kMaxScale);
    const QPointF imagePoint = (anchor - m_offset) / m_scale;
    m_scale = scale;
    m_offset = anchor - imagePoint * m_scale;
    m_fitted = false;
    clampOffset();
    update();
    Q_EMIT scaleChanged(m_scale);
}

void FrameView::zoomBy(double factor)
{
    setScale(m_scale * factor, QPointF(width() / 2.0, height() / 2.0));
}

void FrameView::fitToWindow()
{
    if (m_image.isNull())
        return;
    const double s = std::min(double(width()) / m_image.width(), double(height()) / m_image.height());
    m_scale = std::clamp(s, kMinScale, kMaxScale);
    m_offset = QPointF((width() - m_image.width() * m_scale) / 2.0,
                       (height() - m_image.height() * m_scale) / 2.0);
    m_fitted = true;
    update();
    Q_EMIT scaleChanged(m_scale);
}

void FrameView::centreOn(double row, double col)
{
    m_offset = QPointF(width() / 2.0 - (col + 0.5) * m_scale, height() / 2.0 - (row + 0.5) * m_scale);
    m_fitted = false;
    clampOffset();
    update();
}

QPointF FrameView::mapFromFrame(double row, double col) const
{
    return m_offset + QPointF((col + 0.5) * m_scale, (row + 0.5) * m_scale);
}

QPointF FrameView::mapToFrame(const QPointF &pos) const
{
    const QPointF e = (pos - m_offset) / m_scale;
    return QPointF(e.x() - 0.5, e.y() - 0.5);
}

// Keeps at least part of the image on screen.
void FrameView::clampOffset()
{
    if (m_image.isNull())
        return;
    const double w = m_image.width() * m_scale, h = m_image.height() * m_scale;
    const double margin = 40;
    m_offset.setX(std::clamp(m_offset.x(), std::min(margin - w, width() - w), std::max(width() - margin, 0.0)));
    m_offset.setY(std::clamp(m_offset.y(), std::min(margin - h, height() - h), std::max(height() - margin, 0.0)));
}

QRectF FrameView::markerBox(const PeakMarker &m) const
{
    const QPointF tl = m_offset + QPointF(m.originCol * m_scale, m.originRow * m_scale);
    QRectF box(tl, QSizeF(m.size * m_scale, m.size * m_scale));
    if (box.width() < 7) {
        const QPointF c = mapFromFrame(m.peakRow, m.peakCol);
        box = QRectF(c.x() - 3.5, c.y() - 3.5, 7, 7);
    }
    return box;
}

void FrameView::render(QPainter &p, const QRect &target) const
{
    p.save();
    p.setClipRect(target);
    p.translate(target.topLeft());
    const QRectF area(0, 0, target.width(), target.height());
    p.fillRect(area, QColor(38, 38, 42));
    if (m_image.isNull()) {
        p.setPen(QColor(200, 200, 200));
        p.drawText(area, Qt::AlignCenter | Qt::TextWordWrap,
                   tr("Open a frame file (Ctrl+O) or drop one here,\nor open the demo (Ctrl+Shift+D)."));
        p.restore();
        return;
    }
    // Only the visible part of the image, in whole source pixels, scaled without smoothing;
    // zoomed out, from the max-pooled level with about one pixel per screen pixel.
    const int level = levelForScale(m_scale);
    const QImage &image = m_levels.empty() ? m_image : m_levels[std::size_t(level)];
    const double f = double(1 << level); // full-resolution pixels per level pixel
    const QPointF e0 = (area.topLeft() - m_offset) / (m_scale * f);
    const QPointF e1 = (area.bottomRight() - m_offset) / (m_scale * f);
    const int c0 = std::max(0, int(std::floor(e0.x()))), r0 = std::max(0, int(std::floor(e0.y())));
    const int c1 = std::min(image.width(), int(std::ceil(e1.x()))), r1 = std::min(image.height(), int(std::ceil(e1.y())));
    if (c1 > c0 && r1 > r0) {
        const QRectF source(c0, r0, c1 - c0, r1 - r0);
        const double s = m_scale * f;
        // (The last pixel of a level with an odd side overhangs the image by under one screen pixel.)
        const QRectF dest(m_offset + QPointF(c0 * s, r0 * s), QSizeF((c1 - c0) * s, (r1 - r0) * s));
        p.setRenderHint(QPainter::SmoothPixmapTransform, false);
        p.drawImage(dest, image, source);
    }

    // Overlays in view coordinates: constant line widths and marker sizes at any zoom.
    p.setRenderHint(QPainter::Antialiasing, true);
    const double arm = std::clamp(m_scale * 1.2, 3.0, 8.0);
    const PeakMarker *selected = nullptr;
    for (const PeakMarker &m : m_markers) {
        const QRectF box = markerBox(m);
        if (!area.intersects(box.adjusted(-20, -20, 20, 20)))
            continue;
        if (m.id == m_selected)
            selected = &m;
        if (m_showBoxes) {
            p.setPen(QPen(kBoxColour, 1.2));
            p.setBrush(Qt::NoBrush);
            p.drawRect(box);
        }
        const QPointF fit = mapFromFrame(m.fitRow, m.fitCol);
        const QPointF nn = mapFromFrame(m.nnRow, m.nnCol);
        if (m_showVectors && m.hasFit && m.hasPrediction) {
            p.setPen(QPen(kVectorColour, 1.5));
            p.drawLine(fit, fit + (nn - fit) * m_vectorScale);
        }
        if (m_showFit && m.hasFit) {
            p.setPen(QPen(m.fitConverged ? kFitColour : kFitFailedColour, 1.5));
            drawPlus(p, fit, arm);
        }
        if (m_showPredictions && m.hasPrediction) {
            p.setPen(QPen(kNNColour, 1.5));
            drawCross(p, nn, arm * 0.8);
        }
    }
    if (selected) {
        const QRectF box = markerBox(*selected).adjusted(-3, -3, 3, 3);
        p.setPen(QPen(QColor(0, 0, 0, 160), 4));
        p.setBrush(Qt::NoBrush);
        p.drawRect(box);
        p.setPen(QPen(kSelectedColour, 2));
        p.drawRect(box);
    }
    p.restore();
}

void FrameView::paintEvent(QPaintEvent *)
{
    QPainter p(this);
    render(p, rect());
}

void FrameView::resizeEvent(QResizeEvent *)
{
    if (m_fitted)
        fitToWindow();
    else
        clampOffset();
}

void FrameView::wheelEvent(QWheelEvent *event)
{
    if (m_image.isNull())
        return;
    const double steps = event->angleDelta().y() / 120.0;
    if (steps == 0)
        return;
    setScale(m_scale * std::pow(1.25, steps), event->position());
    event->accept();
}

int FrameView::markerAt(const QPointF &pos) const
{
    int best = -1;
    double bestDistance = 1e300;
    for (const PeakMarker &m : m_markers) {
        const QRectF box = markerBox(m).adjusted(-3, -3, 3, 3);
        if (!box.contains(pos))
            continue;
        const QPointF d = pos - mapFromFrame(m.peakRow, m.peakCol);
        const double dist = d.x() * d.x() + d.y() * d.y();
        if (dist < bestDistance) {
            bestDistance = dist;
            best = m.id;
        }
    }
    return best;
}

void FrameView::mousePressEvent(QMouseEvent *event)
{
    if (event->button() != Qt::LeftButton && event->button() != Qt::MiddleButton)
        return;
    setFocus(Qt::MouseFocusReason);
    m_pressed = true;
    m_panning = event->button() == Qt::MiddleButton;
    m_pressPos = event->position().toPoint();
    m_pressOffset = m_offset;
    if (m_panning)
        setCursor(Qt::ClosedHandCursor);
}

void FrameView::mouseMoveEvent(QMouseEvent *event)
{
    const QPointF pos = event->position();
    if (m_pressed) {
        if (!m_panning && (pos.toPoint() - m_pressPos).manhattanLength() >= QApplication::startDragDistance()) {
            m_panning = true;
            setCursor(Qt::ClosedHandCursor);
        }
        if (m_panning) {
            m_offset = m_pressOffset + (pos - QPointF(m_pressPos));
            m_fitted = false;
            clampOffset();
            update();
        }
    }
    if (m_image.isNull())
        return;
    const QPointF f = mapToFrame(pos);
    const int row = int(std::lround(f.y())), col = int(std::lround(f.x()));
    const bool inside = row >= 0 && col >= 0 && row < m_image.height() && col < m_image.width();
    double value = 0;
    if (inside && m_values && row < m_values->rows && col < m_values->cols)
        value = m_values->at(row, col);
    Q_EMIT pixelHovered(row, col, value, inside);
}

void FrameView::mouseReleaseEvent(QMouseEvent *event)
{
    if (!m_pressed)
        return;
    const bool wasPanning = m_panning;
    m_pressed = m_panning = false;
    unsetCursor();
    if (!wasPanning && event->button() == Qt::LeftButton) {
        const int id = markerAt(event->position());
        if (id >= 0) {
            m_selected = id;
            update();
            Q_EMIT markerClicked(id);
        }
    }
}

void FrameView::mouseDoubleClickEvent(QMouseEvent *event)
{
    if (event->button() == Qt::LeftButton && markerAt(event->position()) < 0)
        fitToWindow();
}

void FrameView::keyPressEvent(QKeyEvent *event)
{
    switch (event->key()) {
    case Qt::Key_Left:
        Q_EMIT stepRequested(-1);
        break;
    case Qt::Key_Right:
        Q_EMIT stepRequested(+1);
        break;
    case Qt::Key_Home:
        Q_EMIT firstRequested();
        break;
    case Qt::Key_End:
        Q_EMIT lastRequested();
        break;
    default:
        QWidget::keyPressEvent(event);
        return;
    }
    event->accept();
}

void FrameView::leaveEvent(QEvent *)
{
    Q_EMIT pixelHovered(-1, -1, 0, false);
}

void FrameView::exportImage(const QString &path) const
{
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly))
        throw core::Error(core::fileMessage(path.toStdString(), file.errorString().toStdString()));
    if (QFileInfo(path).suffix().compare(QLatin1String("svg"), Qt::CaseInsensitive) == 0) {
        QSvgGenerator svg;
        svg.setOutputDevice(&file);
        svg.setSize(size());
        svg.setViewBox(rect());
        svg.setTitle(tr("BraggNAC frame view"));
        QPainter p(&svg);
        render(p, rect());
        p.end();
    } else {
        QImage out(size() * devicePixelRatio(), QImage::Format_RGB32);
        out.setDevicePixelRatio(devicePixelRatio());
        QPainter p(&out);
        render(p, rect());
        p.end();
        if (!out.save(&file, "PNG"))
            throw core::Error(core::fileMessage(path.toStdString(), "could not encode the PNG image"));
    }
    if (!file.commit())
        throw core::Error(core::fileMessage(path.toStdString(), file.errorString().toStdString()));
}

} // namespace braggnac::ui
