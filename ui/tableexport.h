#pragma once
// CSV export of any table model (RFC 4180: comma separated, fields with commas, quotes or line
// breaks quoted, quotes doubled; header row from headerData; '\n' line ends). Rows in the
// model's order, so a proxy exports what the user sees, sorted and filtered.
#include <QString>

class QAbstractItemModel;

namespace braggnac::ui {

/// The table as CSV text. `role`: DisplayRole exports the shown text, EditRole full precision
/// where the model provides it (falls back to DisplayRole for cells without EditRole data).
QString tableToCsv(const QAbstractItemModel &model, int role = Qt::DisplayRole);
/// Writes tableToCsv atomically (QSaveFile). Throws core::Error("path: reason") on failure.
void exportTableCsv(const QAbstractItemModel &model, const QString &path, int role = Qt::DisplayRole);

} // namespace braggnac::ui
