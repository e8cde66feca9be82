#include "ui/archdiagram.h"

#include <QPainter>
#include <QPainterPath>

namespace braggnac::ui {

namespace {
constexpr int kBoxHeight = 36;
constexpr int kGap = 14;

QString convDetail(const core::ConvLayerSpec &l, int kernel)
{
    QString s = QStringLiteral("conv %1\u00d7%1").arg(kernel);
    if (l.norm != core::Norm::None)
        s += QStringLiteral(" \u00b7 %1").arg(QString::fromLatin1(core::normName(l.norm)));
    if (l.act != core::Activation::None)
        s += QStringLiteral(" \u00b7 %1").arg(QString::fromLatin1(core::activationName(l.act)));
    return s;
}
} // namespace

ArchDiagram::ArchDiagram(QWidget *parent) : QWidget(parent)
{
    setSizePolicy(QSizePolicy::Preferred, QSizePolicy::Preferred);
}

void ArchDiagram::clear()
{
    m_boxes.clear();
    m_error.clear();
    updateGeometry();
    update();
}

void ArchDiagram::setSpec(const core::ArchSpec &spec)
{
    m_boxes.clear();
    m_error.clear();
    std::vector<core::ArchSpec::Shape> shapes;
    try {
        shapes = spec.shapes();
    } catch (const std::exception &e) {
        m_error = QString::fromStdString(e.what());
        updateGeometry();
        update();
        return;
    }
    const QColor input(230, 230, 230), conv(189, 215, 238), attention(252, 213, 180), dense(198, 224, 180),
        out(240, 200, 200);
    m_boxes.push_back({tr("input"), tr("1 \u00d7 %1 \u00d7 %1 patch").arg(spec.inputSize), input});
    bool flattened = false;
    for (const auto &s : shapes) {
        const QString field = QString::fromStdString(s.field);
        const QString dims = QStringLiteral("%1 \u00d7 %2 \u00d7 %2").arg(s.channels).arg(s.size);
        if (s.field == "stem") {
            m_boxes.push_back({tr("stem"), convDetail(spec.stem, s.kernel) + QStringLiteral("  \u2192  ") + dims, conv});
            continue;
        }
        if (s.field.rfind("blocks[", 0) == 0) {
            const int b = std::stoi(s.field.substr(7));
            const auto &block = spec.blocks.at(std::size_t(b));
            const auto layerPos = s.field.find(".layers[");
            if (layerPos != std::string::npos) {
                const int l = std::stoi(s.field.substr(layerPos + 8));
                m_boxes.push_back({tr("slot %1, layer %2").arg(b + 1).arg(l + 1),
                                   convDetail(block.layers.at(std::size_t(l)), s.kernel) + QStringLiteral("  \u2192  ") + dims,
                                   conv});
            } else if (block.type == core::BlockType::ConvAttention) {
                QString d = tr("attention h=%1").arg(block.attentionChannels);
                if (block.act != core::Activation::None)
                    d += QStringLiteral(" \u00b7 %1").arg(QString::fromLatin1(core::activationName(block.act)));
                m_boxes.push_back({tr("slot %1").arg(b + 1), d + QStringLiteral("  \u2192  ") + dims, attention});
            }
            continue;
        }
        if (!flattened && (s.field.rfind("head", 0) == 0 || s.field == "output")) {
            m_boxes.push_back({tr("flatten"), tr("%1 features").arg(spec.flattenFeatures()), input});
            flattened = true;
        }
        if (s.field.rfind("head[", 0) == 0) {
            const int h = std::stoi(s.field.substr(5));
            const auto &d = spec.head.at(std::size_t(h));
            QString detail = tr("dense %1").arg(d.width);
            if (d.norm != core::Norm::None)
                detail += QStringLiteral(" \u00b7 %1").arg(QString::fromLatin1(core::normName(d.norm)));
            if (d.act != core::Activation::None)
                detail += QStringLiteral(" \u00b7 %1").arg(QString::fromLatin1(core::activationName(d.act)));
            m_boxes.push_back({tr("head %1").arg(h + 1), detail, dense});
        } else if (s.field == "output") {
            m_boxes.push_back({tr("output"), tr("linear \u2192 2 (x, y)"), out});
        } else {
            Q_UNUSED(field);
        }
    }
    updateGeometry();
    update();
}

QStringList ArchDiagram::boxTexts() const
{
    QStringList out;
    for (const auto &b : m_boxes)
        out << b.title + QStringLiteral(": ") + b.detail;
    return out;
}

QSize ArchDiagram::sizeHint() const
{
    const int n = std::max<int>(1, int(m_boxes.size()));
    return QSize(340, n * (kBoxHeight + kGap) + kGap);
}

QSize ArchDiagram::minimumSizeHint() const
{
    return QSize(260, sizeHint().height());
}

void ArchDiagram::paintEvent(QPaintEvent *)
{
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    if (!m_error.isEmpty()) {
        p.setPen(QColor(192, 57, 43));
        p.drawText(rect().adjusted(8, 8, -8, -8), Qt::TextWordWrap, m_error);
        return;
    }
    if (m_boxes.empty()) {
        p.setPen(palette().color(QPalette::PlaceholderText));
        p.drawText(rect(), Qt::AlignCenter, tr("Select a trial"));
        return;
    }
    const int w = std::min(width() - 16, 420);
    const int x = (width() - w) / 2;
    int y = kGap / 2;
    QFont bold = font();
    bold.setBold(true);
    for (std::size_t i = 0; i < m_boxes.size(); ++i) {
        const auto &b = m_boxes[i];
        const QRectF r(x, y, w, kBoxHeight);
        QPainterPath path;
        path.addRoundedRect(r, 6, 6);
        p.fillPath(path, b.colour);
        p.setPen(QPen(b.colour.darker(150), 1));
        p.drawPath(path);
        p.setPen(Qt::black); // the box colours are light in every theme
        p.setFont(bold);
        p.drawText(r.adjusted(8, 0, 0, 0), Qt::AlignVCenter | Qt::AlignLeft, b.title);
        p.setFont(font());
        p.drawText(r.adjusted(100, 0, -8, 0), Qt::AlignVCenter | Qt::AlignLeft, b.detail);
        if (i + 1 < m_boxes.size()) {
            const double cx = x + w / 2.0, y0 = y + kBoxHeight, y1 = y + kBoxHeight + kGap;
            p.setPen(QPen(QColor(90, 90, 90), 1.2));
            p.drawLine(QPointF(cx, y0), QPointF(cx, y1 - 1));
            QPolygonF head;
            head << QPointF(cx - 4, y1 - 5) << QPointF(cx + 4, y1 - 5) << QPointF(cx, y1);
            p.setBrush(QColor(90, 90, 90));
            p.drawPolygon(head);
            p.setBrush(Qt::NoBrush);
        }
        y += kBoxHeight + kGap;
    }
}

} // namespace braggnac::ui
