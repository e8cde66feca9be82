#pragma once
// The Export stage: "Export to HLS..." in one click. Writes the Vitis-HLS project of a model
// (core::exportHls, hls4ml layout) and, with a check dataset, runs the check of
// `braggnac export-hls --check DATA --n N` (core::checkHlsExport: the g++ C simulation compared
// output by output with the integer reference); all in a Job (progress; cancel stops it at any
// step, a running C simulation included: its processes are ended and no check is shown). The
// model is the studio's (context->model()) or a model folder (setModelFolder; the Compress stage
// hands over what it saved); a model that was never quantised is exported at ap_fixed<16,6> and the panel says so.
// Options: reuse factor, clock, part (core's part table), output folder (default: beside the
// model folder), check on N patches of context->dataset(). Shows the check (patches,
// mismatching outputs and the first few, mean distance to the labels) and the analytic resource / latency
// estimate per layer and in total against the part's capacity (table with CSV export, bars
// with PNG/SVG export). An existing non-empty output folder is replaced only after the user
// confirmed it (or with exportTo(..., true)); an output folder holding the model or the check
// data is refused. Errors: errorOccurred("<file>: <core's reason>") and a non-modal box; the
// window stays usable. GUI thread only.
#include <cstddef>
#include <memory>
#include <vector>

#include <QString>
#include <QWidget>

#include "core/hls/hlscheck.h"
#include "core/hls/hlsestimate.h"

class QBarCategoryAxis;
class QBarSet;
class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QProgressBar;
class QPushButton;
class QRadioButton;
class QSpinBox;
class QStandardItemModel;
class QTableView;
class QValueAxis;

namespace braggnac::ui {

class ChartView;
class Job;
class StudioContext;

class ExportPanel : public QWidget {
    Q_OBJECT
public:
    /// The C simulation check of the last export (present = false when none was run).
    struct Check {
        bool present = false;
        std::size_t patches = 0, outputs = 0, mismatches = 0;
        double meanDistance = 0; // px, NaN when the data are unlabelled
        std::vector<core::HlsMismatch> firstMismatches; // core::checkHlsExport's first ones
    };

    explicit ExportPanel(StudioContext *context, QWidget *parent = nullptr);
    ~ExportPanel() override;

    void useStudioModel();
    void setModelFolder(const QString &folder);
    QString modelFolder() const;

    void setOutputFolder(const QString &folder);
    QString outputFolder() const;
    void setReuseFactor(int reuse);
    void setClockMhz(double mhz);
    void setPart(const QString &name);
    /// Check on `patches` patches of the studio dataset (0: no check).
    void setCheckPatches(int patches);

    /// Exports to `folder` (the output folder field when empty). A non-empty folder is replaced
    /// only with `confirmed`; without it a confirmation box opens (objectName
    /// "confirmOverwriteBox") and nothing is written unless the user accepts.
    bool exportTo(const QString &folder = {}, bool confirmed = false);
    void cancel();
    bool isBusy() const;

    Job *job() const { return m_job; }
    const Check &lastCheck() const { return m_check; }
    /// The estimate of the last export (valid when hasEstimate()).
    const core::HlsEstimate &estimate() const { return m_estimate; }
    bool hasEstimate() const { return m_hasEstimate; }
    /// The folder the last export wrote ("" before one finished).
    QString exportedFolder() const { return m_exported; }
    bool defaultPrecision() const { return m_defaultPrecision; }
    QStandardItemModel *estimateModel() const { return m_table; }
    ChartView *resourceChart() const { return m_chartView; }
    QString checkText() const;
    QString statusText() const;

public Q_SLOTS:
    void exportDialog();
    void openFolder();
    void exportTableDialog();

Q_SIGNALS:
    void errorOccurred(const QString &message);
    void exportFinished(const QString &folder);
    void exportCancelled();

private:
    struct Outcome;

    void buildUi();
    void updateSource();
    void updateDefaultOutput();
    void updateButtons();
    void showOutcome(const Outcome &outcome);
    void onJobFinished();
    void onJobFailed(const QString &message);
    void onJobCancelled();
    void showError(const QString &message);
    void saveSettings() const;
    void restoreSettings();

    StudioContext *m_context;
    Job *m_job = nullptr;
    QString m_folder;
    QString m_actionPath;
    bool m_outEdited = false;
    std::shared_ptr<Outcome> m_outcome;
    Check m_check;
    core::HlsEstimate m_estimate;
    bool m_hasEstimate = false;
    bool m_defaultPrecision = false;
    QString m_exported;

    QRadioButton *m_studioSource = nullptr;
    QRadioButton *m_folderSource = nullptr;
    QLineEdit *m_folderEdit = nullptr;
    QPushButton *m_folderBrowse = nullptr;
    QLabel *m_modelInfo = nullptr;
    QSpinBox *m_reuse = nullptr;
    QDoubleSpinBox *m_clock = nullptr;
    QComboBox *m_part = nullptr;
    QLineEdit *m_out = nullptr;
    QPushButton *m_outBrowse = nullptr;
    QCheckBox *m_checkBox = nullptr;
    QSpinBox *m_checkN = nullptr;
    QLabel *m_checkData = nullptr;

    QPushButton *m_exportButton = nullptr;
    QPushButton *m_cancelButton = nullptr;
    QPushButton *m_openButton = nullptr;
    QPushButton *m_csvButton = nullptr;
    QProgressBar *m_progress = nullptr;
    QLabel *m_status = nullptr;
    QLabel *m_checkLabel = nullptr;
    QLabel *m_totalLabel = nullptr;
    QStandardItemModel *m_table = nullptr;
    QTableView *m_tableView = nullptr;
    ChartView *m_chartView = nullptr;
    QBarSet *m_usedSet = nullptr;
    QValueAxis *m_percentAxis = nullptr;
    QBarCategoryAxis *m_categories = nullptr;
};

} // namespace braggnac::ui
