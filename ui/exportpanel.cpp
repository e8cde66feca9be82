#include "ui/exportpanel.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <QBarCategoryAxis>
#include <QBarSet>
#include <QChart>
#include <QCheckBox>
#include <QComboBox>
#include <QDesktopServices>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFont>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QHorizontalBarSeries>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QProgressBar>
#include <QPushButton>
#include <QRadioButton>
#include <QSettings>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QSplitter>
#include <QStandardItemModel>
#include <QTableView>
#include <QUrl>
#include <QValueAxis>
#include <QVBoxLayout>

#include "core/arch/layerplan.h"
#include "core/common/error.h"
#include "core/compress/intref.h"
#include "core/compress/quantspec.h"
#include "core/hls/hlscheck.h"
#include "core/hls/hlsexport.h"
#include "core/io/patchdataset.h"
#include "core/nn/model.h"
#include "ui/chartview.h"
#include "ui/errors.h"
#include "ui/job.h"
#include "ui/studiocontext.h"
#include "ui/tableexport.h"

namespace braggnac::ui {

namespace {

/// A table cell showing `text` whose EditRole is the full-precision `value` (QStandardItem keeps
/// DisplayRole and EditRole in one slot; the CSV export reads EditRole).
class ValueItem : public QStandardItem {
public:
    ValueItem(const QString &text, QVariant value) : QStandardItem(text), m_value(std::move(value)) {}
    QVariant data(int role) const override
    {
        if (role == Qt::EditRole)
            return m_value;
        return QStandardItem::data(role);
    }

private:
    QVariant m_value;
};

bool folderHasEntries(const QString &path)
{
    const QFileInfo info(path);
    if (!info.exists())
        return false;
    if (!info.isDir())
        return true;
    return !QDir(path).entryList(QDir::AllEntries | QDir::NoDotAndDotDot | QDir::Hidden | QDir::System).isEmpty();
}

/// Is `inner` the folder `outer` or inside it (after resolving both)?
bool within(const QString &inner, const QString &outer)
{
    namespace fs = std::filesystem;
    std::error_code ec;
    const std::string o = fs::weakly_canonical(fs::absolute(outer.toStdString()), ec).string() + "/";
    const std::string i = fs::weakly_canonical(fs::absolute(inner.toStdString()), ec).string() + "/";
    return i.rfind(o, 0) == 0;
}

QString percent(std::int64_t used, std::int64_t capacity)
{
    return capacity > 0 ? QStringLiteral("%1 %").arg(100.0 * double(used) / double(capacity), 0, 'f', 1) : QStringLiteral("-");
}

} // namespace

struct ExportPanel::Outcome {
    core::HlsEstimate estimate;
    Check check;
    bool defaultPrecision = false;
};

ExportPanel::ExportPanel(StudioContext *context, QWidget *parent) : QWidget(parent), m_context(context)
{
    setObjectName(QStringLiteral("exportPanel"));
    m_job = new Job(tr("Exporting to HLS"), this);
    connect(m_job, &Job::progressUpdated, this, [this](double f, const QString &message) {
        m_progress->setValue(int(std::lround(1000 * std::clamp(f, 0.0, 1.0))));
        if (!message.isEmpty())
            m_status->setText(message);
    });
    connect(m_job, &Job::finished, this, &ExportPanel::onJobFinished);
    connect(m_job, &Job::failed, this, &ExportPanel::onJobFailed);
    connect(m_job, &Job::cancelled, this, &ExportPanel::onJobCancelled);
    buildUi();
    restoreSettings();
    connect(m_context, &StudioContext::modelChanged, this, &ExportPanel::updateSource);
    connect(m_context, &StudioContext::datasetChanged, this, &ExportPanel::updateSource);
    updateSource();
}

ExportPanel::~ExportPanel()
{
    disconnect(m_job, nullptr, this, nullptr);
    delete m_job; // cancels and joins a running export (it holds only shared state)
    m_job = nullptr;
}

void ExportPanel::buildUi()
{
    // --- model -------------------------------------------------------------------------------
    auto *sourceBox = new QGroupBox(tr("Model"));
    auto *sourceForm = new QFormLayout(sourceBox);
    m_studioSource = new QRadioButton(tr("Studio model (Train / Evaluate / Search / Compress)"));
    m_studioSource->setObjectName(QStringLiteral("studioSource"));
    m_studioSource->setChecked(true);
    m_folderSource = new QRadioButton(tr("Model folder:"));
    m_folderSource->setObjectName(QStringLiteral("folderSource"));
    m_folderEdit = new QLineEdit;
    m_folderEdit->setObjectName(QStringLiteral("modelFolder"));
    m_folderEdit->setPlaceholderText(tr("a (compressed) model folder"));
    m_folderBrowse = new QPushButton(tr("..."));
    auto *folderRow = new QHBoxLayout;
    folderRow->addWidget(m_folderSource);
    folderRow->addWidget(m_folderEdit, 1);
    folderRow->addWidget(m_folderBrowse);
    sourceForm->addRow(m_studioSource);
    sourceForm->addRow(folderRow);
    m_modelInfo = new QLabel;
    m_modelInfo->setObjectName(QStringLiteral("modelInfo"));
    m_modelInfo->setWordWrap(true);
    sourceForm->addRow(tr("Model:"), m_modelInfo);
    connect(m_studioSource, &QRadioButton::toggled, this, [this](bool on) {
        if (on)
            m_folder.clear();
        updateSource();
    });
    connect(m_folderSource, &QRadioButton::toggled, this, [this](bool on) {
        if (on)
            m_folder = m_folderEdit->text().trimmed();
        updateSource();
    });
    connect(m_folderEdit, &QLineEdit::editingFinished, this, [this] {
        if (!m_folderEdit->text().trimmed().isEmpty())
            setModelFolder(m_folderEdit->text().trimmed());
    });
    connect(m_folderBrowse, &QPushButton::clicked, this, [this] {
        auto *dialog = new QFileDialog(this, tr("Model folder to export"),
                                       QSettings().value(QStringLiteral("paths/models")).toString());
        dialog->setAttribute(Qt::WA_DeleteOnClose);
        dialog->setFileMode(QFileDialog::Directory);
        dialog->setOption(QFileDialog::ShowDirsOnly);
        connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) { setModelFolder(path); });
        dialog->open();
    });

    // --- options -----------------------------------------------------------------------------
    auto *optBox = new QGroupBox(tr("HLS options"));
    auto *form = new QFormLayout(optBox);
    m_reuse = new QSpinBox;
    m_reuse->setObjectName(QStringLiteral("reuseFactor"));
    m_reuse->setRange(1, 4096);
    m_reuse->setValue(1);
    m_reuse->setToolTip(tr("Multiplications shared per multiplier (1: fully parallel)"));
    form->addRow(tr("Reuse factor:"), m_reuse);
    m_clock = new QDoubleSpinBox;
    m_clock->setObjectName(QStringLiteral("clockMhz"));
    m_clock->setRange(1, 2000);
    m_clock->setDecimals(1);
    m_clock->setValue(200);
    m_clock->setSuffix(tr(" MHz"));
    form->addRow(tr("Clock:"), m_clock);
    m_part = new QComboBox;
    m_part->setObjectName(QStringLiteral("part"));
    for (const core::HlsPart &p : core::hlsParts()) {
        m_part->addItem(QStringLiteral("%1 (%2)").arg(QString::fromStdString(p.name), QString::fromStdString(p.number)),
                        QString::fromStdString(p.name));
        m_part->setItemData(m_part->count() - 1,
                            tr("%1 DSP, %2 LUT, %3 FF, %4 BRAM18").arg(p.dsp).arg(p.lut).arg(p.ff).arg(p.bram18),
                            Qt::ToolTipRole);
    }
    form->addRow(tr("Part:"), m_part);
    auto *outRow = new QHBoxLayout;
    m_out = new QLineEdit;
    m_out->setObjectName(QStringLiteral("outputFolder"));
    m_outBrowse = new QPushButton(tr("..."));
    outRow->addWidget(m_out, 1);
    outRow->addWidget(m_outBrowse);
    form->addRow(tr("Output folder:"), outRow);
    connect(m_out, &QLineEdit::textEdited, this, [this] { m_outEdited = true; });
    connect(m_outBrowse, &QPushButton::clicked, this, [this] {
        auto *dialog = new QFileDialog(this, tr("HLS project folder"), m_out->text());
        dialog->setAttribute(Qt::WA_DeleteOnClose);
        dialog->setAcceptMode(QFileDialog::AcceptSave);
        dialog->setFileMode(QFileDialog::AnyFile);
        dialog->setOption(QFileDialog::DontConfirmOverwrite); // exportTo asks itself
        connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) {
            m_outEdited = true;
            m_out->setText(path);
        });
        dialog->open();
    });
    auto *checkRow = new QHBoxLayout;
    m_checkBox = new QCheckBox(tr("C simulation on"));
    m_checkBox->setObjectName(QStringLiteral("checkEnabled"));
    m_checkBox->setChecked(true);
    m_checkN = new QSpinBox;
    m_checkN->setObjectName(QStringLiteral("checkPatches"));
    m_checkN->setRange(1, 1000000);
    m_checkN->setValue(100);
    checkRow->addWidget(m_checkBox);
    checkRow->addWidget(m_checkN);
    checkRow->addWidget(new QLabel(tr("patches")));
    checkRow->addStretch(1);
    form->addRow(tr("Check:"), checkRow);
    m_checkData = new QLabel;
    m_checkData->setObjectName(QStringLiteral("checkData"));
    m_checkData->setWordWrap(true);
    form->addRow(tr("Check data:"), m_checkData);
    connect(m_checkBox, &QCheckBox::toggled, this, [this] { m_checkN->setEnabled(m_checkBox->isChecked()); });

    auto *left = new QWidget;
    auto *leftLayout = new QVBoxLayout(left);
    leftLayout->setContentsMargins(0, 0, 0, 0);
    leftLayout->addWidget(sourceBox);
    leftLayout->addWidget(optBox);
    leftLayout->addStretch(1);

    // --- report ------------------------------------------------------------------------------
    m_checkLabel = new QLabel(tr("No export yet."));
    m_checkLabel->setObjectName(QStringLiteral("checkSummary"));
    m_checkLabel->setWordWrap(true);
    m_checkLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_totalLabel = new QLabel;
    m_totalLabel->setObjectName(QStringLiteral("estimateSummary"));
    m_totalLabel->setWordWrap(true);
    m_totalLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);

    auto *chart = new QChart;
    chart->setTitle(tr("Estimated resources, % of the part (analytic estimate, not synthesis)"));
    chart->legend()->setVisible(false);
    chart->setMargins(QMargins(4, 4, 4, 4));
    auto *series = new QHorizontalBarSeries;
    m_usedSet = new QBarSet(tr("used"));
    m_usedSet->setColor(QColor(0x3d, 0x6e, 0xa8));
    m_usedSet->append({0, 0, 0, 0});
    series->append(m_usedSet);
    chart->addSeries(series);
    m_categories = new QBarCategoryAxis(chart);
    m_categories->append({tr("BRAM18"), tr("FF"), tr("LUT"), tr("DSP")}); // bottom-up: DSP on top
    auto *categories = m_categories;
    m_percentAxis = new QValueAxis(chart);
    m_percentAxis->setRange(0, 100);
    m_percentAxis->setLabelFormat(QStringLiteral("%.0f %%"));
    chart->addAxis(categories, Qt::AlignLeft);
    chart->addAxis(m_percentAxis, Qt::AlignBottom);
    series->attachAxis(categories);
    series->attachAxis(m_percentAxis);
    m_chartView = new ChartView(chart);
    m_chartView->setObjectName(QStringLiteral("resourceChart"));
    m_chartView->setMinimumHeight(200);

    m_table = new QStandardItemModel(0, 11, this);
    m_table->setHorizontalHeaderLabels({tr("layer"), tr("kind"), tr("weights"), tr("pruned"), tr("multipliers"),
                                        tr("mult. on"), tr("DSP"), tr("LUT"), tr("FF"), tr("BRAM18"), tr("cycles")});
    m_tableView = new QTableView;
    m_tableView->setObjectName(QStringLiteral("estimateTable"));
    m_tableView->setModel(m_table);
    m_tableView->verticalHeader()->setVisible(false);
    m_tableView->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_tableView->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_tableView->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_tableView->horizontalHeader()->setStretchLastSection(true);

    auto *report = new QWidget;
    auto *reportLayout = new QVBoxLayout(report);
    reportLayout->setContentsMargins(0, 0, 0, 0);
    reportLayout->addWidget(m_checkLabel);
    reportLayout->addWidget(m_totalLabel);
    auto *reportSplit = new QSplitter(Qt::Vertical);
    reportSplit->addWidget(m_chartView);
    reportSplit->addWidget(m_tableView);
    reportSplit->setStretchFactor(0, 2);
    reportSplit->setStretchFactor(1, 3);
    reportSplit->setSizes({300, 450});
    reportLayout->addWidget(reportSplit, 1);

    auto *split = new QSplitter(Qt::Horizontal);
    split->addWidget(left);
    split->addWidget(report);
    split->setStretchFactor(0, 0);
    split->setStretchFactor(1, 1);
    split->setSizes({400, 900});

    // --- actions -----------------------------------------------------------------------------
    auto *buttons = new QHBoxLayout;
    m_exportButton = new QPushButton(tr("Export to HLS..."));
    m_exportButton->setObjectName(QStringLiteral("exportButton"));
    connect(m_exportButton, &QPushButton::clicked, this, &ExportPanel::exportDialog);
    m_cancelButton = new QPushButton(tr("Cancel"));
    m_cancelButton->setObjectName(QStringLiteral("cancelButton"));
    connect(m_cancelButton, &QPushButton::clicked, this, &ExportPanel::cancel);
    m_openButton = new QPushButton(tr("Open folder"));
    m_openButton->setObjectName(QStringLiteral("openFolderButton"));
    connect(m_openButton, &QPushButton::clicked, this, &ExportPanel::openFolder);
    m_csvButton = new QPushButton(tr("Export table (CSV)..."));
    m_csvButton->setObjectName(QStringLiteral("exportCsvButton"));
    connect(m_csvButton, &QPushButton::clicked, this, &ExportPanel::exportTableDialog);
    buttons->addWidget(m_exportButton);
    buttons->addWidget(m_cancelButton);
    buttons->addStretch(1);
    buttons->addWidget(m_csvButton);
    buttons->addWidget(m_openButton);
    m_progress = new QProgressBar;
    m_progress->setObjectName(QStringLiteral("progress"));
    m_progress->setRange(0, 1000);
    m_progress->setTextVisible(false);
    m_status = new QLabel;
    m_status->setObjectName(QStringLiteral("status"));
    m_status->setWordWrap(true);
    m_status->setTextInteractionFlags(Qt::TextSelectableByMouse);

    auto *layout = new QVBoxLayout(this);
    layout->addWidget(split, 1);
    layout->addLayout(buttons);
    layout->addWidget(m_progress);
    layout->addWidget(m_status);
}

