#pragma once
// Error text and error boxes shared by the studio panels. Each panel still emits its own
// errorOccurred signal; these helpers hold only what the panels did alike.
#include <QString>

class QWidget;

namespace braggnac::ui {

/// The house format "path: message"; message unchanged when path is empty or already named in it.
QString withFile(const QString &path, const QString &message);

/// Opens a non-blocking warning box over parent (QMessageBox::open), deleted when closed.
/// objectName lets tests find the box.
void showErrorBox(QWidget *parent, const QString &title, const QString &message,
                  const QString &objectName);

} // namespace braggnac::ui
