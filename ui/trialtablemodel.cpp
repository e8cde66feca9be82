#include "ui/trialtablemodel.h"

#include <cmath>
#include <limits>

#include <QFont>

namespace braggnac::ui {

TrialTableModel::TrialTableModel(QObject *parent) : QAbstractTableModel(parent) {}

void TrialTableModel::setObjectiveColumns(int distanceIndex, int bopsIndex)
{
    m_distanceIndex = distanceIndex;
    m_bopsIndex = bopsIndex;
    if (!m_rows.empty())
        Q_EMIT dataChanged(index(0, 0), index(rowCount() - 1, ColumnCount - 1));
}

void TrialTableModel::clear()
{
    beginResetModel();
    m_rows.clear();
    m_rowOf.clear();
    m_front.clear();
    endResetModel();
}

void TrialTableModel::setTrials(const std::map<std::int64_t, core::TrialRecord> &trials)
{
    std::vector<const core::TrialRecord *> added;
    int firstChanged = -1, lastChanged = -1;
    for (const auto &[id, t] : trials) {
        const int row = m_rowOf.value(id, -1);
        if (row < 0) {
            added.push_back(&t);
            continue;
        }
        if (m_rows[row].updateSeq == t.updateSeq)
            continue;
        m_rows[row] = t;
        firstChanged = firstChanged < 0 ? row : std::min(firstChanged, row);
        lastChanged = std::max(lastChanged, row);
    }
    if (firstChanged >= 0)
        Q_EMIT dataChanged(index(firstChanged, 0), index(lastChanged, ColumnCount - 1));
    if (!added.empty()) {
        std::sort(added.begin(), added.end(),
                  [](const auto *a, const auto *b) { return a->number < b->number; });
        const int first = int(m_rows.size());
        beginInsertRows({}, first, first + int(added.size()) - 1);
        for (const auto *t : added) {
            m_rowOf.insert(t->id, int(m_rows.size()));
            m_rows.push_back(*t);
        }
        endInsertRows();
    }
}

void TrialTableModel::setFront(const QSet<std::int64_t> &ids)
{
    if (ids == m_front)
        return;
    m_front = ids;
    if (!m_rows.empty())
        Q_EMIT dataChanged(index(0, 0), index(rowCount() - 1, ColumnCount - 1), {Qt::FontRole});
}

int TrialTableModel::rowCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : int(m_rows.size());
}

int TrialTableModel::columnCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : ColumnCount;
}

double TrialTableModel::value(const core::TrialRecord &t, int i) const
{
    if (i < 0 || i >= int(t.values.size()))
        return std::numeric_limits<double>::quiet_NaN();
    return t.values[std::size_t(i)];
}

QVariant TrialTableModel::data(const QModelIndex &index, int role) const
{
    if (!index.isValid() || index.row() >= rowCount())
        return {};
    const core::TrialRecord &t = m_rows[std::size_t(index.row())];
    if (role == IdRole)
        return qlonglong(t.id);
    if (role == Qt::FontRole) {
        if (!m_front.contains(t.id))
            return {};
        QFont f;
        f.setBold(true);
        return f;
    }
    if (role == Qt::ToolTipRole && !t.error.empty())
        return QString::fromStdString(t.error);
    if (role == Qt::TextAlignmentRole)
        return index.column() == State || index.column() == Host
                   ? QVariant(int(Qt::AlignLeft | Qt::AlignVCenter))
                   : QVariant(int(Qt::AlignRight | Qt::AlignVCenter));
    if (role != Qt::DisplayRole && role != Qt::EditRole)
        return {};
    const bool edit = role == Qt::EditRole;
    switch (index.column()) {
    case Number: return t.number;
    case State: {
        QString s = QString::fromLatin1(core::trialStateName(t.state));
        if (!edit && m_front.contains(t.id))
            s += QStringLiteral(" \u2605");
        return s;
    }
    case Generation: return t.generation < 0 ? QVariant(edit ? QVariant(-1) : QVariant(QString())) : QVariant(t.generation);
    case Fidelity: return t.fidelity;
    case Distance: {
        const double d = value(t, m_distanceIndex);
        if (!std::isfinite(d))
            return edit ? QVariant(std::numeric_limits<double>::infinity()) : QVariant(QString());
        return edit ? QVariant(d) : QVariant(QString::number(d, 'f', 4));
    }
    case Bops: {
        const double b = value(t, m_bopsIndex);
        if (!std::isfinite(b))
            return edit ? QVariant(std::numeric_limits<double>::infinity()) : QVariant(QString());
        return edit ? QVariant(b) : QVariant(QString::number(b, 'e', 3));
    }
    case Seconds:
        if (t.seconds <= 0)
            return edit ? QVariant(0.0) : QVariant(QString());
        return edit ? QVariant(t.seconds) : QVariant(QString::number(t.seconds, 'f', 1));
    case Host:
        return t.rank >= 0 ? QStringLiteral("%1/%2").arg(QString::fromStdString(t.host)).arg(t.rank)
                           : QString::fromStdString(t.host);
    default: return {};
    }
}

QVariant TrialTableModel::headerData(int section, Qt::Orientation orientation, int role) const
{
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return QAbstractTableModel::headerData(section, orientation, role);
    switch (section) {
    case Number: return tr("Trial");
    case State: return tr("State");
    case Generation: return tr("Gen");
    case Fidelity: return tr("Epochs");
    case Distance: return tr("Distance (px)");
    case Bops: return tr("BOPs");
    case Seconds: return tr("Seconds");
    case Host: return tr("Host/rank");
    default: return {};
    }
}

} // namespace braggnac::ui