// --- source and options --------------------------------------------------------------------

void ExportPanel::useStudioModel()
{
    m_folder.clear();
    m_studioSource->setChecked(true);
    updateSource();
}

void ExportPanel::setModelFolder(const QString &folder)
{
    m_folder = folder;
    m_folderEdit->setText(folder);
    {
        const QSignalBlocker block(m_folderSource);
        m_folderSource->setChecked(true);
    }
    updateSource();
}

QString ExportPanel::modelFolder() const
{
    return m_folder;
}

void ExportPanel::setOutputFolder(const QString &folder)
{
    m_outEdited = true;
    m_out->setText(folder);
}

QString ExportPanel::outputFolder() const
{
    return m_out->text().trimmed();
}

void ExportPanel::setReuseFactor(int reuse)
{
    m_reuse->setValue(reuse);
}

void ExportPanel::setClockMhz(double mhz)
{
    m_clock->setValue(mhz);
}

void ExportPanel::setPart(const QString &name)
{
    const int i = m_part->findData(name);
    if (i >= 0)
        m_part->setCurrentIndex(i);
}

void ExportPanel::setCheckPatches(int patches)
{
    m_checkBox->setChecked(patches > 0);
    if (patches > 0)
        m_checkN->setValue(patches);
}

void ExportPanel::updateSource()
{
    const auto model = m_context->model();
    if (!m_folder.isEmpty()) {
        m_modelInfo->setText(tr("%1 (loaded when the export starts)").arg(m_folder));
    } else if (model) {
        const QString where = m_context->modelPath().isEmpty() ? tr("not saved") : m_context->modelPath();
        m_modelInfo->setText(tr("%1: %2 parameters, %3 (%4)")
                                 .arg(QString::fromStdString(model->spec().name))
                                 .arg(model->parameterCount())
                                 .arg(model->quantization.is_null() ? tr("never quantised: exported at ap_fixed<16,6>")
                                                                    : tr("quantised"))
                                 .arg(where));
    } else {
        m_modelInfo->setText(tr("none: compress, train or load a model, or choose a folder"));
    }
    const auto data = m_context->dataset();
    if (!data) {
        m_checkData->setText(tr("no dataset: the export runs without the C simulation check"));
    } else {
        const QString path = m_context->datasetPath().isEmpty() ? tr("current dataset (not saved)") : m_context->datasetPath();
        m_checkData->setText(tr("the first patches of %1 (%2 patches of %3 x %3)").arg(path).arg(data->size()).arg(data->patchSize));
    }
    updateDefaultOutput();
    updateButtons();
}

