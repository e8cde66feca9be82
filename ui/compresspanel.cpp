#include "ui/compresspanel.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>

#include <QBrush>
#include <QChart>
#include <QCheckBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFont>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QItemSelectionModel>
#include <QLabel>
#include <QLegendMarker>
#include <QLineEdit>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QMessageBox>
#include <QPen>
#include <QProgressBar>
#include <QPushButton>
#include <QRadioButton>
#include <QScatterSeries>
#include <QSettings>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QSplitter>
#include <QStandardItemModel>
#include <QTableView>
#include <QValueAxis>
#include <QVBoxLayout>

#include "core/arch/archspec.h"
#include "core/common/error.h"
#include "core/cost/cost.h"
#include "core/io/patchdataset.h"
#include "core/nn/model.h"
#include "core/nn/trainer.h"
#include "ui/chartview.h"
#include "ui/errors.h"
#include "ui/job.h"
#include "ui/studiocontext.h"
#include "ui/tableexport.h"

namespace braggnac::ui {

namespace {

const QColor kCurveColours[] = {QColor(0x1f, 0x77, 0xb4), QColor(0xd6, 0x27, 0x28), QColor(0x2c, 0xa0, 0x2c),
                                QColor(0xff, 0x7f, 0x0e), QColor(0x94, 0x67, 0xbd), QColor(0x8c, 0x56, 0x4b),
                                QColor(0xe3, 0x77, 0xc2), QColor(0x17, 0xbe, 0xcf)};

/// The distance the core chooses by: validation, or test when the validation split is empty.
double score(const core::CompressRecord &r)
{
    return std::isfinite(r.validation) ? r.validation : r.test;
}

QString px(double v)
{
    return std::isfinite(v) ? QString::number(v, 'f', 4) : QStringLiteral("-");
}

bool sameRecord(const core::CompressRecord &a, const core::CompressRecord &b)
{
    const auto same = [](double x, double y) { return x == y || (std::isnan(x) && std::isnan(y)); };
    return a.bits == b.bits && a.round == b.round && a.params == b.params && same(a.sparsity, b.sparsity)
        && same(a.bops, b.bops) && same(a.validation, b.validation) && same(a.test, b.test);
}

std::vector<int> parseBitsGrid(const QString &text, QString *error)
{
    std::vector<int> bits;
    for (const QString &part : text.split(QLatin1Char(','), Qt::KeepEmptyParts)) {
        bool ok = false;
        const int b = part.trimmed().toInt(&ok);
        if (!ok) {
            *error = QObject::tr("bits grid: '%1' is not an integer (expected e.g. 4,6,8,12)").arg(part.trimmed());
            return {};
        }
        if (b < 2 || b > 16) {
            *error = QObject::tr("bits grid: %1 bits: quantisation-aware training holds formats of 2..16 bits").arg(b);
            return {};
        }
        if (std::find(bits.begin(), bits.end(), b) == bits.end())
            bits.push_back(b);
    }
    if (bits.empty())
        *error = QObject::tr("bits grid: empty (expected e.g. 4,6,8,12)");
    return bits;
}

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

} // namespace

struct CompressPanel::Feed {
    std::mutex mutex;
    std::vector<core::CompressRecord> pending;
};

struct CompressPanel::Outcome {
    std::shared_ptr<const core::Model> start;
    std::shared_ptr<const core::PatchDataset> data;
    core::CompressOptions options;
    core::CompressResult result;
    double floatBops = 0;
    double floatDistance = std::numeric_limits<double>::quiet_NaN();
    std::shared_ptr<core::Model> saved; // Save: the model written
};

CompressPanel::CompressPanel(StudioContext *context, QWidget *parent)
    : QWidget(parent), m_context(context), m_feed(std::make_shared<Feed>())
{
    setObjectName(QStringLiteral("compressPanel"));
    m_job = new Job(tr("Compressing"), this);
    connect(m_job, &Job::progressUpdated, this, [this](double f, const QString &message) {
        m_progress->setValue(int(std::lround(1000 * std::clamp(f, 0.0, 1.0))));
        if (!message.isEmpty())
            m_status->setText(message);
    });
    connect(m_job, &Job::finished, this, &CompressPanel::onJobFinished);
    connect(m_job, &Job::failed, this, &CompressPanel::onJobFailed);
    connect(m_job, &Job::cancelled, this, &CompressPanel::onJobCancelled);
    m_feedTimer.setInterval(40);
    connect(&m_feedTimer, &QTimer::timeout, this, &CompressPanel::drainFeed);
    m_braggnnBops = core::computeCost(core::builtinArch("braggnn")).bops;
    buildUi();
    restoreSettings();
    connect(m_context, &StudioContext::modelChanged, this, &CompressPanel::updateSource);
    connect(m_context, &StudioContext::datasetChanged, this, &CompressPanel::updateSource);
    updateSource();
}

CompressPanel::~CompressPanel()
{
    m_feedTimer.stop();
    disconnect(m_job, nullptr, this, nullptr);
    delete m_job; // cancels and joins a running compression (it holds only shared state)
    m_job = nullptr;
}

void CompressPanel::buildUi()
{
    // --- model and data ----------------------------------------------------------------------
    auto *sourceBox = new QGroupBox(tr("Model and data"));
    auto *sourceForm = new QFormLayout(sourceBox);
    m_studioSource = new QRadioButton(tr("Studio model (Train / Evaluate / Search \"Use this model\")"));
    m_studioSource->setObjectName(QStringLiteral("studioSource"));
    m_folderSource = new QRadioButton(tr("Model folder:"));
    m_folderSource->setObjectName(QStringLiteral("folderSource"));
    m_studioSource->setChecked(true);
    m_folderEdit = new QLineEdit;
    m_folderEdit->setObjectName(QStringLiteral("modelFolder"));
    m_folderEdit->setPlaceholderText(tr("a trained model folder"));
    m_folderBrowse = new QPushButton(tr("..."));
    auto *folderRow = new QHBoxLayout;
    folderRow->addWidget(m_folderSource);
    folderRow->addWidget(m_folderEdit, 1);
    folderRow->addWidget(m_folderBrowse);
    m_trialButton = new QPushButton(tr("Selected Search trial"));
    m_trialButton->setObjectName(QStringLiteral("selectedTrialButton"));
    m_trialButton->setToolTip(tr("Compress the model folder of the trial selected in the Search stage's inspector"));
    m_trialButton->setVisible(false);
    connect(m_trialButton, &QPushButton::clicked, this, &CompressPanel::useSelectedTrial);
    auto *studioRow = new QHBoxLayout;
    studioRow->addWidget(m_studioSource, 1);
    studioRow->addWidget(m_trialButton);
    sourceForm->addRow(studioRow);
    sourceForm->addRow(folderRow);
    m_modelInfo = new QLabel;
    m_modelInfo->setObjectName(QStringLiteral("modelInfo"));
    m_modelInfo->setWordWrap(true);
    sourceForm->addRow(tr("Model:"), m_modelInfo);
    m_datasetInfo = new QLabel;
    m_datasetInfo->setObjectName(QStringLiteral("datasetInfo"));
    m_datasetInfo->setWordWrap(true);
    sourceForm->addRow(tr("Dataset:"), m_datasetInfo);
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
        auto *dialog = new QFileDialog(this, tr("Model folder to compress"),
                                       QSettings().value(QStringLiteral("paths/models")).toString());
        dialog->setAttribute(Qt::WA_DeleteOnClose);
        dialog->setFileMode(QFileDialog::Directory);
        dialog->setOption(QFileDialog::ShowDirsOnly);
        connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) { setModelFolder(path); });
        dialog->open();
    });

    // --- options -----------------------------------------------------------------------------
    auto *optBox = new QGroupBox(tr("Compression options"));
    auto *form = new QFormLayout(optBox);
    form->setFieldGrowthPolicy(QFormLayout::FieldsStayAtSizeHint);
    m_bitsGrid = new QLineEdit;
    m_bitsGrid->setObjectName(QStringLiteral("bitsGrid"));
    m_bitsGrid->setToolTip(tr("Total bits of every weight, bias and activation format, one series per width (2..16)"));
    form->addRow(tr("Bits grid:"), m_bitsGrid);
    m_rounds = new QSpinBox;
    m_rounds->setObjectName(QStringLiteral("pruneRounds"));
    m_rounds->setRange(0, 1000);
    form->addRow(tr("Pruning rounds:"), m_rounds);
    m_fraction = new QDoubleSpinBox;
    m_fraction->setObjectName(QStringLiteral("pruneFraction"));
    m_fraction->setRange(0.01, 0.99);
    m_fraction->setDecimals(2);
    m_fraction->setSingleStep(0.05);
    m_fraction->setToolTip(tr("Fraction of the remaining weights pruned per round"));
    form->addRow(tr("Fraction per round:"), m_fraction);
    m_structured = new QCheckBox(tr("whole output channels"));
    m_structured->setObjectName(QStringLiteral("structured"));
    form->addRow(tr("Structured:"), m_structured);
    m_epochs = new QSpinBox;
    m_epochs->setObjectName(QStringLiteral("epochsPerRound"));
    m_epochs->setRange(0, 100000);
    form->addRow(tr("Epochs per round:"), m_epochs);
    m_target = new QDoubleSpinBox;
    m_target->setObjectName(QStringLiteral("targetDistance"));
    m_target->setRange(0, 1000);
    m_target->setDecimals(4);
    m_target->setSingleStep(0.01);
    m_target->setSuffix(tr(" px"));
    m_target->setSpecialValueText(tr("none (best validation)"));
    form->addRow(tr("Target distance:"), m_target);
    m_learningRate = new QLineEdit;
    m_learningRate->setObjectName(QStringLiteral("learningRate"));
    form->addRow(tr("Learning rate (Adam):"), m_learningRate);
    m_batch = new QSpinBox;
    m_batch->setObjectName(QStringLiteral("batchSize"));
    m_batch->setRange(1, 1 << 20);
    form->addRow(tr("Batch size:"), m_batch);
    m_seed = new QSpinBox;
    m_seed->setObjectName(QStringLiteral("seed"));
    m_seed->setRange(0, 2147483647);
    form->addRow(tr("Seed:"), m_seed);
    m_threads = new QSpinBox;
    m_threads->setObjectName(QStringLiteral("threads"));
    m_threads->setRange(0, 1024);
    m_threads->setSpecialValueText(tr("all"));
    form->addRow(tr("Threads:"), m_threads);
    core::CompressOptions defaults;
    defaults.train.learningRate = 5e-4; // the compress verb's defaults
    defaults.train.batchSize = 256;
    defaults.train.seed = 1;
    defaults.train.threads = 0;
    setOptions(defaults);

    auto *left = new QWidget;
    auto *leftLayout = new QVBoxLayout(left);
    leftLayout->setContentsMargins(0, 0, 0, 0);
    leftLayout->addWidget(sourceBox);
    leftLayout->addWidget(optBox);
    leftLayout->addStretch(1);

    // --- chart -------------------------------------------------------------------------------
    auto *chart = new QChart;
    chart->setTitle(tr("Compression records: standard BOPs against validation distance"));
    chart->legend()->setAlignment(Qt::AlignBottom);
    chart->setMargins(QMargins(4, 4, 4, 4));
    m_xAxis = new QLogValueAxis(chart);
    m_xAxis->setTitleText(tr("standard BOPs (log)"));
    m_xAxis->setLabelFormat(QStringLiteral("%.0e"));
    m_xAxis->setBase(10);
    m_xAxis->setMinorTickCount(-1);
    m_yAxis = new QValueAxis(chart);
    m_yAxis->setTitleText(tr("validation mean distance (px)"));
    m_yAxis->setLabelFormat(QStringLiteral("%.3f"));
    chart->addAxis(m_xAxis, Qt::AlignBottom);
    chart->addAxis(m_yAxis, Qt::AlignLeft);
    m_braggnnLine = new QLineSeries;
    m_braggnnLine->setName(tr("braggnn float32"));
    m_braggnnLine->setPen(QPen(QColor(0x55, 0x55, 0x55), 1.5, Qt::DashLine));
    m_floatPoint = new QScatterSeries;
    m_floatPoint->setName(tr("float start model"));
    m_floatPoint->setMarkerShape(QScatterSeries::MarkerShapeRectangle);
    m_floatPoint->setMarkerSize(11);
    m_floatPoint->setColor(QColor(0x33, 0x33, 0x33));
    m_chosenPoint = new QScatterSeries;
    m_chosenPoint->setName(tr("chosen"));
    m_chosenPoint->setMarkerSize(17);
    m_chosenPoint->setColor(Qt::transparent);
    m_chosenPoint->setBorderColor(QColor(0x10, 0x10, 0x10));
    m_chosenPoint->setPen(QPen(QColor(0x10, 0x10, 0x10), 2));
    m_selectedPoint = new QScatterSeries;
    m_selectedPoint->setName(tr("selected"));
    m_selectedPoint->setMarkerSize(13);
    m_selectedPoint->setColor(QColor(0xff, 0xd7, 0x00));
    for (QAbstractSeries *s : std::initializer_list<QAbstractSeries *>{m_braggnnLine, m_floatPoint, m_chosenPoint,
                                                                        m_selectedPoint}) {
        chart->addSeries(s);
        s->attachAxis(m_xAxis);
        s->attachAxis(m_yAxis);
    }
    for (QLegendMarker *m : chart->legend()->markers(m_selectedPoint))
        m->setVisible(false);
    m_chartView = new ChartView(chart);
    m_chartView->setObjectName(QStringLiteral("compressChart"));
    m_chartView->setMinimumHeight(280);
    resetChart();

    // --- table -------------------------------------------------------------------------------
    m_records = new QStandardItemModel(0, ColumnCount, this);
    m_records->setHorizontalHeaderLabels({tr("bits"), tr("round"), tr("sparsity"), tr("BOPs"), tr("x fewer BOPs"),
                                          tr("params"), tr("validation (px)"), tr("test (px)"), tr("chosen")});
    m_records->setHeaderData(ColReduction, Qt::Horizontal,
                             tr("How many times fewer standard BOPs than braggnn in float32 (%1)").arg(m_braggnnBops, 0, 'e', 4),
                             Qt::ToolTipRole);
    m_table = new QTableView;
    m_table->setObjectName(QStringLiteral("recordTable"));
    m_table->setModel(m_records);
    m_table->verticalHeader()->setVisible(false);
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setSelectionMode(QAbstractItemView::SingleSelection);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    m_table->setMinimumHeight(120);
    connect(m_table->selectionModel(), &QItemSelectionModel::currentRowChanged, this,
            [this](const QModelIndex &current) {
                m_selectedPoint->clear();
                const int row = current.isValid() ? current.row() : -1;
                if (row >= 0 && row < int(m_shown.size())) {
                    const auto &r = m_shown[std::size_t(row)];
                    if (r.bops > 0 && std::isfinite(score(r)))
                        m_selectedPoint->append(r.bops, score(r));
                }
                updateButtons();
            });

    auto *resultsSplit = new QSplitter(Qt::Vertical);
    resultsSplit->addWidget(m_chartView);
    resultsSplit->addWidget(m_table);
    resultsSplit->setStretchFactor(0, 3);
    resultsSplit->setStretchFactor(1, 2);
    resultsSplit->setSizes({560, 300});

    auto *split = new QSplitter(Qt::Horizontal);
    split->addWidget(left);
    split->addWidget(resultsSplit);
    split->setStretchFactor(0, 0);
    split->setStretchFactor(1, 1);
    split->setSizes({380, 900});

    // --- actions -----------------------------------------------------------------------------
    auto *buttons = new QHBoxLayout;
    m_runButton = new QPushButton(tr("Compress"));
    m_runButton->setObjectName(QStringLiteral("compressButton"));
    connect(m_runButton, &QPushButton::clicked, this, &CompressPanel::startCompress);
    m_cancelButton = new QPushButton(tr("Cancel"));
    m_cancelButton->setObjectName(QStringLiteral("cancelButton"));
    connect(m_cancelButton, &QPushButton::clicked, this, &CompressPanel::cancel);
    m_saveButton = new QPushButton(tr("Save selected as model..."));
    m_saveButton->setObjectName(QStringLiteral("saveSelectedButton"));
    connect(m_saveButton, &QPushButton::clicked, this, &CompressPanel::saveSelectedDialog);
    m_csvButton = new QPushButton(tr("Export table (CSV)..."));
    m_csvButton->setObjectName(QStringLiteral("exportCsvButton"));
    connect(m_csvButton, &QPushButton::clicked, this, &CompressPanel::exportTableDialog);
    buttons->addWidget(m_runButton);
    buttons->addWidget(m_cancelButton);
    buttons->addStretch(1);
    buttons->addWidget(m_csvButton);
    buttons->addWidget(m_saveButton);
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

