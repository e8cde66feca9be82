#include "ui/trialactions.h"

#include <cmath>
#include <filesystem>

#include "core/arch/archspec.h"
#include "core/common/error.h"
#include "core/io/patchdataset.h"
#include "core/nn/searchrunner.h"
#include "core/nn/trial.h"
#include "core/search/executor.h"
#include "core/search/studystore.h"
#include "core/search/tpe.h"
#include "ui/job.h"

namespace braggnac::ui {

TrialActions::TrialActions(QObject *parent) : QObject(parent)
{
    m_job = new Job(tr("Trial"), this);
    connect(m_job, &Job::progressUpdated, this, &TrialActions::progressUpdated);
    auto take = [this]() {
        if (m_pending)
            m_result = *m_pending;
        m_pending.reset();
        m_kind = TrialActionResult::Kind::None;
    };
    connect(m_job, &Job::finished, this, [this, take]() {
        take();
        Q_EMIT finished();
    });
    connect(m_job, &Job::failed, this, [this, take](const QString &message) {
        take();
        Q_EMIT failed(message);
    });
    connect(m_job, &Job::cancelled, this, [this, take]() {
        take();
        Q_EMIT cancelled();
    });
}

TrialActions::~TrialActions()
{
    m_job->cancel();
    m_job->wait();
}

bool TrialActions::isRunning() const
{
    return m_job->isRunning();
}

void TrialActions::cancel()
{
    m_job->cancel();
}

void TrialActions::wait()
{
    m_job->wait();
}

bool TrialActions::retrain(const RetrainParams &params, QString *error)
{
    auto refuse = [&](const QString &m) {
        if (error)
            *error = m;
        return false;
    };
    if (m_job->isRunning())
        return refuse(tr("another trial action is running"));
    core::ArchSpec spec;
    core::TrainOptions recipe = params.recipe;
    const std::string data = params.dataPath.toStdString();
    const std::string out = params.outFolder.toStdString();
    try {
        if (data.empty())
            throw core::InputError("retrain: no patch dataset chosen");
        spec = core::ArchSpec::fromJson(params.spec, "trial spec");
        recipe.dataSource = data;
        recipe.validate("retrain recipe");
        if (out.empty())
            throw core::InputError("retrain: no output folder");
        if (std::filesystem::exists(out))
            throw core::InputError(out + ": already exists (a retrained model is never written over)");
    } catch (const std::exception &e) {
        return refuse(QString::fromStdString(e.what()));
    }
    auto result = std::make_shared<TrialActionResult>();
    result->kind = TrialActionResult::Kind::Retrain;
    m_pending = result;
    m_kind = TrialActionResult::Kind::Retrain;
    const QString title = tr("Retraining %1 with the full recipe (%2 epochs)")
                              .arg(QString::fromStdString(spec.name.empty() ? std::string("the trial") : spec.name))
                              .arg(recipe.epochs);
    const bool ok = m_job->start([spec, recipe, data, out, result](const core::Monitor &monitor) {
        monitor.report(0, "reading " + data);
        const core::PatchDataset dataset = core::readPatchDataset(data);
        monitor.check();
        core::TrialResult trial = core::runTrial(spec, recipe, {}, dataset, monitor.sub(0.0, 0.97, "training"));
        if (trial.failed())
            throw core::Error("retrain: " + trial.failure);
        monitor.check();
        monitor.report(0.98, "saving " + out);
        const std::filesystem::path parent = std::filesystem::path(out).parent_path();
        if (!parent.empty())
            std::filesystem::create_directories(parent);
        trial.model->save(out);
        const nlohmann::json j = trial.toJson();
        result->metrics = j.value("metrics", nlohmann::json::object());
        result->epochs = trial.epochs;
        result->modelFolder = QString::fromStdString(out);
        monitor.report(1.0, "saved " + out);
    });
    if (!ok) {
        m_pending.reset();
        m_kind = TrialActionResult::Kind::None;
        return refuse(tr("another trial action is running"));
    }
    Q_EMIT started(title);
    return true;
}

bool TrialActions::tune(const TuneParams &params, QString *error)
{
    auto refuse = [&](const QString &m) {
        if (error)
            *error = m;
        return false;
    };
    if (m_job->isRunning())
        return refuse(tr("another trial action is running"));
    core::ArchSpec spec;
    core::TrainOptions recipe = params.recipe;
    const std::string data = params.dataPath.toStdString();
    const std::string studyPath = params.studyPath.toStdString();
    const core::TuneOptions options = params.tune;
    const int workers = std::max(1, params.workers);
    try {
        if (data.empty())
            throw core::InputError("tune: no patch dataset chosen");
        if (studyPath.empty())
            throw core::InputError("tune: no study file");
        spec = core::ArchSpec::fromJson(params.spec, "trial spec");
        options.validate("tune");
        recipe.epochs = options.epochs;
        recipe.dataSource = data;
        recipe.validate("tune recipe");
    } catch (const std::exception &e) {
        return refuse(QString::fromStdString(e.what()));
    }
    auto result = std::make_shared<TrialActionResult>();
    result->kind = TrialActionResult::Kind::Tune;
    result->studyPath = params.studyPath;
    m_pending = result;
    m_kind = TrialActionResult::Kind::Tune;
    const QString title = tr("Tuning hyper-parameters (TPE, %1 trials of %2 epochs)").arg(options.trials).arg(options.epochs);
    const bool ok = m_job->start([spec, recipe, data, studyPath, options, workers, result](const core::Monitor &monitor) {
        monitor.report(0, "reading " + data);
        const core::PatchDataset dataset = core::readPatchDataset(data);
        monitor.check();
        const std::vector<core::HyperParam> space = core::defaultTuneStudySpace();
        core::StudyInfo study;
        study.name = std::filesystem::path(studyPath).stem().string();
        study.kind = core::StudyKind::Tune;
        study.space = {{"tune", core::tuneSpaceToJson(space)}, {"arch", spec.toJson()}};
        study.dataset = core::describeDataset(data);
        study.objectives.push_back({"distance", true});
        study.options = {{"tune", options.toJson()}, {"recipe", recipe.toJson()}, {"workers", workers}};
        study.seed = options.seed;
        core::StudyStore store = core::StudyStore::createOrOpen(studyPath, study);
        const auto runner = core::makeTorchTrialRunner(dataset, recipe);
        core::LocalExecutor executor(*runner, workers);
        core::TuneCallbacks callbacks;
        callbacks.onProgress = [&monitor](const core::TuneProgress &p) {
            const int done = p.counts.complete + p.counts.pruned + p.counts.failed;
            std::string msg = std::to_string(done) + "/" + std::to_string(p.target) + " trials, "
                + std::to_string(p.counts.running) + " running, " + std::to_string(p.counts.pruned) + " pruned";
            if (std::isfinite(p.best)) {
                char buf[32];
                std::snprintf(buf, sizeof buf, "%.4f", p.best);
                msg += std::string(", best ") + buf + " px";
            }
            monitor.report(p.target > 0 ? double(done) / p.target : 0, msg);
        };
        const core::TuneSummary summary = core::runTune(space, spec.toJson(), store, executor, options, monitor.cancel, callbacks);
        result->counts = summary.counts;
        if (summary.best) {
            result->bestParams = summary.best->hyperParams;
            result->bestValue = summary.best->values.empty() ? std::nan("") : summary.best->values.front();
            result->bestNumber = summary.best->number;
            if (!summary.best->modelPath.empty())
                result->modelFolder = QString::fromStdString(store.resolve(summary.best->modelPath));
        }
    });
    if (!ok) {
        m_pending.reset();
        m_kind = TrialActionResult::Kind::None;
        return refuse(tr("another trial action is running"));
    }
    Q_EMIT started(title);
    return true;
}

} // namespace braggnac::ui
