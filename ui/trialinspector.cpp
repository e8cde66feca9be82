#include "ui/trialinspector.h"

#include <algorithm>
#include <cmath>

#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QScrollArea>
#include <QSplitter>
#include <QTabWidget>
#include <QTableWidget>
#include <QVBoxLayout>

#include "core/arch/archspec.h"
#include "core/cost/cost.h"
#include "ui/archdiagram.h"
#include "ui/errors.h"
#include "ui/historychart.h"
#include "ui/tableexport.h"

namespace braggnac::ui {

namespace {
QTableWidgetItem *numberItem(const QString &text)
{
    auto *item = new QTableWidgetItem(text);
    item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    return item;
}
} // namespace

TrialInspector::TrialInspector(QWidget *parent) : QWidget(parent)
{
    auto *layout = new QVBoxLayout(this);
    auto *top = new QHBoxLayout;
    m_title = new QLabel(tr("No trial selected"), this);
    m_title->setObjectName(QStringLiteral("trialTitle"));
    m_title->setWordWrap(true);
    top->addWidget(m_title, 1);
    m_useModel = new QPushButton(tr("Use this model"), this);
    m_useModel->setObjectName(QStringLiteral("useModel"));
    m_useModel->setToolTip(tr("Load the trial's model folder and show its predictions on the open frames"));
    m_useModel->setEnabled(false);
    top->addWidget(m_useModel);
    m_exportLayers = new QPushButton(tr("Layers CSV\u2026"), this);
    m_exportLayers->setEnabled(false);
    top->addWidget(m_exportLayers);
    layout->addLayout(top);

    auto *actions = new QHBoxLayout;
    m_retrain = new QPushButton(tr("Retrain with full recipe"), this);
    m_retrain->setObjectName(QStringLiteral("retrainTrial"));
    m_retrain->setToolTip(tr("Train this architecture again with the study's recipe for the full number of epochs "
                             "(no search budget) and save its model folder next to the study"));
    m_retrainEpochs = new QSpinBox(this);
    m_retrainEpochs->setObjectName(QStringLiteral("retrainEpochs"));
    m_retrainEpochs->setRange(1, 10000);
    m_retrainEpochs->setValue(50);
    m_retrainEpochs->setSuffix(tr(" epochs"));
    m_tune = new QPushButton(tr("Tune hyper-parameters"), this);
    m_tune->setObjectName(QStringLiteral("tuneTrial"));
    m_tune->setToolTip(tr("TPE with median pruning over the optimizer, learning rate, weight decay, momentum, "
                          "schedule and batch size of this architecture (braggnac tune), in a tune study next to the study"));
    m_tuneTrials = new QSpinBox(this);
    m_tuneTrials->setObjectName(QStringLiteral("tuneTrials"));
    m_tuneTrials->setRange(1, 100000);
    m_tuneTrials->setValue(8);
    m_tuneTrials->setSuffix(tr(" trials"));
    m_actionProgress = new QProgressBar(this);
    m_actionProgress->setObjectName(QStringLiteral("trialActionProgress"));
    m_actionProgress->setRange(0, 1000);
    m_actionProgress->setVisible(false);
    m_cancelAction = new QPushButton(tr("Cancel"), this);
    m_cancelAction->setObjectName(QStringLiteral("cancelTrialAction"));
    m_cancelAction->setVisible(false);
    m_actionLabel = new QLabel(this);
    m_actionLabel->setObjectName(QStringLiteral("trialActionLabel"));
    m_actionLabel->setTextFormat(Qt::RichText);
    m_actionLabel->setWordWrap(true);
    m_actionLabel->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_useResult = new QPushButton(tr("Use result"), this);
    m_useResult->setObjectName(QStringLiteral("useResult"));
    m_useResult->setToolTip(tr("Load the retrained (or best tuned) model and show its predictions on the open frames"));
    m_useResult->setEnabled(false);
    actions->addWidget(m_retrain);
    actions->addWidget(m_retrainEpochs);
    actions->addSpacing(12);
    actions->addWidget(m_tune);
    actions->addWidget(m_tuneTrials);
    actions->addWidget(m_actionProgress, 1);
    actions->addWidget(m_cancelAction);
    actions->addWidget(m_actionLabel, 2);
    actions->addWidget(m_useResult);
    layout->addLayout(actions);

    auto *split = new QSplitter(Qt::Horizontal, this);
    auto *scroll = new QScrollArea(split);
    scroll->setWidgetResizable(true);
    m_diagram = new ArchDiagram(scroll);
    scroll->setWidget(m_diagram);
    auto *tabs = new QTabWidget(split);
    m_layers = new QTableWidget(0, 5, tabs);
    m_layers->setObjectName(QStringLiteral("layerTable"));
    m_layers->setHorizontalHeaderLabels({tr("Layer"), tr("Kind"), tr("Params"), tr("MACs"), tr("BOPs")});
    m_layers->horizontalHeader()->setSectionResizeMode(0, QHeaderView::Stretch);
    m_layers->verticalHeader()->setVisible(false);
    m_layers->setEditTriggers(QAbstractItemView::NoEditTriggers);
    tabs->addTab(m_layers, tr("Layers"));
    m_history = new HistoryChart(tabs);
    tabs->addTab(m_history, tr("Training curves"));
    m_metrics = new QTableWidget(0, 0, tabs);
    m_metrics->setObjectName(QStringLiteral("metricsTable"));
    m_metrics->setEditTriggers(QAbstractItemView::NoEditTriggers);
    tabs->addTab(m_metrics, tr("Metrics"));
    split->addWidget(scroll);
    split->addWidget(tabs);
    split->setStretchFactor(0, 2);
    split->setStretchFactor(1, 3);
    layout->addWidget(split, 1);

    connect(m_retrain, &QPushButton::clicked, this, &TrialInspector::retrainRequested);
    connect(m_tune, &QPushButton::clicked, this, &TrialInspector::tuneRequested);
    connect(m_cancelAction, &QPushButton::clicked, this, &TrialInspector::cancelActionRequested);
    connect(m_useResult, &QPushButton::clicked, this, [this]() {
        if (!m_resultFolder.isEmpty())
            Q_EMIT useModelRequested(m_resultFolder);
    });
    updateActionButtons();
    connect(m_useModel, &QPushButton::clicked, this, [this]() {
        if (!m_modelFolder.isEmpty())
            Q_EMIT useModelRequested(m_modelFolder);
    });
    connect(m_exportLayers, &QPushButton::clicked, this, [this]() {
        auto *dialog = new QFileDialog(this, tr("Export layer table"), QString(), tr("CSV (*.csv)"));
        dialog->setAcceptMode(QFileDialog::AcceptSave);
        dialog->setDefaultSuffix(QStringLiteral("csv"));
        dialog->setAttribute(Qt::WA_DeleteOnClose);
        connect(dialog, &QFileDialog::fileSelected, this, [this](const QString &path) {
            try {
                exportTableCsv(*m_layers->model(), path);
            } catch (const std::exception &e) {
                Q_EMIT errorOccurred(QString::fromStdString(e.what()));
            }
        });
        dialog->open();
    });
}

void TrialInspector::setActionRunning(const QString &title)
{
    m_actionBusy = true;
    m_actionProgress->setValue(0);
    m_actionProgress->setFormat(QStringLiteral("%p%"));
    m_actionProgress->setVisible(true);
    m_cancelAction->setVisible(true);
    m_cancelAction->setEnabled(true);
    m_actionLabel->setText(title.toHtmlEscaped());
    updateActionButtons();
}

void TrialInspector::setActionProgress(double fraction, const QString &message)
{
    m_actionProgress->setValue(int(std::lround(std::clamp(fraction, 0.0, 1.0) * 1000)));
    if (!message.isEmpty())
        m_actionProgress->setToolTip(message);
    m_actionProgress->setFormat(message.isEmpty() ? QStringLiteral("%p%") : QStringLiteral("%p% \u00b7 ") + QString(message).replace(QLatin1Char('%'), QStringLiteral("%%")));
}

void TrialInspector::setActionDone(const QString &html, const QString &modelFolder)
{
    m_actionBusy = false;
    m_actionProgress->setVisible(false);
    m_cancelAction->setVisible(false);
    m_actionLabel->setText(html);
    m_resultFolder = modelFolder;
    m_useResult->setEnabled(!modelFolder.isEmpty());
    updateActionButtons();
}

void TrialInspector::updateActionButtons()
{
    const bool can = m_id != 0 && !m_trial.spec.is_null() && !m_actionBusy;
    m_retrain->setEnabled(can);
    m_tune->setEnabled(can);
}

void TrialInspector::clear()
{
    m_id = 0;
    m_trial = {};
    m_modelFolder.clear();
    m_title->setText(tr("No trial selected"));
    m_diagram->clear();
    m_layers->setRowCount(0);
    m_metrics->setRowCount(0);
    m_metrics->setColumnCount(0);
    m_history->clear();
    m_useModel->setEnabled(false);
    m_exportLayers->setEnabled(false);
    updateActionButtons();
}

void TrialInspector::setTrial(const core::TrialRecord &t, const QString &storeFolder)
{
    clear();
    m_id = t.id;
    m_trial = t;
    updateActionButtons();
    QString title = tr("<b>Trial %1</b> \u2014 %2, %3 epochs").arg(t.number)
                        .arg(QString::fromLatin1(core::trialStateName(t.state))).arg(t.fidelity);
    if (t.generation >= 0)
        title += tr(", generation %1").arg(t.generation);
    if (t.seconds > 0)
        title += tr(", %1 s").arg(t.seconds, 0, 'f', 1);
    if (!t.error.empty())
        title += QStringLiteral("<br><span style='color:#c0392b'>%1</span>").arg(QString::fromStdString(t.error).toHtmlEscaped());

    // Architecture and cost.
    if (!t.spec.is_null()) {
        try {
            const core::ArchSpec spec = core::ArchSpec::fromJson(t.spec, "trial " + std::to_string(t.number) + " spec");
            m_diagram->setSpec(spec);
            const core::Cost cost = core::computeCost(spec);
            m_layers->setRowCount(int(cost.layers.size()) + 1);
            for (int i = 0; i < int(cost.layers.size()); ++i) {
                const auto &l = cost.layers[std::size_t(i)];
                m_layers->setItem(i, 0, new QTableWidgetItem(QString::fromStdString(l.name)));
                m_layers->setItem(i, 1, new QTableWidgetItem(QString::fromStdString(l.kind)));
                m_layers->setItem(i, 2, numberItem(QString::number(l.params)));
                m_layers->setItem(i, 3, numberItem(QString::number(l.macs)));
                m_layers->setItem(i, 4, numberItem(QString::number(l.bops, 'e', 3)));
            }
            const int last = int(cost.layers.size());
            QFont bold = font();
            bold.setBold(true);
            m_layers->setItem(last, 0, new QTableWidgetItem(tr("total")));
            m_layers->setItem(last, 1, new QTableWidgetItem(QString()));
            m_layers->setItem(last, 2, numberItem(QString::number(cost.params)));
            m_layers->setItem(last, 3, numberItem(QString::number(cost.macs)));
            m_layers->setItem(last, 4, numberItem(QString::number(cost.bops, 'e', 3)));
            for (int c = 0; c < 5; ++c)
                m_layers->item(last, c)->setFont(bold);
            m_exportLayers->setEnabled(true);
            title += tr("<br>%1 parameters, %2 MACs, %3 BOPs").arg(cost.params).arg(cost.macs).arg(cost.bops, 0, 'e', 3);
        } catch (const std::exception &e) {
            Q_EMIT errorOccurred(QString::fromStdString(e.what()));
        }
    }

    // Training curves: [{"epoch", "loss", "validation_mean", ...}].
    if (t.history.is_array()) {
        m_history->clear(std::max<int>(1, int(t.history.size())));
        for (const auto &e : t.history) {
            if (!e.is_object())
                continue;
            const int epoch = e.value("epoch", 0);
            auto num = [&](const char *k) {
                auto it = e.find(k);
                return it != e.end() && it->is_number() ? it->get<double>() : std::nan("");
            };
            m_history->append(epoch, num("loss"), num("validation_mean"));
        }
    }

    // Metrics by subset: rows = subsets, columns = the numeric keys they have.
    if (t.metrics.is_object()) {
        QStringList subsets, keys;
        for (auto it = t.metrics.begin(); it != t.metrics.end(); ++it) {
            if (!it->is_object())
                continue;
            subsets << QString::fromStdString(it.key());
            for (auto k = it->begin(); k != it->end(); ++k)
                if (k->is_number() && !keys.contains(QString::fromStdString(k.key())))
                    keys << QString::fromStdString(k.key());
        }
        m_metrics->setRowCount(int(subsets.size()));
        m_metrics->setColumnCount(int(keys.size()));
        m_metrics->setHorizontalHeaderLabels(keys);
        m_metrics->setVerticalHeaderLabels(subsets);
        for (int r = 0; r < subsets.size(); ++r) {
            const auto &sub = t.metrics[subsets[r].toStdString()];
            for (int c = 0; c < keys.size(); ++c) {
                auto it = sub.find(keys[c].toStdString());
                if (it != sub.end() && it->is_number())
                    m_metrics->setItem(r, c, numberItem(QString::number(it->get<double>(), 'g', 6)));
            }
        }
        m_metrics->resizeColumnsToContents();
    }

    if (!t.modelPath.empty()) {
        const QString folder = QDir(storeFolder).filePath(QString::fromStdString(t.modelPath));
        if (QFileInfo(folder).isDir()) {
            m_modelFolder = folder;
            m_useModel->setEnabled(true);
        } else {
            m_useModel->setToolTip(tr("%1: model folder not found (moved?)").arg(folder));
        }
    }
    m_title->setText(title);
}

} // namespace braggnac::ui