void CompressPanel::useStudioModel()
{
    m_folder.clear();
    m_studioSource->setChecked(true);
    updateSource();
}

void CompressPanel::setModelFolder(const QString &folder)
{
    m_folder = folder;
    m_folderEdit->setText(folder);
    {
        const QSignalBlocker block(m_folderSource);
        m_folderSource->setChecked(true);
    }
    updateSource();
}

QString CompressPanel::modelFolder() const
{
    return m_folder;
}

void CompressPanel::setTrialSource(std::function<QString()> source)
{
    m_trialSource = std::move(source);
    m_trialButton->setVisible(bool(m_trialSource));
}

bool CompressPanel::useSelectedTrial()
{
    const QString folder = m_trialSource ? m_trialSource() : QString();
    if (folder.isEmpty()) {
        showError(tr("compress: no Search trial with a model folder is selected (select one in the Search stage's "
                     "trial table or chart)"));
        return false;
    }
    setModelFolder(folder);
    return true;
}

QString CompressPanel::datasetName() const
{
    const QString path = m_context->datasetPath();
    return path.isEmpty() ? tr("current dataset (not saved)") : path;
}

void CompressPanel::updateSource()
{
    const auto model = m_context->model();
    if (!m_folder.isEmpty()) {
        m_modelInfo->setText(tr("%1 (loaded when the compression starts)").arg(m_folder));
    } else if (model) {
        const QString where = m_context->modelPath().isEmpty() ? tr("trained in the studio, not saved") : m_context->modelPath();
        m_modelInfo->setText(tr("%1: %2 parameters, input %3 x %3 (%4)")
                                 .arg(QString::fromStdString(model->spec().name))
                                 .arg(model->parameterCount())
                                 .arg(model->spec().inputSize)
                                 .arg(where));
    } else {
        m_modelInfo->setText(tr("none: train or load one (Train stage), use a Search trial, or choose a folder"));
    }
    const auto data = m_context->dataset();
    if (!data)
        m_datasetInfo->setText(tr("none (build, open or simulate one in the Dataset stage)"));
    else
        m_datasetInfo->setText(tr("%1: %2 patches of %3 x %3%4")
                                   .arg(datasetName())
                                   .arg(data->size())
                                   .arg(data->patchSize)
                                   .arg(data->labelled() ? QString() : tr(", unlabelled")));
    updateButtons();
}

