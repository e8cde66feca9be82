#pragma once
// A QChartView with "Export PNG..." / "Export SVG..." in its context menu (and as methods, for
// panels and tests). Exports are written atomically (QSaveFile): a failed export leaves no file.
// GUI thread only.
#include <QChartView>
#include <QString>

namespace braggnac::ui {

class ChartView : public QChartView {
    Q_OBJECT
public:
    explicit ChartView(QChart *chart, QWidget *parent = nullptr);
    explicit ChartView(QWidget *parent = nullptr);

    /// Renders the chart at its current size (or `size` when valid) to a PNG file. Returns false
    /// and sets `error` ("path: reason") on failure.
    bool exportPng(const QString &path, QString *error = nullptr, QSize size = {});
    /// Renders the chart as vector graphics (QSvgGenerator) to an SVG file.
    bool exportSvg(const QString &path, QString *error = nullptr, QSize size = {});
    /// Chooses the format from the extension (.svg, otherwise PNG).
    bool exportTo(const QString &path, QString *error = nullptr);

    enum class ExportFormat { Png, Svg };
    /// Opens a (non-blocking) save dialog and exports to the chosen file.
    void exportWithDialog(ExportFormat format);

Q_SIGNALS:
    void exported(const QString &path);
    void exportFailed(const QString &message);

protected:
    void contextMenuEvent(QContextMenuEvent *event) override;

private:
    void init();
    QSize exportSize(QSize requested) const;
};

} // namespace braggnac::ui
