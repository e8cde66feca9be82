#include "ui/patchgallery.h"

#include <algorithm>
#include <cmath>

#include <QPainter>
#include <QPaintEvent>

#include "core/io/patchdataset.h"

namespace braggnac::ui {

namespace {
constexpr int kTile = 66;   // pixels per tile (6 px per patch pixel for S = 11)
constexpr int kGap = 4;
} // namespace

PatchGallery::PatchGallery(QWidget *parent) : QWidget(parent)
{
    setObjectName(QStringLiteral("patchGallery"));
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Preferred);
    setMinimumHeight(kTile + 2 * kGap);
}

void PatchGallery::setDataset(const core::PatchDataset *data, int maximum)
{
    m_tiles.clear();
    if (data && data->patchSize > 0 && data->size() > 0 && maximum > 0) {
        const std::size_t n = data->size();
        const int s = data->patchSize;
        m_patchSize = s;
        const std::size_t shown = std::min<std::size_t>(n, std::size_t(maximum));
        for (std::size_t t = 0; t < shown; ++t) {
            const std::size_t row = shown == n ? t : (t * n) / shown;
            const float *p = data->patch(row);
            float lo = 0, hi = 0;
            bool first = true;
            for (int i = 0; i < s * s; ++i) {
                if (!std::isfinite(p[i]))
                    continue;
                if (first) {
                    lo = hi = p[i];
                    first = false;
                } else {
                    lo = std::min(lo, p[i]);
                    hi = std::max(hi, p[i]);
                }
            }
            const float range = hi > lo ? hi - lo : 1.f;
            Tile tile;
            tile.row = row;
            tile.image = QImage(s, s, QImage::Format_Grayscale8);
            for (int r = 0; r < s; ++r) {
                uchar *line = tile.image.scanLine(r);
                for (int c = 0; c < s; ++c) {
                    const float v = p[r * s + c];
                    line[c] = std::isfinite(v) ? uchar(std::lround(255.f * (v - lo) / range)) : 0;
                }
            }
            tile.labelled = data->labelled();
            if (tile.labelled)
                tile.centre = QPointF(data->centers[2 * row + 1], data->centers[2 * row]); // (x=col, y=row)
            m_tiles.push_back(std::move(tile));
        }
    }
    updateGeometry();
    update();
}

int PatchGallery::columnsFor(int width) const
{
    return std::max(1, (width - kGap) / (kTile + kGap));
}

QSize PatchGallery::sizeHint() const
{
    const int columns = std::min<int>(8, std::max<int>(1, int(m_tiles.size())));
    return QSize(kGap + columns * (kTile + kGap), heightForWidth(kGap + columns * (kTile + kGap)));
}

int PatchGallery::heightForWidth(int width) const
{
    const int columns = columnsFor(width);
    const int rows = std::max<int>(1, int((m_tiles.size() + columns - 1) / columns));
    return kGap + rows * (kTile + kGap);
}

void PatchGallery::paintEvent(QPaintEvent *)
{
    QPainter painter(this);
    painter.fillRect(rect(), palette().base());
    if (m_tiles.empty()) {
        painter.setPen(palette().color(QPalette::PlaceholderText));
        painter.drawText(rect(), Qt::AlignCenter, tr("no patches"));
        return;
    }
    const int columns = columnsFor(width());
    const double scale = double(kTile) / m_patchSize;
    for (std::size_t i = 0; i < m_tiles.size(); ++i) {
        const int x = kGap + int(i % columns) * (kTile + kGap);
        const int y = kGap + int(i / columns) * (kTile + kGap);
        const QRect target(x, y, kTile, kTile);
        painter.drawImage(target, m_tiles[i].image);
        const QPointF c = m_tiles[i].centre;
        if (m_tiles[i].labelled) {
            // Pixel (0,0) is the centre of the top-left pixel.
            const QPointF at(x + (c.x() + 0.5) * scale, y + (c.y() + 0.5) * scale);
            painter.setPen(QPen(QColor(230, 40, 40), 1.5));
            painter.drawLine(at - QPointF(4, 0), at + QPointF(4, 0));
            painter.drawLine(at - QPointF(0, 4), at + QPointF(0, 4));
        }
        painter.setPen(palette().color(QPalette::Mid));
        painter.drawRect(target.adjusted(0, 0, -1, -1));
    }
}

} // namespace braggnac::ui