void CompressPanel::setOptions(const core::CompressOptions &o)
{
    QStringList bits;
    for (int b : o.bits)
        bits << QString::number(b);
    m_bitsGrid->setText(bits.join(QLatin1Char(',')));
    m_rounds->setValue(o.pruneRounds);
    m_fraction->setValue(o.pruneFraction);
    m_structured->setChecked(o.structured);
    m_epochs->setValue(o.epochsPerRound);
    m_target->setValue(std::max(0.0, o.targetDistance));
    m_learningRate->setText(QString::number(o.train.learningRate, 'g', 6));
    m_batch->setValue(o.train.batchSize);
    m_seed->setValue(int(std::min<std::uint64_t>(o.train.seed, 2147483647u)));
    m_threads->setValue(std::max(0, o.train.threads));
}

bool CompressPanel::readOptions(core::CompressOptions &o, QString *error) const
{
    QString e;
    o.bits = parseBitsGrid(m_bitsGrid->text(), &e);
    if (!e.isEmpty()) {
        if (error)
            *error = e;
        return false;
    }
    bool ok = false;
    const double lr = m_learningRate->text().trimmed().toDouble(&ok);
    if (!ok || !(lr > 0) || !std::isfinite(lr)) {
        if (error)
            *error = tr("learning rate: expected a positive number, got '%1'").arg(m_learningRate->text());
        return false;
    }
    o.pruneRounds = m_rounds->value();
    o.pruneFraction = m_fraction->value();
    o.structured = m_structured->isChecked();
    o.epochsPerRound = m_epochs->value();
    o.targetDistance = m_target->value();
    o.train.learningRate = lr;
    o.train.batchSize = m_batch->value();
    o.train.seed = std::uint64_t(m_seed->value());
    o.train.threads = m_threads->value();
    return true;
}

