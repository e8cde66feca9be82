#include "ui/paretochart.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <QChart>
#include <QLegendMarker>
#include <QLineSeries>
#include <QLogValueAxis>
#include <QMouseEvent>
#include <QPen>
#include <QScatterSeries>
#include <QToolTip>
#include <QValueAxis>
#include <QWheelEvent>

#include "core/arch/archspec.h"
#include "core/cost/cost.h"
#include "core/search/driver.h"
#include "ui/colormap.h"

namespace braggnac::ui {

namespace {
double valueAt(const core::TrialRecord &t, int i)
{
    if (i < 0 || i >= int(t.values.size()))
        return std::nan("");
    return t.values[std::size_t(i)];
}
} // namespace

ParetoChart::ParetoChart(QWidget *parent) : ChartView(parent)
{
    QChart *c = chart();
    c->setTitle(tr("Pareto front: BOPs against validation distance"));
    c->legend()->setAlignment(Qt::AlignBottom);
    m_xAxis = new QLogValueAxis(c);
    m_xAxis->setTitleText(tr("standard BOPs (32 bits, log)"));
    m_xAxis->setLabelFormat(QStringLiteral("%.0e"));
    m_xAxis->setBase(10);
    m_xAxis->setMinorTickCount(-1);
    m_yAxis = new QValueAxis(c);
    m_yAxis->setTitleText(tr("validation distance (px)"));
    m_yAxis->setLabelFormat(QStringLiteral("%.3f"));
    c->addAxis(m_xAxis, Qt::AlignBottom);
    c->addAxis(m_yAxis, Qt::AlignLeft);

    auto addScatter = [&](const QString &name, QColor colour, double size, QScatterSeries::MarkerShape shape) {
        auto *s = new QScatterSeries(c);
        s->setName(name);
        s->setColor(colour);
        s->setBorderColor(colour.darker(130));
        s->setMarkerSize(size);
        s->setMarkerShape(shape);
        c->addSeries(s);
        s->attachAxis(m_xAxis);
        s->attachAxis(m_yAxis);
        connect(s, &QScatterSeries::hovered, this, &ParetoChart::showTip);
        return s;
    };
    m_complete = addScatter(tr("complete"), QColor(70, 130, 180, 170), 8, QScatterSeries::MarkerShapeCircle);
    m_pruned = addScatter(tr("pruned (early stop)"), QColor(170, 170, 170, 150), 7, QScatterSeries::MarkerShapeCircle);
    for (int i = 0; i < kBuckets; ++i) {
        QScatterSeries *s = addScatter(QString(), QColor(70, 130, 180), 8, QScatterSeries::MarkerShapeCircle);
        s->setVisible(false);
        m_classes.push_back(s);
    }
    m_frontLine = new QLineSeries(c);
    m_frontLine->setName(tr("front"));
    m_frontLine->setPen(QPen(QColor(200, 50, 40), 2));
    c->addSeries(m_frontLine);
    m_frontLine->attachAxis(m_xAxis);
    m_frontLine->attachAxis(m_yAxis);
    m_frontPoints = addScatter(tr("front"), QColor(220, 60, 40), 11, QScatterSeries::MarkerShapeCircle);
    m_selectedPoint = addScatter(tr("selected"), QColor(0, 0, 0, 0), 18, QScatterSeries::MarkerShapeCircle);
    m_selectedPoint->setBorderColor(QColor(20, 20, 20));
    m_selectedPoint->setPen(QPen(QColor(20, 20, 20), 2));
    // Only one legend entry for the front.
    for (QLegendMarker *m : c->legend()->markers(m_frontLine))
        m->setVisible(false);
    for (QLegendMarker *m : c->legend()->markers(m_selectedPoint))
        m->setVisible(false);

    const QColor refColours[] = {QColor(120, 60, 160), QColor(30, 140, 80)};
    int k = 0;
    for (const char *name : {"braggnn", "nac"}) {
        Reference r;
        r.name = QString::fromLatin1(name);
        const core::ArchSpec spec = core::builtinArch(name);
        r.hash = spec.canonicalHash();
        r.bops = core::computeCost(spec).bops;
        r.line = new QLineSeries(c);
        QPen pen(refColours[k], 1.5, Qt::DashLine);
        r.line->setPen(pen);
        r.line->setName(tr("%1 (BOPs only: not trained in this study)").arg(r.name));
        c->addSeries(r.line);
        r.line->attachAxis(m_xAxis);
        r.line->attachAxis(m_yAxis);
        r.point = addScatter(tr("%1 (trained in this study)").arg(r.name), refColours[k], 13,
                             QScatterSeries::MarkerShapeRectangle);
        m_refs.push_back(r);
        ++k;
    }

    m_redrawTimer.setSingleShot(true);
    m_redrawTimer.setInterval(40);
    connect(&m_redrawTimer, &QTimer::timeout, this, &ParetoChart::redraw);
    setMouseTracking(true);
    redraw();
}

void ParetoChart::setColouring(Colouring colouring)
{
    if (m_colouring == colouring)
        return;
    m_colouring = colouring;
    schedule();
}

QStringList ParetoChart::classNames() const
{
    QStringList names;
    for (const QScatterSeries *s : m_classes)
        if (s->isVisible())
            names << s->name();
    return names;
}

std::vector<int> ParetoChart::classCounts() const
{
    std::vector<int> counts;
    for (const QScatterSeries *s : m_classes)
        if (s->isVisible())
            counts.push_back(int(s->count()));
    return counts;
}

void ParetoChart::setObjectiveColumns(int distanceIndex, int bopsIndex)
{
    m_distanceIndex = distanceIndex;
    m_bopsIndex = bopsIndex;
    schedule();
}

void ParetoChart::setTrials(const std::map<std::int64_t, core::TrialRecord> &trials)
{
    m_trials = trials;
    schedule();
}

void ParetoChart::setFront(const std::vector<std::int64_t> &front)
{
    m_front = front;
    schedule();
}

void ParetoChart::setSelected(std::int64_t id)
{
    m_selected = id;
    schedule();
}

void ParetoChart::clear()
{
    m_trials.clear();
    m_front.clear();
    m_selected = 0;
    m_zoomed = false;
    schedule();
}

void ParetoChart::flush()
{
    if (m_redrawTimer.isActive()) {
        m_redrawTimer.stop();
        redraw();
    }
}

int ParetoChart::pointCount() const
{
    int n = int(m_complete->count() + m_pruned->count());
    for (const QScatterSeries *s : m_classes)
        n += int(s->count());
    return n;
}

void ParetoChart::schedule()
{
    if (!m_redrawTimer.isActive())
        m_redrawTimer.start();
}

void ParetoChart::redraw()
{
    ++m_redraws;
    QList<QPointF> complete, pruned, front;
    m_drawn.clear();
    double xMin = HUGE_VAL, xMax = -HUGE_VAL, yMin = HUGE_VAL, yMax = -HUGE_VAL;
    auto extend = [&](double x, double y) {
        xMin = std::min(xMin, x);
        xMax = std::max(xMax, x);
        yMin = std::min(yMin, y);
        yMax = std::max(yMax, y);
    };
    std::map<std::string, const core::TrialRecord *> byHash;
    for (const auto &[id, t] : m_trials) {
        if (t.state != core::TrialState::Complete && t.state != core::TrialState::Pruned)
            continue;
        const double d = valueAt(t, m_distanceIndex), b = valueAt(t, m_bopsIndex);
        if (!std::isfinite(d) || !std::isfinite(b) || b <= 0)
            continue;
        const QPointF p(b, d);
        (t.state == core::TrialState::Complete ? complete : pruned).append(p);
        m_drawn.push_back({p, id});
        extend(b, d);
        if (t.state == core::TrialState::Complete)
            byHash[t.specHash] = &t;
    }
    for (std::int64_t id : m_front) {
        auto it = m_trials.find(id);
        if (it == m_trials.end())
            continue;
        front.append(QPointF(valueAt(it->second, m_bopsIndex), valueAt(it->second, m_distanceIndex)));
    }
    std::sort(front.begin(), front.end(), [](const QPointF &a, const QPointF &b) { return a.x() < b.x(); });
    for (auto &r : m_refs) {
        auto it = byHash.find(r.hash);
        if (it != byHash.end()) {
            const double d = valueAt(*it->second, m_distanceIndex);
            r.point->replace(QList<QPointF>{QPointF(r.bops, d)});
            extend(r.bops, d);
        } else {
            r.point->clear();
            xMin = std::min(xMin, r.bops);
            xMax = std::max(xMax, r.bops);
        }
    }
    if (m_colouring == Colouring::State) {
        m_complete->replace(complete);
        m_pruned->replace(pruned);
        for (QScatterSeries *s : m_classes) {
            s->clear();
            s->setVisible(false);
        }
    } else {
        m_complete->clear();
        m_pruned->clear();
        colourClasses();
    }
    for (QScatterSeries *s : {m_complete, m_pruned}) {
        s->setVisible(m_colouring == Colouring::State);
        for (QLegendMarker *m : chart()->legend()->markers(s))
            m->setVisible(s->isVisible());
    }
    for (QScatterSeries *s : m_classes)
        for (QLegendMarker *m : chart()->legend()->markers(s))
            m->setVisible(s->isVisible());
    m_frontPoints->replace(front);
    m_frontLine->replace(front);
    QList<QPointF> sel;
    if (m_selected) {
        auto it = m_trials.find(m_selected);
        if (it != m_trials.end()) {
            const double d = valueAt(it->second, m_distanceIndex), b = valueAt(it->second, m_bopsIndex);
            if (std::isfinite(d) && std::isfinite(b) && b > 0)
                sel.append(QPointF(b, d));
        }
    }
    m_selectedPoint->replace(sel);

    if (!m_zoomed) {
        // Far-off trials (diverged or barely trained) would squash the front into the axis:
        // the default view ends at 3x the front's worst distance (or the median trial's, when
        // larger); the wheel zooms out to the rest.
        if (!front.isEmpty() && m_drawn.size() > 4) {
            std::vector<double> ys;
            for (const auto &d : m_drawn)
                ys.push_back(d.value.y());
            std::nth_element(ys.begin(), ys.begin() + std::ptrdiff_t(ys.size() / 2), ys.end());
            double frontMax = 0;
            for (const QPointF &p : front)
                frontMax = std::max(frontMax, p.y());
            yMax = std::min(yMax, std::max(3 * frontMax, ys[ys.size() / 2]));
        }
        if (!(yMin <= yMax)) {
            yMin = 0;
            yMax = 1;
        }
        const double pad = std::max((yMax - yMin) * 0.08, 0.01);
        yMin = std::max(0.0, yMin - pad);
        yMax += pad;
        const double lx = std::floor(std::log10(xMin) - 0.05), hx = std::ceil(std::log10(xMax) + 0.05);
        m_xAxis->setRange(std::pow(10.0, lx), std::pow(10.0, std::max(hx, lx + 1)));
        m_yAxis->setRange(yMin, yMax);
    }
    updateReferences(m_yAxis->min(), m_yAxis->max());
}

void ParetoChart::colourClasses()
{
    // The key of a drawn trial: its generation, or its fidelity level (complete = INT_MAX).
    auto keyOf = [&](const core::TrialRecord &t) {
        return m_colouring == Colouring::Generation ? std::max(t.generation, 0) : core::fidelityLevel(t);
    };
    std::vector<int> keys;
    for (const auto &d : m_drawn)
        keys.push_back(keyOf(m_trials.at(d.id)));
    std::vector<int> distinct = keys;
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    // Classes: generations as ranges of equal width from the smallest; fidelity levels in
    // order, merged in runs when there are more than kBuckets.
    std::vector<std::pair<int, int>> ranges; // [first, last] key of each class
    if (m_colouring == Colouring::Generation && !distinct.empty()) {
        const int lo = distinct.front(), hi = distinct.back();
        const int width = (hi - lo) / kBuckets + 1;
        for (int a = lo; a <= hi; a += width)
            ranges.push_back({a, std::min(hi, a + width - 1)});
    } else if (!distinct.empty()) {
        const int n = int(distinct.size());
        const int per = (n + kBuckets - 1) / kBuckets;
        for (int i = 0; i < n; i += per)
            ranges.push_back({distinct[std::size_t(i)], distinct[std::size_t(std::min(n, i + per) - 1)]});
    }
    std::vector<QList<QPointF>> points(ranges.size());
    for (std::size_t i = 0; i < m_drawn.size(); ++i) {
        const int k = keys[i];
        for (std::size_t c = 0; c < ranges.size(); ++c)
            if (k >= ranges[c].first && k <= ranges[c].second) {
                points[c].append(m_drawn[i].value);
                break;
            }
    }
    const Colormap viridis(Colormap::Name::Viridis);
    const int full = std::numeric_limits<int>::max();
    for (std::size_t c = 0; c < m_classes.size(); ++c) {
        QScatterSeries *s = m_classes[c];
        if (c >= ranges.size() || points[c].isEmpty()) {
            s->clear();
            s->setVisible(false);
            continue;
        }
        const auto [a, b] = ranges[c];
        QString name;
        if (m_colouring == Colouring::Generation)
            name = a == b ? tr("generation %1").arg(a) : tr("generations %1\u2013%2").arg(a).arg(b);
        else if (a == full)
            name = tr("complete (full budget)");
        else if (b == full)
            name = tr("pruned after %1+ epochs, complete").arg(a);
        else
            name = a != b ? tr("pruned after %1\u2013%2 epochs").arg(a).arg(b)
                   : a == 1 ? tr("pruned after 1 epoch") : tr("pruned after %1 epochs").arg(a);
        const double t = ranges.size() > 1 ? 0.92 * double(c) / double(ranges.size() - 1) : 0.0;
        QColor colour = QColor::fromRgb(viridis.color(t));
        colour.setAlpha(200);
        s->setName(name);
        s->setColor(colour);
        s->setBorderColor(colour.darker(130));
        s->replace(points[c]);
        s->setVisible(true);
    }
}

void ParetoChart::updateReferences(double yMin, double yMax)
{
    for (auto &r : m_refs) {
        if (r.point->count() > 0) {
            r.line->clear();
            r.line->setVisible(false);
            r.point->setVisible(true);
        } else {
            r.line->replace(QList<QPointF>{QPointF(r.bops, yMin), QPointF(r.bops, yMax)});
            r.line->setVisible(true);
            r.point->setVisible(false);
        }
        for (QLegendMarker *m : chart()->legend()->markers(r.line))
            m->setVisible(r.line->isVisible());
        for (QLegendMarker *m : chart()->legend()->markers(r.point))
            m->setVisible(r.point->isVisible());
    }
}

std::int64_t ParetoChart::nearestTrial(QPointF widgetPos, double maxPixels) const
{
    std::int64_t best = 0;
    double bestD = maxPixels * maxPixels;
    const QPointF scenePos = mapToScene(widgetPos.toPoint());
    const QPointF chartPos = chart()->mapFromScene(scenePos);
    for (const auto &d : m_drawn) {
        const QPointF p = chart()->mapToPosition(d.value, m_complete);
        const double dx = p.x() - chartPos.x(), dy = p.y() - chartPos.y();
        if (dx * dx + dy * dy <= bestD) {
            bestD = dx * dx + dy * dy;
            best = d.id;
        }
    }
    return best;
}

void ParetoChart::showTip(const QPointF &value, bool state)
{
    if (!state) {
        QToolTip::hideText();
        return;
    }
    for (const auto &r : m_refs)
        if (std::abs(r.bops - value.x()) < 1e-6 * r.bops && r.point->count() > 0 &&
            r.point->at(0) == value) {
            QToolTip::showText(QCursor::pos(), tr("%1: %2 BOPs, %3 px").arg(r.name).arg(r.bops, 0, 'e', 3)
                                                   .arg(value.y(), 0, 'f', 4), this);
            return;
        }
    for (const auto &d : m_drawn)
        if (d.value == value) {
            const core::TrialRecord &t = m_trials.at(d.id);
            QString text = tr("trial %1 (%2, %3 epochs%4)\n%5 px, %6 BOPs")
                               .arg(t.number)
                               .arg(QString::fromLatin1(core::trialStateName(t.state)))
                               .arg(t.fidelity)
                               .arg(t.generation >= 0 ? tr(", generation %1").arg(t.generation) : QString())
                               .arg(value.y(), 0, 'f', 4)
                               .arg(value.x(), 0, 'e', 3);
            if (std::find(m_front.begin(), m_front.end(), d.id) != m_front.end())
                text += tr("\non the front");
            QToolTip::showText(QCursor::pos(), text, this);
            return;
        }
}

void ParetoChart::mousePressEvent(QMouseEvent *event)
{
    m_pressPos = event->position();
    ChartView::mousePressEvent(event);
}

void ParetoChart::mouseReleaseEvent(QMouseEvent *event)
{
    ChartView::mouseReleaseEvent(event);
    if (event->button() != Qt::LeftButton || (event->position() - m_pressPos).manhattanLength() > 4)
        return;
    if (const std::int64_t id = nearestTrial(event->position())) {
        setSelected(id);
        Q_EMIT trialClicked(id);
    }
}

void ParetoChart::mouseDoubleClickEvent(QMouseEvent *event)
{
    m_zoomed = false;
    schedule();
    event->accept();
}

void ParetoChart::wheelEvent(QWheelEvent *event)
{
    const double steps = event->angleDelta().y() / 120.0;
    if (steps == 0)
        return;
    const double factor = std::pow(0.8, steps); // < 1: zoom in
    const QPointF chartPos = chart()->mapFromScene(mapToScene(event->position().toPoint()));
    const QPointF v = chart()->mapToValue(chartPos, m_complete);
    if (!(v.x() > 0))
        return;
    const double lx = std::log10(v.x());
    const double lo = std::log10(m_xAxis->min()), hi = std::log10(m_xAxis->max());
    m_xAxis->setRange(std::pow(10.0, lx - (lx - lo) * factor), std::pow(10.0, lx + (hi - lx) * factor));
    const double y0 = m_yAxis->min(), y1 = m_yAxis->max();
    m_yAxis->setRange(v.y() - (v.y() - y0) * factor, v.y() + (y1 - v.y()) * factor);
    m_zoomed = true;
    updateReferences(m_yAxis->min(), m_yAxis->max());
    event->accept();
}

} // namespace braggnac::ui
