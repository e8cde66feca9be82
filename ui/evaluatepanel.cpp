#include "ui/evaluatepanel.h"

#include <cmath>
#include <utility>

#include <QComboBox>
#include <QFileDialog>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QSaveFile>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>

#include "core/io/patchdataset.h"
#include "core/nn/model.h"
#include "core/nn/trainer.h"
#include "ui/distancehistogram.h"
#include "ui/errors.h"
#include "ui/job.h"
#include "ui/studiocontext.h"

namespace braggnac::ui {

namespace {

QString splitName(int split)
{
    switch (split) {
    case 0: return QStringLiteral("train");
    case 1: return QStringLiteral("validation");
    case 2: return QStringLiteral("test");
    default: return QStringLiteral("all");
    }
}

QString splitPhrase(int split)
{
    return split < 0 ? QStringLiteral("all rows") : QStringLiteral("the %1 split").arg(splitName(split));
}

} // namespace

struct EvaluatePanel::Outcome {
    std::shared_ptr<core::Evaluation> evaluation;
    // What was evaluated; becomes the panel's m_evaluated* only when the result is shown, so a
    // failed or cancelled run does not relabel the previous table (or its CSV export).
    int split = 2;
    QString dataset;
    QString model;
};

EvaluatePanel::EvaluatePanel(StudioContext *context, QWidget *parent)
    : QWidget(parent), m_context(context)
{
    setObjectName(QStringLiteral("evaluatePanel"));
    m_job = new Job(tr("Evaluation"), this);
    connect(m_job, &Job::finished, this, &EvaluatePanel::onJobFinished);
    connect(m_job, &Job::failed, this, &EvaluatePanel::onJobFailed);
    connect(m_job, &Job::cancelled, this, [this] {
        m_outcome.reset();
        m_status->setText(tr("Cancelled"));
        onInputsChanged();
    });
    buildUi();
    connect(m_context, &StudioContext::modelChanged, this, &EvaluatePanel::onInputsChanged);
    connect(m_context, &StudioContext::datasetChanged, this, &EvaluatePanel::onInputsChanged);
    onInputsChanged();
}

EvaluatePanel::~EvaluatePanel()
{
    disconnect(m_job, nullptr, this, nullptr);
    delete m_job;
    m_job = nullptr;
}

void EvaluatePanel::buildUi()
{
    m_inputs = new QLabel;
    m_inputs->setObjectName(QStringLiteral("inputs"));
    m_inputs->setWordWrap(true);
    m_inputs->setTextInteractionFlags(Qt::TextSelectableByMouse);

    auto *controls = new QHBoxLayout;
    m_split = new QComboBox;
    m_split->setObjectName(QStringLiteral("splitCombo"));
    m_split->addItem(tr("test"), 2);
    m_split->addItem(tr("validation"), 1);
    m_split->addItem(tr("train"), 0);
    m_split->addItem(tr("all rows"), -1);
    m_evaluateButton = new QPushButton(tr("Evaluate"));
    m_evaluateButton->setObjectName(QStringLiteral("evaluateButton"));
    connect(m_evaluateButton, &QPushButton::clicked, this, &EvaluatePanel::evaluate);
    m_csvButton = new QPushButton(tr("Export CSV..."));
    m_csvButton->setObjectName(QStringLiteral("exportCsvButton"));
    connect(m_csvButton, &QPushButton::clicked, this, &EvaluatePanel::browseCsv);
    m_pngButton = new QPushButton(tr("Export PNG..."));
    m_pngButton->setObjectName(QStringLiteral("exportPngButton"));
    m_svgButton = new QPushButton(tr("Export SVG..."));
    m_svgButton->setObjectName(QStringLiteral("exportSvgButton"));
    controls->addWidget(new QLabel(tr("Split:")));
    controls->addWidget(m_split);
    controls->addWidget(m_evaluateButton);
    controls->addStretch(1);
    controls->addWidget(m_csvButton);
    controls->addWidget(m_pngButton);
    controls->addWidget(m_svgButton);

    m_status = new QLabel;
    m_status->setObjectName(QStringLiteral("status"));
    m_status->setWordWrap(true);
    m_status->setTextInteractionFlags(Qt::TextSelectableByMouse);

    m_table = new QTableWidget(0, 7);
    m_table->setObjectName(QStringLiteral("distanceTable"));
    m_table->setHorizontalHeaderLabels({tr("subset"), tr("n"), tr("mean (px)"), tr("p50"), tr("p75"),
                                        tr("p95"), tr("max")});
    m_table->verticalHeader()->setVisible(false);
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);