void CompressPanel::saveSettings() const
{
    QSettings s;
    s.setValue(QStringLiteral("compress/bits"), m_bitsGrid->text());
    s.setValue(QStringLiteral("compress/rounds"), m_rounds->value());
    s.setValue(QStringLiteral("compress/fraction"), m_fraction->value());
    s.setValue(QStringLiteral("compress/structured"), m_structured->isChecked());
    s.setValue(QStringLiteral("compress/epochs"), m_epochs->value());
    s.setValue(QStringLiteral("compress/target"), m_target->value());
    s.setValue(QStringLiteral("compress/lr"), m_learningRate->text());
    s.setValue(QStringLiteral("compress/batch"), m_batch->value());
}

void CompressPanel::restoreSettings()
{
    QSettings s;
    if (s.contains(QStringLiteral("compress/bits")))
        m_bitsGrid->setText(s.value(QStringLiteral("compress/bits")).toString());
    m_rounds->setValue(s.value(QStringLiteral("compress/rounds"), m_rounds->value()).toInt());
    m_fraction->setValue(s.value(QStringLiteral("compress/fraction"), m_fraction->value()).toDouble());
    m_structured->setChecked(s.value(QStringLiteral("compress/structured"), m_structured->isChecked()).toBool());
    m_epochs->setValue(s.value(QStringLiteral("compress/epochs"), m_epochs->value()).toInt());
    m_target->setValue(s.value(QStringLiteral("compress/target"), m_target->value()).toDouble());
    if (s.contains(QStringLiteral("compress/lr")))
        m_learningRate->setText(s.value(QStringLiteral("compress/lr")).toString());
    m_batch->setValue(s.value(QStringLiteral("compress/batch"), m_batch->value()).toInt());
}

