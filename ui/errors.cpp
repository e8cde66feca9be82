#include "ui/errors.h"

#include <QMessageBox>

namespace braggnac::ui {

QString withFile(const QString &path, const QString &message)
{
    if (path.isEmpty() || message.contains(path))
        return message;
    return QStringLiteral("%1: %2").arg(path, message);
}

void showErrorBox(QWidget *parent, const QString &title, const QString &message,
                  const QString &objectName)
{
    auto *box = new QMessageBox(QMessageBox::Warning, title, message, QMessageBox::Ok, parent);
    box->setObjectName(objectName);
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->open();
}

} // namespace braggnac::ui