void ExportPanel::updateDefaultOutput()
{
    if (m_outEdited && !m_out->text().trimmed().isEmpty())
        return;
    QString base = !m_folder.isEmpty() ? m_folder : (m_context->model() ? m_context->modelPath() : QString());
    while (base.endsWith(QLatin1Char('/')) && base.size() > 1)
        base.chop(1);
    QString out;
    if (!base.isEmpty()) {
        QString stem = base;
        if (stem.endsWith(QLatin1String(".model")))
            stem.chop(6);
        out = stem + QStringLiteral("-hls");
    } else {
        const QString dir = QSettings().value(QStringLiteral("paths/hls"), QDir::homePath()).toString();
        out = QDir(dir).filePath(QStringLiteral("braggnac_net-hls"));
    }
    m_out->setText(out);
}

void ExportPanel::saveSettings() const
{
    QSettings s;
    s.setValue(QStringLiteral("export/reuse"), m_reuse->value());
    s.setValue(QStringLiteral("export/clock"), m_clock->value());
    s.setValue(QStringLiteral("export/part"), m_part->currentData().toString());
    s.setValue(QStringLiteral("export/check"), m_checkBox->isChecked());
    s.setValue(QStringLiteral("export/checkN"), m_checkN->value());
    if (!outputFolder().isEmpty())
        s.setValue(QStringLiteral("paths/hls"), QFileInfo(outputFolder()).absolutePath());
}

