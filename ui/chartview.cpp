#include "ui/chartview.h"

#include <QContextMenuEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QImage>
#include <QMenu>
#include <QMessageBox>
#include <QPainter>
#include <QSaveFile>
#include <QSvgGenerator>

namespace braggnac::ui {

namespace {

QString saveError(const QString &path, const QString &reason)
{
    return QStringLiteral("%1: %2").arg(path, reason);
}

} // namespace

ChartView::ChartView(QChart *chart, QWidget *parent) : QChartView(chart, parent)
{
    init();
}

ChartView::ChartView(QWidget *parent) : QChartView(parent)
{
    init();
}

void ChartView::init()
{
    setRenderHint(QPainter::Antialiasing);
    setContextMenuPolicy(Qt::DefaultContextMenu);
    setMinimumSize(240, 160);
}

QSize ChartView::exportSize(QSize requested) const
{
    if (requested.isValid() && !requested.isEmpty())
        return requested;
    QSize s = size();
    if (s.width() < 64 || s.height() < 64)
        s = QSize(800, 500);
    return s;
}

bool ChartView::exportPng(const QString &path, QString *error, QSize size)
{
    const QSize s = exportSize(size);
    QImage image(s, QImage::Format_ARGB32_Premultiplied);
    image.fill(Qt::white);
    {
        QPainter painter(&image);
        painter.setRenderHint(QPainter::Antialiasing);
        render(&painter, QRectF(QPointF(0, 0), QSizeF(s)), viewport()->rect());
    }
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly)) {
        if (error)
            *error = saveError(path, file.errorString());
        return false;
    }
    if (!image.save(&file, "PNG")) {
        file.cancelWriting();
        if (error)
            *error = saveError(path, QStringLiteral("could not encode PNG"));
        return false;
    }
    if (!file.commit()) {
        if (error)
            *error = saveError(path, file.errorString());
        return false;
    }
    return true;
}

bool ChartView::exportSvg(const QString &path, QString *error, QSize size)
{
    const QSize s = exportSize(size);
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly)) {
        if (error)
            *error = saveError(path, file.errorString());
        return false;
    }
    {
        QSvgGenerator generator;
        generator.setOutputDevice(&file);
        generator.setSize(s);
        generator.setViewBox(QRect(QPoint(0, 0), s));
        generator.setTitle(chart() ? chart()->title() : QString());
        generator.setDescription(QStringLiteral("BraggNAC chart"));
        QPainter painter;
        if (!painter.begin(&generator)) {
            file.cancelWriting();
            if (error)
                *error = saveError(path, QStringLiteral("could not start the SVG generator"));
            return false;
        }
        painter.setRenderHint(QPainter::Antialiasing);
        render(&painter, QRectF(QPointF(0, 0), QSizeF(s)), viewport()->rect());
        painter.end();
    }
    if (!file.commit()) {
        if (error)
            *error = saveError(path, file.errorString());
        return false;
    }
    return true;
}

bool ChartView::exportTo(const QString &path, QString *error)
{
    const bool ok = QFileInfo(path).suffix().compare(QStringLiteral("svg"), Qt::CaseInsensitive) == 0
        ? exportSvg(path, error)
        : exportPng(path, error);
    return ok;
}

void ChartView::exportWithDialog(ExportFormat format)
{
    const bool asSvg = format == ExportFormat::Svg;
    auto *dialog = new QFileDialog(this, tr("Export chart"), QString(),
                                   asSvg ? tr("SVG drawing (*.svg)") : tr("PNG image (*.png)"));
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setAcceptMode(QFileDialog::AcceptSave);
    dialog->setDefaultSuffix(asSvg ? QStringLiteral("svg") : QStringLiteral("png"));
    connect(dialog, &QFileDialog::fileSelected, this, [this, asSvg](const QString &path) {
        QString error;
        const bool ok = asSvg ? exportSvg(path, &error) : exportPng(path, &error);
        if (ok) {
            Q_EMIT exported(path);
            return;
        }
        Q_EMIT exportFailed(error);
        auto *box = new QMessageBox(QMessageBox::Warning, tr("Export failed"), error,
                                    QMessageBox::Ok, this);
        box->setAttribute(Qt::WA_DeleteOnClose);
        box->open();
    });
    dialog->open();
}

void ChartView::contextMenuEvent(QContextMenuEvent *event)
{
    auto *menu = new QMenu(this);
    menu->setAttribute(Qt::WA_DeleteOnClose);
    connect(menu->addAction(tr("Export PNG...")), &QAction::triggered, this,
            [this] { exportWithDialog(ExportFormat::Png); });
    connect(menu->addAction(tr("Export SVG...")), &QAction::triggered, this,
            [this] { exportWithDialog(ExportFormat::Svg); });
    menu->popup(event->globalPos());
    event->accept();
}

} // namespace braggnac::ui