// --- running -------------------------------------------------------------------------------

bool CompressPanel::isBusy() const
{
    return m_job->isRunning();
}

bool CompressPanel::startCompress()
{
    if (m_job->isRunning()) {
        showError(tr("compress: busy; cancel or wait for the running job"));
        return false;
    }
    const std::shared_ptr<const core::Model> studioModel = m_folder.isEmpty() ? m_context->model() : nullptr;
    if (m_folder.isEmpty() && !studioModel) {
        showError(tr("compress: no model; train or load one, use a Search trial, or choose a model folder"));
        return false;
    }
    const std::shared_ptr<const core::PatchDataset> data = m_context->dataset();
    if (!data) {
        showError(tr("compress: no dataset; build, open or simulate one in the Dataset stage"));
        return false;
    }
    if (!data->labelled()) {
        showError(withFile(datasetName(), tr("/centers: missing: the patches are unlabelled")));
        return false;
    }
    core::CompressOptions options;
    QString error;
    if (!readOptions(options, &error)) {
        showError(tr("compress: %1").arg(error));
        return false;
    }
    try {
        options.validate("compress options");
    } catch (const std::exception &e) {
        showError(QString::fromStdString(e.what()));
        return false;
    }
    saveSettings();

    auto feed = std::make_shared<Feed>();
    auto outcome = std::make_shared<Outcome>();
    const std::string folder = m_folder.toStdString();
    const std::string dataName = datasetName().toStdString();
    const bool started = m_job->start([studioModel, folder, data, options, feed, outcome, dataName](const core::Monitor &monitor) {
        std::shared_ptr<const core::Model> start = studioModel;
        if (!start) {
            monitor.report(0, "loading " + folder);
            start = std::make_shared<const core::Model>(core::Model::load(folder));
        }
        const std::string modelName = folder.empty() ? std::string("the studio model") : folder;
        if (data->patchSize != start->spec().inputSize)
            throw core::InputError(core::fileMessage(dataName, "/patches: patch size " + std::to_string(data->patchSize)
                                                                   + " does not match the model's input size "
                                                                   + std::to_string(start->spec().inputSize) + " ("
                                                                   + modelName + ")"));
        outcome->start = start;
        outcome->data = data;
        outcome->options = options;
        // The float reference: the start model's cost at 32 bits and its validation distance.
        outcome->floatBops = core::computeCost(start->spec()).bops;
        monitor.report(0, "evaluating the float start model");
        const core::Evaluation ev = core::evaluateModel(*start, *data, 1);
        if (ev.overall.n)
            outcome->floatDistance = ev.overall.mean;
        monitor.check();
        try {
            outcome->result = core::compressModel(*start, *data, options, monitor, [feed](const core::CompressRecord &r) {
                std::lock_guard<std::mutex> lock(feed->mutex);
                feed->pending.push_back(r);
            });
        } catch (const core::InputError &e) {
            const std::string what = e.what();
            if (what.rfind("/", 0) == 0)
                throw core::InputError(core::fileMessage(dataName, what));
            throw;
        }
    });
    if (!started)
        return false;
    m_action = Action::Compress;
    m_feed = std::move(feed);
    m_outcome = std::move(outcome);
    m_result.reset();
    m_shown.clear();
    m_chosen = -1;
    m_records->removeRows(0, m_records->rowCount());
    resetChart();
    m_progress->setValue(0);
    m_status->setText(tr("Compressing on %1 (%2 patches): bits %3, %4 pruning rounds...")
                          .arg(datasetName())
                          .arg(data->size())
                          .arg(m_bitsGrid->text())
                          .arg(options.pruneRounds));
    m_feedTimer.start();
    updateButtons();
    return true;
}

void CompressPanel::cancel()
{
    if (m_job->isRunning()) {
        m_status->setText(tr("Cancelling..."));
        m_job->cancel();
    }
}

