#pragma once
// The trial inspector's long actions, run off the GUI thread with one Job (progress, cancel):
//   retrain(): core runTrial of the trial's spec with the full recipe (no search budget), the
//              kept model saved as a model folder (atomic; the folder must not exist yet).
//   tune():    core runTune (TPE, median pruning) over the trial's spec in a tune study file,
//              the same work as `braggnac tune --arch SPEC.json --study T.db` (resumable there).
// One action at a time. Results are kept in lastResult(); exactly one of finished / failed /
// cancelled ends an action, in the GUI thread. Errors are the core's messages (naming the file
// or field). GUI thread only.
#include <nlohmann/json.hpp>

#include <QObject>
#include <QString>

#include "core/nn/trainer.h"
#include "core/search/tune.h"

namespace braggnac::ui {

class Job;

struct RetrainParams {
    nlohmann::json spec;        // ArchSpec JSON
    core::TrainOptions recipe;  // the full recipe (epochs included)
    QString dataPath;           // a labelled patch file
    QString outFolder;          // the model folder to write (must not exist)
};

struct TuneParams {
    nlohmann::json spec;        // ArchSpec JSON
    core::TrainOptions recipe;  // the base recipe; epochs is set to tune.epochs
    QString dataPath;
    QString studyPath;          // tune study file (created, or resumed when it exists)
    core::TuneOptions tune;
    int workers = 1;
};

struct TrialActionResult {
    enum class Kind { None, Retrain, Tune } kind = Kind::None;
    QString modelFolder;        // retrain: the saved folder; tune: the best trial's folder
    nlohmann::json metrics;     // retrain: {"validation": {...}, "test": {...}}
    int epochs = 0;             // retrain: epochs trained
    QString studyPath;          // tune
    nlohmann::json bestParams;  // tune: the best trial's hyper-parameters (null: none complete)
    double bestValue = 0;       // tune: its validation distance (px)
    int bestNumber = -1;        // tune: its trial number
    core::StateCounts counts;   // tune: the study's trials
};

class TrialActions : public QObject {
    Q_OBJECT
public:
    explicit TrialActions(QObject *parent = nullptr);
    ~TrialActions() override; // cancels and waits

    /// Start an action; false with *error (the reason) when one runs or the input is invalid.
    bool retrain(const RetrainParams &params, QString *error = nullptr);
    bool tune(const TuneParams &params, QString *error = nullptr);
    void cancel();
    bool isRunning() const;
    TrialActionResult::Kind runningKind() const { return m_kind; }
    void wait();
    const TrialActionResult &lastResult() const { return m_result; }

Q_SIGNALS:
    void started(const QString &title);
    void progressUpdated(double fraction, const QString &message);
    void finished();
    void failed(const QString &message);
    void cancelled();

private:
    Job *m_job = nullptr;
    TrialActionResult::Kind m_kind = TrialActionResult::Kind::None;
    TrialActionResult m_result;
    std::shared_ptr<TrialActionResult> m_pending;
};

} // namespace braggnac::ui