void ExportPanel::restoreSettings()
{
    QSettings s;
    m_reuse->setValue(s.value(QStringLiteral("export/reuse"), 1).toInt());
    m_clock->setValue(s.value(QStringLiteral("export/clock"), 200.0).toDouble());
    setPart(s.value(QStringLiteral("export/part"), QStringLiteral("xcu250")).toString());
    m_checkBox->setChecked(s.value(QStringLiteral("export/check"), true).toBool());
    m_checkN->setValue(s.value(QStringLiteral("export/checkN"), 100).toInt());
}

// --- export --------------------------------------------------------------------------------

bool ExportPanel::isBusy() const
{
    return m_job->isRunning();
}

void ExportPanel::exportDialog()
{
    if (outputFolder().isEmpty()) {
        auto *dialog = new QFileDialog(this, tr("HLS project folder"), QDir::homePath());
        dialog->setAttribute(Qt::WA_DeleteOnClose);
        dialog->setAcceptMode(QFileDialog::AcceptSave);
        dialog->setFileMode(QFileDialog::AnyFile);
        dialog->setOption(QFileDialog::DontConfirmOverwrite);
        connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) {
            setOutputFolder(path);
            exportTo(path);
        });
        dialog->open();
        return;
    }
    exportTo();
}

bool ExportPanel::exportTo(const QString &givenFolder, bool confirmed)
{
    const QString out = givenFolder.trimmed().isEmpty() ? outputFolder() : givenFolder.trimmed();
    if (out != outputFolder() && !out.isEmpty())
        setOutputFolder(out);
    if (m_job->isRunning()) {
        showError(tr("%1: busy; cancel or wait for the running export").arg(out));
        return false;
    }
    if (out.isEmpty()) {
        showError(tr("export: no output folder given"));
        return false;
    }
    const std::shared_ptr<const core::Model> studioModel = m_folder.isEmpty() ? m_context->model() : nullptr;
    if (m_folder.isEmpty() && !studioModel) {
        showError(tr("export: no model; compress, train or load one, or choose a model folder"));
        return false;
    }
    // The output is replaced as a whole: never a folder holding an input of the export.
    const std::shared_ptr<const core::PatchDataset> data = m_checkBox->isChecked() ? m_context->dataset() : nullptr;
    const QString dataPath = m_context->datasetPath();
    const QString modelPath = m_folder.isEmpty() ? m_context->modelPath() : m_folder;
    for (const QString &in : {modelPath, data ? dataPath : QString()})
        if (!in.isEmpty() && within(in, out)) {
            showError(tr("%1: holds an input of the export (%2); choose another output folder").arg(out, in));
            return false;
        }
    if (!confirmed && folderHasEntries(out)) {
        auto *box = new QMessageBox(QMessageBox::Question, tr("Replace HLS project?"),
                                    tr("%1 is not empty. Replace everything in it with the new HLS project?").arg(out),
                                    QMessageBox::Yes | QMessageBox::No, this);
        box->setObjectName(QStringLiteral("confirmOverwriteBox"));
        box->setDefaultButton(QMessageBox::No);
        box->setAttribute(Qt::WA_DeleteOnClose);
        connect(box, &QMessageBox::finished, this, [this, box, out](int) {
            if (box->clickedButton() == box->button(QMessageBox::Yes))
                exportTo(out, true);
            else
                m_status->setText(tr("Not exported: %1 left as it was").arg(out));
        });
        box->open();
        m_status->setText(tr("%1 is not empty: confirm to replace it").arg(out));
        return false;
    }
    if (data && data->patchSize <= 0) {
        showError(tr("%1: no patches to check").arg(dataPath));
        return false;
    }
    saveSettings();

    core::HlsOptions opt;
    opt.reuseFactor = m_reuse->value();
    opt.clockMhz = m_clock->value();
    opt.part = m_part->currentData().toString().toStdString();
    const std::size_t nWanted = m_checkBox->isChecked() ? std::size_t(m_checkN->value()) : 0;
    const std::string folder = m_folder.toStdString();
    const std::string outPath = out.toStdString();
    const std::string dataName = dataPath.isEmpty() ? std::string("the studio dataset") : dataPath.toStdString();
    const bool force = confirmed;
    auto outcome = std::make_shared<Outcome>();
    const bool started = m_job->start([studioModel, folder, data, dataName, opt, nWanted, outPath, force,
                                       outcome](const core::Monitor &monitor) mutable {
        std::shared_ptr<const core::Model> model = studioModel;
        if (!model) {
            monitor.report(0, "loading " + folder);
            model = std::make_shared<const core::Model>(core::Model::load(folder));
        }
        const core::LayerPlan plan = core::LayerPlan::lower(model->spec());
        core::checkHlsSupported(plan);
        core::QuantSpec spec;
        if (model->quantization.is_null()) {
            opt.defaultPrecision = true;
            spec = core::defaultHlsQuantSpec(plan);
        } else {
            spec = core::QuantSpec::fromJson(model->quantization, plan,
                                             (folder.empty() ? std::string("the studio model") : folder) + "/quantization.json");
        }
        const core::IntegerReference ref(plan, model->namedParameters(), spec);
        std::size_t n = 0;
        if (data && nWanted > 0)
            n = core::hlsCheckPatchCount(*data, plan.spec.inputSize, nWanted, dataName); // before anything is written
        monitor.check();
        monitor.report(0.05, "writing the HLS project " + outPath);
        outcome->estimate = core::exportHls(ref, opt, outPath, force, n ? data->patches.data() : nullptr, n);
        outcome->defaultPrecision = opt.defaultPrecision;
        if (n == 0)
            return;
        // The check of `braggnac export-hls --check` (core/hls/hlscheck.h); cancel ends the C simulation.
        const core::HlsCheck result = core::checkHlsExport(outPath, ref, *data, n, monitor.sub(0.15, 1.0), dataName);
        Check &c = outcome->check;
        c.present = true;
        c.patches = result.patches;
        c.outputs = result.outputs;
        c.mismatches = result.mismatches;
        c.meanDistance = result.meanDistance.value_or(std::numeric_limits<double>::quiet_NaN());
        c.firstMismatches = result.firstMismatches;
        monitor.report(1, "done");
    });
    if (!started)
        return false;
    m_actionPath = out;
    m_outcome = outcome;
    m_progress->setValue(0);
    m_status->setText(tr("Exporting to %1...").arg(out));
    updateButtons();
    return true;
}