// --- records -------------------------------------------------------------------------------

void CompressPanel::resetChart()
{
    QChart *chart = m_chartView->chart();
    for (auto &[bits, curve] : m_curves) {
        chart->removeSeries(curve);
        delete curve;
    }
    m_curves.clear();
    m_chosenPoint->clear();
    m_selectedPoint->clear();
    m_floatPoint->clear();
    m_braggnnLine->clear();
    m_xAxis->setRange(1e5, m_braggnnBops * 2);
    m_yAxis->setRange(0, 1);
    m_braggnnLine->append(m_braggnnBops, 0);
    m_braggnnLine->append(m_braggnnBops, 1);
}

void CompressPanel::drainFeed()
{
    std::vector<core::CompressRecord> pending;
    {
        std::lock_guard<std::mutex> lock(m_feed->mutex);
        pending.swap(m_feed->pending);
    }
    for (const core::CompressRecord &r : pending)
        appendRecord(r);
    if (!pending.empty()) {
        const auto &r = pending.back();
        m_status->setText(tr("%1 bits, round %2: sparsity %3, BOPs %4, validation %5 px")
                              .arg(r.bits)
                              .arg(r.round)
                              .arg(r.sparsity, 0, 'f', 3)
                              .arg(r.bops, 0, 'e', 3)
                              .arg(px(r.validation)));
        m_table->scrollToBottom();
    }
}

void CompressPanel::appendRecord(const core::CompressRecord &r)
{
    m_shown.push_back(r);
    const int row = m_records->rowCount();
    m_records->insertRow(row);
    const auto set = [&](int col, const QString &text, const QVariant &value) {
        auto *item = new ValueItem(text, value);
        item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
        m_records->setItem(row, col, item);
    };
    const auto number = [](double v) { return std::isfinite(v) ? QVariant(v) : QVariant(QString()); };
    set(ColBits, QString::number(r.bits), r.bits);
    set(ColRound, QString::number(r.round), r.round);
    set(ColSparsity, QString::number(r.sparsity, 'f', 4), r.sparsity);
    set(ColBops, QString::number(r.bops, 'e', 4), r.bops);
    const double reduction = r.bops > 0 ? m_braggnnBops / r.bops : std::nan("");
    set(ColReduction, std::isfinite(reduction) ? QString::number(reduction, 'f', 1) : QStringLiteral("-"), number(reduction));
    set(ColParams, QString::number(r.params), qlonglong(r.params));
    set(ColValidation, px(r.validation), number(r.validation));
    set(ColTest, px(r.test), number(r.test));
    m_records->setItem(row, ColChosen, new QStandardItem(QString()));

    QLineSeries *curve = nullptr;
    for (auto &[bits, c] : m_curves)
        if (bits == r.bits)
            curve = c;
    if (!curve) {
        curve = new QLineSeries;
        curve->setName(tr("%1 bits").arg(r.bits));
        curve->setPointsVisible(true);
        curve->setPen(QPen(kCurveColours[m_curves.size() % std::size(kCurveColours)], 2));
        m_chartView->chart()->addSeries(curve);
        curve->attachAxis(m_xAxis);
        curve->attachAxis(m_yAxis);
        m_curves.emplace_back(r.bits, curve);
        // Click a point: select its record (the nearest of this bit width, in screen terms).
        const int bits = r.bits;
        connect(curve, &QLineSeries::clicked, this, [this, bits](const QPointF &at) {
            const QPointF click = m_chartView->chart()->mapToPosition(at);
            int best = -1;
            double bestDistance = 0;
            for (int i = 0; i < int(m_shown.size()); ++i) {
                const auto &rec = m_shown[std::size_t(i)];
                if (rec.bits != bits || !(rec.bops > 0) || !std::isfinite(score(rec)))
                    continue;
                const QPointF p = m_chartView->chart()->mapToPosition(QPointF(rec.bops, score(rec)));
                const double d = std::hypot(p.x() - click.x(), p.y() - click.y());
                if (best < 0 || d < bestDistance) {
                    best = i;
                    bestDistance = d;
                }
            }
            if (best >= 0)
                selectRecord(best);
        });
    }
    const double d = score(r);
    if (r.bops > 0 && std::isfinite(d))
        curve->append(r.bops, d);

    fitAxes();
}

void CompressPanel::fitAxes()
{
    // Every point, the float reference and braggnn.
    double lo = m_braggnnBops, hi = m_braggnnBops, ymax = 0;
    for (const auto &s : m_shown) {
        if (s.bops > 0) {
            lo = std::min(lo, s.bops);
            hi = std::max(hi, s.bops);
        }
        if (std::isfinite(score(s)))
            ymax = std::max(ymax, score(s));
    }
    for (const QPointF &p : m_floatPoint->points()) {
        lo = std::min(lo, p.x());
        hi = std::max(hi, p.x());
        ymax = std::max(ymax, p.y());
    }
    const double top = ymax > 0 ? ymax * 1.15 : 1.0;
    m_xAxis->setRange(std::pow(10.0, std::floor(std::log10(lo))), std::pow(10.0, std::ceil(std::log10(hi * 1.01))));
    m_yAxis->setRange(0, top);
    m_braggnnLine->replace({QPointF(m_braggnnBops, 0), QPointF(m_braggnnBops, top)});
}

