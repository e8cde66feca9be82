#include "ui/trainpanel.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>

#include "core/common/error.h"
#include "core/cost/cost.h"
#include "core/io/patchdataset.h"
#include "core/arch/archspec.h"
#include "core/nn/model.h"
#include "core/nn/trainer.h"
#include "core/nn/trial.h"
#include "ui/historychart.h"
#include "ui/errors.h"
#include "ui/job.h"
#include "ui/studiocontext.h"

namespace braggnac::ui {

namespace {

QString datasetName(const QString &path)
{
    return path.isEmpty() ? QStringLiteral("current dataset (not saved)") : path;
}

QString formatNumber(double v, int precision = 4)
{
    return std::isfinite(v) ? QString::number(v, 'g', precision) : QStringLiteral("-");
}

} // namespace

struct TrainPanel::Feed {
    std::mutex mutex;
    std::vector<core::EpochStats> pending;
};

struct TrainPanel::Outcome {
    std::shared_ptr<core::Model> model;
    int bestEpoch = 0;
    bool stoppedEarly = false;
    std::size_t epochs = 0;
    bool evaluated = false;
    core::DistanceStats test;
    std::string evaluationNote;
};

TrainPanel::TrainPanel(StudioContext *context, QWidget *parent)
    : QWidget(parent), m_context(context), m_feed(std::make_shared<Feed>())
{
    setObjectName(QStringLiteral("trainPanel"));
    m_job = new Job(tr("Training"), this);
    connect(m_job, &Job::progressUpdated, this, [this](double f, const QString &message) {
        m_progress->setValue(int(std::lround(1000 * std::clamp(f, 0.0, 1.0))));
        if (!message.isEmpty() && m_action != Action::Train)
            m_status->setText(message);
    });
    connect(m_job, &Job::finished, this, &TrainPanel::onJobFinished);
    connect(m_job, &Job::failed, this, &TrainPanel::onJobFailed);
    connect(m_job, &Job::cancelled, this, &TrainPanel::onJobCancelled);
    // Coalesced hand-over of epoch statistics from the training thread (PlotJuggler style).
    m_feedTimer.setInterval(40);
    connect(&m_feedTimer, &QTimer::timeout, this, &TrainPanel::drainFeed);
    buildUi();
    connect(m_context, &StudioContext::datasetChanged, this, &TrainPanel::onDatasetChanged);
    connect(m_context, &StudioContext::modelChanged, this, &TrainPanel::updateButtons);
    setArchitecture(QStringLiteral("braggnn"));
    onDatasetChanged();
}

TrainPanel::~TrainPanel()
{
    m_feedTimer.stop();
    disconnect(m_job, nullptr, this, nullptr);
    delete m_job; // cancels and joins a running training (which holds only shared state)
    m_job = nullptr;
}

void TrainPanel::buildUi()
{
    // --- architecture and data ---------------------------------------------------------------
    auto *archBox = new QGroupBox(tr("Architecture and data"));
    auto *archForm = new QFormLayout(archBox);
    auto *archRow = new QHBoxLayout;
    m_archCombo = new QComboBox;
    m_archCombo->setObjectName(QStringLiteral("archCombo"));
    for (const std::string &name : core::builtinArchNames())
        m_archCombo->addItem(QString::fromStdString(name), QString::fromStdString(name));
    m_archCombo->addItem(tr("spec file"), QString());
    m_specPath = new QLineEdit;
    m_specPath->setObjectName(QStringLiteral("specPath"));
    m_specPath->setPlaceholderText(tr("architecture spec JSON"));
    m_specBrowse = new QPushButton(tr("..."));
    archRow->addWidget(m_archCombo);
    archRow->addWidget(m_specPath, 1);
    archRow->addWidget(m_specBrowse);
    archForm->addRow(tr("Architecture:"), archRow);
    m_archInfo = new QLabel;
    m_archInfo->setObjectName(QStringLiteral("archInfo"));
    m_archInfo->setWordWrap(true);
    archForm->addRow(QString(), m_archInfo);
    m_datasetInfo = new QLabel;
    m_datasetInfo->setObjectName(QStringLiteral("datasetInfo"));
    m_datasetInfo->setWordWrap(true);
    archForm->addRow(tr("Dataset:"), m_datasetInfo);
    connect(m_archCombo, qOverload<int>(&QComboBox::currentIndexChanged), this, &TrainPanel::onArchChoice);
    connect(m_specPath, &QLineEdit::editingFinished, this, [this] {
        const QString path = m_specPath->text().trimmed();
        if (!path.isEmpty() && path != m_specSource)
            setArchitecture(path);
    });
    connect(m_specBrowse, &QPushButton::clicked, this, &TrainPanel::browseSpec);

    // --- options -----------------------------------------------------------------------------
    auto *optBox = new QGroupBox(tr("Training options"));
    auto *optForm = new QFormLayout(optBox);
    optForm->setFieldGrowthPolicy(QFormLayout::FieldsStayAtSizeHint);
    m_optimizer = new QComboBox;
    m_optimizer->setObjectName(QStringLiteral("optimizer"));
    m_optimizer->addItems({QStringLiteral("rmsprop"), QStringLiteral("adam"), QStringLiteral("sgd")});
    optForm->addRow(tr("Optimizer:"), m_optimizer);
    m_learningRate = new QLineEdit;
    m_learningRate->setObjectName(QStringLiteral("learningRate"));
    optForm->addRow(tr("Learning rate:"), m_learningRate);
    m_weightDecay = new QLineEdit;
    m_weightDecay->setObjectName(QStringLiteral("weightDecay"));
    optForm->addRow(tr("Weight decay:"), m_weightDecay);
    m_momentum = new QDoubleSpinBox;
    m_momentum->setObjectName(QStringLiteral("momentum"));
    m_momentum->setRange(0, 0.999);
    m_momentum->setDecimals(3);
    m_momentum->setSingleStep(0.05);
    optForm->addRow(tr("Momentum (sgd):"), m_momentum);
    m_schedule = new QComboBox;
    m_schedule->setObjectName(QStringLiteral("schedule"));
    m_schedule->addItems({QStringLiteral("cosine"), QStringLiteral("step"), QStringLiteral("exponential"),
                          QStringLiteral("none")});
    optForm->addRow(tr("Schedule:"), m_schedule);
    auto *stepRow = new QHBoxLayout;
    m_stepSize = new QSpinBox;
    m_stepSize->setObjectName(QStringLiteral("stepSize"));
    m_stepSize->setRange(1, 100000);
    m_gamma = new QDoubleSpinBox;
    m_gamma->setObjectName(QStringLiteral("gamma"));
    m_gamma->setRange(0.001, 1.0);
    m_gamma->setDecimals(3);
    m_gamma->setSingleStep(0.05);
    stepRow->addWidget(new QLabel(tr("step")));
    stepRow->addWidget(m_stepSize);
    stepRow->addWidget(new QLabel(tr("gamma")));
    stepRow->addWidget(m_gamma);
    stepRow->addStretch(1);
    optForm->addRow(tr("Decay:"), stepRow);
    m_batchSize = new QSpinBox;
    m_batchSize->setObjectName(QStringLiteral("batchSize"));
    m_batchSize->setRange(1, 1 << 20);
    optForm->addRow(tr("Batch size:"), m_batchSize);
    m_epochs = new QSpinBox;
    m_epochs->setObjectName(QStringLiteral("epochs"));
    m_epochs->setRange(1, 100000);
    optForm->addRow(tr("Epochs:"), m_epochs);
    m_patience = new QSpinBox;
    m_patience->setObjectName(QStringLiteral("patience"));
    m_patience->setRange(0, 100000);
    m_patience->setSpecialValueText(tr("off"));
    optForm->addRow(tr("Early-stopping patience:"), m_patience);
    m_shift = new QSpinBox;
    m_shift->setObjectName(QStringLiteral("shift"));
    m_shift->setRange(0, 31);
    m_shift->setSuffix(tr(" px"));
    optForm->addRow(tr("Shift augmentation:"), m_shift);
    m_seed = new QSpinBox;
    m_seed->setObjectName(QStringLiteral("seed"));
    m_seed->setRange(0, 2147483647);
    optForm->addRow(tr("Seed:"), m_seed);
    m_threads = new QSpinBox;
    m_threads->setObjectName(QStringLiteral("threads"));
    m_threads->setRange(0, 1024);
    m_threads->setSpecialValueText(tr("all"));
    optForm->addRow(tr("Threads:"), m_threads);
    m_device = new QComboBox;
    m_device->setObjectName(QStringLiteral("device"));
    m_device->addItems({QStringLiteral("auto"), QStringLiteral("cpu"), QStringLiteral("cuda")});
    optForm->addRow(tr("Device:"), m_device);
    setOptions(core::TrainOptions());

    // --- actions -----------------------------------------------------------------------------
    auto *buttons = new QHBoxLayout;
    m_trainButton = new QPushButton(tr("Train"));
    m_trainButton->setObjectName(QStringLiteral("trainButton"));
    connect(m_trainButton, &QPushButton::clicked, this, &TrainPanel::startTraining);
    m_cancelButton = new QPushButton(tr("Cancel"));
    m_cancelButton->setObjectName(QStringLiteral("cancelButton"));
    connect(m_cancelButton, &QPushButton::clicked, this, &TrainPanel::cancel);
    m_saveButton = new QPushButton(tr("Save Model..."));
    m_saveButton->setObjectName(QStringLiteral("saveModelButton"));
    connect(m_saveButton, &QPushButton::clicked, this, &TrainPanel::browseSave);
    m_useButton = new QPushButton(tr("Use this model"));
    m_useButton->setObjectName(QStringLiteral("useModelButton"));
    connect(m_useButton, &QPushButton::clicked, this, &TrainPanel::useTrainedModel);
    m_loadButton = new QPushButton(tr("Load Model..."));
    m_loadButton->setObjectName(QStringLiteral("loadModelButton"));
    connect(m_loadButton, &QPushButton::clicked, this, &TrainPanel::browseLoad);
    buttons->addWidget(m_trainButton);
    buttons->addWidget(m_cancelButton);
    buttons->addStretch(1);
    buttons->addWidget(m_saveButton);
    buttons->addWidget(m_useButton);
    buttons->addWidget(m_loadButton);
    m_progress = new QProgressBar;
    m_progress->setObjectName(QStringLiteral("progress"));
    m_progress->setRange(0, 1000);
    m_progress->setTextVisible(false);
    m_status = new QLabel;
    m_status->setObjectName(QStringLiteral("status"));
    m_status->setWordWrap(true);
    m_status->setTextInteractionFlags(Qt::TextSelectableByMouse);

    auto *left = new QWidget;
    auto *leftLayout = new QVBoxLayout(left);
    leftLayout->setContentsMargins(0, 0, 0, 0);
    leftLayout->addWidget(archBox);
    leftLayout->addWidget(optBox);
    leftLayout->addStretch(1);

    // --- results -----------------------------------------------------------------------------
    m_chart = new HistoryChart;
    m_table = new QTableWidget(0, 5);
    m_table->setObjectName(QStringLiteral("historyTable"));
    m_table->setHorizontalHeaderLabels({tr("epoch"), tr("train loss"), tr("val. mean (px)"),
                                        tr("learning rate"), tr("seconds")});
    m_table->verticalHeader()->setVisible(false);
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    m_testEvaluation = new QLabel;
    m_testEvaluation->setObjectName(QStringLiteral("testEvaluation"));
    m_testEvaluation->setWordWrap(true);
    m_testEvaluation->setTextInteractionFlags(Qt::TextSelectableByMouse);

    m_chart->setMinimumHeight(280);
    m_table->setMinimumHeight(120);
    auto *resultsSplit = new QSplitter(Qt::Vertical);
    resultsSplit->addWidget(m_chart);
    resultsSplit->addWidget(m_table);
    resultsSplit->setStretchFactor(0, 3);
    resultsSplit->setStretchFactor(1, 2);
    resultsSplit->setSizes({600, 300});
    auto *right = new QWidget;
    auto *rightLayout = new QVBoxLayout(right);
    rightLayout->setContentsMargins(0, 0, 0, 0);
    rightLayout->addWidget(resultsSplit, 1);
    rightLayout->addWidget(m_testEvaluation);

    auto *split = new QSplitter(Qt::Horizontal);
    split->addWidget(left);
    split->addWidget(right);
    split->setStretchFactor(0, 0);
    split->setStretchFactor(1, 1);
    split->setSizes({380, 900});

    auto *layout = new QVBoxLayout(this);
    layout->addWidget(split, 1);
    layout->addLayout(buttons);
    layout->addWidget(m_progress);
    layout->addWidget(m_status);
    updateButtons();
}

// --- architecture --------------------------------------------------------------------------

void TrainPanel::onArchChoice(int index)
{
    const QString name = m_archCombo->itemData(index).toString();
    const bool specFile = name.isEmpty();
    m_specPath->setEnabled(specFile);
    m_specBrowse->setEnabled(specFile);
    if (!specFile)
        setArchitecture(name);
    else if (!m_specPath->text().trimmed().isEmpty())
        setArchitecture(m_specPath->text().trimmed());
    else
        browseSpec();
}

bool TrainPanel::setArchitecture(const QString &nameOrPath)
{
    const int builtin = m_archCombo->findData(nameOrPath);
    {
        const QSignalBlocker block(m_archCombo);
        m_archCombo->setCurrentIndex(builtin >= 0 ? builtin : m_archCombo->count() - 1);
    }
    m_specPath->setEnabled(builtin < 0);
    m_specBrowse->setEnabled(builtin < 0);
    if (builtin < 0)
        m_specPath->setText(nameOrPath);
    m_specSource = nameOrPath;
    try {
        const core::ArchSpec spec = builtin >= 0 ? core::builtinArch(nameOrPath.toStdString())
                                                 : core::ArchSpec::load(nameOrPath.toStdString());
        spec.shapes(); // validates the layer sizes (throws naming the field)
        m_parameterCount = core::computeCost(spec).params;
        m_spec = std::make_unique<core::ArchSpec>(spec);
        m_archInfo->setText(tr("%1: %2 parameters, input %3 x %3")
                                .arg(QString::fromStdString(spec.name.empty() ? nameOrPath.toStdString() : spec.name))
                                .arg(m_parameterCount)
                                .arg(spec.inputSize));
    } catch (const std::exception &e) {
        m_spec.reset();
        m_parameterCount = -1;
        const QString message = withFile(nameOrPath, QString::fromStdString(e.what()));
        m_archInfo->setText(message);
        updateButtons();
        showError(message);
        return false;
    }
    onDatasetChanged();
    return true;
}

QString TrainPanel::architecture() const
{
    return m_specSource;
}

// --- options -------------------------------------------------------------------------------

void TrainPanel::setOptions(const core::TrainOptions &o)
{
    m_optimizer->setCurrentText(QString::fromStdString(o.optimizer));
    m_learningRate->setText(QString::number(o.learningRate, 'g', 6));
    m_weightDecay->setText(QString::number(o.weightDecay, 'g', 6));
    m_momentum->setValue(o.momentum);
    m_schedule->setCurrentText(QString::fromStdString(o.schedule));
    m_stepSize->setValue(o.stepSize);
    m_gamma->setValue(o.gamma);
    m_batchSize->setValue(o.batchSize);
    m_epochs->setValue(o.epochs);
    m_patience->setValue(o.patience);
    m_shift->setValue(o.shift);
    m_seed->setValue(int(std::min<std::uint64_t>(o.seed, 2147483647u)));
    m_threads->setValue(std::max(0, o.threads));
    m_device->setCurrentText(QString::fromStdString(o.device));
}

bool TrainPanel::readOptions(core::TrainOptions &o, QString *error) const
{
    bool ok = false;
    const double lr = m_learningRate->text().trimmed().toDouble(&ok);
    if (!ok || !(lr > 0) || !std::isfinite(lr)) {
        if (error)
            *error = tr("learning rate: expected a positive number, got '%1'").arg(m_learningRate->text());
        return false;
    }
    const double wd = m_weightDecay->text().trimmed().toDouble(&ok);
    if (!ok || wd < 0 || !std::isfinite(wd)) {
        if (error)
            *error = tr("weight decay: expected a number >= 0, got '%1'").arg(m_weightDecay->text());
        return false;
    }
    o.optimizer = m_optimizer->currentText().toStdString();
    o.learningRate = lr;
    o.weightDecay = wd;
    o.momentum = m_momentum->value();
    o.schedule = m_schedule->currentText().toStdString();
    o.stepSize = m_stepSize->value();
    o.gamma = m_gamma->value();
    o.batchSize = m_batchSize->value();
    o.epochs = m_epochs->value();
    o.patience = m_patience->value();
    o.shift = m_shift->value();
    o.seed = std::uint64_t(m_seed->value());
    o.threads = m_threads->value();
    o.device = m_device->currentText().toStdString();
    return true;
}

// --- actions -------------------------------------------------------------------------------

bool TrainPanel::isBusy() const
{
    return m_job->isRunning();
}

bool TrainPanel::isTraining() const
{
    return m_job->isRunning() && m_action == Action::Train;
}

void TrainPanel::showError(const QString &message)
{
    m_status->setText(message);
    Q_EMIT errorOccurred(message);
    Q_EMIT m_context->statusMessage(message, 10000);
    showErrorBox(this, tr("Training"), message, QStringLiteral("trainError"));
}

bool TrainPanel::startTraining()
{
    if (m_job->isRunning()) {
        showError(tr("train: busy (%1); cancel it or wait").arg(m_status->text()));
        return false;
    }
    if (!m_spec) {
        showError(tr("train: no valid architecture selected (%1)").arg(m_specSource));
        return false;
    }
    std::shared_ptr<const core::PatchDataset> data = m_context->dataset();
    const QString dataPath = datasetName(m_context->datasetPath());
    if (!data) {
        showError(tr("train: no dataset (build, open or simulate one in the Dataset tab)"));
        return false;
    }
    if (!data->labelled()) {
        showError(tr("%1: the dataset is unlabelled (no /centers); fit it or open a labelled file")
                      .arg(dataPath));
        return false;
    }
    if (data->patchSize != m_spec->inputSize) {
        showError(tr("%1: patch size %2 does not match the input size %3 of architecture %4")
                      .arg(dataPath)
                      .arg(data->patchSize)
                      .arg(m_spec->inputSize)
                      .arg(m_specSource));
        return false;
    }
    core::TrainOptions options;
    QString error;
    if (!readOptions(options, &error)) {
        showError(tr("train: %1").arg(error));
        return false;
    }
    options.dataSource = dataPath.toStdString();
    try {
        options.validate();
    } catch (const std::exception &e) {
        showError(QString::fromStdString(e.what()));
        return false;
    }

    auto feed = std::make_shared<Feed>();
    auto outcome = std::make_shared<Outcome>();
    const core::ArchSpec spec = *m_spec;
    const bool started = m_job->start([spec, data, options, feed, outcome](const core::Monitor &monitor) {
        core::TrialCallbacks callbacks;
        callbacks.onEpoch = [feed](const core::EpochStats &stats) {
            std::lock_guard<std::mutex> lock(feed->mutex);
            feed->pending.push_back(stats);
            return core::EpochDecision::Continue;
        };
        // The one train -> evaluate -> describe path (core/nn/trial.h), as `braggnac train`:
        // the model comes back with the same recipe.json / metrics.json content.
        core::TrialResult trial = core::runTrial(spec, options, {}, *data, monitor, callbacks);
        monitor.check();
        if (trial.failed())
            throw core::Error(trial.failure + " (the model is discarded)");
        outcome->bestEpoch = trial.bestEpoch;
        outcome->stoppedEarly = trial.stopReason != core::StopReason::Completed;
        outcome->epochs = std::size_t(trial.epochs);
        outcome->evaluated = trial.test.present();
        if (outcome->evaluated)
            outcome->test = trial.test.overall;
        else
            outcome->evaluationNote = "the test split is empty";
        outcome->model = std::move(trial.model);
    });
    if (!started)
        return false;
    m_action = Action::Train;
    m_actionPath.clear();
    m_feed = std::move(feed);
    m_outcome = std::move(outcome);
    m_plannedEpochs = options.epochs;
    m_chart->clear(options.epochs);
    m_table->setRowCount(0);
    m_testEvaluation->clear();
    m_progress->setValue(0);
    m_status->setText(tr("Training %1 on %2 (%3 patches)...")
                          .arg(m_specSource, dataPath)
                          .arg(data->size()));
    m_feedTimer.start();
    updateButtons();
    return true;
}

void TrainPanel::cancel()
{
    if (m_job->isRunning()) {
        m_status->setText(tr("Cancelling..."));
        m_job->cancel();
    }
}

bool TrainPanel::saveModel(const QString &folder)
{
    if (m_job->isRunning()) {
        showError(tr("%1: busy; cancel or wait before saving").arg(folder));
        return false;
    }
    std::shared_ptr<const core::Model> model = m_model;
    if (!model) {
        showError(tr("%1: no trained or loaded model to save").arg(folder));
        return false;
    }
    const std::string path = folder.toStdString();
    if (!m_job->start([model, path](const core::Monitor &monitor) {
            monitor.report(0, "saving");
            model->save(path);
            monitor.report(1, "saved");
        }))
        return false;
    m_action = Action::Save;
    m_actionPath = folder;
    m_outcome.reset();
    m_status->setText(tr("Saving %1...").arg(folder));
    updateButtons();
    return true;
}

bool TrainPanel::loadModel(const QString &folder)
{
    if (m_job->isRunning()) {
        showError(tr("%1: busy; cancel or wait before loading").arg(folder));
        return false;
    }
    auto outcome = std::make_shared<Outcome>();
    const std::string path = folder.toStdString();
    if (!m_job->start([outcome, path](const core::Monitor &monitor) {
            monitor.report(0, "loading");
            outcome->model = std::make_shared<core::Model>(core::Model::load(path));
            monitor.report(1, "loaded");
        }))
        return false;
    m_action = Action::Load;
    m_actionPath = folder;
    m_outcome = std::move(outcome);
    m_status->setText(tr("Loading %1...").arg(folder));
    updateButtons();
    return true;
}

bool TrainPanel::useTrainedModel()
{
    if (!m_model) {
        showError(tr("use model: nothing trained or loaded yet"));
        return false;
    }
    m_context->setModel(m_model, m_context->model() == m_model ? m_context->modelPath() : QString());
    m_status->setText(tr("The studio now uses this model (%1 parameters)").arg(m_model->parameterCount()));
    Q_EMIT m_context->statusMessage(m_status->text(), 5000);
    return true;
}

// --- job outcome ---------------------------------------------------------------------------

void TrainPanel::drainFeed()
{
    std::vector<core::EpochStats> epochs;
    {
        std::lock_guard<std::mutex> lock(m_feed->mutex);
        epochs.swap(m_feed->pending);
    }
    if (epochs.empty())
        return;
    for (const core::EpochStats &s : epochs) {
        m_chart->append(s.epoch, s.trainLoss, s.validationMean);
        const int row = m_table->rowCount();
        m_table->insertRow(row);
        const QStringList cells = {QString::number(s.epoch), formatNumber(s.trainLoss),
                                   formatNumber(s.validationMean), formatNumber(s.learningRate, 3),
                                   QString::number(s.seconds, 'f', 2)};
        for (int c = 0; c < cells.size(); ++c) {
            auto *item = new QTableWidgetItem(cells[c]);
            item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
            m_table->setItem(row, c, item);
        }
    }
    const core::EpochStats &last = epochs.back();
    if (m_action == Action::Train)
        m_status->setText(tr("Epoch %1/%2: train loss %3, validation mean %4 px")
                              .arg(last.epoch)
                              .arg(m_plannedEpochs)
                              .arg(formatNumber(last.trainLoss))
                              .arg(formatNumber(last.validationMean)));
    m_table->scrollToBottom();
}

void TrainPanel::showStoredHistory(const core::Model &model)
{
    // The model folder's metrics.json carries the training history and test result, when the
    // model was trained by BraggNAC (see core/nn/trainer.cpp).
    m_chart->clear(1);
    m_table->setRowCount(0);
    m_testEvaluation->clear();
    const nlohmann::json &metrics = model.metrics;
    if (!metrics.is_object())
        return;
    const auto number = [](const nlohmann::json &j, const char *key) {
        const auto it = j.find(key);
        return it != j.end() && it->is_number() ? it->get<double>() : std::nan("");
    };
    const auto history = metrics.find("history");
    if (history != metrics.end() && history->is_array()) {
        std::vector<core::EpochStats> epochs;
        for (const nlohmann::json &h : *history) {
            if (!h.is_object())
                continue;
            core::EpochStats s;
            const double epoch = number(h, "epoch");
            s.epoch = std::isfinite(epoch) ? int(epoch) : int(epochs.size()) + 1;
            s.trainLoss = number(h, "loss");
            s.validationMean = number(h, "validation_mean");
            s.learningRate = number(h, "lr");
            s.seconds = number(h, "seconds");
            epochs.push_back(s);
        }
        m_chart->clear(std::max(1, int(epochs.size())));
        {
            std::lock_guard<std::mutex> lock(m_feed->mutex);
            m_feed->pending.insert(m_feed->pending.end(), epochs.begin(), epochs.end());
        }
        drainFeed();
    }
    const auto test = metrics.find("test");
    if (test != metrics.end() && test->is_object())
        m_testEvaluation->setText(tr("Test split (stored): n = %1, mean %2 px, p50 %3, p75 %4, p95 %5, max %6")
                                      .arg(number(*test, "n"))
                                      .arg(number(*test, "mean"), 0, 'f', 4)
                                      .arg(number(*test, "p50"), 0, 'f', 4)
                                      .arg(number(*test, "p75"), 0, 'f', 4)
                                      .arg(number(*test, "p95"), 0, 'f', 4)
                                      .arg(number(*test, "max"), 0, 'f', 4));
}

int TrainPanel::epochsShown() const
{
    return m_table->rowCount();
}

QString TrainPanel::statusText() const
{
    return m_status->text();
}

QString TrainPanel::testEvaluationText() const
{
    return m_testEvaluation->text();
}

void TrainPanel::onJobFinished()
{
    const Action action = std::exchange(m_action, Action::None);
    std::shared_ptr<Outcome> outcome = std::move(m_outcome);
    m_feedTimer.stop();
    m_progress->setValue(0);
    switch (action) {
    case Action::Train: {
        drainFeed();
        if (!outcome || !outcome->model)
            break;
        m_model = outcome->model;
        QString text = tr("Trained %1 epochs; best epoch %2%3. %4 parameters.")
                           .arg(outcome->epochs)
                           .arg(outcome->bestEpoch)
                           .arg(outcome->stoppedEarly ? tr(" (stopped early)") : QString())
                           .arg(m_model->parameterCount());
        m_status->setText(text);
        if (outcome->evaluated) {
            const core::DistanceStats &t = outcome->test;
            m_testEvaluation->setText(tr("Test split: n = %1, mean %2 px, p50 %3, p75 %4, p95 %5, max %6")
                                          .arg(t.n)
                                          .arg(t.mean, 0, 'f', 4)
                                          .arg(t.p50, 0, 'f', 4)
                                          .arg(t.p75, 0, 'f', 4)
                                          .arg(t.p95, 0, 'f', 4)
                                          .arg(t.max, 0, 'f', 4));
        } else {
            m_testEvaluation->setText(tr("Test split not evaluated: %1")
                                          .arg(QString::fromStdString(outcome->evaluationNote)));
        }
        Q_EMIT m_context->statusMessage(text, 5000);
        updateButtons();
        Q_EMIT trainingFinished();
        return;
    }
    case Action::Save:
        if (m_context->model() == m_model)
            m_context->setModel(m_model, m_actionPath);
        m_status->setText(tr("Saved model to %1").arg(m_actionPath));
        updateButtons();
        Q_EMIT modelSaved(m_actionPath);
        return;
    case Action::Load:
        if (outcome && outcome->model) {
            m_model = outcome->model;
            m_context->setModel(m_model, m_actionPath);
            m_archInfo->setText(tr("Loaded %1: %2 parameters, input %3 x %3")
                                    .arg(m_actionPath)
                                    .arg(m_model->parameterCount())
                                    .arg(m_model->spec().inputSize));
            showStoredHistory(*m_model);
            m_status->setText(tr("Loaded %1; the studio now uses it").arg(m_actionPath));
            updateButtons();
            Q_EMIT modelLoaded(m_actionPath);
            return;
        }
        break;
    case Action::None:
        break;
    }
    updateButtons();
}

void TrainPanel::onJobFailed(const QString &message)
{
    const Action action = std::exchange(m_action, Action::None);
    m_outcome.reset();
    m_feedTimer.stop();
    if (action == Action::Train)
        drainFeed();
    m_progress->setValue(0);
    updateButtons();
    QString text = message;
    if (action == Action::Train)
        text = withFile(datasetName(m_context->datasetPath()), message);
    else if (action == Action::Save || action == Action::Load)
        text = withFile(m_actionPath, message);
    showError(text);
}

void TrainPanel::onJobCancelled()
{
    const Action action = std::exchange(m_action, Action::None);
    m_outcome.reset();
    m_feedTimer.stop();
    if (action == Action::Train)
        drainFeed();
    m_progress->setValue(0);
    m_status->setText(action == Action::Train
                          ? tr("Training cancelled after %1 epochs (the partial model is discarded)")
                                .arg(m_table->rowCount())
                          : tr("Cancelled"));
    updateButtons();
    if (action == Action::Train)
        Q_EMIT trainingCancelled();
}

void TrainPanel::onDatasetChanged()
{
    std::shared_ptr<const core::PatchDataset> data = m_context->dataset();
    if (!data) {
        m_datasetInfo->setText(tr("none (build, open or simulate one in the Dataset tab)"));
    } else {
        QString text = tr("%1: %2 patches of %3 x %3, labels %4")
                           .arg(datasetName(m_context->datasetPath()))
                           .arg(data->size())
                           .arg(data->patchSize)
                           .arg(data->labelled() ? QString::fromStdString(data->labelSource) : tr("none"));
        if (m_spec && m_spec->inputSize != data->patchSize)
            text += tr(" -- does not match the architecture's input size %1").arg(m_spec->inputSize);
        m_datasetInfo->setText(text);
    }
    updateButtons();
}

void TrainPanel::updateButtons()
{
    const bool busy = m_job->isRunning();
    const bool training = busy && m_action == Action::Train;
    m_trainButton->setEnabled(!busy && m_spec && m_context->dataset());
    m_cancelButton->setEnabled(training);
    m_saveButton->setEnabled(!busy && m_model);
    m_useButton->setEnabled(!busy && m_model && m_context->model() != m_model);
    m_loadButton->setEnabled(!busy);
    m_archCombo->setEnabled(!busy);
}

// --- dialogs (non-blocking) ----------------------------------------------------------------

void TrainPanel::browseSpec()
{
    auto *dialog = new QFileDialog(this, tr("Architecture spec"), QString(),
                                   tr("Architecture specs (*.json);;All files (*)"));
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setFileMode(QFileDialog::ExistingFile);
    connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) { setArchitecture(path); });
    dialog->open();
}

void TrainPanel::browseSave()
{
    auto *dialog = new QFileDialog(this, tr("Save model folder"), QString());
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setAcceptMode(QFileDialog::AcceptSave);
    dialog->setFileMode(QFileDialog::AnyFile);
    dialog->setDefaultSuffix(QStringLiteral("model"));
    connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) { saveModel(path); });
    dialog->open();
}

void TrainPanel::browseLoad()
{
    auto *dialog = new QFileDialog(this, tr("Open model folder"), QString());
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setFileMode(QFileDialog::Directory);
    dialog->setOption(QFileDialog::ShowDirsOnly);
    connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) { loadModel(path); });
    dialog->open();
}

} // namespace braggnac::ui