void ExportPanel::cancel()
{
    if (m_job->isRunning()) {
        m_status->setText(tr("Cancelling (a running C simulation is stopped)..."));
        m_job->cancel();
    }
}

void ExportPanel::showOutcome(const Outcome &o)
{
    m_estimate = o.estimate;
    m_hasEstimate = true;
    m_check = o.check;
    m_defaultPrecision = o.defaultPrecision;
    const core::HlsEstimate &e = o.estimate;
    const core::HlsPart &part = e.part;

    QString checkText;
    if (o.check.present) {
        checkText = tr("C simulation vs integer reference: %1 patches, %2 mismatching outputs of %3")
                        .arg(o.check.patches)
                        .arg(o.check.mismatches)
                        .arg(o.check.outputs);
        if (std::isfinite(o.check.meanDistance))
            checkText += tr("; mean distance to the labels %1 px").arg(o.check.meanDistance, 0, 'f', 4);
        for (std::size_t i = 0; i < std::min<std::size_t>(3, o.check.firstMismatches.size()); ++i) {
            const core::HlsMismatch &m = o.check.firstMismatches[i];
            checkText += (i == 0 ? tr("\nFirst mismatches: ") : QStringLiteral("; "))
                         + tr("patch %1 output %2: expected %3, got %4")
                               .arg(m.patch)
                               .arg(m.output)
                               .arg(m.expected, 0, 'g', 10)
                               .arg(m.got ? QString::number(*m.got, 'g', 10) : tr("nothing"));
        }
        m_checkLabel->setStyleSheet(o.check.mismatches == 0 ? QStringLiteral("color: #1a7f37; font-weight: bold;")
                                                            : QStringLiteral("color: #c62828; font-weight: bold;"));
    } else {
        checkText = tr("No C simulation check (no check dataset).");
        m_checkLabel->setStyleSheet(QString());
    }
    if (o.defaultPrecision)
        checkText += tr("\nThe model was never quantised: exported at ap_fixed<16,6> (AP_RND, AP_SAT).");
    m_checkLabel->setText(checkText);
    m_totalLabel->setText(tr("Estimate (analytic, not synthesis) for %1 at %2 MHz, reuse factor %3: latency %4 cycles = "
                             "%5 us; DSP %6 of %7 (%8), LUT %9 of %10 (%11), FF %12 of %13 (%14), BRAM18 %15 of %16 (%17)")
                              .arg(QString::fromStdString(part.number))
                              .arg(e.clockMhz)
                              .arg(e.reuseFactor)
                              .arg(e.cycles)
                              .arg(e.latencyUs, 0, 'f', 3)
                              .arg(e.dsp)
                              .arg(part.dsp)
                              .arg(percent(e.dsp, part.dsp))
                              .arg(e.lut)
                              .arg(part.lut)
                              .arg(percent(e.lut, part.lut))
                              .arg(e.ff)
                              .arg(part.ff)
                              .arg(percent(e.ff, part.ff))
                              .arg(e.bram18)
                              .arg(part.bram18)
                              .arg(percent(e.bram18, part.bram18)));

    m_table->removeRows(0, m_table->rowCount());
    const auto addRow = [this](const QStringList &texts, const QList<QVariant> &values, bool bold) {
        QList<QStandardItem *> items;
        for (int c = 0; c < texts.size(); ++c) {
            auto *item = new ValueItem(texts[c], values[c]);
            if (c >= 2)
                item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
            if (bold) {
                QFont f = item->font();
                f.setBold(true);
                item->setFont(f);
            }
            items << item;
        }
        m_table->appendRow(items);
    };
    for (const core::LayerEstimate &l : e.layers) {
        const QString on = l.multipliers > 0 ? (l.dspMultipliers ? tr("DSP") : tr("LUT")) : QString();
        addRow({QString::fromStdString(l.name), QString::fromStdString(l.kind), QString::number(l.weights),
                QString::number(l.pruned), QString::number(l.multipliers), on, QString::number(l.dsp),
                QString::number(l.lut), QString::number(l.ff), QString::number(l.bram18), QString::number(l.cycles)},
               {QString::fromStdString(l.name), QString::fromStdString(l.kind), qlonglong(l.weights), qlonglong(l.pruned),
                qlonglong(l.multipliers), on, qlonglong(l.dsp), qlonglong(l.lut), qlonglong(l.ff), qlonglong(l.bram18),
                qlonglong(l.cycles)},
               false);
    }
    std::int64_t weights = 0, pruned = 0, multipliers = 0;
    for (const core::LayerEstimate &l : e.layers) {
        weights += l.weights;
        pruned += l.pruned;
        multipliers += l.multipliers;
    }
    addRow({tr("total"), QString(), QString::number(weights), QString::number(pruned), QString::number(multipliers),
            QString(), QString::number(e.dsp), QString::number(e.lut), QString::number(e.ff), QString::number(e.bram18),
            QString::number(e.cycles)},
           {tr("total"), QString(), qlonglong(weights), qlonglong(pruned), qlonglong(multipliers), QString(),
            qlonglong(e.dsp), qlonglong(e.lut), qlonglong(e.ff), qlonglong(e.bram18), qlonglong(e.cycles)},
           true);
    addRow({tr("%1 capacity").arg(QString::fromStdString(part.name)), QString(), QString(), QString(), QString(), QString(),
            QString::number(part.dsp), QString::number(part.lut), QString::number(part.ff), QString::number(part.bram18),
            QString()},
           {tr("%1 capacity").arg(QString::fromStdString(part.name)), QString(), QString(), QString(), QString(), QString(),
            qlonglong(part.dsp), qlonglong(part.lut), qlonglong(part.ff), qlonglong(part.bram18), QString()},
           true);

    // Bars, bottom-up: BRAM18, FF, LUT, DSP.
    const auto pct = [](std::int64_t used, std::int64_t cap) {
        return cap > 0 ? std::round(1000.0 * double(used) / double(cap)) / 10.0 : 0.0;
    };
    const double values[4] = {pct(e.bram18, part.bram18), pct(e.ff, part.ff), pct(e.lut, part.lut), pct(e.dsp, part.dsp)};
    double top = 100;
    for (int i = 0; i < 4; ++i) {
        m_usedSet->replace(i, values[i]);
        top = std::max(top, values[i] * 1.15);
    }
    m_percentAxis->setRange(0, top);
    // The numbers beside the bars, in the category labels (bar value labels are unreliable on
    // horizontal bars in Qt 6.4).
    const auto label = [](const QString &name, std::int64_t used, std::int64_t cap) {
        return QStringLiteral("%1 %2 / %3").arg(name).arg(used).arg(cap);
    };
    m_categories->clear();
    m_categories->append({label(tr("BRAM18"), e.bram18, part.bram18), label(tr("FF"), e.ff, part.ff),
                          label(tr("LUT"), e.lut, part.lut), label(tr("DSP"), e.dsp, part.dsp)});
}