void CompressPanel::markChosen(int index)
{
    m_chosen = index;
    m_chosenPoint->clear();
    for (int row = 0; row < m_records->rowCount(); ++row) {
        const bool chosen = row == index;
        for (int col = 0; col < ColumnCount; ++col)
            if (QStandardItem *item = m_records->item(row, col)) {
                QFont f = item->font();
                f.setBold(chosen);
                item->setFont(f);
            }
        if (QStandardItem *item = m_records->item(row, ColChosen)) {
            item->setText(chosen ? tr("chosen") : QString());
        }
    }
    if (index >= 0 && index < int(m_shown.size())) {
        const auto &r = m_shown[std::size_t(index)];
        if (r.bops > 0 && std::isfinite(score(r)))
            m_chosenPoint->append(r.bops, score(r));
    }
}

int CompressPanel::curvePointCount(int bits) const
{
    for (const auto &[b, c] : m_curves)
        if (b == bits)
            return c->count();
    return 0;
}

void CompressPanel::selectRecord(int index)
{
    if (index < 0 || index >= m_records->rowCount()) {
        m_table->clearSelection();
        m_table->selectionModel()->setCurrentIndex(QModelIndex(), QItemSelectionModel::Clear);
        return;
    }
    m_table->selectionModel()->setCurrentIndex(m_records->index(index, 0),
                                               QItemSelectionModel::ClearAndSelect | QItemSelectionModel::Rows);
}

int CompressPanel::selectedRecord() const
{
    const QModelIndex current = m_table->selectionModel()->currentIndex();
    return current.isValid() && m_table->selectionModel()->isRowSelected(current.row(), QModelIndex()) ? current.row() : -1;
}

int CompressPanel::chosenRecord() const
{
    return m_chosen;
}

QString CompressPanel::statusText() const
{
    return m_status->text();
}

// --- saving --------------------------------------------------------------------------------

bool CompressPanel::saveSelected(const QString &folder, bool confirmed)
{
    if (m_job->isRunning()) {
        showError(tr("%1: busy; cancel or wait before saving").arg(folder));
        return false;
    }
    const int index = selectedRecord();
    if (!m_result || index < 0 || index >= int(m_result->result.records.size())) {
        showError(tr("%1: choose a compression record (a table row) to save").arg(folder));
        return false;
    }
    if (folder.trimmed().isEmpty()) {
        showError(tr("save: no folder given"));
        return false;
    }
    if (!confirmed && folderHasEntries(folder)) {
        auto *box = new QMessageBox(QMessageBox::Question, tr("Replace model folder?"),
                                    tr("%1 already exists. Replace it with the compressed model?").arg(folder),
                                    QMessageBox::Yes | QMessageBox::No, this);
        box->setObjectName(QStringLiteral("confirmOverwriteBox"));
        box->setDefaultButton(QMessageBox::No);
        box->setAttribute(Qt::WA_DeleteOnClose);
        connect(box, &QMessageBox::finished, this, [this, box, folder, index](int) {
            if (box->clickedButton() == box->button(QMessageBox::Yes)) {
                selectRecord(index);
                saveSelected(folder, true);
            } else {
                m_status->setText(tr("Not saved: %1 left as it was").arg(folder));
            }
        });
        box->open();
        return false;
    }

    const std::shared_ptr<Outcome> last = m_result;
    const core::CompressRecord wanted = last->result.records[std::size_t(index)];
    const bool isChosen = index == last->result.chosen;
    auto outcome = std::make_shared<Outcome>();
    const std::string path = folder.toStdString();
    const bool started = m_job->start([last, wanted, isChosen, outcome, path](const core::Monitor &monitor) {
        std::shared_ptr<core::Model> model;
        if (isChosen) {
            model = last->result.model;
        } else {
            // Rebuild this record: the same run for its bit width up to its round, choosing the
            // smallest BOPs within its own distance (its own round, as pruning only removes).
            core::CompressOptions o = last->options;
            o.bits = {wanted.bits};
            o.pruneRounds = wanted.round;
            o.targetDistance = score(wanted);
            monitor.report(0, "re-running " + std::to_string(wanted.bits) + " bits up to round "
                                  + std::to_string(wanted.round));
            core::CompressResult replay = core::compressModel(*last->start, *last->data, o, monitor.sub(0, 0.95));
            const bool same = replay.chosen >= 0 && replay.chosen < int(replay.records.size())
                && sameRecord(replay.records[std::size_t(replay.chosen)], wanted);
            if (!same)
                throw core::Error("the re-run of " + std::to_string(wanted.bits) + " bits, round "
                                  + std::to_string(wanted.round)
                                  + " did not reproduce the record (threads or data changed?); nothing saved. "
                                    "Save the chosen record, or compress again with this bit width and round");
            model = replay.model;
        }
        monitor.report(0.95, "saving " + path);
        model->save(path);
        outcome->saved = model;
        monitor.report(1, "saved");
    });
    if (!started)
        return false;
    m_action = Action::Save;
    m_actionPath = folder;
    m_outcome = std::move(outcome);
    m_progress->setValue(0);
    m_status->setText(isChosen ? tr("Saving %1...").arg(folder)
                               : tr("Rebuilding %1 bits, round %2 (re-run of its fine-tuning) and saving %3...")
                                     .arg(wanted.bits)
                                     .arg(wanted.round)
                                     .arg(folder));
    updateButtons();
    return true;
}

