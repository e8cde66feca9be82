#include "ui/patchinspector.h"

#include <algorithm>
#include <cmath>

#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPainter>
#include <QSaveFile>
#include <QSvgGenerator>
#include <QTableWidget>
#include <QVBoxLayout>

#include "core/common/error.h"

namespace braggnac::ui {

namespace {
const QColor kFitColour(0, 225, 255);
const QColor kNNColour(255, 90, 200);

QRgb diverging(double t) // t in [-1, 1]: blue - white - red
{
    t = std::clamp(t, -1.0, 1.0);
    if (t < 0) {
        const double a = -t;
        return qRgb(int(255 * (1 - a) + 40 * a), int(255 * (1 - a) + 90 * a), int(255 * (1 - a) + 200 * a));
    }
    return qRgb(int(255 * (1 - t) + 200 * t), int(255 * (1 - t) + 40 * t), int(255 * (1 - t) + 40 * t));
}
} // namespace

// One magnified patch image with its centre markers.
class PatchCanvas : public QWidget {
public:
    PatchCanvas(QString caption, bool residual, QWidget *parent)
        : QWidget(parent), m_caption(std::move(caption)), m_residual(residual)
    {
        setMinimumSize(150, 170);
        setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
    }
    void setData(const std::vector<float> &values, int size, const PatchDetails &details)
    {
        m_values = values;
        m_size = size;
        m_details = details;
        update();
    }
    void setColormap(const Colormap &map)
    {
        m_colormap = map;
        update();
    }
    void paintInto(QPainter &p, const QRectF &area) const
    {
        p.save();
        p.fillRect(area, QColor(38, 38, 42));
        p.setPen(QColor(220, 220, 220));
        const QRectF captionRect(area.left(), area.top(), area.width(), 18);
        p.drawText(captionRect, Qt::AlignCenter, m_caption);
        if (m_size <= 0 || m_values.size() != std::size_t(m_size) * m_size) {
            p.drawText(area, Qt::AlignCenter, m_residual ? tr("no fit") : tr("no peak selected"));
            p.restore();
            return;
        }
        const double side = std::max(10.0, std::min(area.width() - 8, area.height() - 42));
        const double cell = side / m_size;
        const QPointF tl(area.left() + (area.width() - side) / 2, area.top() + 22);
        double lo = 0, hi = 1;
        if (m_residual) {
            double m = 0;
            for (float v : m_values)
                if (std::isfinite(v))
                    m = std::max(m, double(std::abs(v)));
            hi = m > 0 ? m : 1;
        } else {
            lo = 1e300;
            hi = -1e300;
            for (float v : m_values)
                if (std::isfinite(v)) {
                    lo = std::min(lo, double(v));
                    hi = std::max(hi, double(v));
                }
            if (!(hi > lo))
                hi = lo + 1;
        }
        for (int r = 0; r < m_size; ++r)
            for (int c = 0; c < m_size; ++c) {
                const double v = m_values[std::size_t(r) * m_size + c];
                QRgb colour = m_residual ? diverging(v / hi) : m_colormap.color((v - lo) / (hi - lo));
                if (!std::isfinite(v))
                    colour = Colormap::nanColor();
                p.fillRect(QRectF(tl.x() + c * cell, tl.y() + r * cell, cell + 0.5, cell + 0.5), QColor(colour));
            }
        p.setRenderHint(QPainter::Antialiasing, true);
        const double arm = std::max(4.0, cell * 0.35);
        const auto at = [&](double row, double col) { return QPointF(tl.x() + (col + 0.5) * cell, tl.y() + (row + 0.5) * cell); };
        if (m_details.hasFit) {
            const QPointF c = at(m_details.fit.params.row, m_details.fit.params.col);
            p.setPen(QPen(QColor(0, 0, 0, 150), 4));
            p.drawLine(c - QPointF(arm, 0), c + QPointF(arm, 0));
            p.drawLine(c - QPointF(0, arm), c + QPointF(0, arm));
            p.setPen(QPen(kFitColour, 2));
            p.drawLine(c - QPointF(arm, 0), c + QPointF(arm, 0));
            p.drawLine(c - QPointF(0, arm), c + QPointF(0, arm));
        }
        if (m_details.hasPrediction) {
            const QPointF c = at(m_details.nnRow, m_details.nnCol);
            const double a = arm * 0.8;
            p.setPen(QPen(QColor(0, 0, 0, 150), 4));
            p.drawLine(c - QPointF(a, a), c + QPointF(a, a));
            p.drawLine(c - QPointF(a, -a), c + QPointF(a, -a));
            p.setPen(QPen(kNNColour, 2));
            p.drawLine(c - QPointF(a, a), c + QPointF(a, a));
            p.drawLine(c - QPointF(a, -a), c + QPointF(a, -a));
        }
        p.setPen(QColor(160, 160, 160));
        p.setBrush(Qt::NoBrush);
        p.drawRect(QRectF(tl, QSizeF(side, side)));
        const QString range = m_residual ? tr("±%1").arg(hi, 0, 'g', 4) : tr("%1 – %2").arg(lo, 0, 'g', 5).arg(hi, 0, 'g', 5);
        p.setPen(QColor(200, 200, 200));
        p.drawText(QRectF(area.left(), tl.y() + side + 1, area.width(), 16), Qt::AlignCenter, range);
        p.restore();
    }

protected:
    void paintEvent(QPaintEvent *) override
    {
        QPainter p(this);
        paintInto(p, QRectF(rect()));
    }

private:
    QString m_caption;
    bool m_residual;
    std::vector<float> m_values;
    int m_size = 0;
    PatchDetails m_details;
    Colormap m_colormap{Colormap::Name::Viridis};
};

PatchInspector::PatchInspector(QWidget *parent) : QWidget(parent)
{
    setObjectName(QStringLiteral("patchInspector"));
    auto *layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    m_title = new QLabel(tr("Select a peak in the view or the table"), this);
    m_title->setObjectName(QStringLiteral("patchTitle"));
    m_title->setWordWrap(true);
    layout->addWidget(m_title);
    auto *images = new QHBoxLayout;
    m_patchCanvas = new PatchCanvas(tr("Patch  (+ fit, × model)"), false, this);
    m_residualCanvas = new PatchCanvas(tr("Fit residual"), true, this);
    images->addWidget(m_patchCanvas);
    images->addWidget(m_residualCanvas);
    layout->addLayout(images, 3);
    m_params = new QTableWidget(0, 2, this);
    m_params->setObjectName(QStringLiteral("patchParameters"));
    m_params->setHorizontalHeaderLabels({tr("Parameter"), tr("Value")});
    m_params->horizontalHeader()->setStretchLastSection(true);
    m_params->verticalHeader()->setVisible(false);
    m_params->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_params->setSelectionMode(QAbstractItemView::NoSelection);
    m_params->verticalHeader()->setDefaultSectionSize(fontMetrics().height() + 4);
    layout->addWidget(m_params, 2);
}

void PatchInspector::setColormap(const Colormap &map)
{
    m_patchCanvas->setColormap(map);
}

void PatchInspector::clear()
{
    showPatch(PatchDetails{});
}

void PatchInspector::showPatch(const PatchDetails &d)
{
    m_details = d;
    m_residual.clear();
    const int n = d.size;
    const bool valid = n > 0 && d.patch.size() == std::size_t(n) * n;
    if (valid && d.hasFit) {
        m_residual.resize(d.patch.size());
        for (int r = 0; r < n; ++r)
            for (int c = 0; c < n; ++c)
                m_residual[std::size_t(r) * n + c] =
                    float(d.patch[std::size_t(r) * n + c] - d.fit.params.evaluate(r, c));
    }
    m_patchCanvas->setData(valid ? d.patch : std::vector<float>{}, valid ? n : 0, d);
    m_residualCanvas->setData(m_residual, m_residual.empty() ? 0 : n, d);

    m_params->setRowCount(0);
    if (!valid) {
        m_title->setText(tr("Select a peak in the view or the table"));
        return;
    }
    m_title->setText(tr("Peak %1 · frame %2 · patch origin (%3, %4) · %5×%5")
                         .arg(d.id).arg(d.frame).arg(d.originRow).arg(d.originCol).arg(n));
    const auto add = [&](const QString &name, const QString &value) {
        const int row = m_params->rowCount();
        m_params->insertRow(row);
        m_params->setItem(row, 0, new QTableWidgetItem(name));
        auto *item = new QTableWidgetItem(value);
        item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
        m_params->setItem(row, 1, item);
    };
    if (d.hasFit) {
        const auto values = d.fit.params.toArray();
        const auto &names = core::PseudoVoigt::names();
        for (int i = 0; i < core::PseudoVoigt::kParameterCount; ++i)
            add(QString::fromLatin1(names[std::size_t(i)]), QString::number(values[std::size_t(i)], 'g', 6));
        add(tr("rms residual"), QString::number(d.fit.rms, 'g', 5));
        add(tr("iterations"), QString::number(d.fit.iterations));
        add(tr("converged"), d.fit.converged ? tr("yes") : tr("no"));
        add(tr("fit centre (frame)"), tr("%1, %2").arg(d.originRow + d.fit.params.row, 0, 'f', 3)
                                          .arg(d.originCol + d.fit.params.col, 0, 'f', 3));
    } else {
        add(tr("fit"), tr("not fitted (Peaks → Fit peaks)"));
    }
    if (d.hasPrediction) {
        add(tr("model centre (patch)"), tr("%1, %2").arg(d.nnRow, 0, 'f', 3).arg(d.nnCol, 0, 'f', 3));
        if (d.hasFit)
            add(tr("fit - model distance (px)"),
                QString::number(std::hypot(d.fit.params.row - d.nnRow, d.fit.params.col - d.nnCol), 'f', 3));
    }
}

void PatchInspector::render(QPainter &p, const QSize &size) const
{
    const double half = size.width() / 2.0;
    m_patchCanvas->paintInto(p, QRectF(0, 0, half, size.height()));
    m_residualCanvas->paintInto(p, QRectF(half, 0, half, size.height()));
}

void PatchInspector::exportImage(const QString &path) const
{
    const QSize size(640, 340);
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly))
        throw core::Error(core::fileMessage(path.toStdString(), file.errorString().toStdString()));
    if (QFileInfo(path).suffix().compare(QLatin1String("svg"), Qt::CaseInsensitive) == 0) {
        QSvgGenerator svg;
        svg.setOutputDevice(&file);
        svg.setSize(size);
        svg.setViewBox(QRect(QPoint(0, 0), size));
        svg.setTitle(tr("BraggNAC peak %1").arg(m_details.id));
        QPainter p(&svg);
        render(p, size);
        p.end();
    } else {
        QImage out(size, QImage::Format_RGB32);
        QPainter p(&out);
        render(p, size);
        p.end();
        if (!out.save(&file, "PNG"))
            throw core::Error(core::fileMessage(path.toStdString(), "could not encode the PNG image"));
    }
    if (!file.commit())
        throw core::Error(core::fileMessage(path.toStdString(), file.errorString().toStdString()));
}

} // namespace braggnac::ui
