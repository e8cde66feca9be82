#pragma once
// The studio's Evaluate tab: core::evaluateModel of context->model() on context->dataset() for
// one split, in a Job. Shows the distance table (overall and one row per flag subset) and a
// histogram of distances; the table exports as CSV (atomic), the chart as PNG/SVG.
// Errors are emitted as errorOccurred("<file>: <core's reason>") and shown in a non-modal box.
#include <memory>

#include <QString>
#include <QWidget>

class QComboBox;
class QLabel;
class QPushButton;
class QTableWidget;

namespace braggnac::core {
struct Evaluation;
}

namespace braggnac::ui {

class DistanceHistogram;
class Job;
class StudioContext;

class EvaluatePanel : public QWidget {
    Q_OBJECT
public:
    explicit EvaluatePanel(StudioContext *context, QWidget *parent = nullptr);
    ~EvaluatePanel() override;

    /// Split to evaluate: 0 train, 1 validation, 2 test, -1 every row.
    void setSplit(int split);
    int split() const;

    /// Starts the evaluation; false (and errorOccurred) when no model/dataset or busy.
    bool evaluate();
    bool isBusy() const;

    /// The last evaluation shown (null before the first one).
    std::shared_ptr<const core::Evaluation> evaluation() const { return m_evaluation; }
    /// CSV of the table: header "subset,n,mean,p50,p75,p95,max", full precision. Atomic.
    bool exportCsv(const QString &path, QString *error = nullptr) const;
    QString csvText() const;

    Job *job() const { return m_job; }
    QTableWidget *table() const { return m_table; }
    DistanceHistogram *histogram() const { return m_histogram; }
    QString statusText() const;

Q_SIGNALS:
    void errorOccurred(const QString &message);
    void evaluated();

private:
    struct Outcome;

    void buildUi();
    void onJobFinished();
    void onJobFailed(const QString &message);
    void onInputsChanged();
    void showError(const QString &message);
    void browseCsv();

    StudioContext *m_context;
    Job *m_job = nullptr;
    std::shared_ptr<Outcome> m_outcome;
    std::shared_ptr<const core::Evaluation> m_evaluation;
    QString m_evaluatedDataset;
    QString m_evaluatedModel;
    int m_evaluatedSplit = 2;

    QLabel *m_inputs = nullptr;
    QComboBox *m_split = nullptr;
    QPushButton *m_evaluateButton = nullptr;
    QPushButton *m_csvButton = nullptr;
    QPushButton *m_pngButton = nullptr;
    QPushButton *m_svgButton = nullptr;
    QLabel *m_status = nullptr;
    QTableWidget *m_table = nullptr;
    DistanceHistogram *m_histogram = nullptr;
};

} // namespace braggnac::ui
