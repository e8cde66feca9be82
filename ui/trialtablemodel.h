#pragma once
// The trials of a study as a table: number, state, generation, fidelity (epochs), validation
// distance (px), standard BOPs, seconds, host. Rows are in the order trials were first seen;
// setTrials() replaces the rows it already has in place (by id) and appends new ones, so a
// sort/filter proxy and the selection survive live updates. EditRole holds full-precision
// numbers (for sorting and CSV export), DisplayRole rounded text. GUI thread only.
#include <cstdint>
#include <map>
#include <vector>

#include <QAbstractTableModel>
#include <QHash>
#include <QSet>

#include "core/search/studystore.h"

namespace braggnac::ui {

class TrialTableModel : public QAbstractTableModel {
    Q_OBJECT
public:
    enum Column { Number, State, Generation, Fidelity, Distance, Bops, Seconds, Host, ColumnCount };
    static constexpr int IdRole = Qt::UserRole + 1;

    explicit TrialTableModel(QObject *parent = nullptr);

    /// Index of the distance and bops objectives in TrialRecord::values (-1: not an objective).
    void setObjectiveColumns(int distanceIndex, int bopsIndex);
    void clear();
    /// Updates every row whose trial is in `trials` and appends the others.
    void setTrials(const std::map<std::int64_t, core::TrialRecord> &trials);
    /// Trials on the front (drawn bold).
    void setFront(const QSet<std::int64_t> &ids);

    int rowOf(std::int64_t id) const { return m_rowOf.value(id, -1); }
    std::int64_t idAt(int row) const { return m_rows.at(row).id; }
    const core::TrialRecord &trialAt(int row) const { return m_rows.at(row); }

    int rowCount(const QModelIndex &parent = {}) const override;
    int columnCount(const QModelIndex &parent = {}) const override;
    QVariant data(const QModelIndex &index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

private:
    double value(const core::TrialRecord &t, int index) const;
    std::vector<core::TrialRecord> m_rows;
    QHash<std::int64_t, int> m_rowOf;
    QSet<std::int64_t> m_front;
    int m_distanceIndex = 0, m_bopsIndex = 1;
};

} // namespace braggnac::ui
