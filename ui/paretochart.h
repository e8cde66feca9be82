#pragma once
// The live Pareto chart of a study: standard BOPs (log axis) against validation distance (px).
// Every finished trial is drawn (complete trials by fidelity = full, pruned ones apart); the
// front (given by the owner: core's studyFront, the rule `braggnac study --pareto` uses) is
// highlighted and joined; braggnn and nac are reference marks: a point at their distance when
// the study trained them (same canonical hash), else a dashed vertical line at their BOPs
// (core computeCost, Standard, 32 bits) - the legend says which. Hover shows a tooltip, a click
// selects the nearest trial (trialClicked), the wheel zooms around the cursor, a double click
// resets the zoom. setTrials()/setFront() only schedule a redraw on a 40 ms single-shot timer:
// many updates in a row cost one redraw. Colouring (setColouring): by state (complete / pruned),
// by NSGA-II generation, or by fidelity (the epochs a trial was trained: complete = full budget,
// pruned trials by the epochs they got); generation and fidelity use at most kBuckets viridis
// classes (consecutive values merged when there are more), each with its legend entry; the front,
// references, tooltips and selection are the same in every mode. GUI thread only.
#include <cstdint>
#include <map>
#include <vector>

#include <QPointF>
#include <QTimer>

#include "core/search/studystore.h"
#include "ui/chartview.h"

class QLineSeries;
class QLogValueAxis;
class QScatterSeries;
class QValueAxis;

namespace braggnac::ui {

class ParetoChart : public ChartView {
    Q_OBJECT
public:
    enum class Colouring { State, Generation, Fidelity };
    static constexpr int kBuckets = 8;

    explicit ParetoChart(QWidget *parent = nullptr);

    void setColouring(Colouring colouring);
    Colouring colouring() const { return m_colouring; }
    /// Legend names of the colour classes drawn now (empty in State mode), with their point
    /// counts (tests).
    QStringList classNames() const;
    std::vector<int> classCounts() const;

    void setObjectiveColumns(int distanceIndex, int bopsIndex);
    void setTrials(const std::map<std::int64_t, core::TrialRecord> &trials);
    /// Front ids in order of the first objective.
    void setFront(const std::vector<std::int64_t> &front);
    void setSelected(std::int64_t id); // 0: none
    void clear();
    /// Draws now what is pending (tests).
    void flush();

    // What is drawn, for tests and the panel.
    int pointCount() const;                      // trials drawn (complete + pruned)
    std::vector<std::int64_t> frontIds() const { return m_front; }
    int redrawCount() const { return m_redraws; }
    std::int64_t selected() const { return m_selected; }
    /// The trial drawn nearest to a chart value point (0 when none).
    std::int64_t nearestTrial(QPointF widgetPos, double maxPixels = 12) const;

Q_SIGNALS:
    void trialClicked(std::int64_t id);

protected:
    void mouseReleaseEvent(QMouseEvent *event) override;
    void mousePressEvent(QMouseEvent *event) override;
    void mouseDoubleClickEvent(QMouseEvent *event) override;
    void wheelEvent(QWheelEvent *event) override;

private:
    void schedule();
    void redraw();
    void colourClasses();
    void updateReferences(double yMin, double yMax);
    void showTip(const QPointF &value, bool state);

    struct Drawn {
        QPointF value; // (bops, distance)
        std::int64_t id;
    };
    std::map<std::int64_t, core::TrialRecord> m_trials;
    std::vector<std::int64_t> m_front;
    std::vector<Drawn> m_drawn;
    std::int64_t m_selected = 0;
    int m_distanceIndex = 0, m_bopsIndex = 1;
    bool m_zoomed = false;
    int m_redraws = 0;
    QPointF m_pressPos;
    QTimer m_redrawTimer;

    QScatterSeries *m_complete = nullptr;
    QScatterSeries *m_pruned = nullptr;
    std::vector<QScatterSeries *> m_classes; // kBuckets, used by Generation / Fidelity
    Colouring m_colouring = Colouring::State;
    QScatterSeries *m_frontPoints = nullptr;
    QLineSeries *m_frontLine = nullptr;
    QScatterSeries *m_selectedPoint = nullptr;
    struct Reference {
        QString name;
        std::string hash;
        double bops = 0;
        QLineSeries *line = nullptr;       // when the study did not train it
        QScatterSeries *point = nullptr;   // when it did
    };
    std::vector<Reference> m_refs;
    QLogValueAxis *m_xAxis = nullptr;
    QValueAxis *m_yAxis = nullptr;
};

} // namespace braggnac::ui
