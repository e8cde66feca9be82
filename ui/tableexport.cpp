#include "ui/tableexport.h"

#include <QAbstractItemModel>
#include <QSaveFile>

#include "core/common/error.h"

namespace braggnac::ui {

namespace {
QString csvField(const QVariant &value)
{
    QString s;
    if (value.typeId() == QMetaType::Double || value.typeId() == QMetaType::Float)
        s = QString::number(value.toDouble(), 'g', 17);
    else
        s = value.toString();
    if (s.contains(QLatin1Char(',')) || s.contains(QLatin1Char('"')) || s.contains(QLatin1Char('\n'))
        || s.contains(QLatin1Char('\r'))) {
        s.replace(QLatin1String("\""), QLatin1String("\"\""));
        s = QLatin1Char('"') + s + QLatin1Char('"');
    }
    return s;
}
} // namespace

QString tableToCsv(const QAbstractItemModel &model, int role)
{
    QString out;
    const int columns = model.columnCount();
    QStringList header;
    for (int c = 0; c < columns; ++c)
        header << csvField(model.headerData(c, Qt::Horizontal, Qt::DisplayRole));
    out += header.join(QLatin1Char(',')) + QLatin1Char('\n');
    const int rows = model.rowCount();
    for (int r = 0; r < rows; ++r) {
        QStringList fields;
        for (int c = 0; c < columns; ++c) {
            const QModelIndex index = model.index(r, c);
            QVariant v = model.data(index, role);
            if (!v.isValid() && role != Qt::DisplayRole)
                v = model.data(index, Qt::DisplayRole);
            fields << csvField(v);
        }
        out += fields.join(QLatin1Char(',')) + QLatin1Char('\n');
    }
    return out;
}

void exportTableCsv(const QAbstractItemModel &model, const QString &path, int role)
{
    QSaveFile file(path);
    const auto fail = [&](const QString &why) {
        throw core::Error(core::fileMessage(path.toStdString(), why.toStdString()));
    };
    if (!file.open(QIODevice::WriteOnly | QIODevice::Text))
        fail(file.errorString());
    const QByteArray bytes = tableToCsv(model, role).toUtf8();
    if (file.write(bytes) != bytes.size())
        fail(file.errorString());
    if (!file.commit())
        fail(file.errorString());
}

} // namespace braggnac::ui