void ExportPanel::onJobFinished()
{
    std::shared_ptr<Outcome> outcome = std::move(m_outcome);
    m_progress->setValue(0);
    if (!outcome) {
        updateButtons();
        return;
    }
    showOutcome(*outcome);
    m_exported = m_actionPath;
    QString text = tr("Exported %1").arg(m_actionPath);
    if (m_check.present)
        text += m_check.mismatches == 0 ? tr("; the C simulation matches the integer reference bit for bit")
                                        : tr("; the C simulation DIFFERS from the integer reference (%1 outputs)")
                                              .arg(m_check.mismatches);
    m_status->setText(text);
    Q_EMIT m_context->statusMessage(text, 5000);
    updateButtons();
    Q_EMIT exportFinished(m_actionPath);
}

void ExportPanel::onJobFailed(const QString &message)
{
    m_outcome.reset();
    m_progress->setValue(0);
    updateButtons();
    // Core messages name their file (the output folder, the model folder, the C simulation's
    // log); those that do not (an unsupported layer) get the model's name.
    const QString model = m_folder.isEmpty() ? (m_context->modelPath().isEmpty() ? tr("the studio model")
                                                                                 : m_context->modelPath())
                                             : m_folder;
    const QString data = m_context->datasetPath();
    const bool named = message.contains(m_actionPath) || message.contains(model) || (!data.isEmpty() && message.contains(data));
    showError(named ? message : withFile(model, message));
}