    m_histogram = new DistanceHistogram;
    connect(m_pngButton, &QPushButton::clicked, this,
            [this] { m_histogram->exportWithDialog(ChartView::ExportFormat::Png); });
    connect(m_svgButton, &QPushButton::clicked, this,
            [this] { m_histogram->exportWithDialog(ChartView::ExportFormat::Svg); });
    connect(m_histogram, &ChartView::exportFailed, this, &EvaluatePanel::errorOccurred);

    m_table->setMinimumHeight(90);
    m_histogram->setMinimumHeight(280);
    auto *split = new QSplitter(Qt::Vertical);
    split->addWidget(m_table);
    split->addWidget(m_histogram);
    split->setStretchFactor(0, 1);
    split->setStretchFactor(1, 3);
    split->setSizes({150, 600});

    auto *layout = new QVBoxLayout(this);
    layout->addWidget(m_inputs);
    layout->addLayout(controls);
    layout->addWidget(m_status);
    layout->addWidget(split, 1);
}

void EvaluatePanel::setSplit(int split)
{
    const int index = m_split->findData(split);
    if (index >= 0)
        m_split->setCurrentIndex(index);
}

int EvaluatePanel::split() const
{
    return m_split->currentData().toInt();
}

bool EvaluatePanel::isBusy() const
{
    return m_job->isRunning();
}

QString EvaluatePanel::statusText() const
{
    return m_status->text();
}

void EvaluatePanel::showError(const QString &message)
{
    m_status->setText(message);
    Q_EMIT errorOccurred(message);
    Q_EMIT m_context->statusMessage(message, 10000);
    showErrorBox(this, tr("Evaluation"), message, QStringLiteral("evaluateError"));
}

bool EvaluatePanel::evaluate()
{
    if (m_job->isRunning()) {
        showError(tr("evaluate: an evaluation is already running"));
        return false;
    }
    std::shared_ptr<const core::Model> model = m_context->model();
    std::shared_ptr<const core::PatchDataset> data = m_context->dataset();
    const QString dataPath = m_context->datasetPath().isEmpty() ? tr("current dataset (not saved)")
                                                                : m_context->datasetPath();
    if (!model) {
        showError(tr("evaluate: no model (train one or load a model folder in the Train tab)"));
        return false;
    }
    if (!data) {
        showError(tr("evaluate: no dataset (build, open or simulate one in the Dataset tab)"));
        return false;
    }
    const int which = split();
    auto outcome = std::make_shared<Outcome>();
    outcome->split = which;
    outcome->dataset = dataPath;
    outcome->model = m_context->modelPath().isEmpty() ? tr("model trained in the studio") : m_context->modelPath();
    if (!m_job->start([model, data, which, outcome](const core::Monitor &monitor) {
            monitor.report(0, "evaluating");
            outcome->evaluation = std::make_shared<core::Evaluation>(core::evaluateModel(*model, *data, which));
            monitor.report(1, "done");
        }))
        return false;
    m_outcome = std::move(outcome);
    m_status->setText(tr("Evaluating on %1 of %2...").arg(splitPhrase(which), dataPath));
    onInputsChanged();
    return true;
}

void EvaluatePanel::onJobFinished()
{
    std::shared_ptr<Outcome> outcome = std::move(m_outcome);
    onInputsChanged();
    if (!outcome || !outcome->evaluation)
        return;
    m_evaluation = outcome->evaluation;
    m_evaluatedSplit = outcome->split;
    m_evaluatedDataset = outcome->dataset;
    m_evaluatedModel = outcome->model;
    const core::Evaluation &e = *m_evaluation;

    std::vector<std::pair<QString, core::DistanceStats>> rows;
    rows.emplace_back(splitName(m_evaluatedSplit), e.overall);
    for (const auto &[name, stats] : e.subsets)
        rows.emplace_back(QString::fromStdString(name), stats);
    m_table->setRowCount(int(rows.size()));
    for (int r = 0; r < int(rows.size()); ++r) {
        const core::DistanceStats &s = rows[std::size_t(r)].second;
        const QStringList cells = {rows[std::size_t(r)].first,
                                   QString::number(qulonglong(s.n)),
                                   QString::number(s.mean, 'f', 4),
                                   QString::number(s.p50, 'f', 4),
                                   QString::number(s.p75, 'f', 4),
                                   QString::number(s.p95, 'f', 4),
                                   QString::number(s.max, 'f', 4)};
        for (int c = 0; c < cells.size(); ++c) {
            auto *item = new QTableWidgetItem(cells[c]);
            item->setTextAlignment(c == 0 ? (Qt::AlignLeft | Qt::AlignVCenter) : (Qt::AlignRight | Qt::AlignVCenter));
            m_table->setItem(r, c, item);
        }
    }
    m_histogram->setDistances(e.distances);
    m_histogram->chart()->setTitle(tr("Distance to label: %1, n = %2").arg(splitPhrase(m_evaluatedSplit)).arg(e.overall.n));
    m_status->setText(tr("%1 on %2 of %3: n = %4, mean %5 px, p95 %6 px")
                          .arg(m_evaluatedModel, splitPhrase(m_evaluatedSplit), m_evaluatedDataset)
                          .arg(e.overall.n)
                          .arg(e.overall.mean, 0, 'f', 4)
                          .arg(e.overall.p95, 0, 'f', 4));
    onInputsChanged();
    Q_EMIT evaluated();
}