void CompressPanel::saveSelectedDialog()
{
    QSettings settings;
    auto *dialog = new QFileDialog(this, tr("Save compressed model folder"), settings.value(QStringLiteral("paths/models")).toString());
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setAcceptMode(QFileDialog::AcceptSave);
    dialog->setFileMode(QFileDialog::AnyFile);
    dialog->setOption(QFileDialog::DontConfirmOverwrite); // saveSelected asks itself
    dialog->setDefaultSuffix(QStringLiteral("model"));
    connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) {
        QSettings().setValue(QStringLiteral("paths/models"), QFileInfo(path).absolutePath());
        saveSelected(path);
    });
    dialog->open();
}

void CompressPanel::exportTableDialog()
{
    if (m_records->rowCount() == 0) {
        showError(tr("export table: no records yet"));
        return;
    }
    QSettings settings;
    auto *dialog = new QFileDialog(this, tr("Export compression records"),
                                   QDir(settings.value(QStringLiteral("paths/export")).toString())
                                       .filePath(QStringLiteral("compress-records.csv")),
                                   tr("CSV (*.csv)"));
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setAcceptMode(QFileDialog::AcceptSave);
    dialog->setDefaultSuffix(QStringLiteral("csv"));
    connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) {
        QSettings().setValue(QStringLiteral("paths/export"), QFileInfo(path).absolutePath());
        try {
            exportTableCsv(*m_records, path, Qt::EditRole);
            m_status->setText(tr("Saved %1 (%2 records)").arg(path).arg(m_records->rowCount()));
        } catch (const std::exception &e) {
            showError(QString::fromStdString(e.what()));
        }
    });
    dialog->open();
}

// --- job outcome ---------------------------------------------------------------------------

void CompressPanel::onJobFinished()
{
    const Action action = std::exchange(m_action, Action::None);
    std::shared_ptr<Outcome> outcome = std::move(m_outcome);
    m_progress->setValue(0);
    if (action == Action::Compress && outcome) {
        m_feedTimer.stop();
        drainFeed();
        m_result = outcome;
        if (outcome->floatBops > 0 && std::isfinite(outcome->floatDistance)) {
            m_floatPoint->append(outcome->floatBops, outcome->floatDistance);
            fitAxes();
        }
        markChosen(outcome->result.chosen);
        selectRecord(outcome->result.chosen);
        const auto &c = outcome->result.records[std::size_t(outcome->result.chosen)];
        const QString text = tr("%1 records. Chosen: %2 bits, round %3, sparsity %4, BOPs %5 (%6x fewer than braggnn "
                                "float32), validation %7 px, test %8 px (integer reference). Select a row and save it.")
                                 .arg(outcome->result.records.size())
                                 .arg(c.bits)
                                 .arg(c.round)
                                 .arg(c.sparsity, 0, 'f', 3)
                                 .arg(c.bops, 0, 'e', 3)
                                 .arg(m_braggnnBops / c.bops, 0, 'f', 1)
                                 .arg(px(c.validation))
                                 .arg(px(c.test));
        m_status->setText(text);
        Q_EMIT m_context->statusMessage(text, 5000);
        updateButtons();
        Q_EMIT compressFinished();
        return;
    }
    if (action == Action::Save) {
        m_status->setText(tr("Saved the compressed model to %1").arg(m_actionPath));
        updateButtons();
        Q_EMIT modelSaved(m_actionPath);
        return;
    }
    updateButtons();
}

void CompressPanel::onJobFailed(const QString &message)
{
    const Action action = std::exchange(m_action, Action::None);
    m_outcome.reset();
    m_feedTimer.stop();
    if (action == Action::Compress)
        drainFeed();
    m_progress->setValue(0);
    updateButtons();
    QString text = message;
    if (action == Action::Save)
        text = withFile(m_actionPath, message);
    else if (action == Action::Compress && !m_folder.isEmpty() && !message.contains(datasetName()))
        text = withFile(m_folder, message);
    showError(text);
}

void CompressPanel::onJobCancelled()
{
    const Action action = std::exchange(m_action, Action::None);
    m_outcome.reset();
    m_feedTimer.stop();
    if (action == Action::Compress)
        drainFeed();
    m_progress->setValue(0);
    m_status->setText(action == Action::Compress
                          ? tr("Compression cancelled after %1 records (nothing to save)").arg(m_shown.size())
                          : tr("Cancelled; nothing saved"));
    updateButtons();
    if (action == Action::Compress)
        Q_EMIT compressCancelled();
}

void CompressPanel::updateButtons()
{
    const bool busy = m_job->isRunning();
    const bool haveModel = !m_folder.isEmpty() || m_context->model();
    m_runButton->setEnabled(!busy && haveModel && m_context->dataset());
    m_cancelButton->setEnabled(busy);
    m_saveButton->setEnabled(!busy && m_result && selectedRecord() >= 0);
    m_csvButton->setEnabled(m_records->rowCount() > 0);
    m_studioSource->setEnabled(!busy);
    m_folderSource->setEnabled(!busy);
    m_folderEdit->setEnabled(!busy);
    m_folderBrowse->setEnabled(!busy);
    m_trialButton->setEnabled(!busy);
}

void CompressPanel::showError(const QString &message)
{
    m_status->setText(message);
    Q_EMIT errorOccurred(message);
    showErrorBox(this, tr("Compress"), message, QStringLiteral("compressErrorBox"));
}

} // namespace braggnac::ui