void ExportPanel::onJobCancelled()
{
    m_outcome.reset();
    m_progress->setValue(0);
    // An earlier check no longer describes the output folder: never shown as this export's.
    m_check = Check{};
    m_checkLabel->setText(tr("No C simulation check: the export was cancelled."));
    m_checkLabel->setStyleSheet(QString());
    m_status->setText(tr("Export cancelled"));
    updateButtons();
    Q_EMIT exportCancelled();
}

void ExportPanel::openFolder()
{
    const QString folder = m_exported.isEmpty() ? outputFolder() : m_exported;
    if (folder.isEmpty() || !QFileInfo(folder).isDir()) {
        showError(tr("%1: no such folder (export first)").arg(folder));
        return;
    }
    QDesktopServices::openUrl(QUrl::fromLocalFile(QFileInfo(folder).absoluteFilePath()));
}

void ExportPanel::exportTableDialog()
{
    if (m_table->rowCount() == 0) {
        showError(tr("export table: no estimate yet"));
        return;
    }
    QSettings settings;
    auto *dialog = new QFileDialog(this, tr("Export HLS estimate"),
                                   QDir(settings.value(QStringLiteral("paths/export")).toString())
                                       .filePath(QStringLiteral("hls-estimate.csv")),
                                   tr("CSV (*.csv)"));
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setAcceptMode(QFileDialog::AcceptSave);
    dialog->setDefaultSuffix(QStringLiteral("csv"));
    connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) {
        QSettings().setValue(QStringLiteral("paths/export"), QFileInfo(path).absolutePath());
        try {
            exportTableCsv(*m_table, path, Qt::EditRole);
            m_status->setText(tr("Saved %1").arg(path));
        } catch (const std::exception &e) {
            showError(QString::fromStdString(e.what()));
        }
    });
    dialog->open();
}

QString ExportPanel::checkText() const
{
    return m_checkLabel->text();
}

QString ExportPanel::statusText() const
{
    return m_status->text();
}

void ExportPanel::updateButtons()
{
    const bool busy = m_job->isRunning();
    m_exportButton->setEnabled(!busy && (!m_folder.isEmpty() || m_context->model()));
    m_cancelButton->setEnabled(busy);
    m_openButton->setEnabled(!busy && !m_exported.isEmpty());
    m_csvButton->setEnabled(m_table->rowCount() > 0);
    for (QWidget *w : std::initializer_list<QWidget *>{m_studioSource, m_folderSource, m_folderEdit, m_folderBrowse, m_reuse,
                                                       m_clock, m_part, m_out, m_outBrowse, m_checkBox})
        w->setEnabled(!busy);
    m_checkN->setEnabled(!busy && m_checkBox->isChecked());
}

void ExportPanel::showError(const QString &message)
{
    m_status->setText(message);
    Q_EMIT errorOccurred(message);
    showErrorBox(this, tr("Export to HLS"), message, QStringLiteral("exportErrorBox"));
}

} // namespace braggnac::ui