void EvaluatePanel::onJobFailed(const QString &message)
{
    const QString dataset = m_outcome ? m_outcome->dataset : m_evaluatedDataset;
    m_outcome.reset();
    onInputsChanged();
    showError(withFile(dataset, message));
}

void EvaluatePanel::onInputsChanged()
{
    std::shared_ptr<const core::Model> model = m_context->model();
    std::shared_ptr<const core::PatchDataset> data = m_context->dataset();
    QStringList lines;
    if (model)
        lines << tr("Model: %1 (%2 parameters, input %3 x %3)")
                     .arg(m_context->modelPath().isEmpty() ? tr("trained in the studio, not saved")
                                                           : m_context->modelPath())
                     .arg(model->parameterCount())
                     .arg(model->spec().inputSize);
    else
        lines << tr("Model: none (train one or load a model folder in the Train tab)");
    if (data)
        lines << tr("Dataset: %1 (%2 patches of %3 x %3)")
                     .arg(m_context->datasetPath().isEmpty() ? tr("not saved") : m_context->datasetPath())
                     .arg(data->size())
                     .arg(data->patchSize);
    else
        lines << tr("Dataset: none (build, open or simulate one in the Dataset tab)");
    m_inputs->setText(lines.join(QLatin1Char('\n')));
    const bool busy = m_job->isRunning();
    m_evaluateButton->setEnabled(!busy && model && data);
    m_split->setEnabled(!busy);
    const bool haveResult = m_evaluation != nullptr;
    m_csvButton->setEnabled(haveResult);
    m_pngButton->setEnabled(haveResult);
    m_svgButton->setEnabled(haveResult);
}

QString EvaluatePanel::csvText() const
{
    QString csv = QStringLiteral("subset,n,mean,p50,p75,p95,max\n");
    if (!m_evaluation)
        return csv;
    auto line = [](const QString &name, const core::DistanceStats &s) {
        return QStringLiteral("%1,%2,%3,%4,%5,%6,%7\n")
            .arg(name)
            .arg(qulonglong(s.n))
            .arg(s.mean, 0, 'g', 17)
            .arg(s.p50, 0, 'g', 17)
            .arg(s.p75, 0, 'g', 17)
            .arg(s.p95, 0, 'g', 17)
            .arg(s.max, 0, 'g', 17);
    };
    csv += line(splitName(m_evaluatedSplit), m_evaluation->overall);
    for (const auto &[name, stats] : m_evaluation->subsets)
        csv += line(QString::fromStdString(name), stats);
    return csv;
}

bool EvaluatePanel::exportCsv(const QString &path, QString *error) const
{
    if (!m_evaluation) {
        if (error)
            *error = tr("%1: nothing to export (no evaluation yet)").arg(path);
        return false;
    }
    QSaveFile file(path);
    if (!file.open(QIODevice::WriteOnly | QIODevice::Text)) {
        if (error)
            *error = QStringLiteral("%1: %2").arg(path, file.errorString());
        return false;
    }
    const QByteArray bytes = csvText().toUtf8();
    if (file.write(bytes) != bytes.size() || !file.commit()) {
        if (error)
            *error = QStringLiteral("%1: %2").arg(path, file.errorString());
        return false;
    }
    return true;
}

void EvaluatePanel::browseCsv()
{
    auto *dialog = new QFileDialog(this, tr("Export distance table"), QString(), tr("CSV (*.csv)"));
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setAcceptMode(QFileDialog::AcceptSave);
    dialog->setDefaultSuffix(QStringLiteral("csv"));
    connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) {
        QString error;
        if (exportCsv(path, &error))
            m_status->setText(tr("Exported %1").arg(path));
        else
            showError(error);
    });
    dialog->open();
}

} // namespace braggnac::ui
